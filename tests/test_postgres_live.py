"""Every PostgreSQL check of the baseline against real throw-away clusters, one configured
insecure and one hardened: exact outcomes. The running server is the oracle of what the
files say (pg_hba_file_rules for pg_hba.conf, pg_settings for postgresql.conf)."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from servers import RunningServer, ServersOnlyHost, issue_certificate, psql_as_postgres
from servers import run_check as run_type
from servers import run_postgres as start_postgres
from treeutil import context, make_tree

from checks.engine import run_check
from checks.hosts import CachedHost, ProcessInfo
from checks.parsers.postgres import parse_pg_hba, parse_postgresql_conf
from checks.policy import load_policy
from checks.result import Status
from checks.types.base import CheckContext
from checks.types.postgres_inside import PostgresInsideCheck
from policies import builtin_policy

HARDENED_CONF = """\
password_encryption = scram-sha-256
log_connections = on
log_disconnections = on
log_line_prefix = '%m [%p] %h %q%u@%d '
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
ssl_min_protocol_version = 'TLSv1.2'
ssl_ciphers = 'HIGH:!aNULL:!MD5'
"""
HARDENED_HBA = """\
local   all     all                     peer
hostssl all     all     127.0.0.1/32    scram-sha-256
host    all     all     ::1/128         scram-sha-256
hostssl app     app     10.20.0.0/16    scram-sha-256
host    all     all     0.0.0.0/0       reject
"""
HARDENED_SQL = [
    f"CREATE ROLE app LOGIN PASSWORD '{secrets.token_hex(32)}'",
    "CREATE DATABASE app OWNER app",
    (
        "app",
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC; "
        "CREATE SCHEMA shop AUTHORIZATION app; "
        "CREATE TABLE shop.customers (id int); ALTER TABLE shop.customers OWNER TO app; "
        "CREATE FUNCTION shop.total() RETURNS int LANGUAGE sql AS 'SELECT 1'; "
        "ALTER FUNCTION shop.total() OWNER TO app",
    ),
]
INSECURE_CONF = """\
password_encryption = md5
log_connections = off
log_disconnections = off
log_line_prefix = '%m [%p] '
ssl = off
ssl_min_protocol_version = 'TLSv1'
ssl_ciphers = 'ALL'
"""
INSECURE_HBA = """\
local   all     all                     trust
host    all     all     127.0.0.1/32    scram-sha-256
host    all     all     0.0.0.0/0       md5
hostnossl app   app     198.51.100.0/24 password
host    all     all     192.0.2.0/24    trust
"""
#: The insecure cluster listens on every address for a few seconds: its passwords are long
#: and random, and its trust rule names a documentation network (RFC 5737) only.
INSECURE_SQL = [
    "SET password_encryption = 'md5'; "
    f"CREATE ROLE app LOGIN SUPERUSER PASSWORD '{secrets.token_hex(32)}'; "
    f"CREATE ROLE dev LOGIN CREATEDB PASSWORD '{secrets.token_hex(32)}'; "
    "GRANT SELECT ON pg_catalog.pg_authid TO dev; "
    "ALTER ROLE dev SET password_encryption = 'md5'",
    "CREATE DATABASE app",
    "ALTER DATABASE app SET password_encryption = 'md5'",
    (
        "app",
        "GRANT CREATE ON SCHEMA public TO PUBLIC; "
        "CREATE TABLE public.customers (id int); "
        "GRANT SELECT ON public.customers TO PUBLIC; "
        "GRANT SELECT ON public.customers TO dev WITH GRANT OPTION; "
        "CREATE FUNCTION public.escalate() RETURNS int LANGUAGE sql SECURITY DEFINER "
        "AS 'SELECT 1'; ALTER FUNCTION public.escalate() OWNER TO dev; "
        "CREATE TRUSTED LANGUAGE plcustom HANDLER plpgsql_call_handler",
    ),
]
PG_CHECKS = [c for c in load_policy(builtin_policy("lapp-baseline")).checks if c.area == "PG"]


class ClusterHost(ServersOnlyHost):
    """This machine, showing only the test's own cluster: its sockets and its postmaster
    (so the developer's clusters, or another test's, are not judged)."""

    def __init__(self, server: RunningServer):
        super().__init__(server)
        self._server = server

    def processes(self) -> list[ProcessInfo]:
        return [p for p in super().processes() if p.pid == self._server.pid]

    def glob(self, pattern: str) -> list[str]:
        return [] if "postgresql.conf" in pattern else super().glob(pattern)


def install_certificate(data: Path) -> None:
    """server.crt and server.key in the data directory, as ``ssl = on`` wants them."""
    cert = issue_certificate(data / "certs", "localhost")
    for source, name in ((cert.cert, "server.crt"), (cert.key, "server.key")):
        shutil.copyfile(source, data / name)
        shutil.chown(data / name, "postgres", "postgres")
        os.chmod(data / name, 0o600)
    shutil.rmtree(data / "certs")


@contextmanager
def cluster(tmp_path: Path, hardened: bool) -> Iterator[RunningServer]:
    def prepare(data: Path) -> None:
        if hardened:
            install_certificate(data)
        else:
            os.chmod(data, 0o750)
            os.chmod(data / "postgresql.conf", 0o644)

    listen = "localhost" if hardened else "*"
    conf, hba = (HARDENED_CONF, HARDENED_HBA) if hardened else (INSECURE_CONF, INSECURE_HBA)
    with start_postgres(tmp_path, listen, conf, hba=hba, prepare=prepare) as server:
        for statement in HARDENED_SQL if hardened else INSECURE_SQL:
            database, sql = statement if isinstance(statement, tuple) else ("postgres", statement)
            psql_as_postgres(server, sql, database)
        yield server


def audit_pg(server: RunningServer) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Every PG check of the baseline on the test's cluster: the checks inside find it as a
    live audit does (by its running postmaster), the file checks are pointed at its
    postgresql.conf (a live audit finds files where packages and images put them)."""
    policy = load_policy(builtin_policy("lapp-baseline"))
    ctx = CheckContext(CachedHost(ClusterHost(server)), policy.values)
    config = f"{server.workdir}/data/postgresql.conf"
    results = []
    for check in PG_CHECKS:
        params = check.implementation.params
        if "config" in params and check.type_name != "postgresql_inside":
            pointed = type(check.implementation)({**params, "config": config})
            check = dataclasses.replace(check, implementation=pointed)
        results.append(run_check(check, ctx))
    return {r.check_id: (r.status.value, r.evidence) for r in results}


def test_the_hardened_cluster_passes_every_check(tmp_path):
    with cluster(tmp_path, hardened=True) as server:
        results = audit_pg(server)
        version = server_version(server)
    assert {i: s for i, (s, _) in results.items()} == dict.fromkeys(
        (c.id for c in PG_CHECKS), "pass"
    ), results
    conf = f"{server.workdir}/data/postgresql.conf"
    assert results["LAPP-PG-027"][1] == (
        f"{conf} (PostgreSQL {version}): the settings in force are the expected ones",
    )
    assert results["LAPP-PG-013"][1] == (
        f"{server.workdir}/data/pg_hba.conf: 4 host/hostssl/hostnossl/hostgssenc/hostnogssenc "
        "rule(s), hostssl only beyond loopback",
    )


#: Every PG check fails on the insecure cluster but these (no old PostgreSQL to run here).
INSECURE_PASSES = {"LAPP-PG-019"}


def test_the_insecure_cluster_fails_exactly_the_violated_checks(tmp_path):
    with cluster(tmp_path, hardened=False) as server:
        results = audit_pg(server)
        version = server_version(server)
        conf_lines = (server.workdir / "data/postgresql.conf").read_text().split("\n")
        uid = os.stat(server.workdir / "data").st_uid
    line = {text.split(" =")[0]: n for n, text in enumerate(conf_lines, 1) if " = " in text}
    expected = {c.id: "pass" if c.id in INSECURE_PASSES else "fail" for c in PG_CHECKS}
    assert {i: s for i, (s, _) in results.items()} == expected, results
    data = f"{server.workdir}/data"
    where = f"{data}/postgresql.conf (PostgreSQL {version})"
    assert results["LAPP-PG-020"][1] == (
        f"{where}: role app has SUPERUSER",
        f"{where}: role dev has CREATEDB",
    )
    assert results["LAPP-PG-021"][1] == (
        f"{where}: role app has an md5 password",
        f"{where}: role dev has an md5 password",
    )
    assert results["LAPP-PG-022"][1] == (
        f"{where}: database app: PUBLIC has schema public: CREATE",
        f"{where}: database app: PUBLIC has table public.customers: SELECT",
    )
    assert results["LAPP-PG-023"][1] == (
        f"{where}: database app: grant option: SELECT on public.customers to dev",
    )
    assert results["LAPP-PG-024"][1] == (
        f"{where}: database app: SECURITY DEFINER function escalate() owned by dev, not a "
        "superuser",
    )
    assert results["LAPP-PG-025"][1] == (f"{where}: database app: language plcustom (trusted)",)
    assert results["LAPP-PG-026"][1] == (f"{where}: database postgres: pg_authid: SELECT to dev",)
    assert results["LAPP-PG-027"][1] == (
        f"{where}: password_encryption = 'md5' ({data}/postgresql.conf:"
        f"{line['password_encryption']}), expected 'scram-sha-256'",
        f"{where}: log_connections = 'off' ({data}/postgresql.conf:{line['log_connections']}), "
        "expected 'on'",
        f"{where}: log_disconnections = 'off' ({data}/postgresql.conf:"
        f"{line['log_disconnections']}), expected 'on'",
        f"{where}: ssl = 'off' ({data}/postgresql.conf:{line['ssl']}), expected 'on'",
        f"{where}: ALTER ... SET password_encryption = 'md5' for role dev, expected "
        "'scram-sha-256'",
        f"{where}: ALTER ... SET password_encryption = 'md5' for database app, expected "
        "'scram-sha-256'",
    )
    hba = f"{data}/pg_hba.conf"
    assert results["LAPP-PG-011"][1] == (
        f"{hba}:1: local   all     all                     trust (method trust, allowed: "
        "peer, reject)",
    )
    assert [e.split(":")[1] for e in results["LAPP-PG-012"][1]] == ["3", "4", "5"]
    assert results["LAPP-PG-013"][1] == (
        f"{hba}:3: host    all     all     0.0.0.0/0       md5 (admits 0.0.0.0/0 without SSL: "
        "use hostssl)",
        f"{hba}:4: hostnossl app   app     198.51.100.0/24 password (admits 198.51.100.0/24 "
        "without SSL: use hostssl)",
        f"{hba}:5: host    all     all     192.0.2.0/24    trust (admits 192.0.2.0/24 without "
        "SSL: use hostssl)",
    )
    assert results["LAPP-PG-017"][1][:2] == (
        f"{data}: 0750 uid {uid} (mode 0750 exceeds 0700)",
        f"{data}/postgresql.conf: 0644 uid {uid} (mode 0644 exceeds 0640)",
    )


def server_version(server: RunningServer) -> str:
    return psql_as_postgres(server, "SHOW server_version").split()[0]


def hba_file_rules(server: RunningServer) -> list[dict]:
    rows = psql_as_postgres(
        server,
        "SELECT coalesce(json_agg(r ORDER BY line_number), '[]') FROM (SELECT line_number, "
        "type, database, user_name, address, netmask, auth_method, error "
        "FROM pg_hba_file_rules) r",
    )
    return json.loads(rows)


TRICKY_HBA = """\
local   all     all                                 peer
host    all     all     127.0.0.1       255.255.255.255 scram-sha-256
host    all     all     127.0.0.0/8     md5
hostssl all     all     ::1/128         cert
host    "all"   all     localhost       scram-sha-256
host    all     all     samehost        scram-sha-256
hostnossl all   all     0/0             reject
hostgssenc all  all     10.0.0.0/8      scram-sha-256
host    all     all     ::ffff:127.0.0.1/128 scram-sha-256
"""


@pytest.mark.parametrize(
    "hba", [HARDENED_HBA, INSECURE_HBA, TRICKY_HBA], ids=["hardened", "insecure", "tricky"]
)
def test_pg_hba_reads_as_the_server_reads_it(tmp_path, hba):
    """pg_hba_file_rules is the server's own reading: the same rules, types, methods and
    address ranges (so the loopback and open-address judgements rest on the right data)."""
    ssl = "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
    with start_postgres(tmp_path, "localhost", ssl, hba, install_certificate) as server:
        oracle = hba_file_rules(server)
        parsed = parse_pg_hba(CachedHost(ClusterHost(server)), f"{server.workdir}/data/pg_hba.conf")
    assert not [row for row in oracle if row["error"]]
    assert not parsed.problems
    ours = [
        (rule.origin.line, rule.type, rule.method, _range(rule.network), rule.loopback_only)
        for rule in parsed.rules
    ]
    theirs = [
        (
            row["line_number"],
            row["type"],
            row["auth_method"],
            _range(_network(row["address"], row["netmask"])),
            _loopback(row["address"], row["netmask"]),
        )
        for row in oracle
    ]
    assert ours == theirs


def _network(address: str | None, netmask: str | None):
    if address is None or netmask is None:
        return None
    prefix = bin(int(ipaddress.ip_address(netmask))).count("1")  # contiguous masks here
    return ipaddress.ip_network(f"{address}/{prefix}", strict=False)


def _range(network) -> str | None:
    return None if network is None else str(network)


def _loopback(address: str | None, netmask: str | None) -> bool:
    """What the server's view says: a range inside 127.0.0.0/8 or ::1, or the name
    localhost (the view keeps host names as written, without a netmask)."""
    network = _network(address, netmask)
    if network is None:
        return address == "localhost"
    return any(
        network.version == loop.version and network.subnet_of(loop)
        for loop in (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
    )


SETTINGS = (
    "listen_addresses",
    "password_encryption",
    "log_connections",
    "log_disconnections",
    "log_line_prefix",
    "ssl",
    "ssl_min_protocol_version",
    "ssl_ciphers",
    "logging_collector",
    "log_directory",
)


@pytest.mark.parametrize("hardened", [True, False], ids=["hardened", "insecure"])
def test_settings_read_from_the_files_are_the_ones_in_force(tmp_path, hardened):
    """pg_settings of the freshly started server against the parser, setting by setting,
    built-in defaults included."""
    with cluster(tmp_path, hardened) as server:
        names = ", ".join(f"'{n}'" for n in SETTINGS)
        query = f"SELECT json_object_agg(name, setting) FROM pg_settings WHERE name IN ({names})"
        oracle = json.loads(psql_as_postgres(server, query))
        conf = parse_postgresql_conf(CachedHost(ClusterHost(server)),
                                     f"{server.workdir}/data/postgresql.conf")  # fmt: skip
    ours = {name: conf.get(name).value for name in SETTINGS}
    booleans = {"on": "on", "off": "off", "true": "on", "false": "off"}
    assert {n: booleans.get(v, v) for n, v in ours.items()} == oracle


def test_a_server_that_is_not_running_is_not_judged_inside(tmp_path):
    """No socket, no session: a stopped cluster has nothing inside to judge (its files are
    still judged by the other checks)."""
    config = "/etc/postgresql/15/main/postgresql.conf"
    make_tree(tmp_path, {config: "unix_socket_directories = '/run/postgresql'\n"})
    verdict = run_type(PostgresInsideCheck, {"aspect": "privileged_roles"}, context(tmp_path))
    assert (verdict.status, verdict.reason) == (
        Status.SKIP,
        f"no PostgreSQL server is running ({config}): nothing inside to judge",
    )

"""PostgreSQL's files, version, TLS settings and pg_hba rule kinds on host trees (``--root``
audits): a passing and a failing fixture for each, with exact outcomes. The running server
judges the same checks in test_postgres_live.py."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from conftest import FIXTURES
from servers import run_check
from treeutil import context, make_tree

from checks.result import Status
from checks.types.postgres import PgHbaCheck, PostgresConfCheck, PostgresTlsCheck
from checks.types.postgres_install import PostgresFilesCheck, PostgresVersionCheck

AUDIT_DAY = dt.datetime(2026, 12, 3, 12, tzinfo=dt.UTC).timestamp()
CONF = "/etc/postgresql/15/main/postgresql.conf"
HBA = "/etc/postgresql/15/main/pg_hba.conf"
DEBIAN_CONF = f"data_directory = '/var/lib/postgresql/15/main'\nhba_file = '{HBA}'\n"
PASSWD = "root:x:0:0:root:/root:/bin/bash\npostgres:x:{uid}:111::/var/lib/postgresql:/bin/bash\n"


def fixture(name: str) -> str:
    return (FIXTURES / "postgres" / name).read_text()


# --- versions ----------------------------------------------------------------------------------


def version(root: Path):
    return run_check(PostgresVersionCheck, {}, context(root, clock=lambda: AUDIT_DAY))


@pytest.mark.parametrize(
    ("files", "status", "evidence"),
    [
        (
            {"/etc/postgresql/15/main/postgresql.conf": ""},
            "pass",
            "/etc/postgresql/15/main/postgresql.conf: PostgreSQL 15: fixed until 2027-11-11",
        ),
        (
            {"/etc/postgresql/13/main/postgresql.conf": ""},
            "fail",
            "/etc/postgresql/13/main/postgresql.conf: PostgreSQL 13: past its end of life "
            "(2025-11-13)",
        ),
        (
            {"/etc/postgresql/9.6/main/postgresql.conf": ""},
            "fail",
            "/etc/postgresql/9.6/main/postgresql.conf: PostgreSQL 9: past its end of life",
        ),
        (
            {
                "/var/lib/postgresql/data/postgresql.conf": "",
                "/var/lib/postgresql/data/PG_VERSION": "16\n",
            },
            "pass",
            "/var/lib/postgresql/data/postgresql.conf: PostgreSQL 16: fixed until 2028-11-09",
        ),
        (
            {"/etc/postgresql/21/main/postgresql.conf": ""},
            "pass",
            "/etc/postgresql/21/main/postgresql.conf: PostgreSQL 21: newer than 18, the newest "
            "this lappguard knows",
        ),
    ],
)
def test_supported_versions(tmp_path, files, status, evidence):
    verdict = version(make_tree(tmp_path, files))
    assert (verdict.status.value, verdict.evidence) == (status, (evidence,))


def test_a_pre_release_package_fails(tmp_path):
    status = (
        "Package: postgresql-18\nStatus: install ok installed\nArchitecture: amd64\n"
        "Version: 18~beta1-1.pgdg120+1\n"
    )
    root = make_tree(
        tmp_path,
        {"/etc/postgresql/18/main/postgresql.conf": "", "/var/lib/dpkg/status": status},
    )
    assert version(root).evidence == (
        "/etc/postgresql/18/main/postgresql.conf: PostgreSQL 18; postgresql-18 "
        "18~beta1-1.pgdg120+1: a pre-release build",
    )


def test_an_unknown_version_is_undecided(tmp_path):
    root = make_tree(tmp_path, {"/var/lib/postgresql/data/postgresql.conf": ""})
    verdict = version(root)
    assert (verdict.status, verdict.reason) == (
        Status.ERROR,
        "/var/lib/postgresql/data/postgresql.conf: no major version (no Debian cluster path, "
        "no readable PG_VERSION in the data directory)",
    )


# --- files ---------------------------------------------------------------------------------------

#: Debian's postgresql-common leaves these modes.
DEBIAN_MODES = {
    "/etc/postgresql/15/main": 0o755,
    CONF: 0o644,
    HBA: 0o640,
    "/etc/postgresql/15/main/pg_ident.conf": 0o640,
    "/var/lib/postgresql/15/main": 0o700,
    "/var/log/postgresql": 0o1775,
    "/var/log/postgresql/postgresql-15-main.log": 0o640,
}
HARDENED_MODES = {
    **DEBIAN_MODES,
    "/etc/postgresql/15/main": 0o700,
    CONF: 0o640,
    HBA: 0o600,
    "/etc/postgresql/15/main/pg_ident.conf": 0o600,
}


def debian_tree(root: Path, modes: dict[str, int], conf: str = DEBIAN_CONF) -> Path:
    files = {
        CONF: conf,
        HBA: fixture("pg_hba.rendered_peer_scram.conf"),
        "/etc/postgresql/15/main/pg_ident.conf": "",
        "/var/lib/postgresql/15/main/PG_VERSION": "15\n",
        "/var/log/postgresql/postgresql-15-main.log": "",
        "/etc/passwd": PASSWD.format(uid=os.geteuid()),
    }
    return make_tree(root, files, modes=modes)


def files(root: Path, aspect: str):
    return run_check(PostgresFilesCheck, {"aspect": aspect}, context(root))


def test_debian_as_installed_leaves_the_configuration_readable(tmp_path):
    uid = os.geteuid()
    verdict = files(debian_tree(tmp_path, DEBIAN_MODES), "config")
    assert (verdict.status, verdict.evidence) == (
        Status.FAIL,
        (
            f"/etc/postgresql/15/main: 0755 uid {uid} (mode 0755 exceeds 0700)",
            f"{CONF}: 0644 uid {uid} (mode 0644 exceeds 0640)",
            f"{HBA}: 0640 uid {uid} (mode 0640 exceeds 0600)",
            f"/etc/postgresql/15/main/pg_ident.conf: 0640 uid {uid} (mode 0640 exceeds 0600)",
        ),
    )
    hardened = files(debian_tree(tmp_path / "b", HARDENED_MODES), "config")
    assert hardened.status is Status.PASS


def test_files_of_another_account_fail(tmp_path):
    root = debian_tree(tmp_path, HARDENED_MODES)
    (root / "etc/passwd").write_text(PASSWD.format(uid=os.geteuid() + 1))
    verdict = files(root, "config")
    assert verdict.evidence[0] == (
        f"/etc/postgresql/15/main: 0700 uid {os.geteuid()} (owner uid {os.geteuid()}, not "
        f"postgres ({os.geteuid() + 1}))"
    )
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    undecided = files(root, "config")
    assert (undecided.status, undecided.reason) == (
        Status.ERROR,
        "cannot read the PostgreSQL files: no postgres account in /etc/passwd",
    )


def test_debian_log_directory_is_judged_by_what_it_protects(tmp_path):
    uid = os.geteuid()
    fine = files(debian_tree(tmp_path / "a", DEBIAN_MODES), "data")
    assert (fine.status, fine.evidence) == (
        Status.PASS,
        ("/var/lib/postgresql/15/main: 0700 uid " + str(uid), "/var/log/postgresql: 1775"),
    )
    open_logs = {**DEBIAN_MODES, "/var/log/postgresql": 0o1777,
                 "/var/log/postgresql/postgresql-15-main.log": 0o644}  # fmt: skip
    bad = files(debian_tree(tmp_path / "b", open_logs), "data")
    assert (bad.status, bad.evidence) == (
        Status.FAIL,
        (
            "/var/log/postgresql: 1777 (others may write)",
            "/var/log/postgresql/postgresql-15-main.log: 0644 (others may read or write)",
            f"/var/lib/postgresql/15/main: 0700 uid {uid}",
        ),
    )


def test_a_logging_collector_directory_must_be_private(tmp_path):
    conf = DEBIAN_CONF + "logging_collector = on\nlog_directory = '/srv/pglog'\n"
    root = debian_tree(tmp_path, DEBIAN_MODES, conf)
    make_tree(root, {"/srv/pglog/postgresql.log": ""}, modes={"/srv/pglog": 0o755})
    assert files(root, "data").evidence[0] == (
        f"/srv/pglog: 0755 uid {os.geteuid()} (mode 0755 exceeds 0700)"
    )


# --- TLS settings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("conf", "status", "problem"),
    [
        ("", "pass", None),
        ("ssl_min_protocol_version = 'TLSv1.1'\n", "fail", "accepts TLS older than TLSv1.2"),
        (
            "ssl_ciphers = 'ALL:!ADH:!LOW:!EXP:!MD5:@STRENGTH'\n",  # dev-sec's own string
            "fail",
            "selects weak suites AECDH-AES128-SHA, AECDH-AES256-SHA",
        ),
        ("ssl_ciphers = '3DES'\n", "fail", "'3DES' selects no cipher at all"),
    ],
)
def test_tls_settings(tmp_path, conf, status, problem):
    make_tree(tmp_path, {CONF: conf})
    verdict = run_check(PostgresTlsCheck, {}, context(tmp_path))
    assert verdict.status.value == status
    if problem:
        assert problem in verdict.evidence[0]


def test_before_postgresql_14_the_default_accepts_tls_1_0(tmp_path):
    make_tree(tmp_path, {"/etc/postgresql/13/main/postgresql.conf": ""})
    verdict = run_check(PostgresTlsCheck, {}, context(tmp_path))
    assert verdict.evidence == (
        "/etc/postgresql/13/main/postgresql.conf: ssl_min_protocol_version = 'TLSv1' "
        "(built-in default); ssl_ciphers = 'HIGH:MEDIUM:+3DES:!aNULL' (built-in default): "
        "accepts TLS older than TLSv1.2",
    )


# --- pg_hba kinds and ssl with TCP -------------------------------------------------------------

LOCAL_PEER = {"hba": "/etc/pg_hba.conf", "types": ["local"], "allow_methods": ["peer", "reject"]}
TCP_SCRAM = {"hba": "/etc/pg_hba.conf", "allow_methods": ["scram-sha-256", "cert", "reject"]}
SSL_ONLY = {"hba": "/etc/pg_hba.conf", "ssl_beyond_loopback": True}


@pytest.mark.parametrize(
    ("source", "local", "tcp", "ssl"),
    [
        ("pg_hba.rendered_peer_scram.conf", "pass", "pass", "pass"),
        ("pg_hba.rendered_initdb_default_trust.conf", "fail", "fail", "pass"),
        ("inspec_fixture_pg_hba.conf", "fail", "fail", "fail"),
    ],
)
def test_rule_kinds_on_the_shipped_samples(tmp_path, source, local, tcp, ssl):
    make_tree(tmp_path, {"/etc/pg_hba.conf": fixture(source)})
    outcomes = [
        run_check(PgHbaCheck, params, context(tmp_path)).status.value
        for params in (LOCAL_PEER, TCP_SCRAM, SSL_ONLY)
    ]
    assert outcomes == [local, tcp, ssl]


@pytest.mark.parametrize(
    ("listen", "ssl", "status"),
    [("''", "off", "pass"), ("'localhost'", "off", "fail"), ("'*'", "on", "pass")],
)
def test_ssl_is_required_only_with_tcp(tmp_path, listen, ssl, status):
    make_tree(tmp_path, {CONF: f"listen_addresses = {listen}\nssl = {ssl}\n"})
    params = {"setting": "ssl", "if_tcp": True, "expect": {"equals": "on"}}
    verdict = run_check(PostgresConfCheck, params, context(tmp_path))
    assert verdict.status.value == status
    if listen == "''":
        assert verdict.evidence == (f"{CONF}: listen_addresses = '' ({CONF}:1): no TCP at all",)

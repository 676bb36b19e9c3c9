"""Fleet audits over SSH against real hosts: network namespaces joined by veth pairs, each
running a real sshd over its own files (one hardened, one not, one with PostgreSQL on its
outside address), audited with a key the test generated."""

from __future__ import annotations

import gc
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from namespaces import entered
from remote_hosts import MACHINE_WIDE_TYPES, Lan, lan
from servers import APACHE_MODULES, run_apache_ssl, run_postgres
from treeutil import hardened_root

from checks.collector import AUDIT_THRESHOLD
from checks.engine import audit_host
from checks.fleet import HOST_CHECK_ID, FleetOptions, audit_fleet, policies_per_host
from checks.hosts import LocalHost
from checks.inventory import InventoryHost
from checks.parsers.apt_lists import APT_HELPER
from checks.policy import load_policies
from checks.remote_facts import SS_ARGV
from checks.result import Status
from checks.ssh_connect import ChangedHostKey, SSHOptions, UnknownHostKey
from checks.ssh_host import SSHHost
from checks.types.probes import OUTSIDE_ONLY
from policies import builtin_policy

BASELINE, OUTSIDE = builtin_policy("lapp-baseline"), builtin_policy("lapp-outside")
VARIABLES = {"office_networks": "10.0.0.0/8", "backup_dir": "/srv/backup"}
#: Check types that judge a live host by a command's output (sshd -T, nft, apache2ctl -M)
#: or the running kernel's values (/proc/sys) where --root reads the files: their verdicts
#: agree, their evidence says where from.
COMMAND_JUDGED = {
    "sshd_effective",
    "sshd_auth_mode",
    "sshd_network_restriction",
    "sshd_algorithms",
    "sshd_moduli",
    "sshd_startups",
    "sshd_allow_list",
    "sshd_listen",
    "sshd_auth_contexts",
    "apache_modules",
    "core_dumps",
}


@pytest.fixture(scope="module")
def network(tmp_path_factory) -> Iterator[Lan]:
    base = tmp_path_factory.mktemp("fleet")
    hardened = hardened_root(base / "hardened")
    weak = hardened_root(base / "weak")
    dropin = weak / "etc/ssh/sshd_config.d/50-hardening.conf"
    dropin.write_text(
        dropin.read_text().replace("PasswordAuthentication no", "PasswordAuthentication yes")
    )
    php = next(weak.glob("etc/php/*/apache2/php.ini"))
    php.write_text(php.read_text().replace("expose_php = Off", "expose_php = On"))
    with lan(base / "lan") as net, ExitStack() as servers:
        web = net.add_host("web", hardened)
        old = net.add_host("old", weak)
        db = net.add_host("db", hardened)
        net.trust(web, old, db)
        redirect = (
            f"LoadModule alias_module {APACHE_MODULES / 'mod_alias.so'}\n"
            f"Listen {web.address}:80\n<VirtualHost {web.address}:80>\n"
            f"  Redirect permanent / https://{web.address}/\n</VirtualHost>\n"
        )
        with entered(web.namespace):
            servers.enter_context(
                run_apache_ssl(base / "web", listen=web.address, extra_config=redirect)
            )
        with entered(old.namespace):
            servers.enter_context(
                run_apache_ssl(base / "old", "all", cipher_suite="ALL:@SECLEVEL=0",
                               listen=old.address, extra_config=f"Listen {old.address}:80")
            )  # fmt: skip
        with entered(db.namespace):
            servers.enter_context(run_postgres(base, listen_addresses=db.address))
        yield net


def inventory(net: Lan, *names: str) -> list[InventoryHost]:
    return [InventoryHost(name, name, variables=dict(VARIABLES)) for name in names]


def run_fleet(net: Lan, hosts: list[InventoryHost], paths=(BASELINE,), **options):
    policies = policies_per_host(hosts, paths)
    fleet = FleetOptions(ssh=options.pop("ssh", None) or net.options(timeout=5), **options)
    with entered(net.auditor):
        return {r.host: r for r in audit_fleet(hosts, policies, fleet)}


def by_id(report) -> dict:
    return {r.check_id: r for r in report.results}


def compared_with_root(net: Lan, reports: dict) -> int:
    """Assert that each host's file-based verdicts over SSH equal a --root audit of its
    view; returns how many verdicts were compared."""
    policies = load_policies([BASELINE], VARIABLES)
    checks = {check.id: check for check in policies[0].checks}
    compared = 0
    for name, report in reports.items():
        local = by_id(audit_host(policies, LocalHost(root=net.hosts[name].view)))
        for check_id, remote in by_id(report).items():
            here = local[check_id]
            if here.status == Status.SKIP and "running system" in here.reason:
                continue  # live-only: no --root verdict to compare
            if checks[check_id].type_name == "firewall_default_deny":
                continue  # live: the loaded ruleset (none in a fresh namespace), not the file
            compared += 1
            assert remote.status == here.status, (name, check_id, remote.reason, here.evidence)
            if checks[check_id].type_name not in COMMAND_JUDGED:
                assert (remote.evidence, remote.reason) == (here.evidence, here.reason), check_id
    return compared


def test_every_file_based_check_over_ssh_equals_root_on_the_same_view(network, monkeypatch):
    commands: dict[str, list[str]] = {}
    real_command = SSHHost._command

    def command(host, argv, *rest):
        if not argv[0].endswith("/runuser"):  # psql's questions depend on the server's answers
            read = APT_HELPER in argv  # the script reading an lz4 index (index_command)
            commands.setdefault(host.name, []).append(APT_HELPER if read else argv[0])
        return real_command(host, argv, *rest)

    monkeypatch.setattr(SSHHost, "_command", command)
    reports = run_fleet(network, inventory(network, "web", "old", "db"))
    assert compared_with_root(network, reports) > 3 * 35
    # every command the checks ran came from the one batch they announced (CheckType.commands)
    # (a host whose connection dropped under load is audited again: the same three again),
    # but the security index, read by one host at most: the others hold the same file
    assert {name: set(programs) - {APT_HELPER} for name, programs in commands.items()} == {
        name: {"find", "sh", "tar"} for name in ("web", "old", "db")
    }
    assert sum(APT_HELPER in programs for programs in commands.values()) <= 1
    web, old, db = by_id(reports["web"]), by_id(reports["old"]), by_id(reports["db"])
    assert web["LAPP-SSH-001"].status == Status.PASS
    assert old["LAPP-SSH-001"].status == old["LAPP-PHP-001"].status == Status.FAIL
    # live checks see each host's own daemons, through its SSH connection
    assert web["LAPP-SSH-050"].status == Status.PASS
    assert old["LAPP-SSH-050"].status == Status.FAIL
    assert "password" in old["LAPP-SSH-050"].evidence[0]
    assert web["LAPP-TLS-050"].status == Status.PASS
    assert old["LAPP-TLS-050"].status == Status.FAIL
    assert db["LAPP-PG-010"].status == Status.FAIL
    assert web["LAPP-PG-010"].status == Status.PASS
    assert network.hosts["db"].address in db["LAPP-PG-010"].evidence[0]


@pytest.mark.parametrize("sessions", [1, 2])
def test_a_host_allowing_few_sessions_per_connection_is_audited_alike(network, tmp_path, sessions):
    """LAPP-SSH-022 asks for MaxSessions 2 or less (1 passes too): a host hardened so is
    audited as fully as one that lets us open many sessions; the checks' SFTP and command
    channels wait for each other instead of failing."""
    name = f"tight{sessions}"
    network.trust(network.add_host(name, hardened_root(tmp_path), max_sessions=sessions))
    reports = run_fleet(network, inventory(network, name))
    results = reports[name].results
    assert not [r for r in results if r.check_id == HOST_CHECK_ID], results
    ssh022 = by_id(reports[name])["LAPP-SSH-022"]
    assert ssh022.status == Status.PASS, (ssh022.reason, ssh022.evidence)
    assert compared_with_root(network, reports) > 35


def test_a_connection_dropped_mid_audit_is_replaced_and_the_verdicts_stand(network, monkeypatch):
    """A fleet host's connection is cut for real in the middle of its audit (its sshd's
    per-connection processes killed when a check first asks for the listening sockets):
    the checks it cut off are asked again on a new connection, and every verdict equals an
    undisturbed audit's."""
    undisturbed = by_id(run_fleet(network, inventory(network, "web"))["web"])
    web = network.hosts["web"]
    opened, killed = [], []
    real_open, real_run = SSHHost.open, SSHHost.run

    def counted_open(*args, **kwargs):
        opened.append(real_open(*args, **kwargs))
        return opened[-1]

    def run(host, argv, *rest):
        if not killed and tuple(argv) == SS_ARGV:
            killed.extend(web.drop_connections())
            for _ in range(100):  # until paramiko has seen the connection end
                if not host.connection.is_open:
                    break
                time.sleep(0.05)
        return real_run(host, argv, *rest)

    monkeypatch.setattr(SSHHost, "open", counted_open)
    monkeypatch.setattr(SSHHost, "run", run)
    disturbed = by_id(run_fleet(network, inventory(network, "web"))["web"])
    assert killed and not opened[0].connection.is_open
    assert len(opened) == 2  # the audit went on over a new connection
    assert HOST_CHECK_ID not in disturbed
    checks = {check.id: check for check in load_policies([BASELINE], VARIABLES)[0].checks}
    steady = [i for i in undisturbed if checks[i].type_name not in MACHINE_WIDE_TYPES]
    assert steady and set(disturbed) == set(undisturbed)
    assert {
        i: (disturbed[i].status, disturbed[i].evidence, disturbed[i].reason) for i in steady
    } == {
        i: (undisturbed[i].status, undisturbed[i].evidence, undisturbed[i].reason) for i in steady
    }


def test_each_host_has_one_sftp_session_at_a_time_and_fewer_collections(network, monkeypatch):
    """A fleet's hosts answer nearly every file question from their snapshot: one SFTP
    session at a time serves the rest (each more is an sftp-server on the host). The
    collector runs less often while the fleet is audited, as before once it is done."""
    open_now: dict[str, int] = {}
    most: dict[str, int] = {}
    real_open_sftp = SSHHost._open_sftp

    def counted(host, *args):
        client = real_open_sftp(host, *args)
        open_now[host.name] = open_now.get(host.name, 0) + 1
        most[host.name] = max(most.get(host.name, 0), open_now[host.name])
        real_close = client.close

        def close():
            if not client.sock.closed:
                open_now[host.name] -= 1
            real_close()

        client.close = close
        return client

    monkeypatch.setattr(SSHHost, "_open_sftp", counted)
    before = gc.get_threshold()
    during: list[tuple[int, int, int]] = []
    hosts = inventory(network, "web", "old", "db")
    with entered(network.auditor):
        reports = audit_fleet(
            hosts,
            policies_per_host(hosts, [BASELINE]),
            FleetOptions(ssh=network.options(timeout=5)),
            on_report=lambda report: during.append(gc.get_threshold()),
        )
    assert all(HOST_CHECK_ID not in by_id(report) for report in reports)
    assert most and set(most.values()) == {1}
    assert len(during) == 3 and all(t[0] >= AUDIT_THRESHOLD for t in during)
    assert gc.get_threshold() == before


def test_the_outside_view_is_asked_from_the_auditing_machine(network):
    reports = run_fleet(network, inventory(network, "web", "old", "db"), paths=(OUTSIDE,))
    web, old, db = by_id(reports["web"]), by_id(reports["old"]), by_id(reports["db"])
    address = network.hosts["web"].address
    assert {r.status for r in web.values()} == {Status.PASS}, web
    assert web["LAPP-SSH-060"].evidence == (f"{address}:22 offers publickey",)
    assert web["LAPP-WEB-060"].evidence == (f"{address}:80 answers 301 to https://{address}/",)
    assert old["LAPP-SSH-060"].status == Status.FAIL
    assert old["LAPP-TLS-060"].status == Status.FAIL
    assert "TLSv1.0" in old["LAPP-TLS-060"].evidence[0]
    assert old["LAPP-WEB-060"].status == Status.FAIL
    assert db["LAPP-PG-060"].status == Status.FAIL
    # 5432 is closed; the port the cluster listens on answers an SSLRequest
    assert any(
        "accepts connections from here: PostgreSQL (" in e for e in db["LAPP-PG-060"].evidence
    )
    assert web["LAPP-PG-060"].evidence == (
        f"{address}:5432 cannot be reached from here (Connection refused)",
    )
    # on the machine itself there is no outside view
    local = by_id(audit_host(load_policies([OUTSIDE]), LocalHost()))
    assert {(r.status, r.reason) for r in local.values()} == {(Status.SKIP, OUTSIDE_ONLY)}


def test_hosts_that_cannot_be_audited_are_errors_and_the_rest_is_audited(network, tmp_path):
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    silent = network.hosts.get("silent") or network.add_silent("silent")
    hosts = [
        *inventory(network, "web"),
        InventoryHost("silent", silent.address, user="root"),
        InventoryHost("nobody", network.unused_address(), user="root"),
        InventoryHost("closed", network.hosts["web"].address, port=2222, user="root"),
        InventoryHost("wrongkey", network.hosts["old"].address, user="root"),
    ]
    config = network.ssh_config()
    config.write_text(
        config.read_text()
        + f"Host {network.hosts['old'].address}\n  IdentityFile {stranger}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {network.known_hosts}\n"
    )
    options = SSHOptions(config_files=(str(config),), use_agent=False, timeout=3)
    reports = run_fleet(network, hosts, ssh=options, host_timeout=60)
    reasons = {}
    for name in ("silent", "nobody", "closed", "wrongkey"):
        (only,) = reports[name].results
        assert (only.check_id, only.status) == (HOST_CHECK_ID, Status.ERROR)
        assert reports[name].duration_s < 30  # a hang guard: connection timeouts are 3 s
        reasons[name] = only.reason
    assert "sent no SSH banner within 3s" in reasons["silent"]
    assert "No route to host" in reasons["nobody"] or "no answer within 3s" in reasons["nobody"]
    assert reasons["closed"].endswith(":2222: Connection refused")
    assert "login refused" in reasons["wrongkey"]
    assert len(reports["web"].results) == len(load_policies([BASELINE]).pop().checks)


def test_host_keys_unknown_refused_new_recorded_changed_refused(network, tmp_path):
    web, old = network.hosts["web"], network.hosts["old"]
    known = tmp_path / "known_hosts"
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host web\n  HostName {web.address}\n  User root\n  IdentityFile {network.client_key}\n"
        f"  UserKnownHostsFile {known}\n  HashKnownHosts yes\n"
    )
    options = SSHOptions(config_files=(str(config),), use_agent=False, timeout=5)
    with entered(network.auditor):
        with pytest.raises(UnknownHostKey) as unknown:
            SSHHost.open("web", options)
        assert "host key not known (ssh-ed25519 SHA256:" in str(unknown.value)
        assert "accept_new_host_keys" in str(unknown.value)
        assert not known.exists()
        accept = SSHOptions(config_files=(str(config),), use_agent=False, accept_new_host_keys=True)
        SSHHost.open("web", accept).close()
        (line,) = known.read_text().splitlines()
        assert line.startswith("|1|") and line.endswith(web.host_key)  # hashed, as configured
        SSHHost.open("web", options).close()  # known now
        known.write_text(f"{web.address} {old.host_key}\n")  # another key on record
        with pytest.raises(ChangedHostKey, match="HOST KEY CHANGED"):
            SSHHost.open("web", accept)


def test_ssh_config_aliases_proxyjump_and_the_agent(network, tmp_path):
    web, db = network.hosts["web"], network.hosts["db"]
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host inner\n  HostName {db.address}\n  ProxyJump gateway\n"
        f"Host gateway\n  HostName {web.address}\n"
        f"Host *\n  User root\n  UserKnownHostsFile {network.known_hosts}\n"
    )
    agent_socket = tmp_path / "agent.sock"
    agent = subprocess.Popen(
        ["ssh-agent", "-D", "-a", str(agent_socket)], stdout=subprocess.DEVNULL
    )
    try:
        env = {**os.environ, "SSH_AUTH_SOCK": str(agent_socket)}
        for _ in range(100):
            if agent_socket.exists():
                break
            subprocess.run(["sleep", "0.05"], check=True)
        subprocess.run(["ssh-add", "-q", str(network.client_key)], env=env, check=True)
        options = SSHOptions(config_files=(str(config),), use_agent=True, timeout=5)
        saved = os.environ.get("SSH_AUTH_SOCK")
        os.environ["SSH_AUTH_SOCK"] = str(agent_socket)  # paramiko's Agent reads the environment
        try:
            with entered(network.auditor), SSHHost.open("inner", options) as host:
                listening = host.listening_sockets()
                assert host.outside_address is None  # reached through a jump host
                assert host.connection.endpoint.hostname == db.address
        finally:
            if saved is None:
                os.environ.pop("SSH_AUTH_SOCK")
            else:
                os.environ["SSH_AUTH_SOCK"] = saved
    finally:
        agent.terminate()
        agent.wait()
    assert {(s.address, s.process) for s in listening if s.port == 22} == {(db.address, "sshd")}


def test_inventory_variables_are_each_hosts_policy_variables(network):
    hosts = [
        InventoryHost("web", "web", variables={**VARIABLES, "office_networks": "0.0.0.0/0"}),
        InventoryHost("db", "db", variables={**VARIABLES, "http_port": 80}),
    ]
    reports = run_fleet(network, hosts)
    assert (
        by_id(reports["web"])["LAPP-SSH-007"].status != by_id(reports["db"])["LAPP-SSH-007"].status
    )


@pytest.fixture(autouse=True)
def _no_stray_known_hosts():
    """The tests never touch the real user's known_hosts."""
    path = Path("~/.ssh/known_hosts").expanduser()
    before = path.read_bytes() if path.exists() else None
    yield
    after = path.read_bytes() if path.exists() else None
    assert before == after

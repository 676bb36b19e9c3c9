"""End to end in network namespaces: the agent in a "server" namespace reads attacks from a
log file and from a journal, bans through nftables, the "attacker" namespace's packets stop
getting through, and a real Prometheus in the server namespace sees it all.

Also: the firewall flushed behind the agent's back is repaired within seconds, without a
restart; and the metrics endpoint, behind TLS and basic auth, refuses a wrong password.
"""

from __future__ import annotations

import base64
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from agent_process import AgentProcess, wait_until
from conftest import require_program, require_root
from contract_firewall import NamespaceHarness, reachable
from journal_files import Journal
from namespaces import in_namespace
from prometheus_server import prometheus, query_until


def failed_logins(ip: str, count: int, first_pid: int = 4000) -> list[str]:
    stamp = time.strftime("%b %e %H:%M:%S", time.localtime())
    return [f"{stamp} web01 sshd[{first_pid + n}]: Failed password for root from {ip}"
            f" port {40000 + n} ssh2" for n in range(count)]  # fmt: skip


def nft_set(namespace: str, name: str) -> str:
    return in_namespace(namespace, "nft", "list", "set", "inet", "lappguard", name)


@pytest.fixture
def server(tmp_path: Path):
    require_root()
    require_program("nft")
    with NamespaceHarness() as harness:
        yield harness


def agent_config(tmp_path: Path, extra: str = "") -> str:
    (tmp_path / "auth.log").write_text("")
    return f"""\
state_dir: {tmp_path}/state
metrics: {{listen: "127.0.0.1:PORT"}}
firewall: {{backend: nftables}}
sources:
  - {{kind: sshd, path: {tmp_path}/auth.log}}
  - {{kind: sshd, journal: {{unit: ssh.service, directory: {tmp_path}/journal}}}}
audit: {{policies: [lapp-baseline], interval: 1h}}
{extra}"""


def test_attacks_from_a_file_and_a_journal_are_dropped_and_prometheus_sees_them(tmp_path, server):
    journal = Journal(tmp_path / "journal", require_program("systemd-journal-remote"),
                      start_us=int(time.time() * 1e6))  # fmt: skip
    journal.append([b"Server listening on :: port 22."])  # the journal exists before start
    agent = AgentProcess(tmp_path, agent_config(tmp_path), namespace=server.pair.server)
    try:
        agent.start()
        agent.ready()
        assert reachable(server) and reachable(server, v6=True)

        with open(tmp_path / "auth.log", "a") as log:
            log.write("\n".join(failed_logins(server.pair.attacker_v4, 5)) + "\n")
        wait_until(lambda: server.pair.attacker_v4 in nft_set(server.pair.server, "banned4"),
                   what="the IPv4 attacker in the nft set")  # fmt: skip
        assert not reachable(server)

        v6_lines = failed_logins(server.pair.attacker_v6, 5)
        journal.append([line.split(": ", 1)[1].encode() for line in v6_lines])
        # the attacker's /64 holds the server's own address: the ban narrows to the one
        wait_until(
            lambda: server.pair.attacker_v6 in nft_set(server.pair.server, "banned6"),
            what="the IPv6 attacker (not its /64, which holds ours) in the nft set",
        )
        assert server.pair.server_v6.rsplit("::", 1)[0] not in nft_set(
            server.pair.server, "banned6_64"
        )
        assert not reachable(server, v6=True)

        scrape = (f"scrape_configs:\n  - job_name: lappguard\n    scrape_interval: 1s\n"
                  f"    static_configs: [{{targets: ['127.0.0.1:{agent.port}']}}]\n")  # fmt: skip
        with prometheus(tmp_path / "prometheus", scrape, namespace=server.pair.server) as base:
            query_until(base, 'up{job="lappguard"}', "1")
            query_until(base, 'sum(lappguard_bans_active{jail="sshd"})', "2")
            query_until(base, 'lappguard_bans_active{family="ipv6"}', "1")
            query_until(base, 'sum(lappguard_check_status{check="LAPP-SSH-001"})', "1")
            query_until(base, 'lappguard_firewall_in_debt{backend="nftables"}', "0")
    finally:
        agent.close()


@pytest.fixture
def banned(tmp_path, server):
    """An agent in the server namespace that has just banned the IPv4 attacker."""
    agent = AgentProcess(tmp_path, agent_config(tmp_path), namespace=server.pair.server)
    try:
        agent.start()
        agent.ready()
        with open(tmp_path / "auth.log", "a") as log:
            log.write("\n".join(failed_logins(server.pair.attacker_v4, 5)) + "\n")
        wait_until(lambda: not reachable(server), what="the ban")
        yield agent
    finally:
        agent.close()


def test_a_flushed_firewall_is_restored_within_seconds(tmp_path, server, banned):
    in_namespace(server.pair.server, "nft", "flush", "ruleset")
    assert reachable(server)
    wait_until(lambda: not reachable(server), timeout=10, what="restored without restart")
    assert banned.value("lappguard_firewall_restores_total") == 1
    assert banned.value("lappguard_firewall_syncs_total", reason="loss") == 1
    restore = subprocess.run(
        ["ip", "netns", "exec", server.pair.server, *_lappguard("trail", tmp_path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert " restore " in restore


def test_a_hand_unban_takes_effect_at_once_and_is_not_undone(tmp_path, server, banned):
    subprocess.run(["ip", "netns", "exec", server.pair.server,
                    *_lappguard("bans", tmp_path, "del", server.pair.attacker_v4)],
                   check=True, capture_output=True)  # fmt: skip
    assert reachable(server)
    time.sleep(3)  # two of the agent's repair rounds: it must not put the ban back
    assert reachable(server)


def test_metrics_behind_tls_and_basic_auth(tmp_path, server):
    require_program("openssl")
    hashed = subprocess.run([require_program("htpasswd"), "-nbBC", "10", "prom", "s3cret"],
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
                   check=True, capture_output=True)  # fmt: skip
    (tmp_path / "web.yml").write_text(
        f"tls_server_config:\n  cert_file: {tmp_path}/cert.pem\n  key_file: {tmp_path}/key.pem\n"
        f"basic_auth_users:\n  prom: '{hashed.split(':', 1)[1].strip()}'\n"
    )
    config = agent_config(tmp_path).replace(
        'metrics: {listen: "127.0.0.1:PORT"}',
        f'metrics: {{listen: "127.0.0.1:PORT", web_config: {tmp_path}/web.yml}}',
    )
    agent = AgentProcess(tmp_path, config, namespace=server.pair.server)
    try:
        agent.start()
        agent.ready()
        import ssl

        context = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
        url = f"https://127.0.0.1:{agent.port}/metrics"

        def fetch(password: str) -> int:
            token = base64.b64encode(f"prom:{password}".encode()).decode()
            request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
            try:
                with urllib.request.urlopen(request, context=context, timeout=10) as response:
                    assert b"lappguard_build_info" in response.read()
                    return response.status
            except urllib.error.HTTPError as error:
                return error.code

        assert fetch("wrong") == 401
        assert fetch("s3cret") == 200
    finally:
        agent.close()


def _lappguard(command: str, tmp_path: Path, *argv: str) -> list[str]:
    from conftest import lappguard_command

    extra = ["--backend", "nftables"] if command == "bans" else []
    return [lappguard_command(), command, *argv, "--state-dir", f"{tmp_path}/state", *extra]

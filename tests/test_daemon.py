"""`lappguard run` as systemd runs it: notify socket, signals, restarts, change-triggered
audits and metrics, with the dry-run backend (packets are tests/test_daemon_packets.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from agent_process import AgentProcess, wait_until
from conftest import lappguard_command

ATTACKER = "203.0.113.7"


def failed_login(n: int, ip: str = ATTACKER) -> str:
    stamp = time.strftime("%b %e %H:%M:%S", time.localtime())
    return (f"{stamp} web01 sshd[{4000 + n}]: Failed password for invalid user admin{n}"
            f" from {ip} port {50000 + n} ssh2\n")  # fmt: skip


def config(tmp_path: Path, extra: str = "") -> str:
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"""\
id: daemon-test
title: what the daemon audits in these tests
version: "1"
checks:
  - id: TEST-SSH-001
    title: Password authentication is off
    severity: high
    rationale: keys only
    remediation: set PasswordAuthentication no
    type: sshd_config
    params: {{keyword: passwordauthentication, expect: {{equals: "no"}},
             config: {tmp_path}/sshd_config}}
""")
    (tmp_path / "sshd_config").write_text("PasswordAuthentication no\n")
    (tmp_path / "auth.log").write_text("")
    return f"""\
state_dir: {tmp_path}/state
metrics: {{listen: "127.0.0.1:PORT"}}
firewall: {{backend: dry-run}}
sources:
  - {{kind: sshd, path: {tmp_path}/auth.log}}
audit: {{policies: [{policy}], interval: 1h}}
{extra}"""


@pytest.fixture
def agent(tmp_path):
    process = AgentProcess(tmp_path, config(tmp_path))
    yield process
    process.close()


def append(path: Path, text: str) -> None:
    with open(path, "a") as handle:
        handle.write(text)


def banned(tmp_path: Path) -> set[str]:
    done = subprocess.run([lappguard_command(), "bans", "list", "--format", "json",
                           "--state-dir", f"{tmp_path}/state"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return {ban["network"] for ban in json.loads(done.stdout)["bans"]}


def test_ready_status_and_watchdog_reach_systemd(agent):
    agent.start(watchdog_usec=1_000_000)
    ready = agent.ready()
    assert "STATUS" in ready and "logs" in ready["STATUS"]
    assert ready["MAINPID"] == str(agent.process.pid)
    agent.receive(lambda m: m.get("WATCHDOG") == "1", timeout=10)
    agent.receive(lambda m: m.get("WATCHDOG") == "1", timeout=10)
    assert agent.stop() == 0
    agent.receive(lambda m: m.get("STOPPING") == "1", timeout=5)


def test_failed_logins_become_a_ban_and_metrics(agent, tmp_path):
    agent.start()
    agent.ready()
    append(tmp_path / "auth.log", "".join(failed_login(n) for n in range(5)))
    wait_until(lambda: f"{ATTACKER}/32" in banned(tmp_path), what="the ban")
    wait_until(lambda: agent.value("lappguard_bans_active", jail="sshd") == 1, what="metric")
    assert agent.value("lappguard_events_total", rule="sshd-failed-auth") == 5
    assert agent.value("lappguard_bans_total", jail="sshd") == 1
    assert agent.value("lappguard_source_lines_total") == 5
    assert agent.value("lappguard_bans_pending") == 0
    dry_run = json.loads((tmp_path / "state" / "dry-run-firewall.json").read_text())
    assert list(dry_run) == [f"{ATTACKER}/32"]


def probe_login(n: int, ip: str) -> str:
    """What lappguard's own SSH probe leaves in auth.log (checks/probes/ssh.py)."""
    stamp = time.strftime("%b %e %H:%M:%S", time.localtime())
    return f"{stamp} web01 sshd[{5000 + n}]: Invalid user lappguard-probe from {ip} port {n}\n"


def test_our_own_probes_are_not_fed_to_the_jails_but_an_attacker_using_their_name_is(
    agent, tmp_path
):
    agent.start()
    agent.ready()
    lines = [probe_login(n, "127.0.0.1") for n in range(5)]
    lines += [probe_login(n, ATTACKER) for n in range(5, 10)]
    append(tmp_path / "auth.log", "".join(lines))
    wait_until(lambda: f"{ATTACKER}/32" in banned(tmp_path), what="the attacker's ban")
    skipped = "lappguard_source_lines_skipped_total"
    wait_until(lambda: agent.value(skipped, reason="own_probes") == 5, what="own probes metric")
    assert agent.value("lappguard_events_total", rule="sshd-invalid-user") == 5
    assert banned(tmp_path) == {f"{ATTACKER}/32"}


def test_a_check_flipped_in_a_watched_file_shows_within_seconds(agent, tmp_path):
    agent.start()
    agent.ready()
    passing = {"check": "TEST-SSH-001", "status": "pass"}
    wait_until(lambda: agent.value("lappguard_check_status", **passing) == 1, what="first")
    (tmp_path / "sshd_config").write_text("PasswordAuthentication yes\n")
    failing = {"check": "TEST-SSH-001", "status": "fail"}
    wait_until(lambda: agent.value("lappguard_check_status", **failing) == 1, timeout=5,
               what="the check failing within 5 s of the change")  # fmt: skip
    assert agent.value("lappguard_audit_runs_total", trigger="change") >= 1


def test_reload_with_a_broken_config_keeps_the_running_one(agent, tmp_path):
    agent.start()
    agent.ready()
    good = agent.config.read_text()
    agent.config.write_text(good + "alowlist: [192.0.2.0/24]\n")
    agent.send(signal.SIGHUP)
    agent.receive(lambda m: m.get("READY") == "1" and "RELOADING" not in m)
    assert "reload refused" in agent.logs() and "alowlist" in agent.logs()
    append(tmp_path / "auth.log", "".join(failed_login(n) for n in range(5)))
    wait_until(lambda: f"{ATTACKER}/32" in banned(tmp_path), what="the old config still bans")
    agent.config.write_text(good.replace("sources:", 'allowlist: ["203.0.113.0/24"]\nsources:'))
    agent.send(signal.SIGHUP)
    agent.receive(lambda m: m.get("READY") == "1" and "RELOADING" not in m)
    wait_until(lambda: "reloaded" in agent.logs(), what="the good config taken")


def test_sigterm_then_restart_reads_every_line_once(agent, tmp_path):
    log = tmp_path / "auth.log"
    agent.start()
    agent.ready()
    append(log, "".join(failed_login(n, f"198.51.100.{n}") for n in range(100)))
    wait_until(lambda: agent.value("lappguard_source_lines_total") == 100, what="first read")
    assert agent.stop() == 0
    append(log, "".join(failed_login(n, f"198.51.100.{n}") for n in range(100, 150)))
    agent.start()
    agent.ready()
    append(log, "".join(failed_login(n, f"198.51.100.{n}") for n in range(150, 170)))
    wait_until(lambda: agent.value("lappguard_source_lines_total") == 70, what="resumed")
    time.sleep(1.0)  # nothing more may arrive: no line read twice
    assert agent.value("lappguard_source_lines_total") == 70
    assert agent.value("lappguard_events_total", rule="sshd-failed-auth") == 70


def test_sigkill_then_restart_loses_no_ban(agent, tmp_path):
    agent.start()
    agent.ready()
    append(tmp_path / "auth.log", "".join(failed_login(n) for n in range(5)))
    wait_until(lambda: f"{ATTACKER}/32" in banned(tmp_path), what="the ban")
    agent.stop(signal.SIGKILL)
    # the firewall lost everything meanwhile
    (tmp_path / "state" / "dry-run-firewall.json").unlink()
    agent.start()
    agent.ready()
    dry_run = json.loads((tmp_path / "state" / "dry-run-firewall.json").read_text())
    assert list(dry_run) == [f"{ATTACKER}/32"]


def test_jail_windows_survive_a_restart(agent, tmp_path):
    agent.start()
    agent.ready()
    append(tmp_path / "auth.log", "".join(failed_login(n) for n in range(3)))
    wait_until(lambda: agent.value("lappguard_events_total", rule="sshd-failed-auth") == 3)
    agent.stop()
    agent.start()
    agent.ready()
    append(tmp_path / "auth.log", "".join(failed_login(n) for n in range(3, 5)))
    wait_until(lambda: f"{ATTACKER}/32" in banned(tmp_path), what="3 before + 2 after = ban")


def test_an_invalid_config_at_start_exits_2_with_the_location(tmp_path):
    (tmp_path / "agent.yaml").write_text("firewall: {backend: iptables}\n")
    done = subprocess.run([lappguard_command(), "run", "--config", str(tmp_path / "agent.yaml")],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2
    assert f"{tmp_path}/agent.yaml:1: firewall.backend: 'iptables' is not one of" in done.stderr

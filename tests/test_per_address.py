"""Decisions per address: quiet attackers are banned, innocent addresses are not, and the
agent bans a certain injection at once and keeps weighing evidence across a restart."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import slowlog
import webcorpus
from agent_process import AgentProcess, wait_until
from conftest import lappguard_command, require_shared_data

from agent.bans.jails import load_jails
from agent.detect.http import AccessLogParser
from agent.detect.injection import inspect
from agent.detect.rules import load_rules
from agent.scan import ScanOptions, scan


@pytest.mark.parametrize(
    ("target", "user_agent", "expected"),
    [
        ("/item.php?id=1%27%20UNION%20SELECT%20user,pass--%20", "", {"sqli": "certain"}),
        ("/item.php?id=1%20AND%20SLEEP(5)", "", {"sqli": "certain"}),
        ("/search?q=x+select+a+from+b+where", "", {"sqli": "likely"}),  # SQL words only
        ("/search?q=foo+drop+table+users", "", {"sqli": "likely"}),
        # a value that starts a bare statement is text about SQL, and a product description
        # is prose: no finding at all (agent.detect.injection.prose)
        ("/search?q=select+x+from+y+where", "", {}),
        ("/search?q=80%25+ACRYLIC+AND+20%25+WOOL", "", {}),
        ("/c?text=%3Cscript%3Ealert(1)%3C/script%3E", "", {"xss": "certain"}),
        ("/d?file=../../../../etc/passwd", "", {"traversal": "likely"}),
        ("/ping?host=127.0.0.1%3Bid", "", {"cmdi": "likely"}),
        ("/", "sqlmap/1.7.2#stable (https://sqlmap.org)", {"scanner": "certain"}),
        ("/cgi-bin/x", "() { :; }; /bin/bash -c id", {"shellshock": "certain", "cmdi": "likely"}),
    ],
)
def test_a_finding_is_certain_only_when_its_evidence_is_conclusive(target, user_agent, expected):
    request = AccessLogParser().parse(webcorpus.log_line(target, user_agent or webcorpus.BROWSER))
    assert {f.family: f.confidence for f in inspect(request)} == expected


def banned_by_shipped_jails(lines: list[str], path: Path) -> list[str]:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogateescape")
    rules = load_rules()
    jails = load_jails(rule_ids=[rule.id for rule in rules])
    result = scan([str(path)], ScanOptions(rules=rules, jails=jails, kind="apache_access"))
    return [decision.ip for decision in result.bans]


@pytest.mark.parametrize("name", sorted(webcorpus.benign_sets()))
def test_benign_corpora_ban_nobody(name, tmp_path):
    """Every benign corpus, each sample from an address of its own (the real access log
    with its real addresses): no ban at all with the shipped jails."""
    samples = webcorpus.benign_sets()[name]
    lines = [sample.line for sample in samples]
    if name != "elastic-access-log":
        lines = [f"10.{n >> 16}.{n >> 8 & 255}.{n & 255}" + line[line.index(" "):]
                 for n, line in enumerate(lines, 1)]  # fmt: skip
    assert banned_by_shipped_jails(lines, tmp_path / "access.log") == []


def test_the_whole_real_access_log_bans_nobody(tmp_path):
    log = require_shared_data("apache_access/elastic_examples_apache_logs.log")
    lines = log.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    assert banned_by_shipped_jails(lines, tmp_path / "access.log") == []


def test_quiet_attackers_are_banned_early_and_visitors_never(tmp_path):
    """The issue's goals on a low-and-slow log: at least 90% of the attacking addresses
    banned, at most 0.5% of the benign ones, a median of at most 2 attack requests served
    before the ban."""
    benign = (webcorpus.WEB / "access_elastic.log").read_text(errors="surrogateescape")
    log = slowlog.generate(benign.splitlines(), attackers=200)
    result = slowlog.score(log, tmp_path / "slow.log")
    assert (result.attackers, result.benign) == (200, 1020)
    assert result.attacker_rate >= 0.9
    assert result.benign_rate <= 0.005 and result.banned_benign == []
    assert result.served("attacks", 0.5) <= 2


# --- the agent -----------------------------------------------------------------------


def request(ip: str, target: str, ago: float = 0.0) -> str:
    stamp = datetime.fromtimestamp(time.time() - ago, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")
    return f'{ip} - - [{stamp}] "GET {target} HTTP/1.1" 200 512 "-" "Mozilla/5.0 (X11)"\n'


@pytest.fixture
def web_agent(tmp_path):
    (tmp_path / "access.log").write_text("")
    policy = tmp_path / "policy.yaml"  # one quick check: the audit side is not under test
    policy.write_text(f"""\
id: web-test
title: what the agent audits in these tests
version: "1"
checks:
  - id: TEST-WEB-001
    title: the access log exists
    severity: low
    rationale: the agent reads it
    remediation: create it
    type: file
    params: {{paths: [{tmp_path}/access.log]}}
""")
    config = f"""\
state_dir: {tmp_path}/state
metrics: {{listen: "127.0.0.1:PORT"}}
firewall: {{backend: dry-run}}
sources:
  - {{kind: apache_access, path: {tmp_path}/access.log}}
audit: {{policies: [{policy}], interval: 1h}}
"""
    process = AgentProcess(tmp_path, config)
    yield process
    process.close()


def bans_show(tmp_path: Path, ip: str) -> dict:
    done = subprocess.run([lappguard_command(), "bans", "show", ip, "--format", "json",
                           "--state-dir", f"{tmp_path}/state"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(done.stdout)


def test_the_agent_bans_one_certain_injection_at_once_and_says_why(web_agent, tmp_path):
    web_agent.start()
    web_agent.ready()
    with open(tmp_path / "access.log", "a") as log:
        log.write(request("198.51.100.20", "/search?q=cats"))
        log.write(request("203.0.113.9", "/item.php?id=1%27%20UNION%20SELECT%20user,pass--%20"))
    wait_until(lambda: bans_show(tmp_path, "203.0.113.9")["bans"], what="banned at once")
    shown = bans_show(tmp_path, "203.0.113.9")
    [ban] = shown["bans"]
    assert (ban["jail"], ban["count"], ban["rule"]) == ("web-attacks", 1, "http-sqli")
    assert ban["reason"] == "http-sqli: one event of jail web-attacks is enough to ban"
    assert ban["first_line"].endswith("UNION%20SELECT%20user,pass--%20 HTTP/1.1\" 200 512 "
                                      '"-" "Mozilla/5.0 (X11)"')  # fmt: skip
    [record] = [r for r in shown["trail"] if r["action"] == "ban"]
    assert [rule for _, rule in record["detail"]["events"]] == ["http-sqli"]
    assert [e["confidence"] for e in shown["events"]] == ["certain"]
    assert bans_show(tmp_path, "198.51.100.20")["bans"] == []
    argv = [lappguard_command(), "bans", "show", "203.0.113.9", "--state-dir", f"{tmp_path}/state"]
    text = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    assert "counted: " in text and "Z http-sqli" in text


def test_the_long_window_survives_a_restart_with_each_events_confidence(web_agent, tmp_path):
    """A likely traversal two hours ago, a restart, a likely command injection now: the
    two weigh 0.5 each within the day, so the second bans."""
    web_agent.start()
    web_agent.ready()
    with open(tmp_path / "access.log", "a") as log:
        log.write(request("203.0.113.10", "/index.php?page=../../../../etc/passwd", ago=7200))
    wait_until(lambda: web_agent.value("lappguard_events_total", rule="http-traversal") == 1)
    assert bans_show(tmp_path, "203.0.113.10")["bans"] == []
    web_agent.stop()
    web_agent.start()
    web_agent.ready()
    with open(tmp_path / "access.log", "a") as log:
        log.write(request("203.0.113.10", "/ping.php?host=127.0.0.1%3Bid"))
    wait_until(lambda: bans_show(tmp_path, "203.0.113.10")["bans"], what="banned by the total")
    [ban] = bans_show(tmp_path, "203.0.113.10")["bans"]
    assert (ban["count"], ban["rule"]) == (2, "http-cmdi")
    assert ban["reason"].startswith("2 events weighing 1.00 within 1d (http-traversal, http-cmdi")
    assert "etc/passwd HTTP/1.1" in ban["first_line"]

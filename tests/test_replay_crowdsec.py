"""CrowdSec's hub test fixtures (copied with attribution): the addresses CrowdSec's parsers
extract and its scenarios flag are the ones our events name.

Where our default jails differ from CrowdSec's scenarios, the test says so: loopback
(127.0.0.1, used by CrowdSec's nginx fixtures) is never banned by lappguard, and one refused
connection is an event, not yet a ban.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC
from pathlib import Path

import pytest
from conftest import FIXTURES

from agent.bans.jails import Jails, load_jails
from agent.detect.detector import Detector
from agent.detect.events import Event
from agent.detect.http import AccessLogParser
from agent.detect.kinds import access_log_format
from agent.detect.logformats import ApacheErrorParser
from agent.detect.rules import load_rules

CROWDSEC = FIXTURES / "detect" / "crowdsec"
RULES = load_rules()
JAILS = load_jails(rule_ids=[rule.id for rule in RULES])
NOW = 1767225600.0  # 2026-01-01: yearless syslog stamps land in 2025


def run(name: str, kind: str, level: str = "normal", **options) -> list[list[Event]]:
    """Events of each line of a fixture, in order."""
    detector = Detector(RULES, level=level, tz=UTC, clock=lambda: NOW, **options)
    lines = (CROWDSEC / f"{name}.log").read_text().splitlines()
    return [detector.feed(line, kind, name, number) for number, line in enumerate(lines, 1)]


def bans(per_line: list[list[Event]]) -> set[str]:
    now = [0.0]
    jails = Jails(JAILS.jails, clock=lambda: now[0])
    banned = set()
    for event in sorted((e for events in per_line for e in events), key=lambda e: e.time):
        now[0] = event.time
        if (decision := jails.observe(event)) is not None:
            banned.add(decision.ip)
    return banned


# parser.assert of sshd-logs: source_ip of each line (None: Success == false)
SSHD_LOGS = [
    "35.188.49.176", "35.188.49.176", "35.188.49.176", "5.33.63.160", "5.33.63.161",
    "206.81.24.125", "92.255.85.135", "92.255.85.135", None, "94.232.46.213", "94.232.46.213",
    "206.81.24.125", "123.57.135.134", "206.189.59.169", "123.123.123.123", "80.94.92.63",
    "192.168.1.1", "192.168.1.2", "192.168.9.212", "192.168.9.213", "192.168.1.3",
    "118.27.24.104", "192.168.1.1", "192.168.1.1",
]  # fmt: skip


def test_sshd_logs_every_line_names_the_address_crowdsec_parses():
    per_line = run("sshd-logs", "sshd", "aggressive")
    assert [events[0].ip if events else None for events in per_line] == SSHD_LOGS
    assert all(len(events) == 1 for events in per_line if events)


def test_sshd_logs_at_the_normal_level():
    """Banner, key exchange, timeout and bare [preauth] closes are opt-in (aggressive)."""
    per_line = run("sshd-logs", "sshd")
    expected = [
        ip if n not in (10, 11, 13, 14, 15, 19, 20, 22) else None
        for n, ip in enumerate(SSHD_LOGS, 1)
    ]
    assert [events[0].ip if events else None for events in per_line] == expected


@pytest.mark.parametrize("name", ["sshd-logs-fp", "sshd-success-logs"])
def test_sessions_and_successful_logins_are_not_attacks(name: str):
    assert run(name, "sshd", "aggressive") == [[] for _ in (CROWDSEC / f"{name}.log").open()]


@pytest.mark.parametrize(
    ("name", "level", "banned"),
    [
        ("ssh-bf", "normal", {"35.188.49.176"}),
        ("ssh-slow-bf", "normal", {"103.100.210.198"}),
        ("sshd-invalid-bf", "normal", {"179.43.183.98"}),
        ("sshd-bad-keyexchange-bf", "aggressive",
         {"206.189.59.169", "123.57.135.134", "123.123.123.123"}),
        ("sshd_banner_exchange", "aggressive", {"59.91.122.57"}),
    ],
)  # fmt: skip
def test_sshd_scenarios_ban_what_crowdsec_bans(name: str, level: str, banned: set[str]):
    per_line = run(name, "sshd", level)
    assert {e.ip for events in per_line for e in events} == banned
    assert bans(per_line) == banned


def test_one_refused_connection_is_an_event_not_yet_a_ban():
    per_line = run("sshd-refused-conn", "sshd")
    assert [[e.ip for e in events] for events in per_line] == [["192.168.1.1"]]
    assert bans(per_line) == set()  # CrowdSec's ssh-refused-conn bans on the first one


def test_pgsql_logs_two_log_line_prefixes():
    """The fixture mixes two servers' prefixes: each line is read with its own."""
    lines = (CROWDSEC / "pgsql-logs.log").read_text().splitlines()
    first = Detector(RULES, postgres_prefix="%m [%p] %h %q%u@%d ", tz=UTC)
    second = Detector(RULES, postgres_prefix="%m:%r:%u@%d:[%p]:", tz=UTC)
    events = [
        e
        for n, line in enumerate(lines, 1)
        for e in (second if n == 2 else first).feed(line, "postgresql", "pgsql-logs", n)
    ]
    assert [(e.rule, e.ip, e.user) for e in events] == [
        ("pg-password-failed", "1.2.3.4", "i_dont_exist")
    ] * 6
    assert bans([events]) == {"1.2.3.4"}


def test_pgsql_user_enumeration():
    per_line = run("pgsql-user-enum", "postgresql", postgres_prefix="%h %m [%p] %q%u@%d ")
    assert [[(e.ip, e.user) for e in events] for events in per_line] == [
        [("65.2.129.7", user)]
        for user in ("zysk", "zyrian", "zymotic", "zymometer", "zymolysis", "zymogenic")
    ]
    assert bans(per_line) == {"65.2.129.7"}


def test_apache2_logs_client_of_every_line():
    """parser.assert of apache2-logs: a file mixing access formats and error lines."""
    lines = (CROWDSEC / "apache2-logs.log").read_text().splitlines()
    formats = {
        4: '%v %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i"',
        6: "common",
        7: "vhost_combined",
    }
    clients = []
    for number, line in enumerate(lines, 1):
        if line.startswith("["):
            clients.append(ApacheErrorParser().parse(line).address)
            continue
        parser = AccessLogParser(access_log_format(formats.get(number, "combined")))
        clients.append(parser.parse(line).client_ip)
    assert clients == [
        "93.43.209.58", "164.68.112.178", "195.54.160.135", "1.2.3.4", "93.43.209.58",
        "116.203.1.1", "1.2.3.4", "31.33.58.75", "192.168.1.1",
    ]  # fmt: skip
    per_line = run("apache2-logs", "apache_access")
    assert [e.rule for events in per_line for e in events if e.ip == "164.68.112.178"] == [
        "http-scanner"  # masscan
    ]
    error_events = Detector(RULES).feed(lines[7], "apache_error", "apache2-logs", 8)
    assert [(e.rule, e.ip, e.user) for e in error_events] == [
        ("apache-auth-unknown-user", "31.33.58.75", "sss")
    ]


# scenario.assert overflow sources; loopback sources are never banned by lappguard
WEB_SCENARIOS = [
    ("apache2-http-sensitive-files", "common", "172.17.0.1", {"http-sensitive-file"}, True),
    ("apache-http-probing", "common", "172.17.0.1", {"http-404", "http-lfi-rfi"}, True),
    # phpMyAdmin, a database admin page and Cisco's VPN portal within a second: a sensitive
    # file and a foreign product are likely evidence, which reaches the web-scanners ban
    ("http-admin-interface-probing", "combined", "157.230.234.189", {"http-404"}, True),
    ("apache2-malformed", "combined", "1.2.3.4", {"http-not-http"}, False),
    ("http-cve-probing", "combined", "127.0.0.1", {"http-404"}, False),
    ("nginx-http-sqli-probing", "combined", "127.0.0.1", {"http-404", "http-sqli"}, False),
    ("nginx-http-xss-probing", "combined", "127.0.0.1", {"http-404", "http-xss"}, False),
    ("nginx-http-path-traversal", "combined", "127.0.0.1", {"http-traversal"}, False),
    ("nginx-bad-user-agent", "combined", "127.0.0.1", {"http-scanner"}, False),
    ("nginx-http-sensitive-files", "combined", "127.0.0.1", {"http-sensitive-file"}, False),
]


@pytest.mark.parametrize(("name", "log_format", "source", "rules", "banned"), WEB_SCENARIOS)
def test_web_scenarios_name_the_source_on_every_line(name, log_format, source, rules, banned):
    per_line = run(name, "apache_access", access_log_format=log_format)
    assert all(per_line), "every probing line gives at least one event"
    assert {e.ip for events in per_line for e in events} == {source}
    seen = Counter(e.rule for events in per_line for e in events)
    assert rules <= set(seen)
    # the 11 garbage requests of apache2-malformed stay under the web-probing (20/min) and
    # web-scanners thresholds, where CrowdSec bans
    assert bans(per_line) == ({source} if banned else set())


@pytest.mark.parametrize(
    ("name", "log_format", "family_rule"),
    [
        ("apache2-http-sensitive-files", "common", "http-sensitive-file"),
        ("apache-http-probing", "common", "http-lfi-rfi"),
        ("apache2-malformed", "combined", "http-not-http"),
        ("nginx-http-path-traversal", "combined", "http-traversal"),
        ("nginx-bad-user-agent", "combined", "http-scanner"),
        ("nginx-http-sensitive-files", "combined", "http-sensitive-file"),
    ],
)
def test_every_line_of_a_single_family_fixture_is_recognised(name, log_format, family_rule):
    """(CrowdSec's sqli/xss fixtures hold bare probe words such as ``benchmark(`` or
    ``<br``; agent.detect.injection judges whole payloads, so those are covered by the 404 rule.)"""
    per_line = run(name, "apache_access", access_log_format=log_format)
    assert all(family_rule in {e.rule for e in events} for events in per_line)


def test_fixture_attribution_is_present():
    source = (CROWDSEC / "SOURCE.txt").read_text()
    assert "https://github.com/crowdsecurity/hub" in source and "MIT" in source
    assert Path(CROWDSEC / "LICENSE").read_text().startswith("MIT License")

"""SSHGuard's labelled parser lines (SSH, Web and Banner-format sections, copied with
attribution): every "detect" line names the expected address, no "must not" line gives an
event. The exceptions below are deliberate, each with the reason."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC

import pytest
from conftest import FIXTURES

from agent.detect.detector import Detector
from agent.detect.rules import load_rules

SSHGUARD = FIXTURES / "detect" / "sshguard"
RULES = load_rules()
NOW = 1767225600.0
# sshguard's web lines mix Apache, nginx and truncated formats: read the common prefix of
# all of them (peer, identity, user, time, request, status, size) and ignore the rest.
LENIENT_ACCESS = '%h %l %u %t "%r" %>s %O%{rest}n'
HEADER = re.compile(r"(?:<\d+>|[A-Z][a-z]{2} +\d{1,2} |\d{4}-\d\d-\d\d)")

# line -> why lappguard deliberately does not detect it
NOT_DETECTED = {
    "User mario from 6.6.6.0 not allowed because XYZ": "synthetic reason; sshd has a fixed set",
    "Bad protocol version identification XYZ from 6.6.6.0": "synthetic: sshd quotes the banner",
    "Bad protocol version identification XYZ from 2001:db8::a11:beef:7ac0": "same",
    "User mario from 2001:db8::a11:beef:7ac0 not allowed because XYZ": "same",
    "User mario from 2001:db8::a11:beef:7ac0%lo not allowed because XYZ": "same",
    "2015-05-27T04:31:27.46667 auth.info: Invalid user admin from 192.168.2.1": (
        "socklog banner carries no program name: cannot tell sshd's lines from any other's"
    ),
    "2015-05-27T04:31:27.46667 auth.info: Invalid user admin from 2001:db8::a11:beef:7ac0": "same",
    "2015-05-27T04:31:28.10040 auth.info: May 27 04:31:28 sshd[30993]: Invalid user admin from "
    "1.2.3.4": "socklog wrapping a second syslog header: not a format lappguard reads",
    "2015-05-27T04:31:28.10040 auth.info: sshd[30993]:  Invalid user admin from 1.2.3.4": "same",
    "2018-06-26 13:22:02.108781500 Failed password for woold from 10.10.10.76 port 34718 ssh2": (
        "daemontools stamp without program name"
    ),
    '10.42.42.39 - "jeff" [19/Apr/1943:03:14:13 +0000] "GET /secret-base HTTP/1.1" 401 356 '
    '"EvilAgent/2.0"': (
        "a 401 without a login form is how every Basic-auth visit starts; lappguard counts the"
        " failed credentials in the error log (AH01617/AH01618) instead"
    ),
    '10.42.42.41 - - [19/Apr/1943:03:14:11 +0000] "GET /wp-admin.php HTTP/1" 401 - "-" '
    '"Mozilla/5.0"': "same",
    '2001:db8::a11:beef:7aa3 - "admin" [19/Apr/1943:03:14:13 +0000] "GET /admin/system HTTP/1.1"'
    " 401 -": "same",
    '10.42.42.40 - - [19/Apr/1943:03:14:15 +0000] "GET / HTTP/1.1" 401 314 "-" "Mozilla/5.0"': (
        "same"
    ),
    '2001:db8::a11:beef:7aa0 - - [19/Apr/1943:03:14:14 +0000] "GET /roundcube HTTP/2.0" 403 0 '
    '"-" "Mozilla/4.0"': "403 is an access rule doing its job, also for legitimate visitors",
}
NGINX_444 = "444 is nginx's silent close; lappguard reads Apache logs"
# sshguard says "must not"; fail2ban counts these as failures, and so does lappguard at the
# opt-in aggressive level (sshd-client-gave-up). At the normal level they give nothing.
AGGRESSIVE_ONLY = ("Auth fail [preauth]", "No supported authentication methods available")


@dataclass(frozen=True)
class Record:
    line: str
    service: int | None  # None: must not be detected
    address: str | None


def records() -> list[Record]:
    lines = [
        line
        for line in SSHGUARD.joinpath("parser_tests.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    found = []
    index = 0
    while index < len(lines):
        line, expected, separator = lines[index : index + 3]
        assert separator.startswith("M"), f"bad record at {line!r}"
        if expected == "*":
            found.append(Record(line, None, None))
        else:
            service, address, *_ = expected.split()
            found.append(Record(line, int(service), address))
        index += 3
    return found


RECORDS = records()


def feed(record: Record, level: str) -> list:
    detector = Detector(
        RULES, level=level, tz=UTC, clock=lambda: NOW, access_log_format=LENIENT_ACCESS
    )
    if (record.service or 0) >= 350 or re.match(r"\S+ - ", record.line):
        return detector.feed(record.line, "apache_access", "access.log", 1)
    if HEADER.match(record.line):
        return detector.feed(record.line, "sshd", "auth.log", 1)
    # a bare message: what the journal's MESSAGE field holds for ssh.service
    return detector.feed(record.line, "sshd", "journal:ssh.service", 1, time=NOW)


def test_the_copied_sections_hold_what_the_source_says():
    services = {r.service for r in RECORDS}
    assert services == {None, 100, 101, 350, 360, 370, 380}
    assert (len(RECORDS), sum(r.service is None for r in RECORDS)) == (119, 33)


DETECT = [r for r in RECORDS if r.service in (100, 350, 360, 370)]


@pytest.mark.parametrize("record", DETECT, ids=lambda r: r.line[:70])
def test_detect_lines_name_the_expected_address(record: Record):
    events = feed(record, "aggressive")
    if record.line in NOT_DETECTED or (" 444 " in record.line and record.service == 360):
        assert events == [], NOT_DETECTED.get(record.line, NGINX_444)
        return
    assert events and {e.ip for e in events} == {record.address}


@pytest.mark.parametrize(
    "record", [r for r in RECORDS if r.service is None], ids=lambda r: r.line[:70]
)
def test_must_not_lines_give_no_event(record: Record):
    assert feed(record, "normal") == []
    if any(text in record.line for text in AGGRESSIVE_ONLY):
        assert [e.rule for e in feed(record, "aggressive")] == ["sshd-client-gave-up"]
    else:
        assert feed(record, "aggressive") == []


def test_every_exception_is_used():
    lines = {r.line for r in DETECT}
    assert set(NOT_DETECTED) <= lines
    detected = sum(1 for r in DETECT if feed(r, "aggressive"))
    assert (len(DETECT), detected) == (83, 83 - len(NOT_DETECTED) - 2)  # two nginx 444 lines

"""fail2ban's annotated sshd and Apache fixtures, read in place (evaluation-only data, GPL).

Every line fail2ban expects to match (``# failJSON: {"match": true, "host": ...}`` above it)
gives an event naming that host, run at the aggressive level (the union of fail2ban's
normal/ddos/extra/aggressive modes, which the files exercise section by section). Lines
lappguard deliberately reads otherwise are listed below with the reason. Every line that
injects an address (fail2ban's "Injecting ..." descriptions) gives no event for it.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

import pytest
from conftest import require_shared_data

from agent.detect.detector import Detector
from agent.detect.events import Event, normalise_ip
from agent.detect.logformats import SyslogParser
from agent.detect.rules import load_rules

RULES = load_rules()
NOW = 1767225600.0
ADDRESS = re.compile(r"(?<![\w.:])(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9a-fA-F]*:[0-9a-fA-F:.]+)")

HOST_NAMES = "lappguard never resolves names: a PTR/forward record is the attacker's to set"
MULTILINE = (
    "fail2ban ties this line to an earlier failure of the same process that named no address;"
    " lappguard only borrows an address the process named before, never a failure"
)
NO_PORT = "no port: no OpenSSH since 3.x writes this line without one"
# line -> reason, for lines fail2ban matches and lappguard deliberately does not
EXCEPTIONS = {
    "Jun 21 16:47:48 digital-mlhhyiqscv sshd[13709]: error: PAM: Authentication failure for "
    "myhlj1374 from 192.030.0.6": "192.030.0.6 is no address: inet_aton reads 030 as octal 24",
    "Feb 25 14:34:11 belka sshd[31603]: Failed password for invalid user ROOT from "
    "aaaa:bbbb:cccc:1234::1:1": NO_PORT,
    "Apr 24 01:39:19 host sshd[3719]: error: Received disconnect from 198.51.100.34: 11: "
    "Bye Bye [preauth]": MULTILINE,
    "May 27 00:16:33 host sshd[2364]: Received disconnect from 198.51.100.76 port 58846:11: "
    "Bye Bye [preauth]": MULTILINE,
    "Apr 27 13:02:04 host sshd[29116]: Received disconnect from 1.2.3.4: 11: Normal Shutdown, "
    "Thank you for playing [preauth]": MULTILINE,
    "Mar  7 18:53:24 bar sshd[1558]: Accepted password for known from 192.0.2.114 port 52100 "
    "ssh2": "a successful login is never counted as a failure (fail2ban: attempts by others)",
    "Mar  7 18:53:34 bar sshd[1559]: Accepted password for known from 192.0.2.116 port 52100 "
    "ssh2": "same",
    "Jun  7 04:10:35 host sshd[424228]: Connection closed by 192.0.2.15 port 35352": MULTILINE,
    "Nov 11 08:04:52 redbamboo sshd[2737]: Failed password for invalid user test from 127.0.0.1 "
    "port 58946 ssh2: from 10.10.1.2 port 55555 ssh2": (
        "two readings (user name 'test from 127.0.0.1 port 58946 ssh2:' or auth info "
        "'from 10.10.1.2 ...'): ambiguous, no address trusted"
    ),
}
JOURNAL_MULTILINE = (
    "journal MESSAGE lines carry no pid here, so an address named earlier by the same process"
    " cannot be borrowed"
)


@dataclass(frozen=True)
class Labelled:
    line: str
    number: int
    match: bool
    host: str | None
    desc: str


def labelled(path: Path) -> list[Labelled]:
    found = []
    pending = None
    for number, raw in enumerate(path.read_bytes().splitlines(), 1):
        line = raw.decode("utf-8", "surrogateescape")
        if line.startswith("# failJSON:"):
            pending = json.loads(line.split(":", 1)[1])
        elif line.startswith("#") or not line.strip():
            continue
        elif pending is not None:
            found.append(
                Labelled(
                    line, number, pending["match"], pending.get("host"), pending.get("desc", "")
                )
            )
            pending = None
    return found


def replay(path: Path, kind: str, journal: bool = False) -> dict[int, list[Event]]:
    """Events by line number, the whole file fed in order (process memory at work)."""
    detector = Detector(RULES, level="aggressive", tz=UTC, clock=lambda: NOW)
    events = {}
    for number, raw in enumerate(path.read_bytes().splitlines(), 1):
        if raw.startswith(b"#") or not raw.strip():
            continue
        if journal:  # "srv sshd[pid]: MESSAGE", the journal's short output without time
            message = raw.split(b": ", 1)[1]
            events[number] = detector.feed(message, kind, "journal:ssh.service", number, time=NOW)
        else:
            events[number] = detector.feed(raw, kind, path.name, number)
    return events


def expectation(item: Labelled, events: list[Event], exceptions: dict[str, str]) -> None:
    named = {e.ip for e in events}
    if item.line in exceptions:
        assert named == set(), exceptions[item.line]
    elif item.host is not None and not _is_address(item.host):
        assert named == set(), HOST_NAMES
    else:
        assert events, f"line {item.number}: no event for {item.line!r}"
        if item.host is not None:
            assert named == {normalise_ip(item.host)}, f"line {item.number}"


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def injected(item: Labelled) -> set[str]:
    """Addresses written into a line by the client, for fail2ban's injection test lines."""
    if "inject" not in item.desc.lower():
        return set()
    return {normalise_ip(a) for a in ADDRESS.findall(item.line)} - {normalise_ip(item.host or "")}


FILES = [
    ("logs/sshd", "sshd"),
    ("logs/apache-auth", "apache_error"),
    ("logs/apache-modsecurity", "apache_error"),
    ("logs/apache-overflows", "apache_error"),
    ("logs/apache-shellshock", "apache_error"),
    ("logs/apache-noscript", "apache_error"),
]


@pytest.mark.parametrize(("name", "kind"), FILES)
def test_every_expected_match_names_fail2bans_host(name: str, kind: str):
    path = require_shared_data(f"fail2ban/{name}")
    events = replay(path, kind)
    items = [item for item in labelled(path) if item.match]
    assert items
    for item in items:
        expectation(item, events[item.number], EXCEPTIONS)


def test_journal_variant_of_the_sshd_fixture():
    """The same messages as journal MESSAGE fields (fail2ban's short journal output)."""
    path = require_shared_data("fail2ban/logs/sshd-journal")
    events = replay(path, "sshd", journal=True)
    parser = SyslogParser(lambda: NOW, UTC)
    by_message = {parser.parse(line).message: why for line, why in EXCEPTIONS.items()}
    borrowing = (
        "Disconnecting: Too many",
        "fatal: Read from socket",
        "fatal: Unable to negotiate a",
        "fatal: no matching",
        "error: kex_exchange_identification",
    )
    exceptions = {}
    for item in labelled(path):
        message = item.line.split(": ", 1)[1]
        if message in by_message:
            exceptions[item.line] = by_message[message]
        elif message.startswith(borrowing):
            exceptions[item.line] = JOURNAL_MULTILINE
        elif message.startswith("kernel:"):
            exceptions[item.line] = "a kernel timestamp inside sshd's message: sshd writes none"
    for item in labelled(path):
        if item.match:
            expectation(item, events[item.number], exceptions)


@pytest.mark.parametrize(("name", "count"), [("logs/sshd", 9), ("logs/sshd-journal", 8)])
def test_injected_addresses_are_never_named(name: str, count: int):
    path = require_shared_data(f"fail2ban/{name}")
    events = replay(path, "sshd", journal=name.endswith("journal"))
    checked = 0
    for item in labelled(path):
        bad = injected(item)
        if bad:
            checked += 1
            assert not bad & {e.ip for e in events[item.number]}, item.line
    assert checked == count


def test_the_exceptions_are_all_in_the_fixtures():
    path = require_shared_data("fail2ban/logs/sshd")
    lines = {item.line for item in labelled(path)}
    assert set(EXCEPTIONS) <= lines

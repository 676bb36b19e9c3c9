"""Loghub's 2,000 real OpenSSH lines (evaluation-only data, read in place), labelled by
Loghub's own event templates: each template gives exactly the rule expected here."""

from __future__ import annotations

import csv
import re
from collections import Counter
from datetime import UTC

import pytest
from conftest import require_shared_data

from agent.detect.detector import Detector
from agent.detect.rules import load_rules

RULES = load_rules()
ADDRESS = re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w.])")

# Loghub EventId -> the rule its lines give (None: no event), per level
NORMAL = {
    "E4": "sshd-too-many-failures",  # "Disconnecting: Too many ..." (address from the process)
    "E5": "sshd-too-many-failures",
    "E8": "sshd-failed-auth",  # Failed none for invalid user
    "E9": "sshd-failed-auth",  # Failed password for
    "E10": "sshd-failed-auth",  # Failed password for invalid user
    "E13": "sshd-invalid-user",
    "E14": "sshd-failed-auth",  # rsyslog "message repeated 5 times: [ Failed password ...]"
    "E19": "sshd-pam-auth-failure",
    "E20": "sshd-pam-auth-failure",
}
AGGRESSIVE = NORMAL | {
    "E2": "sshd-preauth-disconnect",  # Connection closed by <ip> [preauth]
    "E3": "sshd-bad-banner",  # Did not receive identification string
    "E6": "sshd-client-gave-up",  # JSch "Auth fail"
    "E7": "sshd-client-gave-up",  # No more user authentication methods available
}


def replay(level: str):
    path = require_shared_data("loghub/OpenSSH_2k.log")
    rows = list(csv.DictReader(path.with_name("OpenSSH_2k.log_structured.csv").open()))
    detector = Detector(RULES, level=level, tz=UTC, clock=lambda: 1767225600.0)
    lines = path.read_bytes().splitlines()
    assert len(lines) == len(rows) == 2000
    return [
        (row["EventId"], row["Content"], detector.feed(line, "sshd", path.name, number))
        for number, (line, row) in enumerate(zip(lines, rows, strict=True), 1)
    ], detector.counters


@pytest.mark.parametrize(("level", "expected"), [("normal", NORMAL), ("aggressive", AGGRESSIVE)])
def test_each_template_gives_its_rule_and_the_address_in_the_line(level, expected):
    results, counters = replay(level)
    hostname_rhost = 0
    for event_id, content, events in results:
        rule = expected.get(event_id)
        if rule is None:
            assert events == [], content
            continue
        addresses = ADDRESS.findall(content)
        if event_id in ("E19", "E20") and not re.search(r"rhost=[\d.]+(?:\s|$)", content):
            hostname_rhost += 1  # rhost is a host name: never resolved, no event
            assert events == [], content
            continue
        repeat = (
            int(re.match(r"message repeated (\d+)", content).group(1)) if event_id == "E14" else 1
        )
        assert [e.rule for e in events] == [rule] * repeat, content
        if addresses:
            assert {e.ip for e in events} == {addresses[-1]}, content
    assert hostname_rhost == 6
    assert counters.garbage == counters.unparsed == counters.ambiguous == 0


def test_totals():
    results, counters = replay("normal")
    assert dict(counters.by_rule) == {
        "sshd-failed-auth": 532,
        "sshd-pam-auth-failure": 488,
        "sshd-invalid-user": 113,
        "sshd-too-many-failures": 3,
    }
    by_ip = Counter(e.ip for *_, events in results for e in events)
    # 582 = every "Failed", "Invalid user" and pam failure line naming 183.62.140.253
    assert by_ip.most_common(3) == [
        ("183.62.140.253", 582),
        ("187.141.143.180", 189),
        ("103.99.0.122", 127),
    ]

"""Garbage in, no crash out: bad bytes, huge lines and cut lines are counted, never fatal."""

from __future__ import annotations

import time
from datetime import UTC

import pytest

from agent.detect.detector import MAX_LINE, Detector
from agent.detect.rules import load_rules

RULES = load_rules()
NOW = 1767225600.0
ATTACK = b"Jan  5 10:00:00 web1 sshd[7]: Failed password for root from 203.0.113.9 port 22 ssh2"


def detector() -> Detector:
    return Detector(RULES, tz=UTC, clock=lambda: NOW)


@pytest.mark.parametrize(
    "line",
    [
        b"Jan  5 10:00:00 web1 sshd[7]: Failed password for r\xffot from 203.0.113.9 port 22 ssh2",
        b"Jan  5 10:00:00 web1 sshd[7]: Failed password for r\x00ot from 203.0.113.9 port 22 ssh2",
        b"\xf9h\xa9\xf3\x88\x8cXKj \xbf-l*4\x87n\xe4\xfe\xd4\x1d\x06",
        b"\x00" * 100,
        ATTACK[:-3] + b"\xe2\x82",  # cut inside a UTF-8 character
    ],
)
def test_invalid_utf8_and_nul_bytes_are_skipped_and_counted(line: bytes):
    d = detector()
    assert d.feed(line, "sshd", "auth.log", 1) == []
    assert (d.counters.lines, d.counters.garbage, d.counters.events) == (1, 1, 0)


def test_text_with_nul_is_garbage_too():
    d = detector()
    assert d.feed("Failed password\x00", "sshd", "journal:ssh.service", 1) == []
    assert d.counters.garbage == 1


def test_a_line_cut_anywhere_never_names_a_wrong_address():
    """Cut inside the address (203.0.113.9 -> 203.0.113), before the port or inside "ssh2":
    no event; the only cuts that still match keep the whole address."""
    d = detector()
    named = {}
    for cut in range(1, len(ATTACK)):
        named[cut] = [e.ip for e in d.feed(ATTACK[:cut], "sshd", "auth.log", cut)]
    port = ATTACK.index(b" port ") + len(b" port ")
    # only "... port 2" and "... port 22" still read as a whole line of sshd's format
    assert {cut for cut, ips in named.items() if ips} == {port + 1, port + 2}
    assert {ip for ips in named.values() for ip in ips} == {"203.0.113.9"}
    assert d.counters.garbage == 0


def test_a_one_megabyte_line_is_cut_counted_and_read_once():
    """1 MB of 'from 6.6.6.6 port 22 ' as a user name: cut at 16 KiB, no event, bounded time."""
    flood = b" from 6.6.6.6 port 22" * (1_000_000 // 21)
    line = b"Jan  5 10:00:00 web1 sshd[7]: Invalid user x" + flood + b" from 203.0.113.9 port 4"
    d = detector()
    assert len(line) > 1_000_000
    started = time.process_time()
    assert d.feed(line, "sshd", "auth.log", 1) == []
    elapsed = time.process_time() - started
    assert (d.counters.truncated, d.counters.garbage, d.counters.events) == (1, 0, 0)
    # one pass over a megabyte is milliseconds; a quadratic scan would be minutes
    assert elapsed < 1.0


def test_long_lines_within_the_limit_still_match():
    user = b"u" * (MAX_LINE - 200)
    line = b"Jan  5 10:00:00 web1 sshd[7]: Invalid user " + user + b" from 203.0.113.9 port 4"
    events = detector().feed(line, "sshd", "auth.log", 1)
    assert [(e.rule, e.ip, len(e.evidence)) for e in events] == [
        ("sshd-invalid-user", "203.0.113.9", 512)
    ]


def test_long_access_log_lines_are_cut_and_counted():
    line = '203.0.113.9 - - [05/Jan/2024:10:00:00 +0000] "GET /' + "a" * 20000 + ' HTTP/1.1" 404 1'
    d = detector()
    assert d.feed(line, "apache_access", "access.log", 1) == []
    assert (d.counters.truncated, d.counters.unparsed) == (1, 1)


def test_lines_of_another_format_are_counted_as_unparsed_not_crashes():
    d = detector()
    assert d.feed("Failed password for root from 1.2.3.4 port 2 ssh2", "sshd", "auth.log", 1) == []
    assert d.feed("GET / HTTP/1.1", "apache_access", "access.log", 2) == []
    assert d.feed("[no time] user x not found", "apache_error", "error.log", 3) == []
    assert d.counters.unparsed == 3


def test_unknown_kind_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown log kind"):
        detector().feed(ATTACK, "nginx", "x", 1)


def _mixed_block() -> bytes:
    lines = [
        ATTACK,
        b"Jan  5 10:00:01 web1 CRON[8]: Failed password for root from 203.0.113.10 port 1 ssh2",
        b"Jan  5 10:00:02 web1 sshd[9]: Accepted publickey for alice from 203.0.113.11 port 1 ssh2",
        b"Jan  5 10:00:03 web1 sshd[10]: Invalid user bob from 2001:db8::7 port 4\r",
        b"",
        b"Jan  5 10:00:04 web1 sshd[11]: Connection from 198.51.100.4 port 5 on 10.0.0.1 port 22",
        b"Jan  5 10:00:05 web1 sshd[11]: Disconnecting: Too many authentication failures [preauth]",
        b"Failed password for root from 203.0.113.12 port 1 ssh2",
        b"Jan  5 10:00:06 web1 sshd[12]: Invalid user "
        + b"x" * 40000
        + b" from 203.0.113.13 port 4",
    ]
    return b"\n".join(lines) + b"\n"


def test_block_feeding_equals_line_feeding():
    """The fast path (literals searched in the whole block) gives what feeding lines gives."""
    block = _mixed_block()
    by_line = detector()
    expected = []
    for number, raw in enumerate(block[:-1].split(b"\n"), 1):
        expected += by_line.feed(raw, "sshd", "auth.log", number)
    by_block = detector()
    events, count = by_block.feed_block(block, "sshd", "auth.log", 1)
    assert count == 9 and events == expected
    assert [(e.rule, e.ip, e.line) for e in events] == [
        ("sshd-failed-auth", "203.0.113.9", 1),
        ("sshd-invalid-user", "2001:db8::7", 4),
        ("sshd-too-many-failures", "198.51.100.4", 7),
    ]
    assert by_block.counters == by_line.counters
    assert (by_block.counters.lines, by_block.counters.unparsed) == (9, 1)


def test_a_dirty_block_falls_back_to_line_feeding_with_the_same_result():
    block = _mixed_block().replace(b"Accepted", b"Acc\xffpted")
    reference = detector()
    expected = []
    for number, raw in enumerate(block[:-1].split(b"\n"), 1):
        expected += reference.feed(raw, "sshd", "auth.log", number)
    d = detector()
    events, count = d.feed_block(block, "sshd", "auth.log", 1)
    assert (events, count, d.counters) == (expected, 9, reference.counters)
    assert d.counters.garbage == 1

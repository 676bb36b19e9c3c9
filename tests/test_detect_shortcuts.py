"""Shortcuts the detector takes for speed give exactly what the long way gives.

* the lazy twin is skipped when the literal before the address occurs once (rules.ip_anchor);
* canonical dotted quads skip ipaddress (events.normalise_ip);
* a block is scanned without being split into lines (Detector.hits_block), and without
  numbering them when no one asks;
* the usual syslog stamp is read without the general parser (SyslogClock.parse);
* files are read into one reused buffer (scan.iter_blocks);
* a range of a big file reads the lines before it only when a line needs them.
"""

from __future__ import annotations

import dataclasses
import io
import ipaddress
import random
from datetime import UTC

import pytest
from test_detect_injection import SSHD_TEMPLATES, USER_NAMES

from agent.detect.detector import Detector
from agent.detect.events import normalise_ip
from agent.detect.logformats import SyslogClock
from agent.detect.memory import ProcessMemory
from agent.detect.rules import ip_anchor, load_rules
from agent.scan import _LONG_LINE_KEEP, iter_blocks

RULES = load_rules()
NOW = 1767225600.0


def _without_anchors(rules):
    """The rules as they would be without the anchor shortcut: the twin always runs."""
    return [
        dataclasses.replace(
            rule,
            alternatives={
                group: alternative._replace(anchor=None)
                for group, alternative in rule.alternatives.items()
            },
        )
        if rule.alternatives
        else rule
        for rule in rules
    ]


def _cases() -> list[tuple[str, str | None, str]]:
    """(kind, sample format, line): injection lines around every sshd template, and every
    sample of every rule."""
    cases: list[tuple[str, str | None, str]] = []
    for template in SSHD_TEMPLATES:
        for user in [*USER_NAMES, "root", "x from 203.0.113.9 port 22", " from ", "from"]:
            for peer in ("203.0.113.9", "2001:db8::9"):
                line = f"Jan  5 10:00:00 h sshd[9]: {template.format(u=user, ip=peer)}"
                cases.append(("sshd", None, line))
    for rule in RULES:
        if rule.http is None:
            for sample in (*rule.matches, *rule.no_matches):
                cases += [
                    (rule.kind, sample.format, line) for line in (*sample.before, sample.line)
                ]
    return cases


def _detector(rules, kind: str, sample_format: str | None) -> Detector:
    options = {"postgres_prefix": sample_format} if kind == "postgresql" and sample_format else {}
    return Detector(rules, level="aggressive", tz=UTC, clock=lambda: NOW, **options)


def test_the_anchor_shortcut_changes_no_verdict():
    """Every line gives the same hits and counts with and without the shortcut, and the
    lines exercise it: most take the shortcut, many are ambiguous."""
    slow_rules = _without_anchors(RULES)
    totals = {"events": 0, "ambiguous": 0}
    for kind, sample_format, line in _cases():
        fast = _detector(RULES, kind, sample_format)
        slow = _detector(slow_rules, kind, sample_format)
        assert fast.hits(line, kind, "a", 1) == slow.hits(line, kind, "a", 1), line
        assert fast.counters == slow.counters, line
        totals["events"] += fast.counters.events
        totals["ambiguous"] += fast.counters.ambiguous
    assert totals["events"] > 300 and totals["ambiguous"] > 10


def test_reading_header_and_rule_in_one_regex_changes_no_verdict():
    """sshd lines in the common header are read by one regex per candidate set; the long
    way (parse the header, then each rule) gives the same hits, counts and memory."""
    lines = [line for kind, _, line in _cases() if kind == "sshd"]
    lines += [
        "Jan  5 10:00:00 h sshd[9]: message repeated 2 times: [ Invalid user a from 192.0.2.1]",
        "Jan  5 10:00:00 h sshd[9]: [ID 800047 auth.info] Invalid user a from 192.0.2.1",
        "Foo  5 10:00:00 h sshd[9]: Invalid user a from 192.0.2.1",  # no such month
        "Jan  5 10:00:00 h sshdx[9]: Invalid user a from 192.0.2.1",
        "Jan  5 10:00:00 h sshd[9]: Connection from 192.0.2.7 port 1 on 10.0.0.1 port 22",
        "Jan  5 10:00:01 h sshd[9]: Disconnecting: Too many authentication failures [preauth]",
    ]
    fast = Detector(RULES, level="aggressive", tz=UTC, clock=lambda: NOW)
    slow = Detector(RULES, level="aggressive", tz=UTC, clock=lambda: NOW)
    slow._patterns["sshd"].header = None  # the long way only
    for number, line in enumerate(lines, 1):
        for source, time in (("auth.log", None), ("auth.log", 5.0)):
            assert fast.hits(line, "sshd", source, number, time) == slow.hits(
                line, "sshd", source, number, time
            ), line
    assert fast.counters == slow.counters and fast.counters.events > 300
    assert fast.memory.entries == slow.memory.entries
    assert any(fast._patterns["sshd"].fast_by_mask.values())


@pytest.mark.parametrize(
    ("pattern", "anchor"),
    [
        (r"^Failed \S+ for (?P<user>.*) from (?P<ip>[0-9.]+) port \d+$", " from "),
        (r"^(?:error: )?Received disconnect from (?P<ip>[0-9.]+)", "Received disconnect from "),
        (r"^x \(y\)\.(?P<ip>\S+)$", "x (y)."),  # escaped literals belong to it
        (r"^a b? c (?P<ip>\S+)$", " c "),  # "b?" is not part of the anchor
        (r"^for (?:connection from )?(?P<ip>\S+)$", None),  # optional text before it
        (r"^(?:from (?P<ip>\S+))$", None),  # inside a group
        (r"^from (?P<ip>\S+)?$", None),  # the address is optional
        (r"^from (?P<ip>\S+)$|^to (?P<x>\S+)$", None),  # top-level alternative
        (r"^(?P<user>.*) from (?P<ip>\S+) (?P=user)$", None),  # backreference
        (r"^(?i:x) from (?P<ip>\S+)$", None),  # inline flags change what a literal matches
        (r"^ from (?<=m )(?P<ip>\S+)$", None),  # a lookbehind between
        (r"^\d(?P<ip>\S+)$", None),
        (r"^x (?P<user>\S+)$", None),  # no address at all
    ],
)
def test_ip_anchor(pattern: str, anchor: str | None):
    assert ip_anchor(pattern) == anchor


def test_canonical_dotted_quads_and_everything_else_normalise_as_ipaddress_does():
    def reference(text: str) -> str | None:
        candidate = text.strip()
        if candidate.startswith("[") and candidate.endswith("]"):
            candidate = candidate[1:-1]
        try:
            address = ipaddress.ip_address(candidate.split("%", 1)[0])
        except ValueError:
            return None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(address)

    rng = random.Random(3)
    octets = [str(n) for n in range(260)]
    octets += ["00", "01", "010", "1000", "-1", " 1", "\u0663", "\u0661"]  # Arabic-Indic digits
    texts = [
        ".".join(rng.choice(octets) for _ in range(rng.choice((3, 4, 4, 5)))) for _ in range(30000)
    ]
    texts += ["1.2.3.4\n", "[1.2.3.4]", "1.2.3.4%eth0", "::ffff:1.2.3.4", "2001:DB8::1"]
    for text in texts:
        assert normalise_ip(text) == reference(text), text


@pytest.mark.parametrize(
    "block",
    [
        b"\n",  # one empty line
        b"\n\n",
        b"x",
        b"x\n",
        b"Jan  5 10:00:00 h sshd[9]: Invalid user a from 192.0.2.1 port 1",
        b"\nJan  5 10:00:00 h sshd[9]: Invalid user a from 192.0.2.1 port 1\n\n",
        b"Jan  5 10:00:00 h sshd[9]: Invalid user a from 192.0.2.1 port 1\r\nx\r\n",
        b"Jan  5 10:00:00 h sshd[9]: Invalid user a from 192.0.2.1 port 1\nx\xff\n",
    ],
)
def test_a_block_gives_what_its_lines_give(block: bytes):
    by_block = Detector(RULES, tz=UTC, clock=lambda: NOW)
    hits, count = by_block.hits_block(block, "sshd", "a", 5)
    by_line = Detector(RULES, tz=UTC, clock=lambda: NOW)
    lines = block.split(b"\n")
    if block.endswith(b"\n"):
        lines.pop()
    expected = [hit for n, raw in enumerate(lines, 5) for hit in by_line.hits(raw, "sshd", "a", n)]
    assert (hits, count, by_block.counters) == (expected, len(lines), by_line.counters)
    unnumbered = Detector(RULES, tz=UTC, clock=lambda: NOW)
    hits, count = unnumbered.hits_block(block, "sshd", "a", 5, numbered=False)
    without_lines = [(*hit[:6], None, hit[7]) for hit in expected]
    assert (hits, count, unnumbered.counters) == (without_lines, len(lines), by_line.counters)


class _Trickle(io.RawIOBase):
    """A stream that hands out at most a few bytes per read, like a pipe."""

    def __init__(self, data: bytes, rng: random.Random):
        self._data, self._rng, self._at = data, rng, 0

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        size = min(len(target), self._rng.randrange(1, 50), len(self._data) - self._at)
        target[:size] = self._data[self._at : self._at + size]
        self._at += size
        return size


#: bytes -> "a", "b", " " and the two bytes of "é" (so cuts can fall inside a character)
_ALPHABET = bytes(b"ab\xc3\xa9 "[n % 5] for n in range(256))


def _cut(line: bytes) -> bytes:
    """A line over the limit as iter_blocks keeps it: cut at a character boundary."""
    cut = _LONG_LINE_KEEP - 1
    while cut > 0 and line[cut] & 0xC0 == 0x80:
        cut -= 1
    return line[:cut]


@pytest.mark.parametrize("seed", range(6))
def test_reading_blocks_keeps_every_line_whole_whatever_the_reads(seed: int):
    """Every line comes out whole, or (only when longer than the limit and it did not fit
    the buffer) cut at a character boundary; blocks end at line ends."""
    rng = random.Random(seed)
    lines = []
    for _ in range(200):
        length = rng.choice((0, 1, 10, 100, 5000, _LONG_LINE_KEEP, _LONG_LINE_KEEP + 3, 90000))
        lines.append(rng.randbytes(length).translate(_ALPHABET))
    data = b"\n".join(lines) + rng.choice((b"", b"\n"))
    stream = _Trickle(data, rng) if seed % 2 else io.BytesIO(data)
    blocks = list(iter_blocks(stream, block_size=rng.choice((64, 4096, 70000))))
    assert all(block.endswith(b"\n") for block in blocks[:-1])
    read, lines = b"".join(blocks).split(b"\n"), data.split(b"\n")
    if data.endswith(b"\n"):
        assert read.pop() == lines.pop() == b""
    for got, line in zip(read, lines, strict=True):
        assert got == line or (len(line) > _LONG_LINE_KEEP and got == _cut(line))
    assert any(
        len(line) > _LONG_LINE_KEEP and got != line for got, line in zip(read, lines, strict=True)
    )


def test_a_memory_extended_by_a_later_one_is_the_memory_that_read_both():
    """Random remembers, with a tiny size so that eviction order matters: a memory that
    read the first part, extended by one that read only the second (from any of its
    change numbers on, the first ones read again by the first memory), is exactly the
    memory that read everything in order."""
    rng = random.Random(11)

    def remembers(count: int) -> list[tuple[str, str, str, float]]:
        sources = ("a", "b")
        return [
            (rng.choice(sources), str(rng.randrange(8)), rng.choice(("", "192.0.2.1", "::1")),
             rng.uniform(0, 9000))
            for _ in range(count)
        ]  # fmt: skip

    for _ in range(500):
        size = rng.randrange(1, 6)
        first, second = remembers(rng.randrange(12)), remembers(rng.randrange(12))
        cut = rng.randrange(len(second) + 1)
        whole, earlier, later = (ProcessMemory(size=size, ttl=3600) for _ in range(3))
        for change in first + second:
            whole.remember(*change)
        for change in first + second[:cut]:
            earlier.remember(*change)
        for change in second:
            later.remember(*change)
        earlier.extend(later, after=cut)
        assert list(earlier.entries) == list(whole.entries)
        assert [entry[:2] for entry in earlier.entries.values()] == [
            entry[:2] for entry in whole.entries.values()
        ]
        assert set(earlier.sources) == set(whole.sources)


def test_the_usual_stamp_shortcut_reads_stamps_as_the_general_way_does():
    """Random stamps, well-formed or not (other digits, colons out of place), in hours seen
    before or not: the shortcut never disagrees with a clock that has seen nothing."""
    rng = random.Random(5)
    clock = SyslogClock(lambda: NOW, UTC)
    characters = "0123456789: x\u0663"
    for _ in range(20000):
        tail = "".join(rng.choice(characters) for _ in range(8))
        if rng.random() < 0.5:
            tail = f"1{rng.randrange(10)}:{rng.choice('012345')}{rng.randrange(10)}:" + tail[:2]
        stamp = f"Jan  {rng.randrange(1, 10)} {tail}"
        assert clock.parse(stamp) == SyslogClock(lambda: NOW, UTC).parse(stamp), stamp

"""Hostile single lines: characters that NFKC multiplies, times no calendar holds."""

from __future__ import annotations

import sys
import time
import unicodedata
from datetime import UTC

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.detect.detector import Detector
from agent.detect.injection import clear_verdict_caches
from agent.detect.injection.decode import (
    _JOINS_BACKWARD,
    _MAX_UNCUT,
    MAX_VALUE,
    nfkc_head,
    normalise,
)
from agent.detect.rules import load_rules

RULES = load_rules()
NOW = 1767225600.0

#: NFKC writes 18 characters for U+FDFA, 8 for U+FDFB, 6 for U+3316, 5 for U+3300...;
#: U+0F73 is two combining marks, which CPython sorts in quadratic time when many follow.
EXPANDING = ["\ufdfa", "\ufdfb", "\u3316", "\u3300", "\ufb03", "\u0f73", "\u0301\u0316"]
#: What NFKC composes, reorders or joins across characters, for exactness checks.
TRICKY = (
    "a<e \u0301\u0316\u0338\u0344\u0f73\u1100\u1161\u11a8\u3131\u3150\uac00\u304b\u3099"
    "\uff76\uff9e\ufdfa\ufdfb\u3300\ufb03\u0dd9\u0dcf\u0dca\u0cc6\u0cc2\u0cd5\u09c7\u09be"
)


def detector() -> Detector:
    return Detector(RULES, tz=UTC, clock=lambda: NOW)


def access_line(payload: str) -> str:
    """A request whose query, Referer and User-Agent all carry ``payload`` (16 KiB in all)."""
    return (
        f'203.0.113.9 - - [05/Jan/2024:10:00:00 +0000] "GET /?q={payload} HTTP/1.1" 200 1 '
        f'"http://example.com/?r={payload}" "{payload}"'
    )


def cpu_seconds(d: Detector, line: str) -> float:
    """Best CPU time of this thread over three reads (verdict caches cleared each time)."""
    best = float("inf")
    for _ in range(3):
        clear_verdict_caches()
        started = time.thread_time()
        d.feed(line, "apache_access", "access.log", 1)
        best = min(best, time.thread_time() - started)
    return best


@given(st.text(alphabet=TRICKY, max_size=_MAX_UNCUT), st.integers(1, 6), st.integers(1, 80))
@settings(max_examples=300, deadline=None)
def test_normalising_in_pieces_is_nfkc(text: str, piece: int, limit: int):
    whole = unicodedata.normalize("NFKC", text)
    assert nfkc_head(text, 10_000, piece) == whole
    assert nfkc_head(text, limit, piece) == whole[:limit]


def test_pieces_never_start_with_a_character_that_joins_the_one_before():
    """Every starter that canonical composition joins to a preceding character (the
    second of a two-character decomposition) is known to _piece_end."""
    joining = set()
    for code in range(sys.maxunicode + 1):
        parts = unicodedata.decomposition(chr(code)).split()
        if len(parts) == 2 and not parts[0].startswith("<"):
            second = chr(int(parts[1], 16))
            if not unicodedata.combining(second):
                joining.add(second)
    assert joining <= _JOINS_BACKWARD


@pytest.mark.parametrize("char", EXPANDING[:5], ids=lambda c: f"U+{ord(c):04X}")
def test_a_value_normalises_to_the_first_max_value_characters_of_nfkc(char: str):
    text = char * MAX_VALUE
    assert normalise(text) == unicodedata.normalize("NFKC", text).lower()[:MAX_VALUE]


def test_a_run_of_combining_marks_is_sorted_a_part_at_a_time():
    """Beyond Unicode's stream-safe limit (30 marks in a row): CPython sorts a run in
    quadratic time, so it is cut, which no text in any language notices."""
    marks = "\u0316\u0301" * MAX_VALUE
    assert len(normalise(marks)) == MAX_VALUE
    assert normalise(marks[:30]) == unicodedata.normalize("NFKC", marks[:30])


@pytest.mark.parametrize("char", EXPANDING, ids=lambda c: f"U+{ord(c[0]):04X}")
def test_characters_that_nfkc_multiplies_cost_what_plain_text_costs(char: str):
    """A quote and 16 KiB of U+FDFA took 20 to 35 times a line of plain letters (up to
    250 ms) when whole values were normalised; now the folded text is capped as it is made.
    (CPU time of this thread, best of three: a generous ratio, not a time limit.)"""
    d = detector()
    plain = cpu_seconds(d, access_line("'" + "a" * 5400))
    hostile = cpu_seconds(d, access_line("'" + char * (5400 // len(char))))
    assert hostile < 5 * plain + 0.005, f"{hostile * 1000:.1f} ms vs {plain * 1000:.1f} ms"


@pytest.mark.parametrize(
    ("kind", "line", "options"),
    [
        (
            "apache_access",
            '203.0.113.9 - - [01/Jan/0001:00:00:00 +1400] "GET /.env HTTP/1.1" 404 1 "-" "-"',
            {},
        ),
        (
            "sshd",
            "9999-12-31T23:59:59-14:00 web1 sshd[7]: Failed password for root from 203.0.113.9"
            " port 22 ssh2",
            {},
        ),
        (
            "postgresql",
            "100000000000000000000 [12] 203.0.113.9 LOG:  connection received: host=203.0.113.9"
            " port=5",
            {"postgres_prefix": "%n [%p] %h "},
        ),
        (
            "postgresql",
            "1" * 400 + ' [12] 203.0.113.9 FATAL:  password authentication failed for user "x"',
            {"postgres_prefix": "%n [%p] %h "},
        ),
    ],
    ids=["clf-year-1", "iso-year-9999", "pg-epoch-1e20", "pg-epoch-inf"],
)
def test_a_time_no_date_can_hold_skips_the_line_and_counts_it(kind: str, line: str, options):
    d = Detector(RULES, tz=UTC, clock=lambda: NOW, **options)
    assert d.feed(line, kind, "x.log", 1) == []
    assert (d.counters.lines, d.counters.unparsed, d.counters.events) == (1, 1, 0)


def test_the_first_and_last_second_a_date_holds_still_count():
    d = detector()
    for stamp in ("01/Jan/0001:00:00:00 +0000", "31/Dec/9999:23:59:59 +0000"):
        line = f'203.0.113.9 - - [{stamp}] "GET /.env HTTP/1.1" 404 1 "-" "-"'
        assert [e.ip for e in d.feed(line, "apache_access", "access.log", 1)][:1] == ["203.0.113.9"]
    assert d.counters.unparsed == 0

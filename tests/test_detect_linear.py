"""No shipped pattern backtracks badly: near-miss lines of 16 KiB stay linear.

lappguard keeps Python's ``re`` (google-re2's binding measured ~15x slower per match on these
short lines, see bench/detect.py), so linear time is proven here instead: every pattern and
its lazy twin run against lines built from its own samples, repeated to the detector's
16 KiB limit and broken at the end. A quadratic pattern takes 256x longer on a 16x longer
line; a linear one 16x. (CPU time of the thread is the only observable here. A 4x size
ratio was too narrow: fixed costs and a busy machine brought a quadratic pattern's ratio
from 16 down to 7; on 16x it stays above 80, and the best of three measurements counts.)
"""

from __future__ import annotations

import time
from datetime import UTC

import pytest

from agent.detect.detector import MAX_LINE, Detector
from agent.detect.http import COMBINED, COMMON, VHOST_COMBINED, AccessLogParser
from agent.detect.logformats import DEBIAN_PG_PREFIX
from agent.detect.rules import Rule, load_rules

RULES = load_rules()
FLOOD_CHARS = " .:0aA'\"`%[]()@/-"
#: seconds; below this a 16 KiB match cannot hide a quadratic blow-up (the quadratic
#: pattern below takes 2-3 ms, a linear one up to 1 ms)
NOTICEABLE = 0.0005


def _message(rule: Rule) -> str:
    sample = rule.matches[0]
    options = {"postgres_prefix": sample.format or DEBIAN_PG_PREFIX}
    same_kind = [r for r in RULES if r.kind == rule.kind]
    detector = Detector(same_kind, level="aggressive", tz=UTC, **options)
    header = detector.header(sample.line, rule.kind)
    assert header is not None
    return header.message


def near_misses(message: str, size: int) -> list[str]:
    """Lines that start like a match and keep almost matching, for about ``size``
    characters. Each ends the same way at every size (see :func:`_repeated`)."""
    words = message.split(" ")
    lines = [
        _repeated(message + " ", size, MAX_LINE) + "%",
        _repeated(message[:-1] or message, size, MAX_LINE),
    ]
    for cut in range(1, len(words)):
        head, tail = " ".join(words[:cut]) + " ", " ".join(words[cut:]) + " "
        lines.append(head + _repeated(tail, size - len(head), MAX_LINE - len(head)) + "%")
    half = message[: len(message) // 2]
    lines.extend(half + char * size for char in FLOOD_CHARS)
    return lines


def _repeated(unit: str, size: int, full: int) -> str:
    """``unit`` repeated to about ``size`` characters, ending with the piece of it that
    ends ``unit`` repeated to exactly ``full``: a shorter line has the same shape as the
    16 KiB one, so it cannot stop at a place that happens to match (or fail) at once."""
    piece = full % len(unit)
    return unit * max(1, (size - piece) // len(unit)) + unit[:piece]


def _seconds(regex, line: str, repeat: int = 1) -> float:
    """Best CPU time of this thread for one match: other processes on a busy CI machine
    stretch wall-clock time, not the thread's own CPU time."""
    best = float("inf")
    for _ in range(repeat):
        start = time.thread_time()
        regex.match(line)
        best = min(best, time.thread_time() - start)
    return best


#: Lines this many times shorter are the baseline a 16 KiB line is compared with.
SHORTER = 16
#: A linear pattern takes SHORTER (16) times as long on the long line, a quadratic one 256.
GROWTH_LIMIT = 40


def growth(regex, long_line: str, short_line: str) -> float:
    """How many times longer ``regex`` takes on ``long_line`` than on ``short_line``: the
    lowest of three ratios (noise on a busy machine only ever adds to one of them)."""
    return min(
        _seconds(regex, long_line, 5) / max(_seconds(regex, short_line, 5), 1e-6) for _ in range(3)
    )


@pytest.mark.parametrize("rule", [r for r in RULES if r.regex is not None], ids=lambda r: r.id)
def test_patterns_stay_linear_on_near_miss_lines(rule: Rule):
    message = _message(rule)
    for regex in filter(None, (rule.regex, rule.lazy_twin)):
        long_lines = near_misses(message, MAX_LINE)
        short_lines = near_misses(message, MAX_LINE // SHORTER)
        for long_line, short_line in zip(long_lines, short_lines, strict=True):
            if _seconds(regex, long_line) < NOTICEABLE:
                continue
            ratio = growth(regex, long_line, short_line)
            assert ratio < GROWTH_LIMIT, (
                f"{rule.id}: {ratio:.1f}x slower on {SHORTER}x the text: {long_line[:60]!r}"
            )


@pytest.mark.parametrize(
    "log_format",
    [COMBINED, COMMON, VHOST_COMBINED, '%a %{X-Forwarded-For}i %t "%r" %s %{ms}T',
     "%{c}a %{begin:msec}t %r", '%h:%{remote}p %u "%r"'],
)  # fmt: skip
def test_access_log_formats_stay_linear_on_floods(log_format: str):
    """A LogFormat's regex on a line that is one character repeated (the fuzz test found
    VHOST_COMBINED's ``%v:%p`` quadratic on a run of colons: 0.8 s for 16 KiB)."""
    regex = AccessLogParser(log_format)._regex
    for char in FLOOD_CHARS:
        long_line = char * MAX_LINE
        if _seconds(regex, long_line) < NOTICEABLE:
            continue
        ratio = growth(regex, long_line, char * (MAX_LINE // SHORTER))
        assert ratio < GROWTH_LIMIT, f"{log_format}: {ratio:.1f}x slower on a run of {char!r}"


def test_the_check_catches_a_quadratic_pattern():
    """The same measurement flags the kind of pattern that was fixed in apache-auth-*."""
    import re

    quadratic = re.compile(r"^user (?P<user>.*): authentication failure for \".*\": Password$")
    message = 'user bob: authentication failure for "/admin": Password'
    long_line = near_misses(message, MAX_LINE)[0]
    assert _seconds(quadratic, long_line) >= NOTICEABLE  # the check measures it at all
    assert growth(quadratic, long_line, near_misses(message, MAX_LINE // SHORTER)[0]) > GROWTH_LIMIT

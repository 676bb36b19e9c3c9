"""No shipped pattern backtracks badly: near-miss lines of 16 KiB stay linear.

lappguard keeps Python's ``re`` (google-re2's binding measured ~15x slower per match on these
short lines, see bench/detect.py), so linear time is proven here instead: every pattern and
its lazy twin run against lines built from its own samples, repeated to the detector's
16 KiB limit and broken at the end. A quadratic pattern takes 16x longer on a 4x longer
line; a linear one 4x. (CPU time of the thread is the only observable here; the thresholds leave a
wide margin and the slow case is re-measured before it counts.)
"""

from __future__ import annotations

import time
from datetime import UTC

import pytest

from agent.detect.detector import MAX_LINE, Detector
from agent.detect.logformats import DEBIAN_PG_PREFIX
from agent.detect.rules import Rule, load_rules

RULES = load_rules()
FLOOD_CHARS = " .:0aA'\"`%[]()@/-"
NOTICEABLE = 0.002  # seconds; below this a 16 KiB match cannot hide a quadratic blow-up


def _message(rule: Rule) -> str:
    sample = rule.matches[0]
    options = {"postgres_prefix": sample.format or DEBIAN_PG_PREFIX}
    same_kind = [r for r in RULES if r.kind == rule.kind]
    detector = Detector(same_kind, level="aggressive", tz=UTC, **options)
    header = detector.header(sample.line, rule.kind)
    assert header is not None
    return header.message


def near_misses(message: str, size: int) -> list[str]:
    """Lines that start like a match and keep almost matching, for ``size`` characters."""
    words = message.split(" ")
    lines = [
        ((message + " ") * (size // (len(message) + 1) + 1))[:size] + "%",
        (message[:-1] * (size // max(1, len(message) - 1) + 1))[:size],
    ]
    for cut in range(1, len(words)):
        head, tail = " ".join(words[:cut]) + " ", " ".join(words[cut:]) + " "
        lines.append((head + tail * (size // len(tail) + 1))[:size] + "%")
    half = message[: len(message) // 2]
    lines.extend(half + char * size for char in FLOOD_CHARS)
    return lines


def _seconds(regex, line: str, repeat: int = 1) -> float:
    """Best CPU time of this thread for one match: other processes on a busy CI machine
    stretch wall-clock time, not the thread's own CPU time."""
    best = float("inf")
    for _ in range(repeat):
        start = time.thread_time()
        regex.match(line)
        best = min(best, time.thread_time() - start)
    return best


@pytest.mark.parametrize("rule", [r for r in RULES if r.regex is not None], ids=lambda r: r.id)
def test_patterns_stay_linear_on_near_miss_lines(rule: Rule):
    message = _message(rule)
    for regex in filter(None, (rule.regex, rule.lazy_twin)):
        long_lines = near_misses(message, MAX_LINE)
        short_lines = near_misses(message, MAX_LINE // 4)
        for long_line, short_line in zip(long_lines, short_lines, strict=True):
            if _seconds(regex, long_line) < NOTICEABLE:
                continue
            ratio = _seconds(regex, long_line, 5) / max(_seconds(regex, short_line, 5), 1e-6)
            assert ratio < 8, f"{rule.id}: {ratio:.1f}x slower on 4x the text: {long_line[:60]!r}"


def test_the_check_catches_a_quadratic_pattern():
    """The same measurement flags the kind of pattern that was fixed in apache-auth-*."""
    import re

    quadratic = re.compile(r"^user (?P<user>.*): authentication failure for \".*\": Password$")
    line = near_misses('user bob: authentication failure for "/admin": Password', MAX_LINE)[0]
    short = near_misses('user bob: authentication failure for "/admin": Password', MAX_LINE // 4)
    ratio = _seconds(quadratic, line, 5) / max(_seconds(quadratic, short[0], 5), 1e-6)
    assert ratio > 8

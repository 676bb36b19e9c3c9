"""The literal prefilter: both searches give exactly the lines, and masks, that testing every
literal on every line gives, however the literals overlap or contain each other."""

from __future__ import annotations

import random

import pytest
from conftest import FIXTURES

from agent.detect import literals
from agent.detect.detector import Detector
from agent.detect.literals import LiteralIndex, hidden_by
from agent.detect.rules import load_rules

RULES = load_rules()


def strategies() -> list:
    automaton = pytest.param(
        "automaton",
        marks=pytest.mark.skipif(
            literals.ahocorasick_rs is None, reason="ahocorasick-rs (optional) is not installed"
        ),
    )
    return ["find", automaton]


def by_line(pairs: list[tuple[str, int]], block: bytes) -> list[tuple[int, int, int]]:
    """The reference: every literal tested on every line."""
    found, position = [], 0
    for line in block.split(b"\n"):
        mask = 0
        for literal, bit in pairs:
            if literal.encode() in line:
                mask |= bit
        if mask:
            found.append((position, position + len(line), mask))
        position += len(line) + 1
    return found


@pytest.mark.parametrize("strategy", strategies())
def test_random_overlapping_literals_give_the_masks_of_a_line_by_line_test(strategy: str):
    rng = random.Random(7)
    for _ in range(3000):
        pairs = [
            ("".join(rng.choice("ab ") for _ in range(rng.randrange(1, 5))), 1 << rng.randrange(6))
            for _ in range(rng.randrange(1, 8))
        ]
        block = "".join(rng.choice("ab \nc") for _ in range(rng.randrange(0, 200))).encode()
        assert LiteralIndex(pairs, strategy).lines(block) == by_line(pairs, block), (pairs, block)


@pytest.mark.parametrize("strategy", strategies())
@pytest.mark.parametrize("level", ["normal", "aggressive"])
@pytest.mark.parametrize("kind", ["sshd", "postgresql", "apache_error"])
def test_shipped_literals_on_real_logs(strategy: str, level: str, kind: str):
    pairs = Detector(RULES, level=level)._patterns[kind].literals.literals
    index = LiteralIndex(pairs, strategy)
    block = b"".join(
        path.read_bytes() for path in sorted((FIXTURES / "detect").rglob("*")) if path.is_file()
    )
    expected = by_line(pairs, block)
    assert index.lines(block) == expected
    assert expected  # the fixtures do hold candidate lines of every kind


def test_a_literal_hidden_inside_or_across_another_is_still_seen():
    """Leftmost-first reports "Failed " and resumes after it: "Failed publickey for " (same
    start) and " from x" (sharing the space) would be missed without the hidden pairs."""
    pairs = [("Failed ", 1), ("Failed publickey for ", 2), (" from x", 4), ("d p", 8)]
    block = b"Failed publickey for y\nFailed from x\nnothing\n"
    for strategy in ("find", "automaton") if literals.ahocorasick_rs else ("find",):
        assert LiteralIndex(pairs, strategy).lines(block) == [(0, 22, 1 | 2 | 8), (23, 36, 1 | 4)]


def test_hidden_pairs_are_where_two_literals_agree_on_the_bytes_they_share():
    encoded = [b"Failed ", b" from", b"ailed", b"xyz"]
    assert hidden_by(encoded, "automaton") == [[(1, 6), (2, 1)], [], [], []]
    # find searches the held literal ("ailed") and finds the holder through it
    assert hidden_by(encoded, "find") == [[], [], [(0, -1)], []]


def test_literals_with_a_newline_never_match_inside_a_block_line():
    pairs = [("a\nb", 1), ("c", 2)]
    assert LiteralIndex(pairs, "find").lines(b"a\nb\nc\n") == [(4, 5, 2)]
    assert LiteralIndex(pairs, "find").mask("a\nb") == 1  # a journal message may hold one


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="unknown literal search"):
        LiteralIndex([("x", 1)], "regex")

"""Which lines of a block of log text hold which prefilter literals: detection's first stage.

Most log lines hold none of a kind's literals and stop here, never split out, decoded or
matched, so this stage decides how fast an offline scan reads a large file. Each literal
carries a bit mask (the rules that list it); a line's mask is the OR over the literals it
holds. Two equivalent searches:

* with ``ahocorasick-rs`` installed: one pass over the block for all literals at once
  (leftmost-first Aho-Corasick with a SIMD prefilter, several GB/s);
* without it: one ``bytes.find`` pass per literal (about 2 GB/s each), skipping literals
  that contain another one.

Neither search reports every occurrence (the first skips overlapping ones, the second the
literals that contain another), so both finish a line's mask by testing, where a reported
occurrence was found, the literals that could hide there; :func:`hidden_by` proves which.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache, reduce
from operator import itemgetter, or_

try:
    import ahocorasick_rs
except ImportError:  # optional: the per-literal search gives the same answers, slower
    ahocorasick_rs = None

#: (start, end, mask) of a line of the block: ``block[start:end]`` without its newline.
Candidate = tuple[int, int, int]
STRATEGIES = ("automaton", "find")


def default_strategy() -> str:
    """The fastest search installed."""
    return "automaton" if ahocorasick_rs is not None else "find"


@lru_cache(maxsize=32)
def literal_index(literals: tuple[tuple[str, int], ...], strategy: str = "") -> LiteralIndex:
    """A shared LiteralIndex (it holds no state between searches): detectors are built per
    file and per range of a big file, the analysis of the literals once."""
    return LiteralIndex(literals, strategy or None)


class LiteralIndex:
    """The literals of one log kind, searched in whole blocks (see the module docstring).

    ``strategy``: ``"automaton"`` (needs ahocorasick-rs), ``"find"``, or None for the best
    one installed.
    """

    def __init__(self, literals: Sequence[tuple[str, int]], strategy: str | None = None):
        strategy = strategy or default_strategy()
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown literal search {strategy!r}")
        self.strategy = strategy
        merged: dict[str, int] = {}
        for literal, mask in literals:
            if literal:
                merged[literal] = merged.get(literal, 0) | mask
        self.literals = list(merged.items())
        # a line of a block holds no newline, so neither can a literal found in one
        encoded = [text.encode() for text in merged if "\n" not in text]
        masks = [merged[literal.decode()] for literal in encoded]
        hidden = hidden_by(encoded, strategy)
        self._encoded = encoded
        # a literal inside another is there whenever the other is: its mask comes along
        self._masks = [
            masks[i] | _or(masks[j] for j, shift in hidden[i] if _inside(encoded, i, j, shift))
            for i in range(len(encoded))
        ]
        #: literal index -> (literal, mask, shift) of the literals that may start ``shift``
        #: bytes after a reported occurrence of it without being reported themselves
        self._behind = [
            [
                (encoded[j], masks[j], shift)
                for j, shift in hidden[i]
                if not _inside(encoded, i, j, shift)
            ]
            for i in range(len(encoded))
        ]
        held = {j for pairs in hidden for j, _ in pairs}
        self._searched = [
            i for i in range(len(encoded)) if strategy == "automaton" or i not in held
        ]
        # one regex call rules out every hidden literal at once (the usual case); the pairs
        # are then tested one by one only where it matches. Shifts are >= 0 here.
        self._gates = [
            re.compile(
                b"|".join(re.escape(encoded[i][:shift] + other) for other, _, shift in pairs)
            )
            if pairs and strategy == "automaton"
            else None
            for i, pairs in enumerate(self._behind)
        ]
        self._automaton = None
        if strategy == "automaton" and encoded:
            self._automaton = ahocorasick_rs.BytesAhoCorasick(
                encoded, matchkind=ahocorasick_rs.MatchKind.LeftmostFirst
            )

    def mask(self, text: str) -> int:
        """The mask of one line of text."""
        found = 0
        for literal, mask in self.literals:
            if literal in text:
                found |= mask
        return found

    def lines(self, block: bytes) -> list[Candidate]:
        """The lines of ``block`` holding any literal, in order, with their masks."""
        if self._automaton is not None:
            hits = self._automaton.find_matches_as_indexes(block)
        else:
            hits = []
            find = block.find
            for index in self._searched:
                literal = self._encoded[index]
                position = find(literal)
                while position != -1:
                    hits.append((index, position, 0))
                    position = find(literal, position + 1)
            hits.sort(key=_POSITION)
        return self._candidates(block, hits)

    def _candidates(self, block: bytes, hits: list[tuple[int, int, int]]) -> list[Candidate]:
        """Group (literal, position, _) hits, in position order, into lines with their masks."""
        candidates: list[Candidate] = []
        find, rfind, startswith = block.find, block.rfind, block.startswith
        masks, behind, gates = self._masks, self._behind, self._gates
        start = mask = 0
        end = -1
        for index, position, _ in hits:
            if position > end:  # the first hit of a new line
                if end >= 0:
                    candidates.append((start, end, mask))
                start = rfind(b"\n", 0, position) + 1
                end = find(b"\n", position)
                if end == -1:
                    end = len(block)
                mask = 0
            mask |= masks[index]
            pairs = behind[index]
            if pairs:
                gate = gates[index]
                if gate is not None and gate.match(block, position) is None:
                    continue
                for other, other_mask, shift in pairs:
                    at = position + shift
                    if other_mask & ~mask and at >= start and startswith(other, at):
                        mask |= other_mask
        if end >= 0:
            candidates.append((start, end, mask))
        return candidates


_POSITION = itemgetter(1)


def _or(masks: Iterable[int]) -> int:
    return reduce(or_, masks, 0)


def _inside(encoded: list[bytes], index: int, other: int, shift: int) -> bool:
    """Whether ``encoded[other]``, ``shift`` bytes into ``encoded[index]``, ends inside it."""
    return shift >= 0 and shift + len(encoded[other]) <= len(encoded[index])


def hidden_by(encoded: list[bytes], strategy: str) -> list[list[tuple[int, int]]]:
    """For each literal, the (literal, shift) pairs that a search may leave unreported when
    they start ``shift`` bytes after a reported occurrence of it.

    ``find`` does not search a literal holding another one: each of its occurrences holds a
    reported occurrence of the held literal, at a known offset (a negative shift).
    ``automaton`` (leftmost-first, non-overlapping) reports the leftmost match and resumes
    after it, so an unreported occurrence starts inside a reported one, at a shift where
    the two agree on the bytes they share.
    """
    pairs: list[list[tuple[int, int]]] = [[] for _ in encoded]
    for index, literal in enumerate(encoded):
        for other_index, other in enumerate(encoded):
            if other_index == index:
                continue
            if strategy == "find":
                if any(inner in other for inner in encoded if inner != other) and literal in other:
                    offset = other.find(literal)
                    while offset != -1:
                        pairs[index].append((other_index, -offset))
                        offset = other.find(literal, offset + 1)
            else:
                pairs[index] += [
                    (other_index, shift)
                    for shift in range(len(literal))
                    if literal[shift : shift + len(other)] == other[: len(literal) - shift]
                ]
    return pairs

"""Regular expressions from policies and audited configurations, compiled only when safe.

Python's ``re`` backtracks: ``(a+)+$``, ``(.|.)*X`` or ``(\\w+\\s?)*$`` take exponential time
on a near-miss line of a few dozen characters, and a policy author or an audited file can
write them. So before compiling, a pattern is parsed (with ``re``'s own parser, so the
reading is exactly the one that will run) and refused, with the reason, when it has:

- a nested quantifier: a repeat of variable length inside a repeat that may run more than
  ``FEW`` times (``(a+)+``, ``(a*b?)*``);
- alternatives inside such a repeat that can start with the same character (``(ab|ac)*``,
  ``(.|\\s)*``), or that can match nothing (``re`` turns ``(a|ab)*`` into ``(a(|b))*``);
- a backreference or a conditional group (no linear-time matcher has them);
- groups nested more than ``MAX_NESTING`` deep, or more than ``MAX_LENGTH`` characters,
  or anything ``re`` rejects (including ``a{4294967296}``, which raises OverflowError).

What stays may still be polynomial (``a.*b.*c`` on a long line of ``ab``), so a pattern is
only ever run on text of at most ``MAX_SUBJECT`` characters; callers that loop over many
lines also stop after ``EVALUATION_BUDGET`` seconds of CPU. Both make the check an error
("cannot evaluate pattern safely"), never a pass. Refusing is conservative: ``(ab|ac)*`` is
refused though it would be fast; it is easy to rewrite (``(a[bc])*``).
"""

from __future__ import annotations

import re
import re._constants as sre  # the parser's node types; private but stable since 3.11
import re._parser as sre_parse
from collections.abc import Iterable
from typing import Any

MAX_LENGTH = 4096
MAX_NESTING = 50
#: Longest text a policy or configuration pattern is run on (a 16 KiB line, as detection).
MAX_SUBJECT = 16 * 1024
#: CPU seconds one check may spend running a pattern over many lines.
EVALUATION_BUDGET = 5.0

#: How often a repeat may run before the ambiguity inside it counts: ``(\\d{1,3}\\.){3}``
#: tries at most 3**3 ways, ``(a{1,2}){100}`` 2**100.
FEW = 10

_REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT)
_ANY_CHARACTER = None  # a first-character set that may hold any character


class UnsafePattern(ValueError):
    """A pattern refused before it runs; the message says why."""


class CannotEvaluate(Exception):
    """A safe pattern could still not be run on some text (too long, out of time)."""


def compile_safe(text: str, flags: int = 0) -> re.Pattern[str]:
    """``re.compile`` for a pattern that cannot take exponential time; UnsafePattern says why
    a pattern is refused (invalid, too large, or exponential)."""
    if len(text) > MAX_LENGTH:
        raise UnsafePattern(f"pattern longer than {MAX_LENGTH} characters")
    if _nesting(text) > MAX_NESTING:
        raise UnsafePattern(f"groups nested more than {MAX_NESTING} deep")
    try:
        tree = sre_parse.parse(text, flags)
        compiled = re.compile(text, flags)
    except (re.error, OverflowError, RecursionError, ValueError) as exc:
        raise UnsafePattern(f"invalid regex: {exc}") from exc
    reason = _exponential(tree, times=1)
    if reason:
        raise UnsafePattern(f"pattern can take exponential time ({reason})")
    return compiled


def search(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    """``pattern.search(text)``; CannotEvaluate when the text is too long to run it on."""
    if len(text) > MAX_SUBJECT:
        raise CannotEvaluate(
            f"cannot evaluate /{pattern.pattern}/ safely on a text of {len(text)} characters "
            f"(at most {MAX_SUBJECT})"
        )
    return pattern.search(text)


def _nesting(text: str) -> int:
    """Deepest group nesting, counted on the text (``re``'s parser recurses per level)."""
    depth = deepest = 0
    escaped = in_class = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")":
            depth = max(0, depth - 1)
    return deepest


def _exponential(items: Iterable[tuple[Any, Any]], times: int) -> str | None:
    """Why this parsed sequence can backtrack exponentially, or None; ``times`` is how often
    the enclosing repeats may run it (their maxima multiplied)."""
    for op, av in items:
        if op in (sre.GROUPREF, sre.GROUPREF_EXISTS):
            return "backreference or conditional group"
        if op in _REPEATS:
            low, high, body = av
            if times > FEW and low != high:
                return f"nested quantifier {_shown(op, av)}"
            inner = min(times * high, sre.MAXREPEAT)
            if inner > FEW and (reason := _ambiguous_alternatives(body)):
                return reason
            if reason := _exponential(body, inner):
                return reason
        elif op is sre.SUBPATTERN:
            if reason := _exponential(av[3], times):
                return reason
        elif op is sre.BRANCH:
            for branch in av[1]:
                if reason := _exponential(branch, times):
                    return reason
        elif op in (sre.ASSERT, sre.ASSERT_NOT):
            if reason := _exponential(av[1], times):
                return reason
        elif op is sre.ATOMIC_GROUP and (reason := _exponential(av, times)):
            return reason
    return None


def _ambiguous_alternatives(items: Iterable[tuple[Any, Any]]) -> str | None:
    """Alternatives directly in a repeated body that two branches could both start."""
    for op, av in items:
        if op is sre.SUBPATTERN:
            if reason := _ambiguous_alternatives(av[3]):
                return reason
        elif op is sre.BRANCH:
            seen: list[frozenset[int] | None] = []
            for branch in av[1]:
                first, empty = _first(branch)
                if empty or any(_overlap(first, other) for other in seen):
                    return "alternatives inside a repeat can match the same text"
                seen.append(first)
    return None


def _first(items: Iterable[tuple[Any, Any]]) -> tuple[frozenset[int] | None, bool]:
    """(characters a match can start with, None for any; whether it can match nothing)."""
    found: set[int] = set()
    for op, av in items:
        if op is sre.LITERAL:
            return frozenset(found | _cases(av)), False
        if op in _REPEATS:
            chars, empty = _first(av[2])
            if chars is _ANY_CHARACTER:
                return _ANY_CHARACTER, False
            found |= chars
            if av[0] > 0 and not empty:
                return frozenset(found), False
        elif op is sre.SUBPATTERN:
            chars, empty = _first(av[3])
            if chars is _ANY_CHARACTER:
                return _ANY_CHARACTER, False
            found |= chars
            if not empty:
                return frozenset(found), False
        elif op is sre.BRANCH:
            empty = False
            for branch in av[1]:
                chars, branch_empty = _first(branch)
                if chars is _ANY_CHARACTER:
                    return _ANY_CHARACTER, False
                found |= chars
                empty = empty or branch_empty
            if not empty:
                return frozenset(found), False
        elif op in (sre.AT, sre.ASSERT, sre.ASSERT_NOT):
            continue  # matches no character itself
        elif op is sre.IN:
            chars = _class_members(av)
            if chars is _ANY_CHARACTER:
                return _ANY_CHARACTER, False
            return frozenset(found | chars), False
        else:  # ANY, NOT_LITERAL, CATEGORY, ATOMIC_GROUP...: assume it may start anywhere
            return _ANY_CHARACTER, False
    return frozenset(found), True


def _class_members(items: list[tuple[Any, Any]]) -> frozenset[int] | None:
    """The characters of a small ``[...]`` class of literals and short ranges, else None."""
    members: set[int] = set()
    for op, av in items:
        if op is sre.LITERAL:
            members |= _cases(av)
        elif op is sre.RANGE and av[1] - av[0] < 256:
            for code in range(av[0], av[1] + 1):
                members |= _cases(code)
        else:
            return _ANY_CHARACTER
    return frozenset(members)


def _cases(code: int) -> set[int]:
    """A character and its other cases (so case-insensitive patterns are not missed)."""
    char = chr(code)
    return {code, *(ord(c) for c in (char.lower(), char.upper()) if len(c) == 1)}


def _overlap(a: frozenset[int] | None, b: frozenset[int] | None) -> bool:
    if a is _ANY_CHARACTER or b is _ANY_CHARACTER:
        return True
    return not a.isdisjoint(b)


def _shown(op: Any, av: Any) -> str:
    low, high, _ = av
    if high == sre.MAXREPEAT:
        quantifier = {0: "*", 1: "+"}.get(low, f"{{{low},}}")
    else:
        quantifier = "?" if (low, high) == (0, 1) else f"{{{low},{high}}}"
    lazy = "?" if op is sre.MIN_REPEAT else "+" if op is sre.POSSESSIVE_REPEAT else ""
    return f"'{quantifier}{lazy}' inside a repeated group"

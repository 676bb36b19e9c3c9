"""Expectations on a configured value: the small vocabulary every directive check shares.

An expectation is a YAML mapping of operators that must all hold, e.g.
``{equals: "no"}``, ``{one_of: [no, prohibit-password]}``, ``{max: 4}``,
``{matches: '%h'}``, ``{absent: true}``. String comparisons ignore case unless
``case_sensitive: true``, because sshd, Apache and PostgreSQL keywords do. Patterns are
compiled only when they cannot take exponential time (``checks.regexsafety``), and a value
too long to run one on safely raises CannotEvaluate: the check errors, it never passes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from checks.regexsafety import compile_safe, search

OPERATORS = (
    "equals",
    "one_of",
    "not_one_of",
    "matches",
    "not_matches",
    "min",
    "max",
    "present",
    "absent",
    "case_sensitive",
    "describe",
)


@dataclass(frozen=True)
class Expectation:
    equals: str | None = None
    one_of: tuple[str, ...] = ()
    not_one_of: tuple[str, ...] = ()
    matches: re.Pattern | None = None
    not_matches: re.Pattern | None = None
    min: float | None = None
    max: float | None = None
    present: bool = False
    absent: bool = False
    case_sensitive: bool = False
    #: What the operators want, in words (``{matches: '%[hr]', describe: "%h in the
    #: prefix"}``): evidence reads "expected %h in the prefix", not a regular expression.
    describe: str = ""
    text: str = field(default="", compare=False)  # as written, for evidence

    def violation(self, value: str | None) -> str | None:
        """Why ``value`` (None when unset) breaks this expectation, or None when it holds;
        in the words of ``describe`` when the policy gives them."""
        problem = self._operators_violation(value)
        if problem is None or not self.describe:
            return problem
        return f"{'not set' if value is None else f'is {value!r}'}, expected {self.describe}"

    def _operators_violation(self, value: str | None) -> str | None:
        if value is None:
            if self.absent:
                return None
            return f"not set (expected {self.text})"
        if self.absent:
            return f"is set to {value!r} (expected it unset)"
        fold = (lambda s: s) if self.case_sensitive else str.casefold
        if self.equals is not None and fold(value) != fold(self.equals):
            return f"is {value!r}, expected {self.equals!r}"
        if self.one_of and fold(value) not in {fold(v) for v in self.one_of}:
            return f"is {value!r}, expected one of {', '.join(self.one_of)}"
        if self.not_one_of and fold(value) in {fold(v) for v in self.not_one_of}:
            return f"is {value!r}, which is not allowed"
        if self.matches is not None and not search(self.matches, value):
            return f"is {value!r}, which does not match /{self.matches.pattern}/"
        if self.not_matches is not None and search(self.not_matches, value):
            return f"is {value!r}, which matches the forbidden /{self.not_matches.pattern}/"
        if self.min is not None or self.max is not None:
            number = _number(value)
            if number is None:
                return f"is {value!r}, expected a number"
            if self.min is not None and number < self.min:
                return f"is {value}, expected at least {self.min:g}"
            if self.max is not None and number > self.max:
                return f"is {value}, expected at most {self.max:g}"
        return None


def _number(value: str) -> float | None:
    try:
        return float(value.strip().strip("'\""))
    except ValueError:
        return None


def build_expectation(raw: dict) -> Expectation:
    """Build from a validated mapping (unknown operators were rejected by the caller).

    Raises UnsafePattern for a pattern that is invalid or could take exponential time."""
    case_sensitive = bool(raw.get("case_sensitive", False))
    flags = 0 if case_sensitive else re.IGNORECASE
    words = [f"{k}={raw[k]}" for k in raw if k not in ("case_sensitive", "describe")]
    return Expectation(
        equals=None if raw.get("equals") is None else _scalar(raw["equals"]),
        one_of=tuple(_scalar(v) for v in raw.get("one_of", ())),
        not_one_of=tuple(_scalar(v) for v in raw.get("not_one_of", ())),
        matches=compile_safe(str(raw["matches"]), flags) if "matches" in raw else None,
        not_matches=compile_safe(str(raw["not_matches"]), flags) if "not_matches" in raw else None,
        min=float(raw["min"]) if "min" in raw else None,
        max=float(raw["max"]) if "max" in raw else None,
        present=bool(raw.get("present", False)),
        absent=bool(raw.get("absent", False)),
        case_sensitive=case_sensitive,
        describe=str(raw.get("describe") or ""),
        text=str(raw.get("describe") or ", ".join(words)),
    )


def _scalar(value: object) -> str:
    return str(value)

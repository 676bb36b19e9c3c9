"""What a check concludes, and the vocabulary (status, severity) reports and exit codes use."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Status(StrEnum):
    """Outcome of one check. ``error`` means "could not decide" and is never a silent pass."""

    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"
    SKIP = "skip"


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_ORDER.index(self)

    def at_least(self, other: Severity) -> bool:
        return self.rank >= other.rank


_SEVERITY_ORDER = [Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL]


@dataclass(frozen=True)
class Verdict:
    """What a check type returns: the engine adds the check's metadata to make a Result.

    ``remediation``, when set, replaces the policy's fix: the evidence showed where the
    fix must go (a file read first, whose value wins), and a generic fix would not work.
    """

    status: Status
    evidence: tuple[str, ...] = ()
    reason: str = ""
    remediation: str = ""


def passed(*evidence: str) -> Verdict:
    return Verdict(Status.PASS, tuple(evidence))


def failed(*evidence: str, remediation: str = "") -> Verdict:
    return Verdict(Status.FAIL, tuple(evidence), remediation=remediation)


def errored(reason: str, *evidence: str) -> Verdict:
    return Verdict(Status.ERROR, tuple(evidence), reason)


def skipped(reason: str) -> Verdict:
    return Verdict(Status.SKIP, (), reason)


@dataclass(frozen=True)
class Result:
    """One check's outcome on one host, with everything a report needs."""

    check_id: str
    title: str
    area: str
    severity: Severity
    status: Status
    evidence: tuple[str, ...] = ()
    reason: str = ""
    remediation: str = ""
    rationale: str = ""
    references: tuple[str, ...] = ()
    duration_ms: float = 0.0
    source: str = field(default="", compare=False)  # policy file:line, for SARIF locations

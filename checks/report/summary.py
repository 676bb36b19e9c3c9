"""Counts shared by every report format."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from checks.engine import HostReport
from checks.result import Result, Severity, Status


@dataclass(frozen=True)
class Summary:
    counts: dict[str, int]
    blocking: int
    fail_on: Severity

    def as_dict(self) -> dict:
        return {
            **{status.value: self.counts.get(status.value, 0) for status in Status},
            "total": sum(self.counts.values()),
            "fail_on": self.fail_on.value,
            "blocking": self.blocking,
        }


def is_blocking(result: Result, fail_on: Severity) -> bool:
    """A failed or undecided check at or above the threshold makes the audit fail."""
    return result.status in (Status.FAIL, Status.ERROR) and result.severity.at_least(fail_on)


def blocking_results(reports: Sequence[HostReport], fail_on: Severity) -> list[Result]:
    return [r for report in reports for r in report.results if is_blocking(r, fail_on)]


def summarise(reports: Sequence[HostReport], fail_on: Severity) -> Summary:
    counts = Counter(r.status.value for report in reports for r in report.results)
    return Summary(dict(counts), len(blocking_results(reports, fail_on)), fail_on)

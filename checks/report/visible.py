"""Every report passes through ``checks.visible`` before a writer sees it.

Evidence quotes configuration lines, file names and command output, all of which someone
else wrote: one rule for text, JSON, JUnit and SARIF, so the same evidence reads the same in
all of them (see ``checks.visible`` for what is written out and how).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from checks.engine import HostReport
from checks.result import Result
from checks.visible import visible


def visible_reports(reports: Sequence[HostReport]) -> list[HostReport]:
    """The reports with every piece of text passed through ``visible``."""
    return [
        replace(
            report,
            host=visible(report.host),
            results=tuple(map(_visible_result, report.results)),
        )
        for report in reports
    ]


def _visible_result(result: Result) -> Result:
    return replace(
        result,
        check_id=visible(result.check_id),
        title=visible(result.title),
        area=visible(result.area),
        evidence=tuple(map(visible, result.evidence)),
        reason=visible(result.reason),
        remediation=visible(result.remediation),
        rationale=visible(result.rationale),
        references=tuple(map(visible, result.references)),
        source=visible(result.source),
    )

"""Reports of an audit: text for people, json/junit/sarif for machines, and the exit code.

The exit code contract: 0 when no check at or above the ``--fail-on`` severity failed or
errored, 1 when one did (an undecided check is not a pass), 2 for usage or policy errors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from checks.engine import HostReport
from checks.report import jsonfmt, junit, sarif, text
from checks.report.summary import Summary, blocking_results, summarise
from checks.result import Severity

DEFAULT_FAIL_ON = Severity.MEDIUM
EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2

RENDERERS: dict[str, Callable[..., str]] = {
    "text": text.render,
    "json": jsonfmt.render,
    "junit": junit.render,
    "sarif": sarif.render,
}


def exit_code(reports: Sequence[HostReport], fail_on: Severity) -> int:
    return EXIT_FINDINGS if blocking_results(reports, fail_on) else EXIT_OK


__all__ = ["DEFAULT_FAIL_ON", "RENDERERS", "Summary", "exit_code", "summarise"]

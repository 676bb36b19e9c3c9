"""Reports of an audit: text for people, json/junit/sarif for machines, and the exit code.

The exit code contract: 0 when no check at or above the ``--fail-on`` severity failed or
errored, 1 when one did (an undecided check is not a pass); the command line adds 2 for
usage or policy errors and 4 for its own failures (``agent.exits``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from checks.engine import HostReport
from checks.report import jsonfmt, junit, sarif, text
from checks.report.provenance import Provenance
from checks.report.summary import Summary, blocking_results, summarise
from checks.report.visible import visible_reports
from checks.result import Severity

DEFAULT_FAIL_ON = Severity.MEDIUM
EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2
Renderer = Callable[..., str]


def _on_visible_text(render: Renderer) -> Renderer:
    """``render`` fed only reports (and provenance) whose text went through ``visible``, so
    no writer can pass a control character, a bidi override or an unencodable surrogate."""

    def render_visible(
        reports: Sequence[HostReport],
        fail_on: Severity,
        provenance: Provenance | None = None,
        **options: object,
    ) -> str:
        shown = provenance.visible() if provenance else None
        return render(visible_reports(reports), fail_on, provenance=shown, **options)

    return render_visible


RENDERERS: dict[str, Renderer] = {
    "text": _on_visible_text(text.render),
    "json": _on_visible_text(jsonfmt.render),
    "junit": _on_visible_text(junit.render),
    "sarif": _on_visible_text(sarif.render),
}


def exit_code(reports: Sequence[HostReport], fail_on: Severity) -> int:
    return EXIT_FINDINGS if blocking_results(reports, fail_on) else EXIT_OK


__all__ = ["DEFAULT_FAIL_ON", "RENDERERS", "Summary", "exit_code", "summarise"]

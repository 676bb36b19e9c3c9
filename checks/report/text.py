"""The report a person reads: what failed and how to fix it first, then every check by area.

Lines fit 100 columns (evidence and fixes wrap under their own indent; only a single word
longer than that, such as a very long path, reaches past), so the report reads the same in
a terminal, a mail and a ticket. Colour, when asked for, marks the status and
the severity, each in its own colours: a low finding never looks like a high one.

A fleet audit (``fleet=True``) adds, after every host's section, a table of host by area
with the worst status of each cell, so the hosts needing attention stand out at a glance.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence

from checks.areas import area_order, display_name
from checks.engine import HostReport
from checks.report.provenance import Provenance
from checks.report.summary import is_blocking, summarise
from checks.result import Result, Severity, Status

WIDTH = 100
MAX_EVIDENCE_LINES = 8
STATUS_COLOURS = {Status.PASS: "32", Status.FAIL: "31", Status.ERROR: "35", Status.SKIP: "2"}
SEVERITY_COLOURS = {
    Severity.CRITICAL: "1;31",  # bold red
    Severity.HIGH: "31",  # red
    Severity.MEDIUM: "33",  # yellow
    Severity.LOW: "36",  # cyan
}
NOT_BLOCKING = "2"  # dim: shown, but below --fail-on
#: A fleet table cell: the worst status of a host's checks in an area, worst first. Upper
#: case is at or above --fail-on, lower case below it (it does not fail the audit).
CELL_ORDER = (Status.FAIL, Status.ERROR, Status.PASS, Status.SKIP)
CELL_TEXT = {Status.FAIL: "fail", Status.ERROR: "err", Status.PASS: "ok", Status.SKIP: "skip"}
NO_CHECK = "-"

Paint = Callable[[str, str], str]


def render(
    reports: Sequence[HostReport],
    fail_on: Severity,
    colour: bool = False,
    provenance: Provenance | None = None,
    fleet: bool = False,
    **_: object,
) -> str:
    paint = _painter(colour)
    out: list[str] = []
    for report in reports:
        own = provenance.for_host(report.host) if provenance else None
        out.extend(_host_section(report, fail_on, paint, own))
    if fleet:
        out.extend(_fleet_table(reports, fail_on, paint))
    total = summarise(reports, fail_on)
    counts = ", ".join(f"{total.counts.get(s.value, 0)} {s.value}" for s in Status)
    verdict = (
        paint(STATUS_COLOURS[Status.FAIL], f"{total.blocking} at or above {fail_on.value}: exit 1")
        if total.blocking
        else paint(STATUS_COLOURS[Status.PASS], f"nothing at or above {fail_on.value}: exit 0")
    )
    out.append(f"Summary: {counts} — {verdict}")
    return "\n".join(out) + "\n"


def _host_section(
    report: HostReport, fail_on: Severity, paint: Paint, provenance: Provenance | None
) -> list[str]:
    heading = (
        f"lappguard audit of {report.host}: {len(report.results)} checks in "
        f"{report.duration_s:.2f}s"
    )
    out = [*_wrap(heading, "", "  "), *_provenance(provenance), ""]
    failures = sorted(
        (r for r in report.results if r.status in (Status.FAIL, Status.ERROR)),
        key=lambda r: (r.status is not Status.FAIL, -r.severity.rank, r.check_id),
    )
    if failures:
        out.append("Needs attention (worst first):")
        for result in failures:
            out.extend(_finding(result, is_blocking(result, fail_on), paint))
        out.append("")
    out.append("All checks by area:")
    for area in sorted({r.area for r in report.results}, key=area_order):
        out.append(f"  {display_name(area)}")
        for result in (r for r in report.results if r.area == area):
            note = f"  ({result.reason})" if result.status is Status.SKIP and result.reason else ""
            head = f"    {_label(result)}{result.check_id:14} "
            lines = _wrap(f"{head}{result.title}{note}", "", " " * len(head))
            shown_as_blocking = result.status in (Status.PASS, Status.SKIP) or is_blocking(
                result, fail_on
            )
            out.extend(_painted(lines, "    ", result, shown_as_blocking, paint))
    out.append("")
    return out


def _fleet_table(reports: Sequence[HostReport], fail_on: Severity, paint: Paint) -> list[str]:
    """Host by area, each cell the worst status there; host names are cut (with ``~``)
    only when the areas leave them too little of the 100 columns."""
    areas = sorted({r.area for report in reports for r in report.results}, key=area_order)
    widths = [max(len(area), len(CELL_TEXT[Status.SKIP])) for area in areas]
    room = WIDTH - sum(width + 1 for width in widths)
    host_width = max(4, min(room, max((len(report.host) for report in reports), default=4)))
    failing = sum(any(is_blocking(r, fail_on) for r in report.results) for report in reports)
    out = [
        f"Fleet: {len(reports)} hosts, {failing} with a check at or above {fail_on.value} "
        "failed or undecided",
        " ".join(["host".ljust(host_width), *map(str.ljust, areas, widths)]).rstrip(),
    ]
    for report in reports:
        host = report.host
        if len(host) > host_width:
            host = host[: host_width - 1] + "~"
        cells = [host.ljust(host_width)]
        for area, width in zip(areas, widths, strict=True):
            in_area = [r for r in report.results if r.area == area]
            cells.append(_cell(in_area, fail_on, paint, width))
        out.append(" ".join(cells).rstrip())
    out.extend(
        _wrap(
            f"FAIL/ERR: a check failed or was undecided at or above {fail_on.value}; "
            "fail/err: only below it; ok: passed; skip: did not apply; -: no check",
            "",
            "  ",
        )
    )
    out.append("")
    return out


def _cell(results: list[Result], fail_on: Severity, paint: Paint, width: int) -> str:
    """The worst status among ``results``, padded to ``width`` (colour codes do not count)."""
    if not results:
        return NO_CHECK.ljust(width)
    worst = min((r.status for r in results), key=CELL_ORDER.index)
    text = CELL_TEXT[worst]
    if worst in (Status.FAIL, Status.ERROR):
        if any(is_blocking(r, fail_on) for r in results if r.status is worst):
            return paint(STATUS_COLOURS[worst], text.upper()) + " " * (width - len(text))
        return paint(NOT_BLOCKING, text) + " " * (width - len(text))
    return paint(STATUS_COLOURS[worst], text) + " " * (width - len(text))


def _finding(result: Result, blocking: bool, paint: Paint) -> list[str]:
    marker = "" if blocking else "  (below --fail-on)"
    head = f"  {_label(result, upper=True)}"
    lines = _wrap(f"{head}{result.check_id}  {result.title}{marker}", "", " " * len(head))
    lines = _painted(lines, "  ", result, blocking, paint, upper=True)
    if result.reason:
        lines.extend(_wrap(f"why undecided: {result.reason}", "      ", "        "))
    for line in result.evidence[:MAX_EVIDENCE_LINES]:
        lines.extend(_wrap(line, "      ", "        "))
    if len(result.evidence) > MAX_EVIDENCE_LINES:
        lines.append(f"      ... {len(result.evidence) - MAX_EVIDENCE_LINES} more")
    if result.remediation:
        lines.extend(_wrap(f"fix: {result.remediation}", "      ", "           "))
    return lines


def _label(result: Result, upper: bool = False) -> str:
    """``FAIL  high     ``: status and severity, LABEL_WIDTH columns."""
    severity = result.severity.value.upper() if upper else result.severity.value
    return f"{result.status.value.upper():5} {severity:8} "


def _painted(
    lines: list[str], indent: str, result: Result, blocking: bool, paint: Paint, upper: bool = False
) -> list[str]:
    """``lines`` with the label after ``indent`` in colour: the status and the severity each
    in its own, a finding below --fail-on dimmed (it does not fail the audit)."""
    status = STATUS_COLOURS[result.status] if blocking else NOT_BLOCKING
    plain = _label(result, upper)
    painted = (
        paint(status, plain[:5]) + " " + paint(SEVERITY_COLOURS[result.severity], plain[6:14]) + " "
    )
    return [indent + painted + lines[0][len(indent) + len(plain) :], *lines[1:]]


def _provenance(provenance: Provenance | None) -> list[str]:
    """What the audit ran with: tool, time, policies, config file and every variable."""
    if provenance is None:
        return []
    policies = ", ".join(f"{p.id} {p.version}".strip() for p in provenance.policies)
    config = provenance.config or "none"
    facts = (
        f"lappguard {provenance.tool_version} at {provenance.generated_iso}; "
        f"policies: {policies}; config: {config}"
    )
    values = ", ".join(
        f"{v.name}={v.text or '(unset)'}" + ("" if v.origin == "default" else f" ({v.origin})")
        for v in provenance.variables
    )
    lines = _wrap(facts, "  ", "    ")
    if values:
        lines.extend(_wrap(f"variables: {values}", "  ", "    "))
    return lines


def _wrap(text: str, first: str, rest: str) -> list[str]:
    """``text`` in lines of at most WIDTH columns. Words are never cut: a path or a value
    must stay whole to be copied, so only a single word longer than a line reaches past."""
    return textwrap.wrap(
        text,
        WIDTH,
        initial_indent=first,
        subsequent_indent=rest,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [first.rstrip()]


def _painter(colour: bool) -> Paint:
    def paint(code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if colour else text

    return paint

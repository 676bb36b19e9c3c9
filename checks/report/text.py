"""The report a person reads: what failed and how to fix it first, then every check by area."""

from __future__ import annotations

from collections.abc import Sequence

from checks.engine import HostReport
from checks.policy import AREAS
from checks.report.summary import is_blocking, summarise
from checks.result import Result, Severity, Status

COLOURS = {Status.PASS: "32", Status.FAIL: "31", Status.ERROR: "33", Status.SKIP: "2"}
AREA_NAMES = {
    "SSH": "SSH",
    "TLS": "TLS",
    "WEB": "Apache",
    "PHP": "PHP",
    "PG": "PostgreSQL",
    "PATCH": "Patching",
    "SVC": "Services",
    "AUTH": "Accounts",
    "FW": "Firewall and blocking",
    "BAK": "Backups",
}
MAX_EVIDENCE_LINES = 8


def render(
    reports: Sequence[HostReport], fail_on: Severity, colour: bool = False, **_: object
) -> str:
    paint = _painter(colour)
    out: list[str] = []
    for report in reports:
        out.extend(_host_section(report, fail_on, paint))
    total = summarise(reports, fail_on)
    counts = ", ".join(f"{total.counts.get(s.value, 0)} {s.value}" for s in Status)
    verdict = (
        paint(Status.FAIL, f"{total.blocking} at or above {fail_on.value}: exit 1")
        if total.blocking
        else paint(Status.PASS, f"nothing at or above {fail_on.value}: exit 0")
    )
    out.append(f"Summary: {counts} — {verdict}")
    return "\n".join(out) + "\n"


def _host_section(report: HostReport, fail_on: Severity, paint) -> list[str]:
    out = [
        f"lappguard audit of {report.host}: {len(report.results)} checks in "
        f"{report.duration_s:.2f}s",
        "",
    ]
    failures = sorted(
        (r for r in report.results if r.status in (Status.FAIL, Status.ERROR)),
        key=lambda r: (r.status is not Status.FAIL, -r.severity.rank, r.check_id),
    )
    if failures:
        out.append("Needs attention (worst first):")
        for result in failures:
            marker = "" if is_blocking(result, fail_on) else "  (below --fail-on)"
            out.append(
                f"  {_label(result, paint)} {result.severity.value.upper():8} "
                f"{result.check_id}  {result.title}{marker}"
            )
            if result.reason:
                out.append(f"      why undecided: {result.reason}")
            for line in result.evidence[:MAX_EVIDENCE_LINES]:
                out.append(f"      {line}")
            if len(result.evidence) > MAX_EVIDENCE_LINES:
                out.append(f"      ... {len(result.evidence) - MAX_EVIDENCE_LINES} more")
            if result.remediation:
                out.append(f"      fix: {result.remediation}")
        out.append("")
    out.append("All checks by area:")
    order = {area: index for index, area in enumerate(AREAS)}
    areas = sorted({r.area for r in report.results}, key=lambda a: order.get(a, len(order)))
    for area in areas:
        out.append(f"  {AREA_NAMES.get(area, area)}")
        for result in (r for r in report.results if r.area == area):
            note = f"  ({result.reason})" if result.status is Status.SKIP and result.reason else ""
            out.append(
                f"    {_label(result, paint)} {result.severity.value:8} {result.check_id:14} "
                f"{result.title}{note}"
            )
    out.append("")
    return out


def _label(result: Result, paint) -> str:
    return paint(result.status, f"{result.status.value.upper():5}")


def _painter(colour: bool):
    def paint(status: Status, text: str) -> str:
        return f"\x1b[{COLOURS[status]}m{text}\x1b[0m" if colour else text

    return paint

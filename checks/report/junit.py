"""JUnit XML: one testsuite per host, one testcase per check, for CI dashboards."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from checks.engine import HostReport
from checks.result import Severity, Status


def render(reports: Sequence[HostReport], fail_on: Severity, **_: object) -> str:
    suites = ET.Element("testsuites", name="lappguard audit")
    for report in reports:
        results = report.results
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=report.host,
            tests=str(len(results)),
            failures=str(sum(r.status is Status.FAIL for r in results)),
            errors=str(sum(r.status is Status.ERROR for r in results)),
            skipped=str(sum(r.status is Status.SKIP for r in results)),
            time=f"{report.duration_s:.3f}",
        )
        for result in results:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"{report.host}.{result.area}",
                name=f"{result.check_id} {result.title}",
                time=f"{result.duration_ms / 1000:.3f}",
            )
            body = "\n".join(
                [*result.evidence, *([f"fix: {result.remediation}"] if result.remediation else [])]
            )
            if result.status is Status.FAIL:
                node = ET.SubElement(
                    case,
                    "failure",
                    type=result.severity.value,
                    message=result.evidence[0] if result.evidence else result.title,
                )
                node.text = body
            elif result.status is Status.ERROR:
                node = ET.SubElement(case, "error", type="undecided", message=result.reason)
                node.text = body
            elif result.status is Status.SKIP:
                ET.SubElement(case, "skipped", message=result.reason)
    ET.indent(suites)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
    )

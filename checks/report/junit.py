"""JUnit XML: one testsuite per host, one testcase per check, for CI dashboards.

A CI job fails on what the exit code fails on: a finding or undecided check below
``--fail-on`` is a passed test case whose output says what was found, not a failure.
The suite's properties record what the audit ran with. Valid against the common
junit-10.xsd (Jenkins' xunit plugin), which tests/fixtures/schemas holds.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from checks.engine import HostReport
from checks.report.provenance import Provenance, iso8601
from checks.report.summary import is_blocking
from checks.result import Result, Severity, Status


def render(
    reports: Sequence[HostReport],
    fail_on: Severity,
    provenance: Provenance | None = None,
    **_: object,
) -> str:
    suites = ET.Element("testsuites", name="lappguard audit")
    totals = {"tests": 0, "failures": 0, "errors": 0}
    for report in reports:
        suite = _suite(report, fail_on, provenance.for_host(report.host) if provenance else None)
        suites.append(suite)
        for key in totals:
            totals[key] += int(suite.get(key, "0"))
    suites.attrib |= {key: str(value) for key, value in totals.items()}
    suites.set("time", f"{sum(r.duration_s for r in reports):.3f}")
    ET.indent(suites)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
    )


def _suite(report: HostReport, fail_on: Severity, provenance: Provenance | None) -> ET.Element:
    results = report.results
    blocking = [r for r in results if is_blocking(r, fail_on)]
    suite = ET.Element(
        "testsuite",
        name=report.host,
        tests=str(len(results)),
        failures=str(sum(r.status is Status.FAIL for r in blocking)),
        errors=str(sum(r.status is Status.ERROR for r in blocking)),
        skipped=str(sum(r.status is Status.SKIP for r in results)),
        time=f"{report.duration_s:.3f}",
        timestamp=iso8601(report.started),
        hostname=report.host,
    )
    properties = ET.SubElement(suite, "properties")
    for name, value in _properties(fail_on, provenance):
        ET.SubElement(properties, "property", name=name, value=value)
    for result in results:
        suite.append(_case(report.host, result, is_blocking(result, fail_on), fail_on))
    return suite


def _case(host: str, result: Result, blocking: bool, fail_on: Severity) -> ET.Element:
    case = ET.Element(
        "testcase",
        classname=f"{host}.{result.area}",
        name=f"{result.check_id} {result.title}",
        time=f"{result.duration_ms / 1000:.3f}",
    )
    fix = [f"fix: {result.remediation}"] if result.remediation else []
    body = "\n".join([*result.evidence, *fix])
    if result.status is Status.SKIP:
        ET.SubElement(case, "skipped", message=result.reason)
    elif result.status in (Status.FAIL, Status.ERROR) and not blocking:
        found = "found" if result.status is Status.FAIL else f"undecided: {result.reason}"
        note = f"{result.severity.value} finding below --fail-on {fail_on.value}, {found}"
        ET.SubElement(case, "system-out").text = "\n".join(filter(None, [note, body]))
    elif result.status is Status.FAIL:
        message = result.evidence[0] if result.evidence else result.title
        node = ET.SubElement(case, "failure", type=result.severity.value, message=message)
        node.text = body
    elif result.status is Status.ERROR:
        node = ET.SubElement(case, "error", type="undecided", message=result.reason)
        node.text = body
    return case


def _properties(fail_on: Severity, provenance: Provenance | None) -> list[tuple[str, str]]:
    found = [("fail_on", fail_on.value)]
    if provenance is None:
        return found
    found += [
        ("lappguard.version", provenance.tool_version),
        ("generated_at", provenance.generated_iso),
        ("config", provenance.config or ""),
        ("root", provenance.root or "/"),
    ]
    found += [(f"policy.{p.id}", f"{p.version} ({p.file})") for p in provenance.policies]
    found += [(f"var.{v.name}", v.text) for v in provenance.variables]
    return found

"""SARIF 2.1.0, so audit findings land in code-scanning dashboards next to other tools'."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from urllib.parse import quote

from checks.engine import HostReport
from checks.result import Result, Severity, Status

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
LEVELS = {
    Severity.LOW: "note",
    Severity.MEDIUM: "warning",
    Severity.HIGH: "error",
    Severity.CRITICAL: "error",
}
SECURITY_SEVERITY = {
    Severity.LOW: "3.0",
    Severity.MEDIUM: "5.5",
    Severity.HIGH: "8.0",
    Severity.CRITICAL: "9.5",
}
_FILE_LINE = re.compile(r"^(/[^\s:]+):(\d+)\b")


def render(reports: Sequence[HostReport], fail_on: Severity, **_: object) -> str:
    from agent import __version__

    rules: dict[str, dict] = {}
    rule_index: dict[str, int] = {}
    results: list[dict] = []
    notifications: list[dict] = []
    for report in reports:
        for result in report.results:
            if result.check_id not in rules:
                rule_index[result.check_id] = len(rules)
                rules[result.check_id] = _rule(result)
            if result.status is Status.FAIL:
                results.append(_result(report.host, result, rule_index[result.check_id]))
            elif result.status is Status.ERROR:
                notifications.append(
                    {
                        "level": "error",
                        "message": {"text": f"{report.host}: {result.check_id}: {result.reason}"},
                        "descriptor": {"id": result.check_id},
                    }
                )
    document = {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "lappguard",
                        "version": __version__,
                        "informationUri": "https://github.com/lappguard/lappguard",
                        "rules": list(rules.values()),
                    }
                },
                "invocations": [
                    {"executionSuccessful": True, "toolExecutionNotifications": notifications}
                ],
                "results": results,
            }
        ],
    }
    return json.dumps(document, indent=2) + "\n"


def _rule(result: Result) -> dict:
    return {
        "id": result.check_id,
        "name": result.check_id.replace("-", ""),
        "shortDescription": {"text": result.title},
        "fullDescription": {"text": result.rationale or result.title},
        "help": {"text": result.remediation or result.title},
        "defaultConfiguration": {"level": LEVELS[result.severity]},
        "properties": {
            "security-severity": SECURITY_SEVERITY[result.severity],
            "tags": ["security", result.area.lower(), *result.references],
        },
    }


def _result(host: str, result: Result, rule_index: int) -> dict:
    locations = []
    for line in result.evidence:
        match = _FILE_LINE.match(line)
        if match:
            locations.append(
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": f"file://{quote(match.group(1))}"},
                        "region": {"startLine": int(match.group(2))},
                    }
                }
            )
    if not locations:
        locations.append({"logicalLocations": [{"name": host, "kind": "module"}]})
    return {
        "ruleId": result.check_id,
        "ruleIndex": rule_index,
        "level": LEVELS[result.severity],
        "message": {"text": "; ".join([result.title, *result.evidence])[:2000]},
        "locations": locations[:10],
        "properties": {"host": host, "severity": result.severity.value},
    }

"""SARIF 2.1.0, so audit findings land in code-scanning dashboards next to other tools'.

Each failed check is a result whose locations are the ``file:line`` places its evidence
names, relative to the audited root (``AUDITED_ROOT``: ``/`` for a live host, the tree for
``--root``); an undecided check is a tool notification. The run records what the audit ran
with (policies, versions, variables, config) in its properties.

In a fleet audit (``fleet=True``) the same path exists on every host, so each host has its
own base (``AUDITED_ROOT@web1``, ``file://web1/``) and every result also names its host as
a logical location and in its properties: a dashboard can tell web1's finding from web2's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from checks.engine import HostReport
from checks.report.provenance import Provenance, iso8601, variables_dict
from checks.result import Result, Severity, Status

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
ROOT_ID = "AUDITED_ROOT"
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
MAX_LOCATIONS = 10
#: An absolute path and a line number anywhere in an evidence line: ``/etc/x.conf:12``.
_FILE_LINE = re.compile(r"(?<![\w./:])(/[\w.@+-][^\s:()\[\]'\"]*):(\d+)\b")
#: An evidence line about a whole file: ``/etc/pam.d/common-password: ...``.
_FILE = re.compile(r"^(/[\w.@+-][^\s:()\[\]'\"]*): ")


def render(
    reports: Sequence[HostReport],
    fail_on: Severity,
    provenance: Provenance | None = None,
    fleet: bool = False,
    **_: object,
) -> str:
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
                base = _host_base(report.host) if fleet else ROOT_ID
                results.append(_result(report.host, result, rule_index[result.check_id], base))
            elif result.status is Status.ERROR:
                notifications.append(
                    {
                        "level": "error",
                        "message": {"text": f"{report.host}: {result.check_id}: {result.reason}"},
                        "descriptor": {"id": result.check_id},
                    }
                )
    invocation: dict = {"executionSuccessful": True, "toolExecutionNotifications": notifications}
    if reports:
        start = min(report.started for report in reports)
        end = max(report.started + report.duration_s for report in reports)
        invocation |= {"startTimeUtc": iso8601(start), "endTimeUtc": iso8601(end)}
    run: dict = {
        "tool": {
            "driver": {
                "name": "lappguard",
                "version": __version__,
                "informationUri": "https://github.com/lappguard/lappguard",
                "rules": list(rules.values()),
            }
        },
        "originalUriBaseIds": (
            {_host_base(r.host): _host_root(r.host) for r in reports}
            if fleet
            else {ROOT_ID: {"uri": _root_uri(provenance)}}
        ),
        "invocations": [invocation],
        "results": results,
    }
    if provenance is not None:
        run["properties"] = {"lappguard": provenance.as_dict()}
        if provenance.hosts:  # a fleet's hosts' own variables (their inventory values)
            run["properties"]["lappguard"]["host_variables"] = {
                host: variables_dict(variables) for host, variables in provenance.hosts.items()
            }
    document = {"$schema": SCHEMA, "version": "2.1.0", "runs": [run]}
    return json.dumps(document, indent=2) + "\n"


def _root_uri(provenance: Provenance | None) -> str:
    """``file:///`` for a live host, the tree's directory for ``--root``; ends in a slash,
    as SARIF requires of a base URI."""
    root = provenance.root if provenance and provenance.root else "/"
    path = Path(root).as_posix().rstrip("/") + "/"
    return "file://" + quote(path)


def _host_base(host: str) -> str:
    return f"{ROOT_ID}@{host}"


def _host_root(host: str) -> dict:
    """``/`` on a host of the fleet, as a file URI naming that host."""
    return {
        "uri": f"file://{quote(host, safe='')}/",
        "description": {"text": f"/ on {host}"},
    }


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


def locations(evidence: Sequence[str], base: str = ROOT_ID) -> list[dict]:
    """A physical location (under the base URI ``base``) for each distinct ``/file:line``
    the evidence names, and for a file an evidence line is about as a whole
    (``/etc/x: ...``) when it names no line."""
    places: dict[tuple[str, int], None] = {}
    for line in evidence:
        found = [(m.group(1), int(m.group(2))) for m in _FILE_LINE.finditer(line)]
        whole = _FILE.match(line)
        if not found and whole:
            found = [(whole.group(1), 0)]
        places |= dict.fromkeys(found)
    return [_physical(path, number, base) for path, number in places][:MAX_LOCATIONS]


def _physical(path: str, number: int, base: str) -> dict:
    location: dict = {"artifactLocation": {"uri": quote(path.lstrip("/")), "uriBaseId": base}}
    if number > 0:
        location["region"] = {"startLine": number}
    return {"physicalLocation": location}


def _result(host: str, result: Result, rule_index: int, base: str) -> dict:
    host_location = [{"name": host, "kind": "module"}]
    places = locations(result.evidence, base)
    if not places:
        places = [{"logicalLocations": host_location}]
    elif base != ROOT_ID:  # a fleet: the file is on this host
        places = [{**place, "logicalLocations": host_location} for place in places]
    properties = {"host": host, "severity": result.severity.value}
    if result.remediation:
        properties["remediation"] = result.remediation
    return {
        "ruleId": result.check_id,
        "ruleIndex": rule_index,
        "level": LEVELS[result.severity],
        "message": {"text": "; ".join([result.title, *result.evidence])[:2000]},
        "locations": places,
        "properties": properties,
    }

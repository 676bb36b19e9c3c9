"""The JSON report: a stable contract for scripts (fields are added, never renamed).

Beside the results it says what the audit ran with (``tool``, ``generated_at``, ``config``,
``root``, ``policies`` with their versions, ``variables`` with where each value came from);
in a fleet audit each host also carries its own ``variables`` (its inventory values).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from checks.engine import HostReport
from checks.report.provenance import Provenance, iso8601, variables_dict
from checks.report.summary import summarise
from checks.result import Result, Severity


def result_dict(result: Result) -> dict:
    return {
        "id": result.check_id,
        "title": result.title,
        "area": result.area,
        "severity": result.severity.value,
        "status": result.status.value,
        "evidence": list(result.evidence),
        "reason": result.reason,
        "remediation": result.remediation,
        "references": list(result.references),
        "duration_ms": round(result.duration_ms, 2),
    }


def render(
    reports: Sequence[HostReport],
    fail_on: Severity,
    provenance: Provenance | None = None,
    **_: object,
) -> str:
    document = {
        "hosts": [
            {
                "host": report.host,
                "started": report.started,
                "started_at": iso8601(report.started),
                "duration_s": round(report.duration_s, 4),
                "summary": summarise([report], fail_on).as_dict(),
                "results": [result_dict(r) for r in report.results],
                # a fleet's host: the variables its audit ran with (its inventory values)
                **(
                    {"variables": variables_dict(provenance.for_host(report.host).variables)}
                    if provenance and provenance.hosts
                    else {}
                ),
            }
            for report in reports
        ],
        "summary": summarise(reports, fail_on).as_dict(),
        **(provenance.as_dict() if provenance else {}),
    }
    return json.dumps(document, indent=2) + "\n"

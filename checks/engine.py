"""Run a policy's checks against one host: applicability, isolation of failures, timing.

Checks run concurrently (live probes and commands wait on I/O) over one CachedHost, so each
file is read and each command run once per audit. A check that raises becomes an ``error``
result with the reason: one broken check never stops an audit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from checks.conditions import UndecidableCondition
from checks.hosts import CachedHost, Host, HostError, PlannedCommand
from checks.policy import Check, Policy
from checks.regexsafety import CannotEvaluate
from checks.result import Result, Status, Verdict, errored, skipped
from checks.types.base import CheckContext

DEFAULT_WORKERS = 8


@dataclass(frozen=True)
class HostReport:
    host: str
    results: tuple[Result, ...]
    started: float
    duration_s: float


def audit_host(
    policies: Sequence[Policy],
    host: Host,
    *,
    only: Callable[[Check], bool] | None = None,
    workers: int = DEFAULT_WORKERS,
    clock: Callable[[], float] = time.time,
) -> HostReport:
    """Every selected check of every policy, results in policy order."""
    cached = host if isinstance(host, CachedHost) else CachedHost(host)
    jobs = [
        (check, CheckContext(cached, dict(policy.values), clock))
        for policy in policies
        for check in policy.checks
        if only is None or only(check)
    ]
    started, begin = clock(), time.perf_counter()
    if cached.batches_commands:
        cached.prefetch(planned_commands(jobs))
    if workers <= 1:  # a fleet's host: no pool to feed (its futures cost more than a check)
        results = tuple(run_check(*job) for job in jobs)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = tuple(pool.map(lambda job: run_check(*job), jobs))
    return HostReport(cached.name, results, started, time.perf_counter() - begin)


def planned_commands(jobs: Sequence[tuple[Check, CheckContext]]) -> list[PlannedCommand]:
    """The commands the applicable checks say they will run, once each, in check order."""
    planned: list[PlannedCommand] = []
    for check, ctx in jobs:
        try:
            if any(c.unmet_reason(ctx.host, ctx.variables) for c in check.conditions):
                continue
            planned.extend(check.implementation.commands(ctx))
        except Exception:  # a hint only: the check reports what is wrong when it runs
            continue
    return list(dict.fromkeys(planned))


def run_check(check: Check, ctx: CheckContext) -> Result:
    begin = time.perf_counter()
    verdict = _verdict(check, ctx)
    return Result(
        check_id=check.id,
        title=check.title,
        area=check.area,
        severity=check.severity,
        status=verdict.status,
        evidence=verdict.evidence,
        reason=verdict.reason,
        remediation=_remediation(check, verdict),
        rationale=check.rationale,
        references=check.references,
        duration_ms=(time.perf_counter() - begin) * 1000,
        source=f"{check.file}:{check.line}",
    )


def _remediation(check: Check, verdict: Verdict) -> str:
    """The fix a failed or undecided check shows: the check's own, when its evidence
    pointed at the place to change, else the policy's."""
    if verdict.status not in (Status.FAIL, Status.ERROR):
        return ""
    return verdict.remediation or check.remediation


def _verdict(check: Check, ctx: CheckContext) -> Verdict:
    try:
        for condition in check.conditions:
            reason = condition.unmet_reason(ctx.host, ctx.variables)
            if reason:
                return skipped(reason)
    except (UndecidableCondition, HostError) as exc:
        return errored(f"cannot tell whether the check applies: {exc}")
    except Exception as exc:  # as below: one broken condition must not cost the audit
        return errored(f"condition crashed: {type(exc).__name__}: {exc}")
    if check.implementation.needs_live_host and not ctx.host.is_live:
        return skipped("needs a running system (not available when auditing a directory tree)")
    try:
        return check.implementation.run(ctx)
    except (HostError, CannotEvaluate) as exc:
        return errored(str(exc))
    except Exception as exc:  # a bug in one check must not cost the rest of the audit
        return errored(f"check crashed: {type(exc).__name__}: {exc}")

"""The daemon's audits: the policies at start, every ``audit.interval``, and on reload.

The last report is what the check metrics show. Policies are loaded on every run, so an
edited policy file counts from the next run; a policy that no longer loads is logged and
the last good report stays (its age shows in ``lappguard_audit_last_run_timestamp_seconds``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

from agent.config import AuditConfig
from checks.engine import HostReport, audit_host
from checks.hosts import LocalHost
from checks.policy import Policy, load_policies
from checks.yamlsource import InputError
from policies import policy_path

log = logging.getLogger("lappguard")


class AuditWorker(threading.Thread):
    """Runs audits in the background; ``report`` is the latest (None before the first)."""

    def __init__(self, config: AuditConfig, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(name="audit", daemon=True)
        self.config = config
        self.report: HostReport | None = None
        self.policies: list[Policy] = []
        self.runs: Counter[str] = Counter()  # trigger -> audits run
        self._clock = clock
        self._trigger: str | None = "start"
        self._wake = threading.Event()
        self._stop_event = threading.Event()
        self.heartbeat = time.monotonic()

    def run(self) -> None:
        next_run = time.monotonic()
        while not self._stop_event.is_set():
            timeout = max(0.0, next_run - time.monotonic())
            self._wake.wait(timeout)
            self._wake.clear()
            if self._stop_event.is_set():
                break
            trigger = self._trigger or "schedule"
            if self._trigger is None and time.monotonic() < next_run:
                continue
            self._trigger = None
            self.audit(trigger)
            next_run = time.monotonic() + self.config.interval
            self.heartbeat = time.monotonic()

    def audit(self, trigger: str) -> HostReport | None:
        """One audit now; the report (kept for metrics), or None when policies fail."""
        try:
            policies = load_policies([policy_path(p) for p in self.config.policies],
                                     self.config.vars)  # fmt: skip
        except InputError as exc:
            log.error("audit skipped, a policy does not load: %s", exc)
            return None
        report = audit_host(policies, LocalHost(), clock=self._clock)
        self.policies, self.report = policies, report
        self.runs[trigger] += 1
        failing = sum(1 for r in report.results if r.status.value in ("fail", "error"))
        log.info("audit (%s): %d checks, %d failing or undecided, %.2f s",
                 trigger, len(report.results), failing, report.duration_s)  # fmt: skip
        return report

    def reconfigure(self, config: AuditConfig) -> None:
        """Take a reloaded config and audit with it now."""
        self.config = config
        self._trigger = "reload"
        self._wake.set()

    def stop(self) -> None:
        self._stop_event.set()
        self._wake.set()

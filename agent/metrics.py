"""What the daemon tells Prometheus, computed at scrape time on our own registry.

State (active bans, check status, audit age, lag) is read from its source of truth when
Prometheus asks, so it can never drift from what ``lappguard bans list`` shows; events
(lines, detections, bans, firewall errors) are monotonic counters kept by the parts that
see them. Names follow Prometheus conventions: the ``lappguard_`` prefix, ``_total`` on
counters, seconds and bytes as units. The alert rules in ``contrib/prometheus`` and the
Grafana dashboard use exactly these names (a test keeps them in step).
"""

from __future__ import annotations

import platform
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from agent import __version__
from agent.bans import store
from checks.result import Status

if TYPE_CHECKING:
    from agent.daemon import Daemon

STATUSES = tuple(status.value for status in Status)
#: BanManager counters -> (metric, label) for the ban and firewall counters.
_UNBAN_REASONS = {"expired": "expired", "unbanned": "manual", "superseded": "superseded"}


def registry_for(daemon: Daemon) -> CollectorRegistry:
    """A registry of our own (never prometheus_client's global one) for this daemon."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DaemonCollector(daemon))
    registry.register(ProcessCollector(registry=None))
    return registry


class DaemonCollector(Collector):
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def collect(self) -> Iterator[Metric]:
        yield from self._build()
        yield from self._audit()
        yield from self._bans()
        yield from self._sources()
        yield from self._firewall()

    def _build(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("lappguard_build_info", "lappguard version (value is 1)",
                                 labels=["version", "python"])  # fmt: skip
        info.add_metric([__version__, platform.python_version()], 1)
        yield info

    def _audit(self) -> Iterator[Metric]:
        worker = self.daemon.audit_worker
        report = worker.report if worker else None
        status = GaugeMetricFamily(
            "lappguard_check_status",
            "1 for the status of each check in the last audit, 0 for the other statuses",
            labels=["policy", "check", "area", "severity", "status"],
        )
        runs = CounterMetricFamily("lappguard_audit_runs", "Audits run, by what started them",
                                   labels=["trigger"])  # fmt: skip
        for trigger, count in sorted((worker.runs if worker else Counter()).items()):
            runs.add_metric([trigger], count)
        interval = GaugeMetricFamily("lappguard_audit_interval_seconds",
                                     "Configured time between scheduled audits")  # fmt: skip
        interval.add_metric([], self.daemon.config.audit.interval)
        yield runs
        yield interval
        if report is None or worker is None:
            yield status
            return
        policy_of = {check.id: policy.id for policy in worker.policies for check in policy.checks}
        for result in report.results:
            labels = [policy_of.get(result.check_id, ""), result.check_id, result.area,
                      result.severity.value]  # fmt: skip
            for value in STATUSES:
                status.add_metric([*labels, value], 1.0 if result.status.value == value else 0.0)
        yield status
        last = GaugeMetricFamily("lappguard_audit_last_run_timestamp_seconds",
                                 "When the last audit started (UTC epoch seconds)")  # fmt: skip
        last.add_metric([], report.started)
        yield last
        duration = GaugeMetricFamily("lappguard_audit_duration_seconds",
                                     "How long the last audit took")  # fmt: skip
        duration.add_metric([], report.duration_s)
        yield duration

    def _bans(self) -> Iterator[Metric]:
        daemon = self.daemon
        with daemon.state.reading() as conn:
            active = store.active(conn)
            pending = store.pending_count(conn)
            trail_records = conn.execute("SELECT count(*) FROM trail").fetchone()[0]
        by_jail: Counter[tuple[str, str]] = Counter(
            (ban.jail, f"ipv{ban.network.version}") for ban in active
        )
        gauge = GaugeMetricFamily("lappguard_bans_active", "Bans in force, by jail and family",
                                  labels=["jail", "family"])  # fmt: skip
        for (jail, family), count in sorted(by_jail.items()):
            gauge.add_metric([jail, family], count)
        yield gauge
        yield _gauge("lappguard_bans_pending", "Bans stored but not yet confirmed by the"
                     " firewall", pending)  # fmt: skip
        yield _gauge("lappguard_trail_records", "Records in the audit trail (a drop means"
                     " records were removed)", trail_records)  # fmt: skip
        counters = daemon.manager.counters
        bans = CounterMetricFamily("lappguard_bans", "Bans made, by jail", labels=["jail"])
        for key, count in sorted(counters.items()):
            if key.startswith("banned:"):
                bans.add_metric([key.split(":", 1)[1]], count)
        yield bans
        unbans = CounterMetricFamily("lappguard_unbans", "Bans ended, by why",
                                     labels=["reason"])  # fmt: skip
        for key, reason in _UNBAN_REASONS.items():
            unbans.add_metric([reason], counters[key])
        yield unbans
        yield CounterMetricFamily(
            "lappguard_bans_refused",
            "Bans refused: loopback, allowlist, this host or a login session",
            value=counters["refused"],
        )
        pipeline = daemon.pipeline
        jails = pipeline.jails if pipeline else None
        yield _gauge("lappguard_jail_windows", "Addresses being counted in jail windows",
                     jails.tracked if jails else 0)  # fmt: skip
        yield CounterMetricFamily(
            "lappguard_jail_windows_evicted",
            "Jail windows dropped to bound memory",
            value=jails.evicted if jails else 0,
        )
        events = CounterMetricFamily("lappguard_events", "Detections, by rule and jail",
                                     labels=["rule", "jail"])  # fmt: skip
        for (rule, jail), count in sorted((pipeline.events_by_rule if pipeline else {}).items()):
            events.add_metric([rule, jail], count)
        yield events
        yield CounterMetricFamily(
            "lappguard_decisions_dropped",
            "Ban decisions lost to full queues (none: decisions are stored)",
            value=0,
        )

    def _sources(self) -> Iterator[Metric]:
        reading = self.daemon.reading
        lines = CounterMetricFamily("lappguard_source_lines", "Log lines read",
                                    labels=["source", "kind"])  # fmt: skip
        skipped = CounterMetricFamily("lappguard_source_lines_skipped", "Lines read but giving"
                                      " no event: unreadable, unparsable or ambiguous",
                                      labels=["source", "reason"])  # fmt: skip
        lag = GaugeMetricFamily("lappguard_source_lag_bytes", "Bytes written to a log but not"
                                " yet read", labels=["source"])  # fmt: skip
        for worker in reading.workers if reading else ():
            name = worker.source.name
            lines.add_metric([name, worker.kind], worker.counters.lines)
            for reason, count in sorted(worker.counters.skipped.items()):
                skipped.add_metric([name, reason], count)
            behind = getattr(worker.source, "lag_bytes", None)
            if behind is not None:
                lag.add_metric([name], behind())
        yield lines
        yield skipped
        yield lag

    def _firewall(self) -> Iterator[Metric]:
        manager = self.daemon.manager
        backend = manager.firewall.name
        counters = manager.counters
        with self.daemon.state.reading() as conn:
            in_debt = store.debt(conn) is not None
        yield _gauge("lappguard_firewall_in_debt", "1 while a firewall failure is not yet"
                     " repaired", int(in_debt), backend)  # fmt: skip
        errors = CounterMetricFamily("lappguard_firewall_errors", "Firewall changes that"
                                     " failed", labels=["backend"])  # fmt: skip
        errors.add_metric([backend], counters["firewall_errors"])
        yield errors
        syncs = CounterMetricFamily("lappguard_firewall_syncs", "Whole re-syncs of the"
                                    " firewall from the store", labels=["backend"])  # fmt: skip
        syncs.add_metric([backend], counters["syncs"])
        yield syncs
        restores = CounterMetricFamily("lappguard_firewall_restores", "Times the firewall"
                                       " had lost our bans and they were re-added",
                                       labels=["backend"])  # fmt: skip
        restores.add_metric([backend], counters["restores"])
        yield restores


def _gauge(name: str, documentation: str, value: float, backend: str | None = None) -> Metric:
    if backend is None:
        return GaugeMetricFamily(name, documentation, value=value)
    gauge = GaugeMetricFamily(name, documentation, labels=["backend"])
    gauge.add_metric([backend], value)
    return gauge

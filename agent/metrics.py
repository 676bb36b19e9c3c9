"""What the daemon tells Prometheus, computed at scrape time on our own registry.

State (active bans, check status, audit age, lag) is read from its source of truth when
Prometheus asks, so it can never drift from what ``lappguard bans list`` shows; events
(lines, detections, bans, firewall errors) are monotonic counters kept by the parts that
see them. Names, labels and help come from ``agent.metric_names``, the catalogue the alert
rules and the dashboard are checked against. Counters whose labels are known at start
(every rule and jail, every backend) are exported at 0 from the start, so ``increase()``
sees the first event too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from agent import __version__
from agent.bans import store
from agent.metric_names import BY_NAME
from checks.result import Status

if TYPE_CHECKING:
    from agent.daemon import Daemon

STATUSES = tuple(status.value for status in Status)
#: BanManager counter -> the ``reason`` label of lappguard_unbans_total.
UNBAN_REASONS = {"expired": "expired", "unbanned": "manual", "superseded": "superseded"}
SYNC_REASONS = ("start", "manual", "debt", "loss", "supersede", "reassert")
AUDIT_TRIGGERS = ("start", "schedule", "change", "reload")


def registry_for(daemon: Daemon) -> CollectorRegistry:
    """A registry of our own (never prometheus_client's global one) for this daemon."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DaemonCollector(daemon))
    registry.register(ProcessCollector(registry=None))
    return registry


def family(name: str, samples: Iterable[tuple[Iterable[str], float]] = ()) -> Metric:
    """The metric ``name`` of the catalogue with these (label values, value) samples."""
    meta = BY_NAME[name]
    kind = CounterMetricFamily if meta.type == "counter" else GaugeMetricFamily
    metric = kind(name.removesuffix("_total"), meta.help, labels=meta.labels)
    for labels, value in samples:
        metric.add_metric(list(labels), value)
    return metric


def single(name: str, value: float) -> Metric:
    return family(name, [((), value)])


class DaemonCollector(Collector):
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def collect(self) -> Iterator[Metric]:
        yield family("lappguard_build_info", [((__version__,), 1)])
        yield from self._audit()
        yield from self._bans()
        yield from self._detection()
        yield from self._sources()
        yield from self._firewall()

    def _audit(self) -> Iterator[Metric]:
        worker = self.daemon.audit_worker
        runs = worker.runs if worker else Counter()
        yield family("lappguard_audit_runs_total", [((t,), runs[t]) for t in AUDIT_TRIGGERS])
        yield single("lappguard_audit_interval_seconds", self.daemon.config.audit.interval)
        report = worker.report if worker else None
        samples = []
        if report is not None and worker is not None:
            policy_of = {c.id: p.id for p in worker.policies for c in p.checks}
            for result in report.results:
                labels = (policy_of.get(result.check_id, ""), result.check_id, result.area,
                          result.severity.value)  # fmt: skip
                samples += [((*labels, value), float(result.status.value == value))
                            for value in STATUSES]  # fmt: skip
            yield single("lappguard_audit_last_run_timestamp_seconds", report.started)
            yield single("lappguard_audit_duration_seconds", report.duration_s)
        yield family("lappguard_check_status", samples)

    def _bans(self) -> Iterator[Metric]:
        daemon = self.daemon
        with daemon.state.reading() as conn:
            active = store.active(conn)
            pending = store.pending_count(conn)
            records = conn.execute("SELECT count(*) FROM trail").fetchone()[0]
        by_jail = Counter((ban.jail, f"ipv{ban.network.version}") for ban in active)
        yield family("lappguard_bans_active", sorted(by_jail.items()))
        yield single("lappguard_bans_pending", pending)
        yield single("lappguard_trail_records", records)
        counters = daemon.manager.counters
        jails = sorted({*daemon.manager.jails, "manual"})
        yield family("lappguard_bans_total", [((j,), counters[f"banned:{j}"]) for j in jails])
        yield family(
            "lappguard_unbans_total",
            [((label,), counters[key]) for key, label in UNBAN_REASONS.items()],
        )
        yield single("lappguard_bans_refused_total", counters["refused"])

    def _detection(self) -> Iterator[Metric]:
        pipeline = self.daemon.pipeline
        jails = pipeline.jails if pipeline else None
        yield single("lappguard_jail_windows", jails.tracked if jails else 0)
        yield single("lappguard_jail_windows_evicted_total", jails.evicted if jails else 0)
        events = sorted(pipeline.events_by_rule.items()) if pipeline else []
        yield family("lappguard_events_total", events)

    def _sources(self) -> Iterator[Metric]:
        reading = self.daemon.reading
        workers = reading.workers if reading else []
        yield family(
            "lappguard_source_lines_total",
            [((w.source.name, w.kind), w.counters.lines) for w in workers],
        )
        yield family("lappguard_source_lines_skipped_total",
                     [((w.source.name, reason), count) for w in workers
                      for reason, count in sorted(w.counters.skipped.items())])  # fmt: skip
        yield family("lappguard_source_lag_bytes",
                     [((w.source.name,), lag) for w in workers
                      if (lag := w.source.lag_bytes()) is not None])  # fmt: skip

    def _firewall(self) -> Iterator[Metric]:
        manager = self.daemon.manager
        backend = manager.firewall.name
        counters = manager.counters
        with self.daemon.state.reading() as conn:
            in_debt = store.debt(conn) is not None
        yield family("lappguard_firewall_in_debt", [((backend,), int(in_debt))])
        yield family("lappguard_firewall_errors_total",
                     [((backend,), counters["firewall_errors"])])  # fmt: skip
        yield family(
            "lappguard_firewall_syncs_total",
            [((backend, r), counters[f"syncs:{r}"]) for r in SYNC_REASONS],
        )
        yield family("lappguard_firewall_restores_total", [((backend,), counters["restores"])])

"""Every metric the daemon exports: name, type, labels and help, in one list.

Why a list of its own: the alert rules and the Grafana dashboard in ``contrib/`` name these
metrics and their labels, and a test (tests/test_prometheus_rules.py) checks that every name
and label they use is here; the collector (``agent/metrics.py``) takes names, labels and
help from here, so a rename in one place shows up in the others' tests. Names follow
Prometheus conventions: the ``lappguard_`` prefix, ``_total`` on counters (as exposed; a
prometheus_client counter family is named without it), seconds and bytes as base units.

Counters whose label values are known at start (rules and their jails, backends, triggers)
are best exported at 0 from the start: ``increase()`` cannot see the first event of a
series that appears with it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricName:
    name: str  # as exposed: counters end in _total
    type: str  # "gauge" or "counter"
    labels: tuple[str, ...]
    help: str


def _gauge(name: str, labels: tuple[str, ...], help: str) -> MetricName:
    return MetricName(name, "gauge", labels, help)


def _counter(name: str, labels: tuple[str, ...], help: str) -> MetricName:
    return MetricName(name, "counter", labels, help)


# fmt: off
CATALOGUE: tuple[MetricName, ...] = (
    # -- state, computed at scrape time
    _gauge("lappguard_build_info", ("version",), "The running lappguard version; always 1"),
    _gauge("lappguard_check_status", ("policy", "check", "area", "severity", "status"),
           "1 for each check's status in the last audit, 0 for its other three statuses"
           " (status: pass, fail, error, skip; severity: low, medium, high, critical)"),
    _gauge("lappguard_audit_last_run_timestamp_seconds", (),
           "When the last audit started (UTC epoch seconds); absent before the first"),
    _gauge("lappguard_audit_duration_seconds", (), "How long the last audit took"),
    _gauge("lappguard_audit_interval_seconds", (), "Configured time between scheduled audits"),
    _gauge("lappguard_bans_active", ("jail", "family"),
           "Bans in force, by jail and address family (ipv4, ipv6)"),
    _gauge("lappguard_bans_pending", (), "Bans stored but not yet confirmed by the firewall"),
    _gauge("lappguard_firewall_in_debt", ("backend",),
           "1 while a firewall failure is not yet repaired"),
    _gauge("lappguard_trail_records", (), "Records in the ban audit trail"),
    _gauge("lappguard_jail_windows", (), "Addresses being counted in jail windows"),
    _gauge("lappguard_source_lag_bytes", ("source",), "Bytes written to a log but not yet read"),
    # -- counters
    _counter("lappguard_source_lines_total", ("source", "kind"), "Log lines read"),
    _counter("lappguard_source_lines_skipped_total", ("source", "reason"),
             "Lines read but giving no event: unreadable, unparsable or ambiguous, or"
             " (reason own_probes) a trace of lappguard's own audit probes from this host"),
    _counter("lappguard_events_total", ("rule", "jail"),
             "Detections, by rule and the jail counting it (none when no jail does)"),
    _counter("lappguard_bans_total", ("jail",), "Bans made, by jail"),
    _counter("lappguard_unbans_total", ("reason",),
             "Bans ended, by why: expired, manual, superseded"),
    _counter("lappguard_bans_refused_total", (),
             "Bans refused: loopback, allowlist, this host or a login session"),
    _counter("lappguard_firewall_errors_total", ("backend",), "Firewall changes that failed"),
    _counter("lappguard_firewall_syncs_total", ("backend", "reason"),
             "Whole re-syncs of the firewall from the store, by why: start, manual, debt (after a"
             " failure), loss (our bans were flushed), supersede (a wider ban replaced narrower),"
             " reassert (every 6 h, for timeouts longer than the firewall holds)"),
    _counter("lappguard_firewall_restores_total", ("backend",),
             "Times the firewall had lost our bans and they were put back"),
    _counter("lappguard_jail_windows_evicted_total", (), "Jail windows dropped to bound memory"),
    _counter("lappguard_audit_runs_total", ("trigger",),
             "Audits run, by what started them: start, schedule, change, reload"),
    # -- prometheus_client's ProcessCollector
    _gauge("process_start_time_seconds", (), "Start time of the process (UTC epoch seconds)"),
    _gauge("process_resident_memory_bytes", (), "Resident memory size"),
    _gauge("process_virtual_memory_bytes", (), "Virtual memory size"),
    _counter("process_cpu_seconds_total", (), "User and system CPU time spent"),
    _gauge("process_open_fds", (), "Open file descriptors"),
    _gauge("process_max_fds", (), "Maximum number of open file descriptors"),
)
# fmt: on

BY_NAME: dict[str, MetricName] = {metric.name: metric for metric in CATALOGUE}

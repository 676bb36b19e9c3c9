"""Audit many hosts over SSH at once, each within its own time limit.

Every host gets a ``HostReport``: its audit, or, when it could not be audited (unreachable,
refused host key, failed login, sudo refused, out of time), one ``error`` result that says
why (check ``LAPP-HOST-001``). Such a host never stops the others, and reports and exit
codes treat it as what it is: a host not shown to be safe.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from checks.collector import fewer_collections
from checks.engine import HostReport, audit_host
from checks.hosts import HostError
from checks.inventory import InventoryHost
from checks.policy import Check, Policy, load_policies
from checks.result import Result, Severity, Status
from checks.ssh_connect import SSHOptions
from checks.ssh_host import SSHHost
from checks.yamlsource import InputError, Problem

DEFAULT_FLEET_WORKERS = 16
#: Checks run at once on each host of a fleet. Its files come from a snapshot and its
#: commands from one batch, so a check seldom waits, and while one does the other hosts
#: keep the CPUs busy: one at a time, without a pool, saved a sixth of the auditing
#: machine's CPU per host against 2 (bench/fleet.py, 2 cores); 8 had cost a third more.
DEFAULT_FLEET_CHECK_WORKERS = 1
#: SFTP sessions per host of a fleet: the snapshot answers nearly every file question
#: (bench/fleet.py: about 25 left per host), and each further session costs the host an
#: sftp-server process and the connection a channel.
DEFAULT_FLEET_SFTP_SESSIONS = 1
DEFAULT_HOST_TIMEOUT = 300.0
#: The check every host that could not be audited fails with.
HOST_CHECK_ID = "LAPP-HOST-001"
_HOST_REMEDIATION = (
    "Make sure the host is up and its sshd reachable from here, that it accepts this "
    "machine's key for the user, and that its host key is in known_hosts (the reason says "
    "which); then audit it again."
)


@dataclass(frozen=True)
class FleetOptions:
    """How a fleet is audited."""

    ssh: SSHOptions = field(default_factory=SSHOptions)
    #: Hosts audited at the same time.
    workers: int = DEFAULT_FLEET_WORKERS
    #: A host not done this long after its audit started is reported as out of time.
    host_timeout: float = DEFAULT_HOST_TIMEOUT
    #: Read root-only files and run commands through ``sudo -n`` on every host.
    sudo: bool = False
    #: Checks run at the same time on one host.
    check_workers: int = DEFAULT_FLEET_CHECK_WORKERS
    #: SFTP sessions open at once on one host.
    sftp_sessions: int = DEFAULT_FLEET_SFTP_SESSIONS


def policies_per_host(
    hosts: Sequence[InventoryHost],
    paths: Sequence[Path | str],
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, list[Policy]]:
    """Each host's policies with its inventory variables; ``overrides`` (``--var``) win.

    Only variables the policies declare are taken from the inventory (an Ansible inventory
    holds many others). Hosts with the same variables share loaded policies. Raises
    InputError, naming the host, for a value a variable does not accept.
    """
    overrides = dict(overrides or {})
    declared = {name for policy in load_policies(paths, overrides) for name in policy.variables}
    loaded: dict[str, list[Policy]] = {}
    result = {}
    for host in hosts:
        values = {k: v for k, v in host.variables.items() if k in declared}
        values.update(overrides)
        key = repr(sorted(values.items()))
        if key not in loaded:
            try:
                loaded[key] = load_policies(paths, values)
            except InputError as exc:  # name the host whose inventory entry holds the value
                file, _, line = host.source.rpartition(":")
                where = (file, int(line)) if line.isdigit() else (host.name, 0)
                raise InputError(
                    [Problem(*where, f"{host.name}: {p.field}", p.message) for p in exc.problems]
                ) from exc
        result[host.name] = loaded[key]
    return result


def audit_fleet(
    hosts: Sequence[InventoryHost],
    policies: Mapping[str, Sequence[Policy]],
    options: FleetOptions | None = None,
    *,
    only: Callable[[Check], bool] | None = None,
    on_report: Callable[[HostReport], None] | None = None,
    clock: Callable[[], float] = time.time,
) -> list[HostReport]:
    """Audit every host (``policies`` by host name), reports in the order of ``hosts``.

    ``on_report`` is called with each report as its host finishes (progress for a person).
    Returns once every host is done or out of time; a host's work still running past its
    time is cut off (its connection closed) and not waited for.
    """
    options = options or FleetOptions()
    reports: dict[str, HostReport] = {}
    jobs: dict[Future, _Job] = {}
    pool = ThreadPoolExecutor(max(1, options.workers), thread_name_prefix="lappguard-fleet")
    with fewer_collections():
        try:
            for host in hosts:
                job = _Job(host, policies[host.name], options, only, clock)
                jobs[pool.submit(job.run)] = job
            pending = set(jobs)
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                for future in done:
                    _finish(reports, jobs[future], future.result(), on_report)
                for future in list(pending):
                    job = jobs[future]
                    if job.overdue():
                        job.abort()
                        pending.discard(future)
                        _finish(reports, job, job.out_of_time(), on_report)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
    return [reports[host.name] for host in hosts]


def not_audited(host: str, reason: str, started: float, duration: float) -> HostReport:
    """The report of a host that could not be audited: one error saying why."""
    result = Result(
        check_id=HOST_CHECK_ID,
        title="The host can be audited over SSH",
        area="HOST",
        severity=Severity.CRITICAL,
        status=Status.ERROR,
        reason=reason,
        remediation=_HOST_REMEDIATION,
        rationale="A host that could not be looked at has not been shown to be safe.",
    )
    return HostReport(host, (result,), started, duration)


def _finish(
    reports: dict[str, HostReport],
    job: _Job,
    report: HostReport,
    on_report: Callable[[HostReport], None] | None,
) -> None:
    if job.host.name in reports:
        return
    reports[job.host.name] = report
    if on_report is not None:
        on_report(report)


class _Job:
    """One host's audit: connect, audit, close; abortable from the supervising thread."""

    def __init__(
        self,
        host: InventoryHost,
        policies: Sequence[Policy],
        options: FleetOptions,
        only: Callable[[Check], bool] | None,
        clock: Callable[[], float],
    ):
        self.host = host
        self.policies = policies
        self.options = options
        self.only = only
        self.clock = clock
        self.started: float | None = None  # monotonic, once a worker took it
        self.wall_start = 0.0
        self._ssh: SSHHost | None = None
        self._lock = threading.Lock()
        self._aborted = False

    def run(self) -> HostReport:
        self.wall_start, self.started = self.clock(), time.monotonic()
        try:
            report, dropped = self._audit(self.only)
            if dropped:
                # the connection dropped under the audit: it is done again on a new one.
                # Not only its errors: a check may have taken the lost connection for a
                # missing command and answered from the files instead (apache2ctl -M)
                report, _ = self._audit(self.only)
            return report
        except HostError as exc:
            return not_audited(self.host.name, str(exc), self.wall_start, self._elapsed())
        except Exception as exc:  # a bug must cost this host, not the fleet
            reason = f"connection crashed: {type(exc).__name__}: {exc}"
            return not_audited(self.host.name, reason, self.wall_start, self._elapsed())

    def _audit(self, only: Callable[[Check], bool] | None) -> tuple[HostReport, bool]:
        """The host's report over a new connection, and whether that connection dropped
        before the audit was done (not by an abort)."""
        ssh = SSHHost.open(
            self.host.address,
            self.options.ssh,
            name=self.host.name,
            user=self.host.user,
            port=self.host.port,
            sudo=self.options.sudo,
            sftp_sessions=self.options.sftp_sessions,
        )
        with self._lock:
            self._ssh = ssh
            if self._aborted:
                ssh.close()
        try:
            ssh.take_snapshot()  # the audit's files in two commands, where the host can
            report = audit_host(
                self.policies,
                ssh,
                only=only,
                workers=self.options.check_workers,
                clock=self.clock,
            )
            with self._lock:
                dropped = not self._aborted and not ssh.connection.is_open
            return report, dropped
        finally:
            ssh.close()

    def overdue(self) -> bool:
        return self.started is not None and self._elapsed() > self.options.host_timeout

    def abort(self) -> None:
        """Close the connection: every operation under way on it fails at once."""
        with self._lock:
            self._aborted = True
            if self._ssh is not None:
                self._ssh.close()

    def out_of_time(self) -> HostReport:
        reason = f"{self.host.name}: not done within {self.options.host_timeout:g}s"
        return not_audited(self.host.name, reason, self.wall_start, self._elapsed())

    def _elapsed(self) -> float:
        return time.monotonic() - self.started if self.started is not None else 0.0

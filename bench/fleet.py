"""Wall time of a fleet audit over SSH: namespace hosts audited one at a time and in parallel.

Starts N hosts (default 20): network namespaces on one bridge, each a real sshd over its
own copy of the hardened test tree (tests/remote_hosts.py), then audits them all with the
baseline policy over SSH with 1 worker and with the default number, and prints both wall
times, the speed-up, the mean time per host, the round trips per host (SFTP requests and
exec channels, counted by wrapping the two methods that send them; the exec channels also
alone) and the CPU per host,
here and on the hosts (their sshd, sftp-server and commands). Then audits
--goal-hosts (default 50) with the default workers and says whether the goal (under
--goal-seconds, default 10) is met. Needs root. The hosts run on this machine: their sshd,
sftp-server and commands share its CPUs with the auditor.

    python bench/fleet.py [--hosts 20] [--goal-hosts 50] [--goal-seconds 10]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import paramiko

# this checkout's code and test hosts, installed or not
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from namespaces import entered
from remote_hosts import Lan, lan
from treeutil import hardened_root

from checks.fleet import (
    DEFAULT_FLEET_WORKERS,
    FleetOptions,
    audit_fleet,
    policies_per_host,
)
from checks.inventory import InventoryHost
from checks.result import Status
from checks.ssh_host import SSHHost
from policies import builtin_policy

VARIABLES = {"office_networks": "10.0.0.0/8", "backup_dir": "/srv/backup"}


class RoundTrips:
    """Counts SFTP requests and exec channels (each a round trip at least) while installed.

    ``list.append`` is atomic under the GIL, so the fleet's threads need no lock.
    """

    def __init__(self) -> None:
        self._requests: list[None] = []
        self._execs: list[None] = []
        self._originals = (paramiko.SFTPClient._async_request, SSHHost._exec)

    def __enter__(self) -> RoundTrips:
        sftp_request, execute = self._originals
        requests, execs = self._requests, self._execs

        def counted_request(client, *args):
            requests.append(None)
            return sftp_request(client, *args)

        def counted_exec(host, *args):
            execs.append(None)
            return execute(host, *args)

        paramiko.SFTPClient._async_request = counted_request
        SSHHost._exec = counted_exec
        return self

    def __exit__(self, *exc_info: object) -> None:
        paramiko.SFTPClient._async_request, SSHHost._exec = self._originals

    @property
    def execs(self) -> int:
        return len(self._execs)

    @property
    def total(self) -> int:
        return len(self._requests) + len(self._execs)


@dataclass
class Figures:
    seconds: float  # wall
    trips: int  # SFTP requests and exec channels
    execs: int  # exec channels alone
    auditor_cpu: float  # this process's CPU seconds
    hosts_cpu: float  # the hosts' sshd and everything it ran, in CPU seconds


def hosts_cpu(net: Lan) -> float:
    """CPU seconds the hosts' sshd listeners' ended children used (every connection's
    sshd, its sftp-server and commands, once the connection closed)."""
    ticks = 0
    for host in net.hosts.values():
        fields = Path(f"/proc/{host.pid}/stat").read_text().rpartition(")")[2].split()
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def audit(net: Lan, names: list[str], workers: int) -> Figures:
    """Wall and CPU seconds to audit ``names`` and the round trips it took; raises if any
    host could not be audited."""
    hosts = [InventoryHost(name, name, variables=dict(VARIABLES)) for name in names]
    policies = policies_per_host(hosts, [builtin_policy("lapp-baseline")])
    options = FleetOptions(ssh=net.options(timeout=10), workers=workers, host_timeout=120)
    with entered(net.auditor), RoundTrips() as trips:
        cpu, served = time.process_time(), hosts_cpu(net)
        begin = time.perf_counter()
        reports = audit_fleet(hosts, policies, options)
        elapsed = time.perf_counter() - begin
        cpu = time.process_time() - cpu
    time.sleep(0.5)  # the listeners reap their connections' processes
    served = hosts_cpu(net) - served
    broken = [
        f"{r.host}: {r.results[0].reason}"
        for r in reports
        if len(r.results) == 1 and r.results[0].status == Status.ERROR
    ]
    if broken:
        raise SystemExit("not audited: " + "; ".join(broken))
    return Figures(elapsed, trips.total, trips.execs, cpu, served)


def show(hosts: int, workers: int, figures: Figures, note: str = "") -> None:
    print(f"{hosts} hosts, {workers:2d} workers: {figures.seconds:6.2f}s, "
          f"{figures.seconds / hosts:5.2f}s per host, {figures.trips / hosts:.0f} round trips "
          f"({figures.execs / hosts:.0f} exec) per host, CPU per host "
          f"{figures.auditor_cpu / hosts:.2f}s here and "
          f"{figures.hosts_cpu / hosts:.2f}s on the host{note}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--goal-hosts", type=int, default=50)
    parser.add_argument("--goal-seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lappguard-bench-") as scratch:
        base = Path(scratch)
        tree = hardened_root(base)
        with lan(base / "lan") as net:
            count = max(args.hosts, args.goal_hosts)
            begin = time.perf_counter()
            for index in range(count):
                net.trust(net.add_host(f"host{index:02d}", tree))
            print(f"{count} hosts started in {time.perf_counter() - begin:.1f}s")
            names = sorted(net.hosts)[: args.hosts]
            one = audit(net, names, 1)
            show(len(names), 1, one)
            many = audit(net, names, DEFAULT_FLEET_WORKERS)
            show(len(names), DEFAULT_FLEET_WORKERS, many)
            print(f"speed-up: {one.seconds / many.seconds:.1f}x")
            goal = audit(net, sorted(net.hosts)[: args.goal_hosts], DEFAULT_FLEET_WORKERS)
            met = "met" if goal.seconds < args.goal_seconds else "NOT met"
            show(args.goal_hosts, DEFAULT_FLEET_WORKERS, goal,
                 f" (goal: under {args.goal_seconds:g}s: {met})")  # fmt: skip
            print(f"load average: {os.getloadavg()[0]:.1f} (2 cores shared: figures are noisy)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

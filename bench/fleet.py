"""Wall time of a fleet audit over SSH: namespace hosts audited one at a time and in parallel.

Starts N hosts (default 20): network namespaces on one bridge, each a real sshd over its
own copy of the hardened test tree (tests/remote_hosts.py), then audits them all with the
baseline policy over SSH with 1 worker and with the default number, and prints both wall
times and the speed-up. Then audits --goal-hosts (default 50) with the default workers and
says whether the goal (under --goal-seconds, default 10) is met. Needs root.

    python bench/fleet.py [--hosts 20] [--goal-hosts 50] [--goal-seconds 10]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

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
from policies import builtin_policy

VARIABLES = {"office_networks": "10.0.0.0/8", "backup_dir": "/srv/backup"}


def audit(net: Lan, names: list[str], workers: int) -> float:
    """Wall seconds to audit ``names``; raises if any host could not be audited."""
    hosts = [InventoryHost(name, name, variables=dict(VARIABLES)) for name in names]
    policies = policies_per_host(hosts, [builtin_policy("lapp-baseline")])
    options = FleetOptions(ssh=net.options(timeout=10), workers=workers, host_timeout=120)
    with entered(net.auditor):
        begin = time.perf_counter()
        reports = audit_fleet(hosts, policies, options)
        elapsed = time.perf_counter() - begin
    broken = [
        r.host for r in reports if len(r.results) == 1 and r.results[0].status == Status.ERROR
    ]
    if broken:
        raise SystemExit(f"not audited: {', '.join(broken)}: {reports[0].results[0].reason}")
    return elapsed


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
            many = audit(net, names, DEFAULT_FLEET_WORKERS)
            print(f"{len(names)} hosts, 1 worker:  {one:6.2f}s")
            print(f"{len(names)} hosts, {DEFAULT_FLEET_WORKERS} workers: {many:6.2f}s")
            print(f"speed-up: {one / many:.1f}x")
            goal = audit(net, sorted(net.hosts)[: args.goal_hosts], DEFAULT_FLEET_WORKERS)
            met = "met" if goal < args.goal_seconds else "NOT met"
            print(f"{args.goal_hosts} hosts, {DEFAULT_FLEET_WORKERS} workers: {goal:6.2f}s "
                  f"(goal: under {args.goal_seconds:g}s: {met})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

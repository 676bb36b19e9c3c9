"""Ban throughput of the firewall backends: 2,000 and 100,000 distinct networks in one call.

    sudo .venv/bin/python bench/bans.py [--small 2000] [--large 100000] [--repeat 1]

Each figure comes from a fresh network namespace (this host's own firewall is never
touched): nftables through libnftables in-process and through ``nft -j -f -``, and ipset,
banning IPv4 hosts and IPv6 /64s (the shapes the ban logic bans). In the namespace holding
the large IPv4 ban it then times what a running daemon does at that size: ``sync`` of the
same entries (a restart), a ban and an unban of 100 more, ``intact()`` (polled every few
seconds) and ``listed()``.
fail2ban is measured in :func:`bench_fail2ban`. Figures are the fastest of ``--repeat``
runs; the machine may be shared, so compare figures from one run. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from contract_firewall import distinct_networks  # noqa: E402
from namespaces import entered, network_namespace  # noqa: E402

from agent.firewall.base import Entry, Firewall  # noqa: E402
from agent.firewall.ipset import IpsetFirewall  # noqa: E402
from agent.firewall.nftables import Layout, NftablesFirewall, open_runner  # noqa: E402

BACKENDS: dict[str, Callable[[], Firewall]] = {
    "nftables library": lambda: NftablesFirewall(Layout(), open_runner("library")),
    "nftables pipe": lambda: NftablesFirewall(Layout(), open_runner("pipe")),
    "ipset": IpsetFirewall,
}
#: 2,000 bans through fail2ban-server with its nftables action, timed by hand on this
#: machine before lappguard had backends; the goal is to be at least 50x faster.
FAIL2BAN_BY_HAND = 29.0
GOAL_RATIO = 50
GOAL_LARGE = 5.0
#: What the ban logic bans per IP version: an IPv4 host, the /64 holding an IPv6 address.
SHAPES = {4: "v4 /32", 6: "v6 /64"}


def bench_fail2ban(count: int) -> float | None:
    """Seconds fail2ban-server with its nftables action takes to ban ``count`` addresses,
    one ``fail2ban-client`` run per address (bench/fail2ban_bans.py, in a fresh namespace;
    it also prints lappguard's fail2ban backend on the same server); None without fail2ban."""
    if shutil.which("fail2ban-server") is None:
        return None
    from fail2ban_bans import ban_through_fail2ban

    by_hand, _ours = ban_through_fail2ban(count)
    return by_hand


def entries(count: int, version: int, now: float) -> list[Entry]:
    return [Entry(network, now + 3600) for network in distinct_networks(count, version)]


def seconds(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def ban_seconds(make: Callable[[], Firewall], count: int, version: int, repeat: int) -> float:
    """The fastest of ``repeat`` bans of ``count`` networks, each into a fresh namespace."""
    best = float("inf")
    for _ in range(repeat):
        with network_namespace() as namespace, entered(namespace):
            firewall = make()
            now = time.time()
            batch = entries(count, version, now)
            best = min(best, seconds(lambda: firewall.ban(batch, now)))  # noqa: B023
            firewall.close()
    return best


def daemon_seconds(make: Callable[[], Firewall], count: int) -> dict[str, float]:
    """What a running daemon does with ``count`` IPv4 bans in place, each timed once."""
    with network_namespace() as namespace, entered(namespace):
        firewall = make()
        now = time.time()
        held = entries(count, 4, now)
        firewall.ban(held, now)
        more = [Entry(n, now + 3600) for n in distinct_networks(count + 100)[count:]]
        figures = {
            "sync same": seconds(lambda: firewall.sync(held, now)),
            "ban 100": seconds(lambda: firewall.ban(more, now)),
            "unban 100": seconds(lambda: firewall.unban([e.network for e in more])),
            "intact": seconds(firewall.intact),
            "listed": seconds(firewall.listed),
        }
        firewall.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    columns = [(args.small, 4), (args.small, 6), (args.large, 4), (args.large, 6)]
    print(f"ban in one call, seconds (fastest of {args.repeat}, each in a fresh namespace)")
    print(f"{'backend':<18}" + "".join(f"{f'{n:,} {SHAPES[v]}':>16}" for n, v in columns))
    small: dict[str, float] = {}
    large: dict[str, float] = {}
    for name, make in BACKENDS.items():
        row = [ban_seconds(make, count, version, args.repeat) for count, version in columns]
        small[name], large[name] = row[0], max(row[2], row[3])
        print(f"{name:<18}" + "".join(f"{s:>16.3f}" for s in row))

    print(f"\nwith {args.large:,} IPv4 bans in place, seconds")
    for name, make in BACKENDS.items():
        figures = daemon_seconds(make, args.large)
        print(f"{name:<18}" + "  ".join(f"{what} {s:.3f}" for what, s in figures.items()))

    measured = bench_fail2ban(args.small)
    fail2ban = FAIL2BAN_BY_HAND if measured is None else measured
    source = "timed by hand" if measured is None else "measured now"
    print(f"\nfail2ban-server, nftables action: {args.small:,} bans in {fail2ban:.1f} s ({source})")
    for name in BACKENDS:
        ratio = fail2ban / small[name]
        print(
            f"{name:<18}{ratio:>8,.0f}x faster than fail2ban (goal {GOAL_RATIO}x: "
            f"{'met' if ratio >= GOAL_RATIO else 'MISSED'}); {args.large:,} bans in "
            f"{large[name]:.2f} s (goal < {GOAL_LARGE:.0f} s: "
            f"{'met' if large[name] < GOAL_LARGE else 'MISSED'})"
        )


if __name__ == "__main__":
    main()

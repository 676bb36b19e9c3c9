"""2,000 bans through fail2ban-server with its nftables action, two ways.

    .venv/bin/python bench/fail2ban_bans.py [--count 2000]      (root: namespaces, nft)

A throwaway fail2ban-server (tests/fail2ban_server.py: lappguard's documented jail, the
prefix-capable nftables-allports action) runs in a fresh network namespace, so no rule
reaches this machine's firewall. First the way fail2ban users ban by hand or from scripts:
one ``fail2ban-client set lappguard banip ADDRESS`` per address. Then lappguard's backend:
the same addresses in as few socket commands as it sends (``CHUNK`` addresses each). The
jail is emptied in between, and after each run the bans are counted in fail2ban and in the
action's nft set. fail2ban runs the action (a shell and an nft) for every address either
way; what differs is the client.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# The tests' throwaway server and namespaces:
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fail2ban_server import JAIL, Fail2banServer, running_fail2ban
from namespaces import network_namespace

from agent.firewall import Entry
from agent.firewall.fail2ban import Fail2banFirewall

TIMEOUT = 10.0


def addresses(count: int) -> list[str]:
    """Distinct IPv4 addresses in 100.64.0.0/10 (shared address space, never ours)."""
    first = int(ipaddress.IPv4Address("100.64.0.1"))
    return [str(ipaddress.IPv4Address(first + i)) for i in range(count)]


def per_address_client(server: Fail2banServer, ips: list[str]) -> float:
    """Seconds for one fail2ban-client run per address."""
    start = time.perf_counter()
    for ip in ips:
        subprocess.run(
            ["fail2ban-client", "-s", str(server.socket), "set", JAIL, "banip", ip],
            check=True, capture_output=True,
        )  # fmt: skip
    return time.perf_counter() - start


def lappguard_client(server: Fail2banServer, ips: list[str]) -> float:
    """Seconds for one Fail2banFirewall.ban call with every address."""
    firewall = Fail2banFirewall(str(server.socket), JAIL, TIMEOUT)
    entries = [Entry(ipaddress.ip_network(ip)) for ip in ips]
    start = time.perf_counter()
    firewall.ban(entries, time.time())
    return time.perf_counter() - start


def check_banned(server: Fail2banServer, count: int) -> None:
    """Both fail2ban and the kernel's set hold exactly ``count`` bans."""
    listed = Fail2banFirewall(str(server.socket), JAIL, TIMEOUT).listed()
    nft = json.loads(server.nft("-j", "list", "set", "inet", "f2b-table", f"addr-set-{JAIL}"))
    elements = next(item["set"] for item in nft["nftables"] if "set" in item).get("elem", [])
    if len(listed) != count or len(elements) != count:
        raise RuntimeError(f"expected {count} bans, fail2ban {len(listed)}, nft {len(elements)}")


def ban_through_fail2ban(count: int = 2000) -> tuple[float, float]:
    """Print both timings; return (fail2ban-client per address, lappguard's backend)."""
    ips = addresses(count)
    with (
        tempfile.TemporaryDirectory() as workdir,
        network_namespace() as namespace,
        running_fail2ban(namespace, Path(workdir)) as server,
    ):
        by_hand = per_address_client(server, ips)
        check_banned(server, count)
        server.client("reload", "--restart", "--unban", JAIL)
        ours = lappguard_client(server, ips)
        check_banned(server, count)
    print(f"fail2ban-client per address: {count} bans in {by_hand:.1f} s ({count / by_hand:.0f}/s)")
    print(f"lappguard fail2ban backend:  {count} bans in {ours:.1f} s ({count / ours:.0f}/s)")
    return by_hand, ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    ban_through_fail2ban(parser.parse_args().count)


if __name__ == "__main__":
    main()

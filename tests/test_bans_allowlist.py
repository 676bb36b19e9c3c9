"""Property: whatever events and commands arrive, nothing protected is ever banned.

Protected: loopback, the configured allowlist, this host's addresses and the addresses of
logged-in SSH sessions. Hypothesis throws decisions (from jails with every scope), manual
bans of networks of any width (0.0.0.0/0 included), unbans and the passing of time at the
ban logic; after every step no active ban in the store, and nothing the firewall (the real
dry-run backend) holds, may overlap a protected network.
"""

from __future__ import annotations

import ipaddress
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.bans import store
from agent.bans.allowlist import Allowlist
from agent.bans.jails import LOOPBACK, Decision, Jail
from agent.bans.manager import BanManager, BanRequest
from agent.firewall import open_firewall
from agent.state import StateStore

ALLOWLIST = [ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("2001:db8:aa::/48")]
HOST = [("10.9.0.1", "eth0"), ("fd00:9::1", "eth0"), ("fe80::1", "eth0")]
SESSIONS = [("198.51.100.200", "alice's login session")]
PROTECTED = [
    *LOOPBACK,
    *ALLOWLIST,
    *(ipaddress.ip_network(a) for a, _ in HOST + SESSIONS),
]
JAILS = {
    f"j{v4}_{v6}": Jail(f"j{v4}_{v6}", ("x",), 1, 60.0, 600.0, ipv4_prefix=v4, ipv6_prefix=v6)
    for v4 in (32, 24, 8)
    for v6 in (128, 64, 32)
}


def _around(network) -> st.SearchStrategy:
    """Addresses inside ``network`` and just outside its edges."""
    kind = ipaddress.IPv4Address if network.version == 4 else ipaddress.IPv6Address
    first, top = int(network.network_address), 2**network.max_prefixlen - 1
    span = min(network.num_addresses, 1 << 20)
    return st.integers(-3, span + 2).map(lambda k: kind(max(0, min(first + k, top))))


near = st.sampled_from(PROTECTED).flatmap(_around)
anywhere = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6))
addresses = st.one_of(near, anywhere)
networks = st.tuples(addresses, st.integers(0, 128)).map(
    lambda pair: ipaddress.ip_network(
        f"{pair[0]}/{min(pair[1], pair[0].max_prefixlen)}", strict=False
    )
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("decide"), addresses, st.sampled_from(sorted(JAILS))),
        st.tuples(st.just("add"), networks, st.none()),
        st.tuples(st.just("del"), networks, st.none()),
        st.tuples(st.just("time"), st.integers(1, 1200), st.none()),
    ),
    min_size=1,
    max_size=25,
)


def _overlaps_protected(network) -> bool:
    return any(p.version == network.version and p.overlaps(network) for p in PROTECTED)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_nothing_protected_is_ever_banned(plan):
    with tempfile.TemporaryDirectory() as directory:
        now = [1_800_000_000.0]
        clock = lambda: now[0]  # noqa: E731 - the injected clock
        state = StateStore(Path(directory) / "state.db", clock=clock)
        allowlist = Allowlist(ALLOWLIST, host_addresses=lambda: HOST, sessions=lambda: SESSIONS)
        firewall = open_firewall("dry-run", {}, Path(directory))
        manager = BanManager(state, firewall, allowlist, jails=JAILS, clock=clock)
        for action, value, jail in plan:
            if action == "decide":
                manager.decide([Decision(str(value), jail, now[0], now[0], 1, "x")])
            elif action == "add":
                manager.ban([BanRequest(value, None, "by hand", 600.0)])
            elif action == "del":
                manager.unban([value])
            else:
                now[0] += value
                manager.expire()
            with state.reading() as conn:
                banned = [ban.network for ban in store.active(conn)]
            assert not [n for n in banned if _overlaps_protected(n)], banned
            assert not [n for n in firewall.listed() if _overlaps_protected(n)]
            assert set(firewall.listed()) == set(banned)
        state.close()

"""The ban logic with an injected clock: scope, escalation, expiry, overlaps, refusals, repair.

The firewall is the real dry-run backend (it records what the firewall would hold, in a
file), so what the manager promises the firewall can be read back exactly; a broken
firewall is the nftables backend pointed at a program that does not exist.
"""

from __future__ import annotations

import ipaddress
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from agent.bans import store, trail
from agent.bans.allowlist import Allowlist
from agent.bans.jails import Decision, Escalation, Jail
from agent.bans.manager import BanManager, BanRequest
from agent.firewall import open_firewall
from agent.state import StateStore

HOUR = 3600.0
DAY = 86400.0
HOST = [("10.9.0.1", "eth0"), ("fd00:9::1", "eth0")]
SSHD = Jail("sshd", ("sshd-*",), maxretry=5, findtime=600.0, bantime=HOUR)


def net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


class Clock:
    """Wall and monotonic time that only move when the test says so."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(tmp_path: Path, clock: Clock):
    with StateStore(tmp_path / "state.db", clock=clock) as store_:
        yield store_


def manager_for(state, clock, tmp_path, jail=SSHD, allow=("192.0.2.0/24",), firewall=None):
    firewall = firewall or open_firewall("dry-run", {}, tmp_path)
    allowlist = Allowlist([net(n) for n in allow], host_addresses=lambda: HOST,
                          sessions=lambda: [], clock=clock)  # fmt: skip
    return BanManager(state, firewall, allowlist, jails={jail.name: jail}, clock=clock,
                      monotonic=clock)  # fmt: skip


def decision(ip: str, jail: str = "sshd") -> Decision:
    return Decision(
        ip, jail, 0.0, 0.0, 5, "sshd-failed-auth", "auth.log:1: first", "auth.log:9: last"
    )


def active(state) -> dict[str, float | None]:
    with state.reading() as conn:
        return {str(ban.network): ban.expires for ban in store.active(conn)}


def test_a_decision_bans_the_address_for_the_jails_bantime(state, clock, tmp_path):
    manager = manager_for(state, clock, tmp_path)
    [outcome] = manager.decide([decision("203.0.113.5")])
    assert outcome.status == "banned"
    assert active(state) == {"203.0.113.5/32": clock.now + HOUR}
    assert manager.firewall.listed() == {net("203.0.113.5/32")}
    with state.reading() as conn:
        [ban] = store.active(conn)
    assert (ban.first_line, ban.last_line, ban.count, ban.applied) == (
        "auth.log:1: first", "auth.log:9: last", 5, True)  # fmt: skip


def test_ipv6_is_banned_by_its_64_unless_the_jail_says_otherwise(state, clock, tmp_path):
    manager = manager_for(state, clock, tmp_path)
    manager.decide([decision("2001:db8:1:2:aaaa::5")])
    assert set(active(state)) == {"2001:db8:1:2::/64"}
    narrow = Jail("narrow", ("x",), 5, 600.0, HOUR, ipv6_prefix=128, ipv4_prefix=24)
    manager.jails["narrow"] = narrow
    manager.decide([decision("2001:db8:9::7", "narrow"), decision("198.51.100.77", "narrow")])
    assert set(active(state)) == {"2001:db8:1:2::/64", "2001:db8:9::7/128", "198.51.100.0/24"}


def test_a_64_holding_a_protected_address_narrows_to_the_offender(state, clock, tmp_path):
    manager = manager_for(state, clock, tmp_path)
    [outcome] = manager.decide([decision("fd00:9::bad")])  # fd00:9::1 is this host's
    assert outcome.status == "banned"
    assert set(active(state)) == {"fd00:9::bad/128"}


@pytest.mark.parametrize(
    ("ip", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.9.0.1", "this host's address 10.9.0.1 (eth0)"),
        ("fd00:9::1", "this host's address"),
        ("192.0.2.200", "the allowlist's 192.0.2.0/24"),
    ],
)
def test_protected_addresses_are_refused_and_recorded(state, clock, tmp_path, ip, why):
    manager = manager_for(state, clock, tmp_path)
    [outcome] = manager.decide([decision(ip)])
    assert outcome.status == "refused" and why in outcome.reason
    assert active(state) == {} and manager.firewall.listed() == set()
    assert manager.counters["refused"] == 1
    with state.reading() as conn:
        [record] = trail.records(conn)
    assert record.action == "refuse" and why in record.detail["refused"]


def test_a_manual_network_covering_a_protected_one_is_refused(state, clock, tmp_path):
    manager = manager_for(state, clock, tmp_path)
    outcomes = manager.ban([BanRequest(net("192.0.0.0/16"), None, "too wide"),
                            BanRequest(net("0.0.0.0/0"), None, "everything")])  # fmt: skip
    assert [o.status for o in outcomes] == ["refused", "refused"]
    assert "would cover" in outcomes[0].reason
    assert active(state) == {}


def test_repeat_offenders_escalate_up_to_the_cap(state, clock, tmp_path):
    jail = Jail("sshd", ("sshd-*",), 5, 600.0, HOUR, escalate=Escalation(factor=2, max=5 * HOUR))
    manager = manager_for(state, clock, tmp_path, jail=jail)
    lengths = []
    for _ in range(5):
        manager.decide([decision("203.0.113.5")])
        expires = active(state)["203.0.113.5/32"]
        lengths.append(expires - clock.now)
        clock.now = expires + 1
        assert manager.expire() == 1
    assert lengths == [HOUR, 2 * HOUR, 4 * HOUR, 5 * HOUR, 5 * HOUR]
    with state.reading() as conn:
        levels = [ban.level for ban in store.history(conn, net("203.0.113.5/32"))]
    assert levels == [1, 2, 3, 4, 5]


def test_bans_older_than_forget_do_not_escalate(state, clock, tmp_path):
    jail = Jail("sshd", ("sshd-*",), 5, 600.0, HOUR, escalate=Escalation(forget=DAY))
    manager = manager_for(state, clock, tmp_path, jail=jail)
    manager.decide([decision("203.0.113.5")])
    clock.now += 2 * DAY
    manager.expire()
    manager.decide([decision("203.0.113.5")])
    assert active(state)["203.0.113.5/32"] == clock.now + HOUR


def test_the_nth_ban_is_permanent_when_configured(state, clock, tmp_path):
    jail = Jail("sshd", ("sshd-*",), 5, 600.0, HOUR, escalate=Escalation(permanent_after=3))
    manager = manager_for(state, clock, tmp_path, jail=jail)
    for _ in range(2):
        manager.decide([decision("203.0.113.5")])
        clock.now = active(state)["203.0.113.5/32"] + 1
        manager.expire()
    manager.decide([decision("203.0.113.5")])
    assert active(state) == {"203.0.113.5/32": None}
    clock.now += 365 * DAY
    assert manager.expire() == 0
    assert manager.firewall.listed() == {net("203.0.113.5/32")}


def test_expiry_ends_the_ban_in_store_firewall_and_trail(state, clock, tmp_path):
    manager = manager_for(state, clock, tmp_path)
    manager.decide([decision("203.0.113.5"), decision("2001:db8::1")])
    clock.now += HOUR - 1
    assert manager.expire() == 0
    clock.now += 1
    assert manager.expire() == 2
    assert active(state) == {} and manager.firewall.listed() == set()
    with state.reading() as conn:
        actions = [record.action for record in trail.records(conn)]
        assert [ban.end_reason for ban in store.every_ban(conn)] == ["expired", "expired"]
    assert actions == ["ban", "ban", "expire", "expire"]


def test_overlapping_requests_never_reach_the_firewall_as_overlaps(state, clock, tmp_path):
    manager = manager_for(state, clock, tmp_path)
    manager.ban([BanRequest(net("198.51.100.7/32"), None, "one"),
                 BanRequest(net("198.51.100.9/32"), None, "two")])  # fmt: skip
    outcomes = manager.ban([BanRequest(net("198.51.100.8/32"), None, "in batch"),
                            BanRequest(net("198.51.100.0/24"), None, "wider")])  # fmt: skip
    assert {o.target: o.status for o in outcomes} == {
        "198.51.100.0/24": "banned", "198.51.100.8/32": "already"}  # fmt: skip
    assert set(active(state)) == {"198.51.100.0/24"}
    assert manager.firewall.listed() == {net("198.51.100.0/24")}
    [inside] = manager.ban([BanRequest(net("198.51.100.200/32"), None, "inside")])
    assert inside.status == "already" and "198.51.100.0/24" in inside.reason
    with state.reading() as conn:
        reasons = sorted(b.end_reason or "" for b in store.every_ban(conn))
    assert reasons == ["", "superseded", "superseded"]


def test_unban_lifts_every_ban_holding_the_address(state, clock, tmp_path):
    manager = manager_for(state, clock, tmp_path)
    manager.decide([decision("2001:db8::5")])
    [outcome] = manager.unban([net("2001:db8::77/128")])
    assert outcome.status == "unbanned" and str(outcome.network) == "2001:db8::/64"
    assert manager.unban([net("203.0.113.1/32")])[0].status == "absent"
    assert manager.firewall.listed() == set()


def test_a_failing_firewall_leaves_bans_pending_until_repair(state, clock, tmp_path):
    broken = open_firewall(
        "nftables", {"mode": "pipe", "nft": str(tmp_path / "no-such-nft")}, tmp_path
    )
    manager = manager_for(state, clock, tmp_path, firewall=broken)
    [outcome] = manager.decide([decision("203.0.113.5")])
    assert outcome.status == "pending" and "firewall failed" in outcome.reason
    with state.reading() as conn:
        assert store.pending_count(conn) == 1 and store.debt(conn) is not None
    assert manager.counters["firewall_errors"] == 1
    assert manager.repair() is False  # backing off: no retry straight away
    working = manager_for(state, clock, tmp_path)  # the firewall is back (a new start)
    assert working.repair() is True
    assert working.firewall.listed() == {net("203.0.113.5/32")}
    with state.reading() as conn:
        assert store.pending_count(conn) == 0 and store.debt(conn) is None


def test_backoff_grows_and_a_retry_comes_when_it_is_over(state, clock, tmp_path):
    broken = open_firewall(
        "nftables", {"mode": "pipe", "nft": str(tmp_path / "no-such-nft")}, tmp_path
    )
    manager = manager_for(state, clock, tmp_path, firewall=broken)
    manager.decide([decision("203.0.113.5")])
    errors = manager.counters["firewall_errors"]
    waits = []
    for _ in range(4):
        start = clock.now
        while not manager.repair() and manager.counters["firewall_errors"] == errors:
            clock.now += 0.5
        errors = manager.counters["firewall_errors"]
        waits.append(clock.now - start)
    assert waits == sorted(waits) and waits[-1] > waits[0]


def test_a_lost_firewall_is_restored_and_recorded(state, clock, tmp_path):
    manager = manager_for(state, clock, tmp_path)
    manager.decide([decision("203.0.113.5")])
    manager.firewall.remove()
    assert manager.repair() is True
    assert manager.firewall.listed() == {net("203.0.113.5/32")}
    assert manager.counters["restores"] == 1
    with state.reading() as conn:
        assert [r.action for r in trail.records(conn)][-1] == "restore"


def test_sync_drops_expired_and_reasserts_the_rest(state, clock, tmp_path):
    manager = manager_for(state, clock, tmp_path)
    manager.decide([decision("203.0.113.5")])
    manager.ban([BanRequest(net("198.51.100.0/24"), None, "by hand")])
    clock.now += 2 * HOUR
    assert manager.sync() is True
    assert manager.firewall.listed() == {net("198.51.100.0/24")}
    assert active(state) == {"198.51.100.0/24": None}


def test_every_action_is_in_the_trail_once_and_the_chain_verifies(state, clock, tmp_path):
    manager = manager_for(state, clock, tmp_path)
    manager.decide([decision("203.0.113.5"), decision("127.0.0.1")])
    manager.ban([BanRequest(net("198.51.100.0/24"), None, "by hand", 60.0)])
    manager.unban([net("203.0.113.5/32")])
    clock.now += 61
    manager.expire()
    with state.reading() as conn:
        records = list(trail.records(conn))
        verdict = trail.verify(conn)
    assert [(r.action, r.network) for r in records] == [
        ("ban", "203.0.113.5/32"),
        ("refuse", "127.0.0.1/32"),
        ("ban", "198.51.100.0/24"),
        ("unban", "203.0.113.5/32"),
        ("expire", "198.51.100.0/24"),
    ]
    assert verdict.ok and verdict.records == 5


def test_a_crash_between_store_and_firewall_is_repaired_at_the_next_start(tmp_path):
    """A real process dies (SIGKILL) right after the ban is committed, before any firewall
    call; the next start's sync puts the ban into the firewall."""
    script = f"""
import ipaddress, os, signal
from pathlib import Path
from agent.bans.allowlist import Allowlist
from agent.bans.manager import BanManager, BanRequest
from agent.firewall import open_firewall
from agent.state import StateStore
state = StateStore(Path({str(tmp_path)!r}) / "state.db")
firewall = open_firewall("dry-run", {{}}, Path({str(tmp_path)!r}))
manager = BanManager(state, firewall, Allowlist(host_addresses=list, sessions=list))
manager.record([BanRequest(ipaddress.ip_network("203.0.113.9/32"), None, "by hand")])
os.kill(os.getpid(), signal.SIGKILL)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr
    with StateStore(tmp_path / "state.db") as state:
        firewall = open_firewall("dry-run", {}, tmp_path)
        assert firewall.listed() == set()
        with state.reading() as conn:
            assert store.pending_count(conn) == 1
        manager = BanManager(state, firewall, Allowlist(host_addresses=list, sessions=list))
        assert manager.sync("start") is True
        assert firewall.listed() == {net("203.0.113.9/32")}

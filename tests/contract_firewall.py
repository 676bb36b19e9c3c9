"""The behaviour every firewall backend keeps, run against each of them with real packets.

A test module subclasses ``FirewallContract`` and provides a ``harness`` fixture: a server
and an attacker network namespace (``namespaces.namespace_pair``), the test thread moved
into the server namespace for the test (``namespaces.entered``), and a way to open the
backend there and to make the firewall lose our bans behind our back, the way an admin's
``nft flush ruleset`` or a deleted ipset would. A TCP listener in the server namespace
answers on ``port`` for both address families; ``reachable`` connects from the attacker.
``NamespaceHarness`` provides all of that but the backend: a harness subclasses it.

A backend that only records (dry-run, ``enforces = False``) runs the same suite: its
packets must get through in every case, since it changes nothing.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from contextlib import ExitStack
from typing import Protocol, TypeVar

import pytest
from namespaces import Pair, can_connect, entered, namespace_pair

from agent.firewall.base import Entry, Firewall, FirewallError, Network

Backend = TypeVar("Backend", bound=Firewall)


class Harness(Protocol):
    pair: Pair
    port: int
    #: False for a backend that changes nothing (dry-run); a harness without it enforces.
    enforces: bool

    def open(self) -> Firewall:
        """A new backend object (a daemon or CLI start) in the server namespace."""

    def lose(self) -> None:
        """Make the firewall drop everything of ours, the way an admin's reload would."""

    def broken(self) -> Firewall:
        """A backend that cannot reach its firewall (tool missing, server down)."""


def net(text: str) -> Network:
    return ipaddress.ip_network(text)


def reachable(harness: Harness, v6: bool = False) -> bool:
    pair = harness.pair
    return can_connect(pair.attacker, pair.server_v6 if v6 else pair.server_v4, harness.port)


def distinct_networks(count: int, version: int = 4) -> list[Network]:
    """``count`` distinct networks to ban in bulk: IPv4 hosts in 100.0.0.0/10 (up to 4
    million), or IPv6 /64s in 2001:db8::/32."""
    if version == 4:
        return [ipaddress.IPv4Network(0x64000000 + i) for i in range(count)]
    return [ipaddress.IPv6Network((0x20010DB8 << 96 | i << 64, 64)) for i in range(count)]


def expect_dropped(harness: Harness, dropped: bool, v6: bool = False) -> None:
    """Assert the attacker's packets are dropped, or get through, as the bans say; through a
    backend that only records they always get through."""
    if not getattr(harness, "enforces", True):
        dropped = False
    assert reachable(harness, v6) is not dropped


def attacker_networks(pair: Pair) -> tuple[Network, Network]:
    """The attacker's /32 and the /64 holding its IPv6 address."""
    return net(f"{pair.attacker_v4}/32"), ipaddress.ip_network(f"{pair.attacker_v6}/64", False)


class NamespaceHarness:
    """The parts of a harness every backend shares: a fresh namespace pair, the test thread
    moved into the server namespace, and a TCP listener there that accepts and closes on
    ``port`` over IPv4 and IPv6. Use it as a context manager (a fixture's ``with``); a
    subclass adds ``open``, ``lose`` and ``broken`` and registers what it opens with
    ``opened`` so every backend object is closed before the namespaces go."""

    port = 8080
    enforces = True

    def __enter__(self) -> NamespaceHarness:
        self._stack = ExitStack()
        self.pair = self._stack.enter_context(namespace_pair())
        self._stack.enter_context(entered(self.pair.server))
        listener = socket.create_server(
            ("::", self.port), family=socket.AF_INET6, dualstack_ipv6=True
        )
        accepting = threading.Thread(target=_accept_until_shut, args=(listener,), daemon=True)
        accepting.start()
        self._stack.callback(accepting.join)
        self._stack.callback(listener.close)
        self._stack.callback(listener.shutdown, socket.SHUT_RDWR)  # wakes accept()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    def opened(self, firewall: Backend) -> Backend:
        """``firewall``, closed when the harness ends."""
        self._stack.callback(firewall.close)
        return firewall


def _accept_until_shut(listener: socket.socket) -> None:
    while True:
        try:
            connection, _ = listener.accept()
        except OSError:
            return
        connection.close()


class FirewallContract:
    """Subclass with a ``harness`` fixture; every test here then runs against that backend."""

    def test_ban_drops_packets_and_unban_lets_them_through(self, harness: Harness) -> None:
        firewall = harness.open()
        v4, v6 = attacker_networks(harness.pair)
        expect_dropped(harness, False)
        expect_dropped(harness, False, v6=True)
        firewall.ban([Entry(v4, time.time() + 3600), Entry(v6, time.time() + 3600)], time.time())
        assert firewall.listed() == {v4, v6}
        expect_dropped(harness, True)
        expect_dropped(harness, True, v6=True)
        firewall.unban([v4])
        assert firewall.listed() == {v6}
        expect_dropped(harness, False)
        expect_dropped(harness, True, v6=True)
        firewall.unban([v6, net("198.51.100.7/32")])  # one that is not there: no error
        assert firewall.listed() == set()
        expect_dropped(harness, False, v6=True)

    def test_sync_makes_the_firewall_hold_exactly_the_list(self, harness: Harness) -> None:
        firewall = harness.open()
        v4, v6 = attacker_networks(harness.pair)
        now = time.time()
        firewall.ban([Entry(net("198.51.100.1/32"), now + 600)], now)
        wanted = [Entry(v4, now + 600), Entry(net("203.0.113.0/24"), None), Entry(v6, now + 60)]
        firewall.sync(wanted, now)
        assert firewall.listed() == {entry.network for entry in wanted}
        expect_dropped(harness, True)
        firewall.sync([], now)
        assert firewall.listed() == set()
        expect_dropped(harness, False)

    def test_a_new_backend_object_sees_what_an_earlier_one_banned(self, harness: Harness) -> None:
        v4, _ = attacker_networks(harness.pair)
        first = harness.open()
        first.ban([Entry(v4, None)], time.time())
        first.close()
        assert harness.open().listed() == {v4}

    def test_loss_is_seen_and_sync_restores(self, harness: Harness) -> None:
        firewall = harness.open()
        v4, v6 = attacker_networks(harness.pair)
        entries = [Entry(v4, time.time() + 600), Entry(v6, None)]
        firewall.ban(entries, time.time())
        assert firewall.intact()
        harness.lose()
        assert not firewall.intact()
        expect_dropped(harness, False)
        firewall.sync(entries, time.time())
        assert firewall.intact()
        assert firewall.listed() == {v4, v6}
        expect_dropped(harness, True)

    def test_remove_leaves_nothing_of_ours(self, harness: Harness) -> None:
        firewall = harness.open()
        v4, _ = attacker_networks(harness.pair)
        firewall.ban([Entry(v4, None)], time.time())
        firewall.remove()
        assert not firewall.intact()
        expect_dropped(harness, False)
        firewall.remove()  # removing twice is not an error

    def test_thousands_of_entries_in_one_call(self, harness: Harness) -> None:
        firewall = harness.open()
        now = time.time()
        v4 = [Entry(ipaddress.ip_network(f"100.{i >> 8 & 255}.{i & 255}.1/32"), now + 900)
              for i in range(5000)]  # fmt: skip
        v6 = [Entry(ipaddress.ip_network(f"2001:db8:{i:x}::/64"), None) for i in range(5000)]
        firewall.ban(v4 + v6, now)
        assert firewall.listed() == {entry.network for entry in v4 + v6}

    def test_a_broken_firewall_raises_firewall_error(self, harness: Harness) -> None:
        firewall = harness.broken()
        with pytest.raises(FirewallError):
            firewall.ban([Entry(net("198.51.100.1/32"), None)], time.time())
        with pytest.raises(FirewallError):
            firewall.sync([], time.time())


class NativeExpiryContract:
    """For backends whose firewall expires entries by itself (nftables and ipset timeouts);
    the others are unbanned by lappguard at expiry, which the ban manager's tests cover."""

    def test_entries_expire_at_their_time(self, harness: Harness) -> None:
        firewall = harness.open()
        v4, v6 = attacker_networks(harness.pair)
        now = time.time()
        firewall.ban([Entry(v4, now + 2), Entry(v6, now + 3600)], now)
        expect_dropped(harness, True)
        deadline = time.time() + 10
        while v4 in firewall.listed() and time.time() < deadline:
            time.sleep(0.25)
        assert firewall.listed() == {v6}
        expect_dropped(harness, False)

"""Fail2banFirewall against a real fail2ban-server running lappguard's documented jail.

The server runs in the server namespace of a namespace pair, so the jail's nftables action
drops the attacker's real packets there; fail2ban's own client is the oracle for what the
jail holds. One server serves the module; each test starts from an empty, running jail
(``reload --restart --unban``), the way an admin resets a jail.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import require_program, require_root
from contract_firewall import FirewallContract, attacker_networks, net, reachable
from fail2ban_server import BULK_JAIL, JAIL, Fail2banServer, running_fail2ban
from namespaces import Pair, entered, namespace_pair

from agent.firewall import Entry, FirewallError, open_firewall
from agent.firewall.fail2ban import Fail2banFirewall, JailMissing

pytestmark = [pytest.mark.root, pytest.mark.slow]

TIMEOUT = 10.0


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    require_root()
    require_program("fail2ban-server")
    require_program("nft")
    with namespace_pair() as pair:
        yield pair


@pytest.fixture(scope="module")
def server(pair: Pair, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fail2banServer]:
    with running_fail2ban(pair.server, tmp_path_factory.mktemp("fail2ban")) as server:
        yield server


@pytest.fixture(scope="module")
def port(pair: Pair) -> Iterator[int]:
    """A TCP listener on both families in the server namespace that accepts and hangs up."""
    with entered(pair.server):
        listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    listener.bind(("::", 0))
    listener.listen(16)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed at the end of the module
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    listener.shutdown(socket.SHUT_RDWR)
    listener.close()
    thread.join()


class Fail2banHarness:
    def __init__(self, pair: Pair, server: Fail2banServer, port: int, tmp_path: Path):
        self.pair = pair
        self.server = server
        self.port = port
        self.tmp_path = tmp_path

    def open(self) -> Fail2banFirewall:
        options = {"socket": str(self.server.socket), "jail": JAIL, "timeout": TIMEOUT}
        backend = open_firewall("fail2ban", options, self.tmp_path)
        assert isinstance(backend, Fail2banFirewall)
        return backend

    def lose(self) -> None:
        """An admin's jail restart: the jail is back at once, its bans are gone."""
        self.server.client("reload", "--restart", "--unban", JAIL)

    def broken(self) -> Fail2banFirewall:
        """A server that died and left its socket behind: nothing listens there any more."""
        stale = self.tmp_path / "dead.sock"
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(stale))
        return Fail2banFirewall(str(stale), JAIL, TIMEOUT)


@pytest.fixture
def harness(
    pair: Pair, server: Fail2banServer, port: int, tmp_path: Path
) -> Iterator[Fail2banHarness]:
    server.client("reload", "--restart", "--unban", "--if-exists", JAIL)  # back after remove()
    with entered(pair.server):
        yield Fail2banHarness(pair, server, port, tmp_path)


class TestFail2banContract(FirewallContract):
    def test_thousands_of_entries_in_one_call(self, harness: Fail2banHarness) -> None:
        """The contract's 10,000 entries, into the jail without an action. fail2ban runs a
        jail's action for one address after the other before it answers (~10 ms a ban with
        nftables here), so through the nftables jail this test alone would take minutes;
        what lappguard does (chunks, listing, parsing) is the same for both jails, and
        test_prefix_bans_reach_the_kernel covers the action's side."""
        bulk = Fail2banFirewall(str(harness.server.socket), BULK_JAIL, TIMEOUT)
        now = time.time()
        v4 = [Entry(ipaddress.ip_network(f"100.{i >> 8 & 255}.{i & 255}.1/32"), now + 900)
              for i in range(5000)]  # fmt: skip
        v6 = [Entry(ipaddress.ip_network(f"2001:db8:{i:x}::/64"), None) for i in range(5000)]
        try:
            bulk.ban(v4 + v6, now)
            assert bulk.listed() == {entry.network for entry in v4 + v6}
        finally:
            bulk.sync([], now)


def banned_per_client(server: Fail2banServer) -> set[str]:
    """The "Banned IP list" of ``fail2ban-client status lappguard``."""
    for line in server.client("status", JAIL).splitlines():
        if "Banned IP list:" in line:
            return set(line.split(":", 1)[1].split())
    raise AssertionError("fail2ban-client status shows no ban list")


def test_bans_show_in_fail2ban_client_status(harness: Fail2banHarness) -> None:
    firewall = harness.open()
    v4, v6 = attacker_networks(harness.pair)
    firewall.ban([Entry(v4, None), Entry(v6, None), Entry(net("203.0.113.0/24"), None)], 0.0)
    assert banned_per_client(harness.server) == {
        harness.pair.attacker_v4, str(v6), "203.0.113.0/24"
    }  # fmt: skip
    firewall.unban([v4])
    assert banned_per_client(harness.server) == {str(v6), "203.0.113.0/24"}


def test_prefix_bans_reach_the_kernel(harness: Fail2banHarness) -> None:
    """A /24 holding the attacker drops it: the documented action's sets accept prefixes."""
    firewall = harness.open()
    subnet = ipaddress.ip_network(f"{harness.pair.attacker_v4}/24", strict=False)
    firewall.ban([Entry(subnet, None)], time.time())
    assert not reachable(harness)
    listing = json.loads(harness.server.nft("-j", "list", "set", "inet", "f2b-table",
                                            f"addr-set-{JAIL}"))  # fmt: skip
    elements = next(item["set"] for item in listing["nftables"] if "set" in item)["elem"]
    assert elements == [{"prefix": {"addr": str(subnet.network_address), "len": 24}}]
    firewall.unban([subnet])
    assert reachable(harness)


def test_unban_of_a_network_not_held_keeps_the_addresses_inside(harness: Fail2banHarness) -> None:
    """fail2ban's unbanip, given a network it does not hold, unbans every address inside;
    the backend asks for exactly what the jail lists."""
    firewall = harness.open()
    firewall.ban([Entry(net("198.51.100.7/32"), None)], time.time())
    firewall.unban([net("198.51.100.0/24")])
    assert firewall.listed() == {net("198.51.100.7/32")}


def test_sync_unbans_what_others_put_in_the_jail(harness: Fail2banHarness) -> None:
    harness.server.client("set", JAIL, "banip", "192.0.2.9")
    firewall = harness.open()
    v4, _ = attacker_networks(harness.pair)
    firewall.sync([Entry(v4, None)], time.time())
    assert banned_per_client(harness.server) == {harness.pair.attacker_v4}


def test_remove_takes_the_actions_nft_set_away(harness: Fail2banHarness) -> None:
    firewall = harness.open()
    firewall.ban([Entry(net("198.51.100.7/32"), None)], time.time())
    assert f"addr-set-{JAIL}" in harness.server.nft("list", "ruleset")
    firewall.remove()
    assert f"addr-set-{JAIL}" not in harness.server.nft("list", "ruleset")


def test_a_jail_with_a_bantime_is_refused(harness: Fail2banHarness) -> None:
    """fail2ban would expire bans that lappguard still holds (the reset restores -1)."""
    harness.server.client("set", JAIL, "bantime", "600")
    with pytest.raises(FirewallError, match="bantime 600"):
        harness.open().ban([Entry(net("198.51.100.7/32"), None)], time.time())


def test_a_missing_jail_is_named(harness: Fail2banHarness) -> None:
    firewall = Fail2banFirewall(str(harness.server.socket), "no-such-jail", TIMEOUT)
    with pytest.raises(JailMissing, match="no jail 'no-such-jail'"):
        firewall.ban([Entry(net("198.51.100.7/32"), None)], time.time())
    assert not firewall.intact()
    firewall.remove()  # nothing to remove is not an error


def test_no_server_at_all_is_a_firewall_error(tmp_path: Path) -> None:
    firewall = Fail2banFirewall(str(tmp_path / "fail2ban.sock"), JAIL, TIMEOUT)
    with pytest.raises(FirewallError, match="no fail2ban-server socket"):
        firewall.listed()

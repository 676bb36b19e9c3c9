"""ipset backend on the real kernel, inside throw-away network namespaces: the contract with
real packets, one ``ipset restore`` a change, full sets named, and sync by swap."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from conftest import require_program, require_root
from contract_firewall import (
    FirewallContract,
    NamespaceHarness,
    NativeExpiryContract,
    attacker_networks,
    distinct_networks,
    expect_dropped,
    net,
)
from namespaces import in_namespace

import agent.firewall.ipset as ipset_module
from agent.firewall import FirewallError, open_firewall
from agent.firewall.base import Entry
from agent.firewall.ipset import IpsetFirewall


class IpsetHarness(NamespaceHarness):
    def open(self, **options: object) -> IpsetFirewall:
        return self.opened(IpsetFirewall.from_options(options, Path("/nonexistent")))

    def lose(self) -> None:
        for program in ("iptables", "ip6tables"):
            self.run(program, "-F", "INPUT")
        self.run("ipset", "destroy")

    def broken(self) -> IpsetFirewall:
        return self.open(ipset="/nonexistent/ipset")

    def run(self, *argv: str) -> str:
        return in_namespace(self.pair.server, *argv)


@pytest.fixture
def harness() -> Iterator[IpsetHarness]:
    require_root()
    require_program("ipset")
    require_program("iptables")
    with IpsetHarness() as harness:
        yield harness


class TestIpsetContract(FirewallContract, NativeExpiryContract):
    pass


@pytest.fixture
def restores(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The argv of every ``ipset restore`` the backend runs (they still run)."""
    seen: list[list[str]] = []
    real = ipset_module.run_tool

    def spy(
        argv: Sequence[str], stdin: str | None = None, *, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        if "restore" in argv:
            seen.append(list(argv))
        return real(argv, stdin, check=check)

    monkeypatch.setattr(ipset_module, "run_tool", spy)
    return seen


def test_one_rule_per_family_first_in_input(harness: IpsetHarness) -> None:
    harness.run("iptables", "-A", "INPUT", "-j", "ACCEPT")  # an admin's rule that accepts all
    firewall = harness.open()
    v4, v6 = attacker_networks(harness.pair)
    firewall.ban([Entry(v4, None)], time.time())
    firewall.sync([Entry(v4, None), Entry(v6, None)], time.time())
    rule = "-A INPUT -m set --match-set lappguard{} src -j DROP"
    v4_rules = harness.run("iptables", "-S", "INPUT").splitlines()[1:]
    assert v4_rules == [rule.format(4), "-A INPUT -j ACCEPT"]
    assert harness.run("ip6tables", "-S", "INPUT").splitlines()[1:] == [rule.format(6)]
    expect_dropped(harness, True)
    expect_dropped(harness, True, v6=True)


def test_100k_entries_are_one_restore(harness: IpsetHarness, restores: list[list[str]]) -> None:
    firewall = harness.open()
    firewall.ban([Entry(net("198.51.100.1/32"), None)], time.time())  # installs sets and rules
    restores.clear()
    now = time.time()
    entries = [Entry(network, now + 600) for network in distinct_networks(100_000)]
    firewall.ban(entries, now)
    assert len(restores) == 1
    firewall.sync(entries, now)
    assert len(restores) == 2
    assert firewall.listed() == {entry.network for entry in entries}


def test_a_full_set_is_named(harness: IpsetHarness) -> None:
    firewall = harness.open(maxelem=3)
    now = time.time()
    entries = [Entry(net(f"192.0.2.{i}/32"), None) for i in range(5)]
    with pytest.raises(FirewallError, match=r"^set lappguard4 is full \(maxelem 3\)$"):
        firewall.ban(entries, now)
    with pytest.raises(FirewallError, match=r"^set lappguard4 is full \(maxelem 3\)$"):
        firewall.sync(entries, now)
    assert len(firewall.listed()) == 3  # restore keeps the lines before the failing one


def test_a_failed_sync_leaves_the_live_sets_as_they_were(harness: IpsetHarness) -> None:
    firewall = harness.open(maxelem=3)
    v4, v6 = attacker_networks(harness.pair)
    firewall.sync([Entry(v4, None), Entry(v6, None)], time.time())
    too_many = [Entry(net(f"192.0.2.{i}/32"), None) for i in range(5)]
    with pytest.raises(FirewallError, match="is full"):
        firewall.sync(too_many, time.time())
    assert firewall.listed() == {v4, v6}
    expect_dropped(harness, True)
    firewall.sync([Entry(v4, None)], time.time())  # the leftover temporary sets go
    assert "lappguard4_new" not in harness.run("ipset", "-n", "list")


def test_a_maxelem_change_is_not_intact_and_sync_applies_it(harness: IpsetHarness) -> None:
    v4, _ = attacker_networks(harness.pair)
    harness.open(maxelem=3).ban([Entry(v4, None)], time.time())
    firewall = harness.open(maxelem=5)
    assert not firewall.intact()
    firewall.sync([Entry(v4, None)], time.time())
    assert firewall.intact()
    assert "maxelem 5 " in harness.run("ipset", "-t", "list", "lappguard4")
    expect_dropped(harness, True)


def test_a_flushed_input_chain_alone_is_a_loss(harness: IpsetHarness) -> None:
    firewall = harness.open()
    v4, _ = attacker_networks(harness.pair)
    firewall.ban([Entry(v4, None)], time.time())
    harness.run("iptables", "-F", "INPUT")
    assert not firewall.intact()
    firewall.sync([Entry(v4, None)], time.time())
    assert firewall.intact()
    expect_dropped(harness, True)


def test_a_ban_after_a_loss_fails_instead_of_hiding_it(harness: IpsetHarness) -> None:
    firewall = harness.open()
    v4, v6 = attacker_networks(harness.pair)
    firewall.ban([Entry(v4, None)], time.time())
    harness.lose()
    with pytest.raises(FirewallError, match="does not exist"):
        firewall.ban([Entry(v6, None)], time.time())
    assert not firewall.intact()


def test_timeouts_are_capped_at_ipsets_limit(harness: IpsetHarness) -> None:
    firewall = harness.open()
    now = time.time()
    firewall.ban([Entry(net("192.0.2.1/32"), now + 10**9)], now)
    (added,) = [line for line in harness.run("ipset", "save", "lappguard4").splitlines()
                if line.startswith("add ")]  # fmt: skip
    assert int(added.split()[-1]) in (firewall.max_timeout - 1, firewall.max_timeout)
    with pytest.raises(subprocess.CalledProcessError):  # one second more is out of range
        too_long = str(firewall.max_timeout + 1)
        harness.run("ipset", "add", "lappguard4", "192.0.2.2", "timeout", too_long)


def test_the_registry_opens_it() -> None:
    firewall = open_firewall("ipset", {"maxelem": 7}, Path("/nonexistent"))
    assert isinstance(firewall, IpsetFirewall)
    assert firewall.maxelem == 7


def test_a_too_long_set_prefix_is_refused() -> None:
    with pytest.raises(ValueError, match="too long"):
        IpsetFirewall(set_prefix="x" * 30)

"""nftables backend on the real kernel, inside throw-away network namespaces.

The contract runs twice, through libnftables in-process and through ``nft -j -f -``. The
other tests check what only nftables promises: the ruleset nft itself prints, one run for
100,000 elements, batches that the kernel rejects or that die with nft changing nothing,
the kernel's timeout limit, and losses that a plain structure check would miss.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
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

from agent.firewall import FirewallError, open_firewall
from agent.firewall.base import Entry
from agent.firewall.libnftables import Libnftables
from agent.firewall.nftables import (
    SETS,
    Layout,
    NftablesFirewall,
    PipeRunner,
    Runner,
    open_runner,
)

MODES = ("library", "pipe")


class NftHarness(NamespaceHarness):
    def __init__(self, mode: str) -> None:
        self.mode = mode

    def open(self, **options: object) -> NftablesFirewall:
        options = {"mode": self.mode, **options}
        return self.opened(NftablesFirewall.from_options(options, Path("/nonexistent")))

    def lose(self) -> None:
        self.nft("flush", "ruleset")

    def broken(self) -> NftablesFirewall:
        return self.open(nft="/nonexistent/nft", library="/nonexistent/libnftables.so.1")

    def nft(self, *argv: str, stdin: str | None = None) -> str:
        return in_namespace(self.pair.server, "nft", *argv, stdin=stdin)


@pytest.fixture(params=MODES)
def harness(request: pytest.FixtureRequest) -> Iterator[NftHarness]:
    require_root()
    require_program("nft")
    with NftHarness(request.param) as harness:
        yield harness


class TestNftablesContract(FirewallContract, NativeExpiryContract):
    pass


class CountingRunner:
    """A real runner that counts the documents carrying a change (listings not counted)."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.changes = 0

    def run(self, document: str, terse: bool = False) -> str:
        commands = json.loads(document)["nftables"]
        self.changes += any("list" not in command for command in commands)
        return self.runner.run(document, terse)

    def close(self) -> None:
        self.runner.close()


def test_nft_prints_the_table_sets_chain_and_rules_we_built(harness: NftHarness) -> None:
    firewall = harness.open()
    v4, v6 = attacker_networks(harness.pair)
    now = time.time()
    entries = [Entry(v4, now + 3600), Entry(v6, None), Entry(net("203.0.113.0/24"), None)]
    firewall.ban([*entries, Entry(net("2001:db8::/48")), Entry(net("2001:db8:1::1/128"))], now)
    text = harness.nft("list", "ruleset")
    for line in (
        "table inet lappguard {",
        "set banned4 {\n\t\ttype ipv4_addr\n\t\tflags timeout\n",
        f"elements = {{ {v4.network_address} timeout 1h expires",
        "set banned4_nets {\n\t\ttype ipv4_addr . nf_proto\n\t\tflags interval,timeout\n",
        "elements = { 203.0.113.0/24 . ipv4 }",
        "set banned6 {\n\t\ttype ipv6_addr\n\t\tflags timeout\n\t\telements = { 2001:db8:1::1 }",
        f"set banned6_64 {{\n\t\ttype ipv6_addr\n\t\tflags timeout\n"
        f"\t\telements = {{ {v6.network_address} }}",
        "set banned6_nets {\n\t\ttype ipv6_addr . nf_proto\n\t\tflags interval,timeout\n"
        "\t\telements = { 2001:db8::/48 . ipv6 }",
        "chain prerouting {\n\t\ttype filter hook prerouting priority raw; policy accept;\n"
        "\t\tip saddr @banned4 counter packets 0 bytes 0 drop\n"
        "\t\tip saddr . meta nfproto @banned4_nets counter packets 0 bytes 0 drop\n"
        "\t\tip6 saddr @banned6 counter packets 0 bytes 0 drop\n"
        "\t\tip6 saddr & ffff:ffff:ffff:ffff:: == @banned6_64 counter packets 0 bytes 0 drop\n"
        "\t\tip6 saddr . meta nfproto @banned6_nets counter packets 0 bytes 0 drop\n\t}",
    ):
        assert line in text, line
    expect_dropped(harness, True)
    dropped = dropped_packets(harness.nft("list", "ruleset"))
    assert dropped > 0  # the SYNs of the attempt
    harness.open().ban([Entry(net("192.0.2.9/32"))], now)  # another process: a CLI
    assert dropped_packets(harness.nft("list", "ruleset")) == dropped  # counts kept


def dropped_packets(ruleset: str) -> int:
    """The IPv4 drop rule's packet counter in ``nft list ruleset`` text."""
    return int(ruleset.split("@banned4 counter packets ")[1].split()[0])


def test_a_range_someone_added_is_listed_as_networks(harness: NftHarness) -> None:
    firewall = harness.open()
    firewall.ban([Entry(net("192.0.2.1/32"), None)], time.time())
    harness.nft(
        "add", "element", "inet", "lappguard", "banned4_nets", "{ 10.0.0.1-10.0.0.6 . ipv4 }"
    )
    assert firewall.listed() == {net("192.0.2.1/32"), net("10.0.0.1/32"), net("10.0.0.2/31"),
                                 net("10.0.0.4/31"), net("10.0.0.6/32")}  # fmt: skip


def test_other_tables_are_left_alone(harness: NftHarness) -> None:
    harness.nft("add", "table", "ip", "theirs")
    harness.nft("add", "chain", "ip", "theirs", "input", "{ type filter hook input priority 0; }")
    firewall = harness.open()
    firewall.ban([Entry(net("198.51.100.1/32"), None)], time.time())
    firewall.sync([Entry(net("198.51.100.2/32"), None)], time.time())
    firewall.remove()
    assert harness.nft("list", "tables").split() == ["table", "ip", "theirs"]


@pytest.mark.parametrize("harness", ["library"], indirect=True)  # the pipe: the kill test
def test_100k_elements_are_one_nft_run(harness: NftHarness) -> None:
    runner = CountingRunner(open_runner(harness.mode))
    firewall = harness.opened(NftablesFirewall(Layout(), runner))
    firewall.ban([Entry(net("198.51.100.1/32"), None)], time.time())  # installs the table
    runner.changes = 0
    now = time.time()
    networks = distinct_networks(50_000, 4) + distinct_networks(50_000, 6)
    entries = [Entry(network, now + 600) for network in networks]
    firewall.ban(entries, now)
    assert runner.changes == 1
    firewall.sync(entries, now)
    assert runner.changes == 2
    assert firewall.listed() == {entry.network for entry in entries}


def test_a_batch_the_kernel_rejects_changes_nothing(harness: NftHarness) -> None:
    firewall = harness.open()
    v4, v6 = attacker_networks(harness.pair)
    firewall.ban([Entry(v4, None), Entry(v6, None)], time.time())
    # A valid ban of 1,000 hosts and a replacement of everything, each ending in one element
    # the kernel refuses (ERANGE: a timeout past its limit) after it took the rest.
    layout = Layout()
    bad = Entry(net("203.0.113.9/32"), time.time() + NftablesFirewall.max_timeout + 10)
    good = [Entry(network, None) for network in distinct_networks(1000)]
    adds = layout.elements("add", [*good, bad], time.time(), cap=2**40)
    for batch in (adds, layout.replace() + adds):
        with pytest.raises(FirewallError, match="Numerical result out of range"):
            firewall.runner.run(json.dumps({"nftables": batch}))
        assert firewall.listed() == {v4, v6}
        assert firewall.intact()  # the same table: replace() did not happen either
        expect_dropped(harness, True)


@pytest.mark.parametrize("harness", ["pipe"], indirect=True)
def test_nft_killed_mid_batch_leaves_the_old_or_the_new_state(harness: NftHarness) -> None:
    firewall = harness.open()
    now = time.time()
    old = [Entry(n, None) for n in distinct_networks(10)]
    new = [Entry(n, now + 600) for n in distinct_networks(100_000)[10:]]
    batch = Layout().replace() + Layout().elements("add", new, now, firewall.max_timeout)
    document = json.dumps({"nftables": batch})
    seen = set()
    for delay in (0.0, 0.3, 0.6, 1.0):  # reading, parsing, talking to the kernel, done
        firewall.sync(old, now)
        nft = subprocess.Popen(["nft", "-j", "-f", "-"], stdin=subprocess.PIPE, text=True)
        assert nft.stdin is not None
        nft.stdin.write(document)
        nft.stdin.close()
        time.sleep(delay)
        nft.send_signal(signal.SIGKILL)
        nft.wait()
        listed = firewall.listed()
        assert listed in ({e.network for e in old}, {e.network for e in new})
        seen.add(len(listed))
    print(f"states seen after a kill: {sorted(seen)} elements")


def test_max_timeout_is_the_kernels_limit(harness: NftHarness) -> None:
    firewall = harness.open()
    now = time.time()
    v4, _ = attacker_networks(harness.pair)
    firewall.ban([Entry(v4, now + 10**12)], now)  # capped to max_timeout: accepted
    listing = json.loads(harness.nft("-j", "list", "set", "inet", "lappguard", "banned4"))
    (listed,) = listing["nftables"][1]["set"]["elem"]
    assert listed["elem"]["timeout"] == firewall.max_timeout
    too_long = SETS[0].element(net("192.0.2.1/32"), firewall.max_timeout + 1)
    target = {"family": "inet", "table": "lappguard", "name": "banned4"}
    one_more = {"add": {"element": {**target, "elem": [too_long]}}}
    with pytest.raises(FirewallError, match="Numerical result out of range"):
        firewall.runner.run(json.dumps({"nftables": [one_more]}))


def test_a_reload_that_restores_a_saved_copy_is_a_loss(harness: NftHarness) -> None:
    firewall = harness.open()
    v4, _ = attacker_networks(harness.pair)
    firewall.ban([Entry(v4, None)], time.time())
    saved = harness.nft("list", "ruleset")  # what `nft list ruleset > nftables.conf` keeps
    harness.nft("-f", "-", stdin="flush ruleset\n" + saved)
    assert firewall.listed() == {v4}  # the same shape and content...
    assert not firewall.intact()  # ...but not the table we made: the caller re-syncs
    firewall.sync([Entry(v4, None)], time.time())
    assert firewall.intact()


def test_a_ban_after_a_loss_fails_instead_of_hiding_it(harness: NftHarness) -> None:
    firewall = harness.open()
    v4, v6 = attacker_networks(harness.pair)
    firewall.ban([Entry(v4, None)], time.time())
    harness.lose()
    with pytest.raises(FirewallError):
        firewall.ban([Entry(v6, None)], time.time())
    assert not firewall.intact()
    firewall.sync([Entry(v4, None), Entry(v6, None)], time.time())
    assert firewall.listed() == {v4, v6}


def test_a_table_in_another_shape_is_not_intact_and_sync_rebuilds_it(harness: NftHarness) -> None:
    v4, _ = attacker_networks(harness.pair)
    harness.open(priority=0).ban([Entry(v4, None)], time.time())
    firewall = harness.open()  # the priority option changed since
    assert not firewall.intact()
    firewall.sync([Entry(v4, None)], time.time())
    assert firewall.intact()
    assert "priority raw;" in harness.nft("list", "chain", "inet", "lappguard", "prerouting")


def test_errors_carry_nfts_own_line(harness: NftHarness) -> None:
    with pytest.raises(FirewallError, match=r"^(nft: cannot run|libnftables: cannot load)"):
        harness.broken().ban([Entry(net("192.0.2.1/32"), None)], time.time())
    runner = harness.opened(NftablesFirewall(Layout(), open_runner(harness.mode))).runner
    bad_family = {"add": {"table": {"family": "nosuch", "name": "lappguard"}}}
    with pytest.raises(FirewallError, match=r"^(nft|libnftables): .*Error: Unknown family"):
        runner.run(json.dumps({"nftables": [bad_family]}))


@pytest.mark.parametrize("harness", ["pipe"], indirect=True)
def test_permission_denied_is_nfts_own_line(harness: NftHarness, tmp_path: Path) -> None:
    setpriv = require_program("setpriv")
    nft = tmp_path / "nft"  # nft without CAP_NET_ADMIN, as an unprivileged daemon would be
    nft.write_text(
        f'#!/bin/sh\nexec {setpriv} --bounding-set=-net_admin --inh-caps=-net_admin nft "$@"\n'
    )
    nft.chmod(0o755)
    with pytest.raises(FirewallError, match=r"^nft: .*Error: .*Operation not permitted$"):
        harness.open(nft=str(nft)).ban([Entry(net("192.0.2.1/32"), None)], time.time())


def test_the_registry_opens_it() -> None:
    firewall = open_firewall("nftables", {"mode": "pipe"}, Path("/nonexistent"))
    assert isinstance(firewall, NftablesFirewall)
    assert isinstance(firewall.runner, PipeRunner)


def test_mode_chooses_the_runner() -> None:
    assert isinstance(open_runner("pipe"), PipeRunner)
    assert isinstance(open_runner("library"), Libnftables)
    assert isinstance(open_runner("auto"), Libnftables) == Libnftables.available()
    with pytest.raises(ValueError, match="mode 'fast'"):
        open_runner("fast")

"""nftables backend: a table of our own whose sets hold the bans; one JSON batch a change.

What it installs (``nft list ruleset`` shows it so)::

    table inet lappguard {
        set banned4 { type ipv4_addr; flags timeout; elements = { 192.0.2.7 timeout 1h } }
        set banned4_nets { type ipv4_addr . nf_proto; flags interval,timeout;
                           elements = { 198.51.100.0/24 . ipv4 } }
        set banned6 { type ipv6_addr; flags timeout; }
        set banned6_64 { type ipv6_addr; flags timeout; elements = { 2001:db8:0:7:: } }
        set banned6_nets { type ipv6_addr . nf_proto; flags interval,timeout; }
        chain prerouting {
            type filter hook prerouting priority raw; policy accept;
            ip saddr @banned4 counter drop
            ip saddr . meta nfproto @banned4_nets counter drop
            ip6 saddr @banned6 counter drop
            ip6 saddr & ffff:ffff:ffff:ffff:: == @banned6_64 counter drop
            ip6 saddr . meta nfproto @banned6_nets counter drop
        }
    }

Why so (bench/bans.py measures it):

- Bans mostly have one of three shapes: an IPv4 host, an IPv6 host, an IPv6 /64. Each has a
  hash set keyed on the address masked to that length: 100,000 go in within a second on an
  idle machine, and deleting one is O(1). Any other prefix goes to its family's interval set.
- The interval sets are concatenations with the packet's family. nft 1.0.6 (Debian 12)
  reads every plain interval set of the whole ruleset back from the kernel before any
  element change, anywhere: 2-4 s a ban at 100,000 elements, for every tool on the host. It
  does not read concatenations (the kernel's pipapo sets), and the family is known for
  every packet, so no unparsable header dodges the lookup (``meta l4proto`` could). Deleting
  from pipapo scans its rules (O(n) each), the reason common shapes stay out of it.
- prerouting at priority raw (-300): packets from a banned source die before conntrack keeps
  state for them and before routing, so traffic forwarded or DNATed to containers and VMs is
  dropped too, which an input chain never sees. A drop in any base chain is final whatever
  other tables accept, so the priority decides only how early, not whether.
- One batch per change: nftables applies a batch in one kernel transaction, so packets see
  the old or the new state, never a part; ``sync`` deletes and recreates the table in the
  same batch, which also repairs a table left in another shape (changed priority, an older
  layout). Counters start from zero when the table is recreated or its rules reinstalled.
- Loss: ``intact`` compares the table's kernel handle with the one we made or first saw. A
  flushed ruleset, or one reloaded from a file that holds a saved copy of our table, gives
  a new handle, and the caller re-syncs. After its first change a backend object only adds
  elements, so a ban after a loss fails (the table is gone) rather than recreating the table
  with just that ban and hiding the loss.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from agent.firewall.base import Entry, Firewall, FirewallError, Network, run_tool, with_defaults
from agent.firewall.libnftables import DEFAULT_LIBRARY, Libnftables

FAMILY = "inet"
CHAIN = "prerouting"
MODES = ("auto", "library", "pipe")


@dataclass(frozen=True)
class SetSpec:
    """One of our sets: the bans it holds and how its drop rule looks a packet up in it.

    ``prefixlen`` set: a hash set of networks of exactly that length, keyed on the source
    address masked to it. None: an interval set for every other length of the family.
    """

    name: str
    version: int
    prefixlen: int | None

    @property
    def kind(self) -> type[ipaddress.IPv4Network] | type[ipaddress.IPv6Network]:
        return ipaddress.IPv4Network if self.version == 4 else ipaddress.IPv6Network

    def declaration(self) -> dict[str, Any]:
        """The set's ``type`` and ``flags`` as nft JSON spells them (and lists them back)."""
        address = "ipv4_addr" if self.version == 4 else "ipv6_addr"
        if self.prefixlen is None:
            return {"type": [address, "nf_proto"], "flags": ["interval", "timeout"]}
        return {"type": address, "flags": ["timeout"]}

    def lookup(self) -> dict[str, Any]:
        """The drop rule's match, e.g. ``ip6 saddr & ffff:ffff:ffff:ffff:: == @banned6_64``."""
        key: Any = {"payload": {"protocol": "ip" if self.version == 4 else "ip6", "field": "saddr"}}
        if self.prefixlen is None:
            key = {"concat": [key, {"meta": {"key": "nfproto"}}]}
        elif self.prefixlen != (
            ipaddress.IPV4LENGTH if self.version == 4 else ipaddress.IPV6LENGTH
        ):
            key = {"&": [key, str(self.kind((0, self.prefixlen)).netmask)]}
        return {"match": {"op": "==", "left": key, "right": f"@{self.name}"}}

    def element(self, network: Network, timeout: int | None) -> Any:
        """``network`` as an element of this set, with its timeout when it has one."""
        value: Any = str(network.network_address)
        if self.prefixlen is None:
            if network.prefixlen != network.max_prefixlen:
                value = {"prefix": {"addr": value, "len": network.prefixlen}}
            value = {"concat": [value, "ipv4" if self.version == 4 else "ipv6"]}
        return value if timeout is None else {"elem": {"val": value, "timeout": timeout}}

    def networks(self, elements: Sequence[Any]) -> set[Network]:
        """The networks in this set's listed elements (nft prints a host as a bare address,
        a network as a prefix, and anything else someone added as a range)."""
        kind = self.kind
        found: set[Network] = set()
        for item in elements:
            value = item["elem"]["val"] if isinstance(item, dict) and "elem" in item else item
            if self.prefixlen is not None:  # strict=False: host bits someone set are ignored
                found.add(kind((value, self.prefixlen), strict=False))  # as by the lookup
                continue
            address = value["concat"][0]
            if isinstance(address, str):
                found.add(kind(address))
            elif "prefix" in address:
                found.add(kind((address["prefix"]["addr"], address["prefix"]["len"])))
            else:
                low, high = (ipaddress.ip_address(a) for a in address["range"])
                found.update(ipaddress.summarize_address_range(low, high))  # type: ignore[arg-type]
        return found


SETS = (
    SetSpec("banned4", 4, 32),
    SetSpec("banned4_nets", 4, None),
    SetSpec("banned6", 6, 128),
    SetSpec("banned6_64", 6, 64),
    SetSpec("banned6_nets", 6, None),
)


def set_for(network: Network) -> SetSpec:
    """The set that holds ``network``: the one for its exact length, else its family's
    interval set."""
    exact = [s for s in SETS if s.version == network.version and s.prefixlen == network.prefixlen]
    if exact:
        return exact[0]
    return next(s for s in SETS if s.version == network.version and s.prefixlen is None)


class Runner(Protocol):
    """Runs one nft JSON document and returns nft's JSON output (libnftables or a pipe)."""

    def run(self, document: str, terse: bool = False) -> str: ...

    def close(self) -> None: ...


class PipeRunner:
    """``nft -j -f -``: the fallback when libnftables cannot be loaded."""

    def __init__(self, nft: str = "nft") -> None:
        self.nft = nft

    def run(self, document: str, terse: bool = False) -> str:
        argv = [self.nft, "-j", *(["-t"] if terse else []), "-f", "-"]
        return run_tool(argv, document).stdout

    def close(self) -> None:
        """Nothing held between runs."""


def open_runner(mode: str, nft: str = "nft", library: str = DEFAULT_LIBRARY) -> Runner:
    """The runner ``mode`` asks for; ``auto`` is in-process when the library loads."""
    if mode not in MODES:
        raise ValueError(f"nftables mode {mode!r} is not one of {', '.join(MODES)}")
    if mode == "library" or (mode == "auto" and Libnftables.available(library)):
        return Libnftables(library)
    return PipeRunner(nft)


@dataclass(frozen=True)
class Layout:
    """Our table's name and chain priority, and the nft JSON commands that build and fill it."""

    table: str = "lappguard"
    priority: int = -300

    def install(self) -> list[dict[str, Any]]:
        """Create what is missing and set the chain's rules to ours (an idempotent prefix)."""
        chain = {"family": FAMILY, "table": self.table, "name": CHAIN}
        return [*self._objects(), {"flush": {"chain": chain}}, *self._rules()]

    def replace(self) -> list[dict[str, Any]]:
        """Delete the table whatever state it is in, and build it anew."""
        table = {"table": {"family": FAMILY, "name": self.table}}
        return [{"add": table}, {"delete": table}, *self._objects(), *self._rules()]

    def remove(self) -> list[dict[str, Any]]:
        """Delete the table; adding it first makes that work when it is already gone."""
        return self.replace()[:2]

    def elements(
        self, verb: str, entries: Sequence[Entry], now: float = 0.0, cap: float = 0.0
    ) -> list[dict[str, Any]]:
        """One ``verb`` ("add", "delete") command per set that gets entries."""
        elems: dict[SetSpec, list[Any]] = {}
        for entry in entries:
            spec = set_for(entry.network)
            elems.setdefault(spec, []).append(spec.element(entry.network, entry.timeout(now, cap)))
        return [
            {verb: {"element": {"family": FAMILY, "table": self.table, "name": spec.name,
                                "elem": elems[spec]}}}
            for spec in SETS
            if spec in elems
        ]  # fmt: skip

    def matches(self, objects: Mapping[str, Any]) -> bool:
        """Whether our objects, as a listing shows them (:func:`our_objects`), are as we build
        them: every set with its type and flags, the hooked chain, a drop rule per set."""
        sets, chain, rules = objects["sets"], objects["chain"], objects["rules"]
        for spec in SETS:
            found, wanted = sets.get(spec.name, {}), spec.declaration()
            if found.get("type") != wanted["type"]:
                return False
            if not set(wanted["flags"]) <= set(found.get("flags", ())):
                return False
        if chain is None or (chain.get("hook"), chain.get("prio")) != ("prerouting", self.priority):
            return False
        return all(
            any(spec.lookup() in rule and {"drop": None} in rule for rule in rules) for spec in SETS
        )

    def _objects(self) -> list[dict[str, Any]]:
        base = {"family": FAMILY, "table": self.table}
        chain = {
            **base, "name": CHAIN, "type": "filter", "hook": "prerouting",
            "prio": self.priority, "policy": "accept",
        }  # fmt: skip
        sets = [{"set": {**base, "name": spec.name, **spec.declaration()}} for spec in SETS]
        table = {"table": {"family": FAMILY, "name": self.table}}
        return [{"add": obj} for obj in (table, *sets, {"chain": chain})]

    def _rules(self) -> list[dict[str, Any]]:
        base = {"family": FAMILY, "table": self.table, "chain": CHAIN}
        return [
            {"add": {"rule": {**base, "expr": [spec.lookup(), {"counter": None}, {"drop": None}]}}}
            for spec in SETS
        ]


def our_objects(listing: Sequence[Mapping[str, Any]], table: str) -> dict[str, Any]:
    """Our table's handle, sets, chain and rule expressions out of a ``list`` output."""
    objects: dict[str, Any] = {"handle": None, "sets": {}, "chain": None, "rules": []}
    for item in listing:
        (kind, obj), *_ = item.items()
        if obj.get("family") != FAMILY or obj.get("table", obj.get("name")) != table:
            continue
        if kind == "table":
            objects["handle"] = obj["handle"]
        elif kind == "set":
            objects["sets"][obj["name"]] = obj
        elif kind == "chain" and obj["name"] == CHAIN:
            objects["chain"] = obj
        elif kind == "rule" and obj["chain"] == CHAIN:
            objects["rules"].append(obj["expr"])
    return objects


class NftablesFirewall(Firewall):
    """Bans as elements of our own nftables sets, every change one atomic JSON batch."""

    name = "nftables"
    #: The kernel turns an element timeout (ms) into nanoseconds and refuses (ERANGE) one of
    #: U64_MAX / NSEC_PER_MSEC ms or more (nf_msecs_to_jiffies64): 18,446,744,073 s is the
    #: longest whole-second timeout it takes, some 584 years. nft passes JSON seconds through
    #: as ms; test_firewall_nftables pins both sides of the limit on the running kernel.
    max_timeout = 18_446_744_073
    expires_natively = True
    options = {
        "table": (str, "lappguard"),
        "priority": (int, -300),
        "mode": (str, "auto"),
        "nft": (str, "nft"),
        "library": (str, DEFAULT_LIBRARY),
    }

    def __init__(self, layout: Layout | None = None, runner: Runner | None = None) -> None:
        self.layout = layout or Layout()
        self.runner = runner or open_runner("auto")
        #: The kernel handle of our table once we made or saw it; None before.
        self._handle: int | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any], state_dir: Path) -> NftablesFirewall:
        values = with_defaults(cls.options, options)
        layout = Layout(values["table"], values["priority"])
        return cls(layout, open_runner(values["mode"], values["nft"], values["library"]))

    def ban(self, entries: Sequence[Entry], now: float) -> None:
        commands = self.layout.elements("add", entries, now, self.max_timeout)
        if not commands:
            return
        if self._handle is None and not self.intact():  # intact() adopts a table as ours
            self._run(self.layout.install() + commands)
            self._handle = self._objects()["handle"]
        else:
            self._run(commands)

    def unban(self, networks: Sequence[Network]) -> None:
        # Deleting an absent element fails the batch, and nft 1.0.6 has no "destroy": adding
        # each one first (a no-op when present) in the same batch makes the delete safe.
        entries = [Entry(network) for network in networks]
        commands = self.layout.elements("add", entries) + self.layout.elements("delete", entries)
        if not commands:
            return
        try:
            self._run(commands)
        except FirewallError:
            if self._objects()["handle"] is not None:
                raise  # with our table gone there is nothing left to unban

    def sync(self, entries: Sequence[Entry], now: float) -> None:
        elements = self.layout.elements("add", entries, now, self.max_timeout)
        self._run(self.layout.replace() + elements)
        self._handle = self._objects()["handle"]

    def listed(self) -> set[Network]:
        target = {"family": FAMILY, "name": self.layout.table}
        try:
            listing = self._list({"table": target})
        except FirewallError:
            if self._objects()["handle"] is not None:
                raise
            return set()
        sets = our_objects(listing, self.layout.table)["sets"]
        return set().union(
            *(spec.networks(sets.get(spec.name, {}).get("elem", ())) for spec in SETS)
        )

    def intact(self) -> bool:
        try:
            objects = self._objects()
        except FirewallError:
            return False
        handle = objects["handle"]
        if handle is None or (self._handle is not None and handle != self._handle):
            return False
        if not self.layout.matches(objects):
            return False
        self._handle = handle
        return True

    def remove(self) -> None:
        self._run(self.layout.remove())
        self._handle = None

    def close(self) -> None:
        self.runner.close()

    def _run(self, commands: list[dict[str, Any]]) -> None:
        self.runner.run(json.dumps({"nftables": commands}, separators=(",", ":")))

    def _list(self, what: dict[str, Any], terse: bool = False) -> list[dict[str, Any]]:
        output = self.runner.run(json.dumps({"nftables": [{"list": what}]}), terse)
        return json.loads(output)["nftables"] if output.strip() else []

    def _objects(self) -> dict[str, Any]:
        """Our objects from a terse listing of the ruleset: no set elements are read, so this
        stays cheap with 100,000 bans (listing just our table would read them all)."""
        return our_objects(self._list({"ruleset": None}, terse=True), self.layout.table)

"""nftables backend: a table of our own whose two sets hold the bans; one JSON batch a change.

What it installs (``nft list ruleset`` shows it so)::

    table inet lappguard {
        set banned4 { type ipv4_addr . nf_proto; flags interval,timeout;
                      elements = { 192.0.2.7 . ipv4 timeout 1h, 198.51.100.0/24 . ipv4 } }
        set banned6 { type ipv6_addr . nf_proto; flags interval,timeout; ... }
        chain prerouting {
            type filter hook prerouting priority raw; policy accept;
            ip saddr . meta nfproto @banned4 counter drop
            ip6 saddr . meta nfproto @banned6 counter drop
        }
    }

Why so:

- Sets keyed on address . family. nft 1.0.6 (Debian 12) reads the whole content of every plain
  interval set in the ruleset from the kernel before any element add or delete, anywhere:
  with 100,000 bans that cost 2-4 s per ban, ours and any other tool's. A concatenation is
  stored by the kernel's pipapo backend, which nft does not read back: a ban into a full set
  takes milliseconds. The second field, the packet's family, is known for every packet, so
  no malformed header makes the lookup fail (``meta l4proto`` could).
- prerouting at priority raw (-300): packets from a banned source die before conntrack keeps
  state for them and before routing, so traffic forwarded or DNATed to containers and VMs is
  dropped too, which an input chain never sees. A drop in any base chain is final whatever
  other tables accept, so the priority decides only how early, not whether.
- One batch per change: nftables applies a batch in one kernel transaction, so packets see
  the old or the new state, never a part; ``sync`` deletes and recreates the table in the
  same batch, which also repairs a table left in another shape (changed priority, an older
  layout). Counters start from zero when the table is recreated.
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
    """One set per address family and the packet fields its drop rule looks up."""

    version: int
    name: str
    addr_type: str
    protocol: str  # nft payload protocol holding saddr
    nfproto: str  # the family as the set's second field spells it


SETS = (
    SetSpec(4, "banned4", "ipv4_addr", "ip", "ipv4"),
    SetSpec(6, "banned6", "ipv6_addr", "ip6", "ipv6"),
)


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
        """One ``verb`` ("add", "delete") command per family that has entries."""
        commands = []
        for spec in SETS:
            elems = [
                element(entry.network, spec, entry.timeout(now, cap))
                for entry in entries
                if entry.network.version == spec.version
            ]
            if elems:
                target = {"family": FAMILY, "table": self.table, "name": spec.name}
                commands.append({verb: {"element": {**target, "elem": elems}}})
        return commands

    def matches(self, objects: Mapping[str, Any]) -> bool:
        """Whether our objects, as a listing shows them (:func:`our_objects`), are as we build
        them: both sets with their key and flags, the hooked chain, a drop rule per set."""
        sets, chain, rules = objects["sets"], objects["chain"], objects["rules"]
        for spec in SETS:
            found = sets.get(spec.name)
            if found is None or found.get("type") != [spec.addr_type, "nf_proto"]:
                return False
            if not {"interval", "timeout"} <= set(found.get("flags", ())):
                return False
        if chain is None or (chain.get("hook"), chain.get("prio")) != ("prerouting", self.priority):
            return False
        return all(
            any(_match(spec) in rule and {"drop": None} in rule for rule in rules) for spec in SETS
        )

    def _objects(self) -> list[dict[str, Any]]:
        base = {"family": FAMILY, "table": self.table}
        chain = {
            **base, "name": CHAIN, "type": "filter", "hook": "prerouting",
            "prio": self.priority, "policy": "accept",
        }  # fmt: skip
        sets = [
            {"set": {**base, "name": spec.name, "type": [spec.addr_type, "nf_proto"],
                     "flags": ["interval", "timeout"]}}
            for spec in SETS
        ]  # fmt: skip
        table = {"table": {"family": FAMILY, "name": self.table}}
        return [{"add": obj} for obj in (table, *sets, {"chain": chain})]

    def _rules(self) -> list[dict[str, Any]]:
        base = {"family": FAMILY, "table": self.table, "chain": CHAIN}
        return [
            {"add": {"rule": {**base, "expr": [_match(spec), {"counter": None}, {"drop": None}]}}}
            for spec in SETS
        ]


def _match(spec: SetSpec) -> dict[str, Any]:
    """``ip saddr . meta nfproto @banned4``: the lookup in a drop rule."""
    key = [{"payload": {"protocol": spec.protocol, "field": "saddr"}}, {"meta": {"key": "nfproto"}}]
    return {"match": {"op": "==", "left": {"concat": key}, "right": f"@{spec.name}"}}


def element(network: Network, spec: SetSpec, timeout: int | None) -> Any:
    """A set element in nft JSON: ``addr . family``, with its timeout when it has one."""
    address = str(network.network_address)
    if network.prefixlen != network.max_prefixlen:
        address = {"prefix": {"addr": address, "len": network.prefixlen}}
    value = {"concat": [address, spec.nfproto]}
    return value if timeout is None else {"elem": {"val": value, "timeout": timeout}}


def networks_of(elements: Sequence[Any], spec: SetSpec) -> set[Network]:
    """The networks in a listed set's elements (nft prints a host as a bare address, a
    network as a prefix, and anything else someone added as a range)."""
    kind = ipaddress.IPv4Network if spec.version == 4 else ipaddress.IPv6Network
    found: set[Network] = set()
    for item in elements:
        value = item["elem"]["val"] if isinstance(item, dict) and "elem" in item else item
        address = value["concat"][0]
        if isinstance(address, str):
            found.add(kind(address))
        elif "prefix" in address:
            found.add(kind((address["prefix"]["addr"], address["prefix"]["len"])))
        else:
            low, high = (ipaddress.ip_address(a) for a in address["range"])
            found.update(ipaddress.summarize_address_range(low, high))  # type: ignore[arg-type]
    return found


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
        if self._handle is None:
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
        return set().union(*(networks_of(sets.get(s.name, {}).get("elem", ()), s) for s in SETS))

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

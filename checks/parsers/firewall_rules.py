"""The firewall model (chains of rules over address and port sets) and its ONE interpreter.

Every source format (nft JSON, nftables.conf text, iptables-save) is turned into nft
JSON-like statements and read here, so all three mean the same thing. Anything not
understood makes answers conservative: such a rule may accept (more sources reach a port)
and never counts as dropping.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

FAMILIES = ("ipv4", "ipv6")
_BITS = {"ipv4": 32, "ipv6": 128}
#: nft table families and the IP families their chains see.
_TABLE_FAMILIES = {"ip": ("ipv4",), "ip6": ("ipv6",), "inet": ("ipv4", "ipv6")}
MAX_JUMPS = 16
_PORT_NAMES = {"ssh": 22, "http": 80, "https": 443, "postgresql": 5432, "domain": 53}
_PROTOCOL_NUMBERS = {1: "icmp", 6: "tcp", 17: "udp", 58: "ipv6-icmp", 132: "sctp"}
_PROTOCOL_ALIASES = {"icmpv6": "ipv6-icmp"}
_L4_PAYLOADS = ("tcp", "udp", "udplite", "sctp", "dccp", "icmp", "icmpv6", "esp", "ah", "igmp")
_HARMLESS = ("counter", "log", "notrack", "mangle", "comment")
_HARMLESS_XT = ("comment", "LOG", "NFLOG")
_VERDICTS = ("accept", "drop", "reject", "jump", "goto", "return", "continue", "queue")
LOOPBACK = ("127.0.0.0/8", "::1/128")


# --- address and port sets -------------------------------------------------------------------


@dataclass(frozen=True)
class AddressSet:
    """Sets of IPv4 and IPv6 addresses as sorted, disjoint integer intervals."""

    v4: tuple[tuple[int, int], ...] = ()
    v6: tuple[tuple[int, int], ...] = ()

    @staticmethod
    def everything(family: str) -> AddressSet:
        span = ((0, 2 ** _BITS[family] - 1),)
        return AddressSet(v4=span) if family == "ipv4" else AddressSet(v6=span)

    @staticmethod
    def of(*networks: str | ipaddress.IPv4Network | ipaddress.IPv6Network) -> AddressSet:
        result = AddressSet()
        for item in networks:
            net = ipaddress.ip_network(item, strict=False)
            span = ((int(net.network_address), int(net.broadcast_address)),)
            result = result | (AddressSet(v4=span) if net.version == 4 else AddressSet(v6=span))
        return result

    @staticmethod
    def between(first: str, last: str) -> AddressSet:
        low, high = ipaddress.ip_address(first), ipaddress.ip_address(last)
        span = ((int(low), int(high)),)
        return AddressSet(v4=span) if low.version == 4 else AddressSet(v6=span)

    def only(self, family: str) -> AddressSet:
        return AddressSet(v4=self.v4) if family == "ipv4" else AddressSet(v6=self.v6)

    def __or__(self, other: AddressSet) -> AddressSet:
        return AddressSet(_merge(self.v4 + other.v4), _merge(self.v6 + other.v6))

    def __and__(self, other: AddressSet) -> AddressSet:
        return AddressSet(_intersect(self.v4, other.v4), _intersect(self.v6, other.v6))

    def __sub__(self, other: AddressSet) -> AddressSet:
        return self & other.complement()

    def complement(self) -> AddressSet:
        return AddressSet(_invert(self.v4, 32), _invert(self.v6, 128))

    def __bool__(self) -> bool:
        return bool(self.v4 or self.v6)

    def covers(self, other: AddressSet) -> bool:
        return not (other - self)

    def networks(self) -> list[str]:
        """The set as CIDR blocks, for evidence."""
        found: list[str] = []
        for spans, cls in ((self.v4, ipaddress.IPv4Address), (self.v6, ipaddress.IPv6Address)):
            for low, high in spans:
                found.extend(str(n) for n in ipaddress.summarize_address_range(cls(low), cls(high)))
        return found

    def __str__(self) -> str:
        nets = self.networks()
        shown = ", ".join(nets[:8]) + (f" (+{len(nets) - 8} more)" if len(nets) > 8 else "")
        return shown or "nothing"


def _merge(spans: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
    merged: list[list[int]] = []
    for low, high in sorted(spans):
        if merged and low <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    return tuple((a, b) for a, b in merged)


def _intersect(a: tuple[tuple[int, int], ...], b: tuple[tuple[int, int], ...]):
    found = []
    for low1, high1 in a:
        for low2, high2 in b:
            low, high = max(low1, low2), min(high1, high2)
            if low <= high:
                found.append((low, high))
    return _merge(tuple(found))


def _invert(spans: tuple[tuple[int, int], ...], bits: int) -> tuple[tuple[int, int], ...]:
    found, start = [], 0
    for low, high in spans:
        if low > start:
            found.append((start, low - 1))
        start = high + 1
    if start <= 2**bits - 1:
        found.append((start, 2**bits - 1))
    return tuple(found)


def _port_spans(spans: Collection[tuple[int, int]], negate: bool) -> tuple[tuple[int, int], ...]:
    merged = _merge(tuple(spans))
    return _invert(merged, 16) if negate else merged


# --- the model ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """What one rule means for a NEW incoming connection."""

    where: str
    families: frozenset[str] = frozenset(FAMILIES)
    sources: AddressSet | None = None  # None: any source
    protocols: frozenset[str] | None = None  # None: any protocol
    ports: tuple[tuple[int, int], ...] | None = None  # destination ports; None: any
    new_ok: bool = True  # False: only matches established/related/invalid traffic
    unknown: tuple[str, ...] = ()  # conditions not understood
    verdict: str | None = None
    target: str | None = None

    @property
    def exact(self) -> bool:
        return not self.unknown

    def restricts(self, family: str) -> bool:
        """True when a known condition limits which new packets of ``family`` match."""
        if self.protocols is not None or self.ports is not None:
            return True
        return self.sources is not None and not self.sources.covers(AddressSet.everything(family))

    def matches(self, family: str, protocol: str, port: int) -> bool:
        if family not in self.families or not self.new_ok:
            return False
        if self.protocols is not None and protocol not in self.protocols:
            return False
        return self.ports is None or any(low <= port <= high for low, high in self.ports)


@dataclass
class Chain:
    family: str  # table family: ip, ip6, inet
    table: str
    name: str
    hook: str | None = None
    policy: str = "accept"
    rules: list[Rule] = field(default_factory=list)
    where: str = ""

    @property
    def label(self) -> str:
        base = f" (hook {self.hook}, policy {self.policy})" if self.hook else ""
        return f"table {self.family} {self.table} chain {self.name}{base}"


@dataclass
class Ruleset:
    """One source of rules (one command's output or one file)."""

    source: str
    chains: dict[tuple[str, str, str], Chain] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def input_chains(self, family: str) -> list[Chain]:
        return [
            c
            for c in self.chains.values()
            if c.hook == "input" and family in _TABLE_FAMILIES.get(c.family, ())
        ]

    def _target(self, chain: Chain, name: str | None) -> Chain | None:
        return self.chains.get((chain.family, chain.table, name or ""))

    def default_deny(self, family: str) -> tuple[bool, str]:
        """Whether some input base chain drops by default, and why (or why not)."""
        chains = self.input_chains(family)
        if not chains:
            return False, f"{self.source}: no input chain for {family}"
        reasons = []
        for chain in chains:
            decision, where = self._decide(chain, family, 0)
            if decision is None:
                decision, where = chain.policy, f"policy {chain.policy}"
            text = f"{self.source}: {chain.label}: {where}"
            if decision in ("drop", "reject"):
                return True, text
            reasons.append(text)
        return False, "; ".join(reasons)

    def _decide(self, chain: Chain, family: str, depth: int) -> tuple[str | None, str]:
        """The verdict a rule gives to every new packet of ``family``, if one does."""
        if depth > MAX_JUMPS:
            return "accept", f"jumps nested deeper than {MAX_JUMPS}"
        for rule in chain.rules:
            if family not in rule.families or not rule.new_ok or rule.restricts(family):
                continue
            if not rule.exact:
                if rule.verdict in ("accept", "queue"):
                    why = ", ".join(rule.unknown)
                    return "accept", f"{rule.where} may accept any packet (not understood: {why})"
                continue
            if rule.verdict in ("accept", "queue"):
                return "accept", f"{rule.where} accepts every packet"
            if rule.verdict in ("drop", "reject"):
                return rule.verdict, f"{rule.where} {rule.verdict}s every packet left"
            if rule.verdict in ("jump", "goto"):
                target = self._target(chain, rule.target)
                if target is None:
                    continue
                decision, where = self._decide(target, family, depth + 1)
                if decision is not None or rule.verdict == "goto":
                    return decision, where
            if rule.verdict == "return":
                return None, ""
        return None, ""

    def accepted(self, family: str, port: int, protocol: str = "tcp") -> AddressSet:
        """Sources that may open ``protocol``/``port`` (all of them when nothing filters)."""
        result = AddressSet.everything(family)
        for chain in self.input_chains(family):
            everyone = AddressSet.everything(family)
            accepted, rest = self._flow(chain, family, protocol, port, everyone, 0)
            if chain.policy == "accept":
                accepted = accepted | rest
            result = result & accepted
        return result

    def _flow(
        self,
        chain: Chain,
        family: str,
        protocol: str,
        port: int,
        candidates: AddressSet,
        depth: int,
    ) -> tuple[AddressSet, AddressSet]:
        """(sources accepted, sources that fall through or return) for packets entering."""
        if depth > MAX_JUMPS:
            return candidates, candidates
        accepted, remaining, returned = AddressSet(), candidates, AddressSet()
        for rule in chain.rules:
            if not remaining or not rule.matches(family, protocol, port):
                continue
            sources = AddressSet.everything(family) if rule.sources is None else rule.sources
            hit = remaining & sources
            if not hit:
                continue
            verdict = rule.verdict
            if verdict in ("accept", "queue"):
                accepted = accepted | hit
            elif verdict in ("jump", "goto"):
                target = self._target(chain, rule.target)
                if target is None:
                    continue
                sub_accepted, sub_rest = self._flow(target, family, protocol, port, hit, depth + 1)
                accepted = accepted | sub_accepted
                if verdict == "goto":
                    returned = returned | sub_rest
                elif rule.exact:
                    remaining = (remaining - hit) | sub_rest
                    continue
            elif verdict == "return":
                returned = returned | hit
            elif verdict not in ("drop", "reject"):
                continue  # no verdict (counter, log): the packet goes on
            if rule.exact:
                remaining = remaining - hit
        return accepted, remaining | returned


@dataclass
class FirewallState:
    """Every ruleset found on the host, and what could not be read."""

    rulesets: list[Ruleset] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    live: bool = True

    @property
    def loaded(self) -> bool:
        return any(r.chains for r in self.rulesets)

    def default_deny(self, family: str) -> tuple[bool, list[str]]:
        """A packet must pass every input chain, so one default-deny chain is enough."""
        reasons = []
        for ruleset in self.rulesets:
            deny, reason = ruleset.default_deny(family)
            if deny:
                return True, [reason]
            reasons.append(reason)
        return False, reasons

    def accepted(self, family: str, port: int, protocol: str = "tcp") -> AddressSet:
        """Sources that may open the port: the intersection over every ruleset's chains."""
        result = AddressSet.everything(family)
        for ruleset in self.rulesets:
            result = result & ruleset.accepted(family, port, protocol)
        return result

    @property
    def problems(self) -> list[str]:
        return [p for r in self.rulesets for p in r.problems]


# --- one interpreter for nft JSON expressions --------------------------------------------


class NamedSets:
    """Named nft sets, looked up by (family, table, name)."""

    def __init__(self) -> None:
        self.elements: dict[tuple[str, str, str], list[Any]] = {}

    def get(self, family: str, table: str, name: str) -> list[Any] | None:
        return self.elements.get((family, table, name))


def rule_from_exprs(
    exprs: list[Any], where: str, family: str, table: str, sets: NamedSets
) -> list[Rule]:
    """One rule's statements -> Rule(s); a verdict map makes one Rule per entry."""
    conditions: dict[str, Any] = {"families": frozenset(_TABLE_FAMILIES.get(family, FAMILIES))}
    unknown: list[str] = []
    verdict: tuple[str | None, str | None] = (None, None)
    expanded: list[tuple[dict[str, Any], tuple[str | None, str | None]]] = []
    for expr in exprs:
        if not isinstance(expr, dict) or len(expr) != 1:
            unknown.append(json.dumps(expr)[:80])
            continue
        ((kind, body),) = expr.items()
        if kind == "match" and isinstance(body, dict):
            _apply_match(body, conditions, unknown, family, table, sets)
        elif kind == "vmap" and isinstance(body, dict):
            expanded = _vmap_entries(body, conditions, unknown, family, table, sets)
        elif kind in _VERDICTS:
            target = body.get("target") if isinstance(body, dict) else None
            verdict = (kind, target)
        elif kind == "xt" and isinstance(body, dict) and body.get("name") in _HARMLESS_XT:
            continue
        elif kind in ("xt", "unknown"):
            name = body.get("name") if isinstance(body, dict) else body
            unknown.append(f"{kind} {name}")
        elif kind not in _HARMLESS:
            unknown.append(kind)
    if expanded:
        return [_make_rule(where, c, unknown, v) for c, v in expanded]
    return [_make_rule(where, conditions, unknown, verdict)]


def _make_rule(
    where: str,
    conditions: dict[str, Any],
    unknown: list[str],
    verdict: tuple[str | None, str | None],
) -> Rule:
    return Rule(
        where=where,
        families=conditions["families"],
        sources=conditions.get("sources"),
        protocols=conditions.get("protocols"),
        ports=conditions.get("ports"),
        new_ok=conditions.get("new_ok", True),
        unknown=tuple(unknown),
        verdict=verdict[0],
        target=verdict[1],
    )


def _vmap_entries(
    body: dict[str, Any],
    conditions: dict[str, Any],
    unknown: list[str],
    family: str,
    table: str,
    sets: NamedSets,
) -> list[tuple[dict[str, Any], tuple[str | None, str | None]]]:
    data = body.get("data")
    entries = data.get("set") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        unknown.append("verdict map")
        return [(dict(conditions), ("accept", None))]
    expanded = []
    for entry in entries:
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], dict)):
            unknown.append("verdict map entry")
            continue
        key, (kind, target) = entry[0], next(iter(entry[1].items()))
        branch = dict(conditions)
        match = {"op": "==", "left": body.get("key"), "right": key}
        _apply_match(match, branch, unknown, family, table, sets)
        jump_to = target.get("target") if isinstance(target, dict) else None
        expanded.append((branch, (kind, jump_to)))
    return expanded


def _apply_match(
    body: dict[str, Any],
    conditions: dict[str, Any],
    unknown: list[str],
    family: str,
    table: str,
    sets: NamedSets,
) -> None:
    op, left, right = body.get("op", "=="), body.get("left"), body.get("right")
    negate = op in ("!=", "ne")
    if op not in ("==", "!=", "in", "eq", "ne"):
        unknown.append(f"{_describe(left)} {op}")
        return
    key = _selector(left)
    values = _values(right, family, table, sets)
    if key is None or values is None:
        unknown.append(_describe(left))
        _narrow_by_payload(left, conditions)
        return
    if key in ("ip saddr", "ip6 saddr"):
        ip_family = "ipv4" if key == "ip saddr" else "ipv6"
        addresses = _address_set(values, ip_family)
        if addresses is None:
            unknown.append(key)
        else:
            if negate:
                addresses = AddressSet.everything(ip_family) - addresses
            _narrow(conditions, "sources", addresses, lambda a, b: a & b)
        conditions["families"] = conditions["families"] & {ip_family}
    elif key in ("tcp dport", "udp dport", "th dport", "sctp dport"):
        ports = _port_set(values)
        if ports is None:
            unknown.append(key)
        else:
            _narrow(conditions, "ports", _port_spans(ports, negate), _port_and)
        if key != "th dport":
            _narrow(conditions, "protocols", frozenset({key.split()[0]}), frozenset.__and__)
    elif key == "l4proto":
        names = frozenset(_protocol_name(v) for v in values)
        _narrow_by_payload(left, conditions)  # ip protocol / ip6 nexthdr name a family
        if "all" in names:
            return
        _narrow(conditions, "protocols", _negate_protocols(names) if negate else names, _and)
    elif key == "nfproto":
        chosen = frozenset(_NFPROTO.get(str(v), str(v)) for v in values)
        chosen = frozenset(FAMILIES) - chosen if negate else chosen
        conditions["families"] = conditions["families"] & chosen
    elif key == "ct state":
        states = {str(v) for v in values}
        allows_new = ("new" in states) != negate
        conditions["new_ok"] = conditions.get("new_ok", True) and allows_new
    elif key == "iif":
        if values == ["lo"] and not negate:
            _narrow(conditions, "sources", AddressSet.of(*LOOPBACK), lambda a, b: a & b)
        else:
            names = ",".join(map(str, values))
            unknown.append(f"input interface {'!=' if negate else '=='} {names}")


_NFPROTO = {"ipv4": "ipv4", "ipv6": "ipv6", "2": "ipv4", "10": "ipv6"}


def _and(a: frozenset[str], b: frozenset[str]) -> frozenset[str]:
    return a & b


def _port_and(a: tuple[tuple[int, int], ...], b: tuple[tuple[int, int], ...]):
    return _intersect(a, b)


def _narrow(conditions: dict[str, Any], name: str, value: Any, combine: Any) -> None:
    current = conditions.get(name)
    conditions[name] = value if current is None else combine(current, value)


_ALL_PROTOCOLS = frozenset({"tcp", "udp", "icmp", "ipv6-icmp", "sctp", "other"})


def _negate_protocols(names: frozenset[str]) -> frozenset[str]:
    return _ALL_PROTOCOLS - names


def _protocol_name(value: Any) -> str:
    if isinstance(value, int) or str(value).isdigit():
        return _PROTOCOL_NUMBERS.get(int(value), str(value))
    text = str(value).lower()
    return _PROTOCOL_ALIASES.get(text, text)


def _narrow_by_payload(left: Any, conditions: dict[str, Any]) -> None:
    """``icmp type x``, ``tcp flags syn``: the protocol is known even if the field is not."""
    payload = left.get("payload") if isinstance(left, dict) else None
    if not isinstance(payload, dict):
        return
    protocol = payload.get("protocol")
    if protocol in _L4_PAYLOADS:
        name = _protocol_name(protocol)
        _narrow(conditions, "protocols", frozenset({name}), _and)
    elif protocol in ("ip", "ip6"):
        family = "ipv4" if protocol == "ip" else "ipv6"
        conditions["families"] = conditions["families"] & {family}


def _selector(left: Any) -> str | None:
    """A normalized name for the match's left side, when it is one we understand."""
    if not isinstance(left, dict):
        return None
    if "payload" in left and isinstance(left["payload"], dict):
        protocol, name = left["payload"].get("protocol"), left["payload"].get("field")
        if (protocol, name) in (("ip", "protocol"), ("ip6", "nexthdr")):
            return "l4proto"
        if name == "saddr" and protocol in ("ip", "ip6"):
            return f"{protocol} saddr"
        if name == "dport" and protocol in ("tcp", "udp", "th", "sctp"):
            return f"{protocol} dport"
        return None
    if "meta" in left and isinstance(left["meta"], dict):
        key = left["meta"].get("key")
        if key in ("l4proto", "nfproto"):
            return key
        if key in ("iif", "iifname"):
            return "iif"
        return None
    if "ct" in left and isinstance(left["ct"], dict) and left["ct"].get("key") == "state":
        return "ct state"
    return None


def _describe(left: Any) -> str:
    if isinstance(left, dict) and len(left) == 1:
        ((kind, body),) = left.items()
        if isinstance(body, dict):
            return " ".join(str(v) for v in [kind, *body.values()])
    return json.dumps(left)[:60]


def _values(right: Any, family: str, table: str, sets: NamedSets) -> list[Any] | None:
    """The right side of a match as a flat list of elements; None when unreadable."""
    if isinstance(right, str) and right.startswith("@"):
        return sets.get(family, table, right[1:])
    if isinstance(right, dict) and "set" in right:
        return _values(right["set"], family, table, sets)
    if isinstance(right, list):
        flat: list[Any] = []
        for item in right:
            if isinstance(item, dict) and "elem" in item:
                item = item["elem"].get("val") if isinstance(item["elem"], dict) else None
            if item is None:
                return None
            flat.append(item)
        return flat
    return [right]


def _address_set(values: list[Any], family: str) -> AddressSet | None:
    result = AddressSet()
    try:
        for value in values:
            if isinstance(value, dict) and "prefix" in value:
                prefix = value["prefix"]
                result = result | AddressSet.of(f"{prefix['addr']}/{prefix['len']}")
            elif isinstance(value, dict) and "range" in value:
                result = result | AddressSet.between(*map(str, value["range"]))
            elif isinstance(value, str):
                result = result | AddressSet.of(value)
            else:
                return None
    except (ValueError, TypeError, KeyError):
        return None
    return result.only(family)


def _port_set(values: list[Any]) -> list[tuple[int, int]] | None:
    spans = []
    for value in values:
        if isinstance(value, dict) and "range" in value:
            low, high = (_port_number(v) for v in value["range"])
        else:
            low = high = _port_number(value)
        if low is None or high is None:
            return None
        spans.append((low, high))
    return spans


def _port_number(value: Any) -> int | None:
    if isinstance(value, int):
        return value
    text = str(value)
    if text.isdigit():
        return int(text)
    if text in _PORT_NAMES:
        return _PORT_NAMES[text]
    try:
        return socket.getservbyname(text, "tcp")
    except OSError:
        return None

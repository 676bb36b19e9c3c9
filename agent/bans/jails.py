"""Jails: count events per address and decide when to ban.

Two windows decide, whichever fills first:

* a jail's own window: ``maxretry`` of its events within ``findtime`` (a burst);
* the address's long window (``evidence`` in the jails file): every counted event adds its
  jail's weight for its confidence (:data:`agent.detect.events.CONFIDENCES`) to the
  address's total over ``evidence.findtime``, whichever jail and log it came from, so an
  address that probes, then injects, then guesses passwords is one attacker. A total of 1
  bans, by the jail of the event that reached it: a weight of 1 bans on the first such
  event (a ``certain`` web attack), a weight of 0.2 on the fifth within the window.

Pure logic: no firewall, no storage, no wall clock of its own. The clock is passed in (the
daemon passes real time; ``lappguard scan`` passes the time of the line being replayed), so
the same code answers "would this have been banned?" for old logs and "ban now" live.
``agent.bans.manager`` turns a ``Decision`` into a ban that holds (escalation from the ban
history, scope, allowlist, the store and the firewall).

Memory is bounded: the windows of at most ``max_tracked`` addresses are kept, the least
recently seen dropped first, so a flood of distinct addresses (each seen once) cannot grow
them; ``evicted`` counts the addresses dropped. A long window holds at most as many
entries as it takes its smallest weight to reach 1 (it bans, and empties, then).
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from agent.detect.events import CANONICAL_IPV4, CONFIDENCES, Event
from checks.params import parse_duration
from checks.yamlsource import InputError, LineDict, LineList, Problem, line_of, load_yaml
from policies import POLICY_DIR

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: Never banned: banning the host's own loopback breaks local services and the agent itself.
LOOPBACK: tuple[Network, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)
DEFAULT_JAILS_FILE = POLICY_DIR / "jails.yaml"
MAX_TRACKED = 100_000
#: Counted events a Decision names at most: the first, and the latest ones.
EVIDENCE_CAP = 8
#: What a jail may set (in a jails file, or under ``jails.NAME:`` in the agent config).
JAIL_FIELDS = ("rules", "maxretry", "findtime", "bantime", "allowlist", "description",
               "escalate", "ipv4_prefix", "ipv6_prefix", "weights")  # fmt: skip
_REQUIRED = ("rules", "maxretry", "findtime", "bantime")
_ESCALATE_KEYS = ("factor", "max", "forget", "permanent_after")
_EVIDENCE_KEYS = ("findtime", "weights")
#: The longest ban one escalation step may reach before ``max`` caps it (no float overflow).
_MAX_STEPS = 64
#: A total this close to 1 is 1 (five weights of 0.2 add up to 0.9999999999999999).
_FULL = 1.0 - 1e-9


@dataclass(frozen=True)
class Escalation:
    """Longer bans for repeat offenders: each earlier ban of the same network within
    ``forget`` seconds multiplies the ban time by ``factor``, up to ``max``; the
    ``permanent_after``-th ban (when set) never expires."""

    factor: float = 2.0
    max: float = 7 * 86400.0
    forget: float = 30 * 86400.0
    permanent_after: int | None = None

    def bantime(self, base: float, previous: int) -> float | None:
        """Seconds to ban after ``previous`` earlier bans, or None for a permanent ban."""
        if self.permanent_after is not None and previous + 1 >= self.permanent_after:
            return None
        cap = max(self.max, base)  # a jail whose own bantime exceeds the cap keeps it
        return min(cap, base * self.factor ** min(previous, _MAX_STEPS))


@dataclass(frozen=True)
class Evidence:
    """The address's long window: over ``findtime`` seconds, events add up by weight (see
    the module docstring). ``weights`` by confidence are the defaults of every jail."""

    findtime: float = 86400.0
    weights: Mapping[str, float] = field(
        default_factory=lambda: {"certain": 1.0, "likely": 0.5, "weak": 0.0}
    )


@dataclass(frozen=True)
class Jail:
    """Ban an address after ``maxretry`` events of ``rules`` within ``findtime`` seconds, or
    when its events' ``weights`` (by confidence; unset ones from :class:`Evidence`) fill
    the address's long window.

    The ban covers the address's ``ipv4_prefix`` or ``ipv6_prefix`` network: one IPv6
    attacker is usually given a whole /64, and can hop across it at will.
    """

    name: str
    rules: tuple[str, ...]  # rule ids, or shell-style globs such as "php-*"
    maxretry: int
    findtime: float
    bantime: float
    allowlist: tuple[Network, ...] = ()
    escalate: Escalation = Escalation()
    ipv4_prefix: int = 32
    ipv6_prefix: int = 64
    description: str = ""
    weights: Mapping[str, float] = field(default_factory=dict)

    def covers(self, rule_id: str) -> bool:
        return any(fnmatch.fnmatchcase(rule_id, pattern) for pattern in self.rules)

    def weight(self, confidence: str, defaults: Mapping[str, float]) -> float:
        """What one event of this confidence adds to its address's total."""
        return self.weights.get(confidence, defaults.get(confidence, 0.0))


@dataclass(frozen=True)
class Decision:
    """Ban ``ip`` from ``time`` until ``until``: ``count`` events of ``jail``'s window, or
    (``window`` set) ``count`` events weighing ``weight`` in the address's long window of
    ``window`` seconds.

    ``events`` are (time, rule) of the counted events, oldest first: the first and the
    latest, :data:`EVIDENCE_CAP` at most. ``last_line`` is the event that decided
    (``source:line: text``) and ``first_line`` the earliest counted, when the caller knows
    them (the daemon finds it among the events it keeps).
    """

    ip: str
    jail: str
    time: float
    until: float
    count: int
    rule: str  # the rule of the event that decided
    first_line: str | None = field(default=None, compare=False)
    last_line: str | None = field(default=None, compare=False)
    window: float | None = field(default=None, compare=False)
    weight: float = field(default=0.0, compare=False)
    events: tuple[tuple[float, str], ...] = field(default=(), compare=False)

    def why(self, jail: Jail) -> str:
        """The reason a person reads (``jail`` is the decision's)."""
        if self.window is None:
            return (f"{self.count} events of jail {jail.name} within {span(jail.findtime)}"
                    f" (last: {self.rule})")  # fmt: skip
        if self.count == 1:
            return f"{self.rule}: one event of jail {jail.name} is enough to ban"
        rules = ", ".join(dict.fromkeys(rule for _, rule in self.events))
        return (f"{self.count} events weighing {self.weight:.2f} within {span(self.window)}"
                f" ({rules}; last: {self.rule})")  # fmt: skip


@dataclass(frozen=True)
class JailConfig:
    jails: tuple[Jail, ...]
    allowlist: tuple[Network, ...] = ()
    evidence: Evidence = Evidence()


class _Window:
    """One address's recent events in one jail: (time, rule) each. Slotted, with a list (a
    deque costs 600 bytes even when it holds one entry)."""

    __slots__ = ("banned_until", "entries")

    def __init__(self) -> None:
        self.entries: list[tuple[float, str]] = []
        self.banned_until = float("-inf")


class _Address:
    """What is known of one address: its window in each jail it was seen by, and its long
    window, (time, weight, rule) of each counted event and their sum. One object per
    address (floods keep up to ``max_tracked`` of these), found with one look-up."""

    __slots__ = ("banned_until", "entries", "sum", "windows")

    def __init__(self) -> None:
        self.windows: dict[str, _Window] = {}
        self.entries: list[tuple[float, float, str]] = []
        self.sum = 0.0
        self.banned_until = float("-inf")


#: A rule's jail and the weight of its events by confidence (None: the rule is in no jail).
_Route = tuple[Jail, dict[str, float]] | None


class Jails:
    """Window counting for a set of jails (see the module docstring).

    Each rule counts in the first jail that covers it. Events from allowlisted addresses
    (loopback always) and events older than both windows, by ``clock``, are ignored; while
    an address is banned by a jail, its further events there are not counted again, nor
    in its long window while a ban decided on it lasts.
    """

    def __init__(
        self,
        jails: Sequence[Jail],
        *,
        clock: Callable[[], float],
        allowlist: Iterable[Network] = (),
        evidence: Evidence = Evidence(),
        max_tracked: int = MAX_TRACKED,
    ):
        self.jails = tuple(jails)
        self.evidence = evidence
        self._long = evidence.findtime
        self._clock = clock
        self._allow = LOOPBACK + tuple(allowlist)
        self._max = max_tracked
        self._addresses: OrderedDict[str, _Address] = OrderedDict()
        #: the address seen last, and its windows (attacks come in bursts)
        self._last_ip: str | None = None
        self._last = _Address()
        self._jail_of: dict[str, Jail | None] = {}
        self._routes: dict[str, _Route] = {}
        self._allowed: dict[str, bool] = {}
        self.evicted = 0

    def jail_for(self, rule_id: str) -> Jail | None:
        try:
            return self._jail_of[rule_id]
        except KeyError:
            jail = next((j for j in self.jails if j.covers(rule_id)), None)
            self._jail_of[rule_id] = jail
            return jail

    def route(self, rule_id: str) -> _Route:
        """The jail of a rule and the weight of its events by confidence."""
        try:
            return self._routes[rule_id]
        except KeyError:
            jail = self.jail_for(rule_id)
            defaults = self.evidence.weights
            found = (
                None
                if jail is None
                else (
                    jail,
                    {confidence: jail.weight(confidence, defaults) for confidence in CONFIDENCES},
                )
            )
            self._routes[rule_id] = found
            return found

    def allowed(self, ip: str, jail: Jail) -> bool:
        """Whether an address is never banned (globally, or by this jail)."""
        listed = self._allowed.get(ip)
        if listed is None:
            listed = _listed(ip, self._allow)
            if len(self._allowed) >= self._max:
                self._allowed.clear()
            self._allowed[ip] = listed
        return listed or (bool(jail.allowlist) and _listed(ip, jail.allowlist))

    def observe(self, event: Event) -> Decision | None:
        """Count one event; a Decision (naming the line that decided) when its address
        fills a window."""
        decision = self.count(event.rule, event.ip, event.time, self._clock(), event.confidence)
        if decision is None:
            return None
        where = f"{event.source}:{event.line}" if event.line else event.source
        return replace(decision, last_line=f"{where}: {event.evidence}")

    def count(
        self, rule: str, ip: str, when: float, now: float, confidence: str = "weak"
    ) -> Decision | None:
        """:meth:`observe` for an event given by its parts, at ``now`` (what ``clock``
        says): offline scans replay millions of events without building them. (Written
        for speed, as straight code: it runs once per event.)"""
        try:
            route = self._routes[rule]
        except KeyError:
            route = self.route(rule)
        if route is None:
            return None
        jail, weights = route
        weight = weights.get(confidence)
        if weight is None:
            raise ValueError(f"unknown confidence {confidence!r}")
        # most addresses are known not to be allowlisted: skip the call for them
        if (self._allowed.get(ip) is not False or jail.allowlist) and self.allowed(ip, jail):
            return None
        findtime, long = jail.findtime, self._long
        recent = when >= now - findtime
        if not (recent or (weight and when >= now - long)):
            return None  # a backlog line too old to matter
        if ip == self._last_ip:  # a burst: the same address, already the most recent
            address = self._last
        else:
            addresses = self._addresses
            address = addresses.get(ip)
            if address is None:
                address = addresses[ip] = _Address()
                if len(addresses) > self._max:
                    addresses.popitem(last=False)
                    self.evicted += 1
            else:
                addresses.move_to_end(ip)
            self._last_ip, self._last = ip, address
        if recent:
            window = address.windows.get(jail.name)
            if window is None:
                window = address.windows[jail.name] = _Window()
            elif when < window.banned_until:
                return None
            entries = window.entries
            if entries and entries[0][0] < when - findtime:
                horizon = when - findtime
                entries[:] = [entry for entry in entries if entry[0] >= horizon]
            entries.append((when, rule))
            if len(entries) >= jail.maxretry:
                return self._decide(jail, ip, address, when, rule, entries, None)
        if not weight or when < address.banned_until or when < now - long:
            return None
        counted = address.entries
        if counted and counted[0][0] < when - long:
            horizon = when - long
            counted[:] = [entry for entry in counted if entry[0] >= horizon]
            address.sum = sum(entry[1] for entry in counted)
        counted.append((when, weight, rule))
        address.sum += weight
        if address.sum < _FULL:
            return None
        counted_events = [(time, name) for time, _, name in counted]
        return self._decide(jail, ip, address, when, rule, counted_events, long)

    def _decide(
        self,
        jail: Jail,
        ip: str,
        address: _Address,
        when: float,
        rule: str,
        counted: list[tuple[float, str]],
        window: float | None,
    ) -> Decision:
        """Ban ``ip`` by ``jail``: its window there and its long window are emptied, and
        count nothing until the ban ends."""
        until = when + jail.bantime
        events = tuple(counted if len(counted) <= EVIDENCE_CAP
                       else counted[:1] + counted[1 - EVIDENCE_CAP :])  # fmt: skip
        weight = address.sum if window is not None else 0.0
        decision = Decision(ip, jail.name, when, until, len(counted), rule,
                            window=window, weight=weight, events=events)  # fmt: skip
        jail_window = address.windows.get(jail.name)
        if jail_window is not None:
            jail_window.entries.clear()
            jail_window.banned_until = until
        address.entries.clear()
        address.sum = 0.0
        address.banned_until = until
        return decision

    def standing(self, ip: str, jail: str) -> tuple[int, float]:
        """How full the windows of ``ip`` are now: its events in ``jail``'s window, and
        the weight of its long window. For ``lappguard scan``, which asks after each event
        how near a ban the address came (:mod:`agent.scan_why`); not on the daemon's path."""
        address = self._last if ip == self._last_ip else self._addresses.get(ip)
        if address is None:
            return 0, 0.0
        window = address.windows.get(jail)
        return (0 if window is None else len(window.entries)), address.sum

    @property
    def tracked(self) -> int:
        """Addresses currently held in memory, each with its windows."""
        return len(self._addresses)


def span(seconds: float) -> str:
    """``10m``, ``24h``, ``90s``: a duration as a jails file would write it."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _listed(ip: str, networks: tuple[Network, ...]) -> bool:
    """Whether ``ip`` (normalised, as Events carry it) is in one of ``networks``."""
    if CANONICAL_IPV4.fullmatch(ip):  # the usual: its number, without ipaddress (slow)
        parts = ip.split(".")
        number = int(parts[0]) << 24 | int(parts[1]) << 16 | int(parts[2]) << 8 | int(parts[3])
        return any(
            n.version == 4 and number & int(n.netmask) == int(n.network_address) for n in networks
        )
    address = ipaddress.ip_address(ip)
    return any(address.version == n.version and address in n for n in networks)


def load_jails(path: Path | str = DEFAULT_JAILS_FILE, rule_ids: Iterable[str] = ()) -> JailConfig:
    """Read a jails file; every problem (file:line:field) in one InputError.

    ``rule_ids``: the known rules; each entry of a jail's ``rules`` must match one, and no
    rule may be counted by two jails.
    """
    name = str(path)
    document = load_yaml(path)
    if not isinstance(document, LineDict) or "jails" not in document:
        raise InputError([Problem(name, 1, "", "a jails file is a mapping with a 'jails' list")])
    problems: list[Problem] = []
    for key in document:
        if key not in ("jails", "allowlist", "evidence"):
            problems.append(Problem(name, document.line_of(key), key, "unknown key"))
    allowlist = parse_networks(document, "allowlist", name, "allowlist", problems)
    evidence = _evidence(document, name, problems) if "evidence" in document else Evidence()
    entries = document["jails"]
    if not isinstance(entries, LineList):
        raise InputError([Problem(name, document.line_of("jails"), "jails", "must be a list")])
    known = sorted(set(rule_ids))
    jails: list[tuple[Jail, int]] = []
    for index, entry in enumerate(entries):
        jail = _jail(entry, name, f"jails[{index}]", entries.line_of(index), known, problems)
        if jail is not None:
            jails.append((jail, entries.line_of(index)))
    check_overlaps(jails, known, name, problems)
    if problems:
        raise InputError(problems)
    return JailConfig(tuple(jail for jail, _ in jails), allowlist, evidence)


def _jail(
    raw: Any, file: str, where: str, line: int, known: list[str], problems: list[Problem]
) -> Jail | None:
    if not isinstance(raw, LineDict):
        problems.append(Problem(file, line, where, "must be a mapping"))
        return None
    before = len(problems)
    for key in raw:
        if key != "name" and key not in JAIL_FIELDS:
            problems.append(Problem(file, raw.line_of(key), f"{where}.{key}",
                                    f"unknown key (name, {', '.join(JAIL_FIELDS)})"))  # fmt: skip
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        problems.append(Problem(file, raw.line, f"{where}.name", "is required"))
    else:
        where = f"{where}({name})"
    fields = parse_jail_fields(raw, file, where, problems, known)
    for key in missing_fields(raw):
        hint = " (e.g. 10m)" if key in ("findtime", "bantime") else ""
        problems.append(Problem(file, raw.line, f"{where}.{key}", "is required" + hint))
    if len(problems) != before:
        return None
    return Jail(name=name, **fields)


def parse_jail_fields(
    raw: LineDict, file: str, where: str, problems: list[Problem], known: Sequence[str] = ()
) -> dict[str, Any]:
    """The jail fields present in ``raw``, checked and converted (unknown keys are the
    caller's concern); each bad one adds a problem and is left out."""
    fields: dict[str, Any] = {}
    if "rules" in raw:
        rules = raw["rules"]
        if not isinstance(rules, list) or not rules or not all(isinstance(r, str) for r in rules):
            problems.append(
                Problem(file, raw.line_of("rules"), f"{where}.rules", "a list of rule ids or globs")
            )
        else:
            for index, pattern in enumerate(rules):
                if known and not fnmatch.filter(known, pattern):
                    problems.append(Problem(file, line_of(rules, index),
                                            f"{where}.rules[{index}]", "no such rule"))  # fmt: skip
            fields["rules"] = tuple(rules)
    if "maxretry" in raw:
        value = _whole(raw, "maxretry", 1, 1_000_000, file, where, problems)
        if value is not None:
            fields["maxretry"] = value
    for key in ("findtime", "bantime"):
        if key in raw:
            value = _duration(raw, key, file, f"{where}.{key}", problems)
            if value is not None:
                fields[key] = value
    if "allowlist" in raw:
        fields["allowlist"] = parse_networks(raw, "allowlist", file, f"{where}.allowlist", problems)
    if "description" in raw:
        fields["description"] = str(raw["description"])
    for key, top in (("ipv4_prefix", 32), ("ipv6_prefix", 128)):
        if key in raw:
            value = _whole(raw, key, 1, top, file, where, problems)
            if value is not None:
                fields[key] = value
    if "escalate" in raw:
        escalation = _escalation(raw, file, f"{where}.escalate", problems)
        if escalation is not None:
            fields["escalate"] = escalation
    if "weights" in raw:
        weights = _weights(raw, file, f"{where}.weights", problems)
        if weights is not None:
            fields["weights"] = weights
    return fields


def _evidence(document: LineDict, file: str, problems: list[Problem]) -> Evidence:
    """The ``evidence`` section: the long window and the default weights."""
    section = document["evidence"]
    if not isinstance(section, LineDict):
        problems.append(Problem(file, document.line_of("evidence"), "evidence",
                                f"a mapping of {', '.join(_EVIDENCE_KEYS)}"))  # fmt: skip
        return Evidence()
    for key in section:
        if key not in _EVIDENCE_KEYS:
            problems.append(Problem(file, section.line_of(key), f"evidence.{key}",
                                    f"unknown key ({', '.join(_EVIDENCE_KEYS)})"))  # fmt: skip
    values: dict[str, Any] = {}
    if "findtime" in section:
        findtime = _duration(section, "findtime", file, "evidence.findtime", problems)
        if findtime is not None:
            values["findtime"] = findtime
    if "weights" in section:
        weights = _weights(section, file, "evidence.weights", problems)
        if weights is not None:
            values["weights"] = {**Evidence().weights, **weights}
    return Evidence(**values)


def _weights(raw: LineDict, file: str, where: str, problems: list[Problem]) -> dict | None:
    """A mapping of confidence to weight, each from 0 (counts nothing) to 1 (bans at once)."""
    section = raw["weights"]
    if not isinstance(section, LineDict) or not section:
        problems.append(Problem(file, raw.line_of("weights"), where,
                                f"a mapping of {', '.join(CONFIDENCES)} to weights"))  # fmt: skip
        return None
    weights: dict[str, float] = {}
    for key, value in section.items():
        if key not in CONFIDENCES:
            problems.append(Problem(file, section.line_of(key), f"{where}.{key}",
                                    f"unknown confidence ({', '.join(CONFIDENCES)})"))  # fmt: skip
        elif isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            message = "a number from 0 (counts nothing) to 1 (bans at once)"
            problems.append(Problem(file, section.line_of(key), f"{where}.{key}", message))
        else:
            weights[key] = float(value)
    return weights if len(weights) == len(section) else None


def _escalation(raw: LineDict, file: str, where: str, problems: list[Problem]) -> Escalation | None:
    section = raw["escalate"]
    if not isinstance(section, LineDict):
        problems.append(Problem(file, raw.line_of("escalate"), where,
                                f"a mapping of {', '.join(_ESCALATE_KEYS)}"))  # fmt: skip
        return None
    before = len(problems)
    for key in section:
        if key not in _ESCALATE_KEYS:
            problems.append(Problem(file, section.line_of(key), f"{where}.{key}",
                                    f"unknown key ({', '.join(_ESCALATE_KEYS)})"))  # fmt: skip
    values: dict[str, Any] = {}
    if "factor" in section:
        factor = section["factor"]
        if (
            isinstance(factor, bool)
            or not isinstance(factor, int | float)
            or not 1 <= factor <= 100
        ):
            problems.append(Problem(file, section.line_of("factor"), f"{where}.factor",
                                    "a number from 1 (no escalation) to 100"))  # fmt: skip
        else:
            values["factor"] = float(factor)
    for key in ("max", "forget"):
        if key in section:
            value = _duration(section, key, file, f"{where}.{key}", problems)
            if value is not None:
                values[key] = value
    if section.get("permanent_after") is not None:
        value = _whole(section, "permanent_after", 1, 1_000_000, file, where, problems)
        if value is not None:
            values["permanent_after"] = value
    return Escalation(**values) if len(problems) == before else None


def _whole(
    raw: LineDict, key: str, low: int, high: int, file: str, where: str, problems: list[Problem]
) -> int | None:
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        problems.append(Problem(file, raw.line_of(key), f"{where}.{key}",
                                f"a whole number from {low} to {high}"))  # fmt: skip
        return None
    return value


def _duration(
    raw: LineDict, key: str, file: str, where: str, problems: list[Problem]
) -> float | None:
    try:
        seconds = parse_duration(raw[key])
    except ValueError as exc:
        problems.append(Problem(file, raw.line_of(key), where, str(exc)))
        return None
    if not 0 < seconds < 100 * 365 * 86400:
        problems.append(Problem(file, raw.line_of(key), where, "must be above 0 and below 100y"))
        return None
    return seconds


def parse_networks(
    raw: LineDict, key: str, file: str, where: str, problems: list[Problem]
) -> tuple[Network, ...]:
    """``raw[key]`` as a list of addresses or CIDR networks (each bad one a problem)."""
    value = raw.get(key) or []
    if not isinstance(value, list):
        problems.append(Problem(file, raw.line_of(key), where,
                                "a list of addresses or CIDR networks"))  # fmt: skip
        return ()
    networks = []
    for index, item in enumerate(value):
        try:
            networks.append(ipaddress.ip_network(str(item), strict=False))
        except ValueError as exc:
            problems.append(Problem(file, line_of(value, index), f"{where}[{index}]", str(exc)))
    return tuple(networks)


def with_overrides(config: JailConfig, overrides: Mapping[str, Mapping[str, Any]]) -> JailConfig:
    """The jails with the agent config's changes by name; a new name adds a jail (the
    config loader has checked that it has every required field). Weights given for some
    confidences keep the jail's others."""
    jails = {jail.name: jail for jail in config.jails}
    for name, fields in overrides.items():
        if name not in jails:
            jails[name] = Jail(name, **fields)
            continue
        changes = dict(fields)
        if "weights" in changes:
            changes["weights"] = {**jails[name].weights, **changes["weights"]}
        jails[name] = replace(jails[name], **changes)
    return JailConfig(tuple(jails.values()), config.allowlist, config.evidence)


def missing_fields(fields: Mapping[str, Any]) -> list[str]:
    """The fields a new jail needs that ``fields`` lacks."""
    return [key for key in _REQUIRED if key not in fields]


def check_overlaps(
    jails: list[tuple[Jail, int]], known: list[str], file: str, problems: list[Problem]
) -> None:
    """A rule counted by two jails would be counted twice: refuse it."""
    owner: dict[str, str] = {}
    for jail, line in jails:
        for rule_id in known:
            if not jail.covers(rule_id):
                continue
            if rule_id in owner:
                message = f"{rule_id} is already counted by jail {owner[rule_id]}"
                problems.append(Problem(file, line, f"jails({jail.name}).rules", message))
            else:
                owner[rule_id] = jail.name

"""Jails: count events per address in a sliding window and decide when to ban.

Pure logic: no firewall, no storage, no wall clock of its own. The clock is passed in (the
daemon passes real time; ``lappguard scan`` passes the time of the line being replayed), so
the same code answers "would this have been banned?" for old logs and "ban now" live.
The bans issue builds escalation, persistence and the firewall on top of ``Decision``.

Memory is bounded: at most ``max_tracked`` (jail, address) windows are kept, the least
recently seen are dropped first, so a flood of distinct addresses (each seen once) cannot
grow it; ``evicted`` counts what was dropped.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.detect.events import CANONICAL_IPV4, Event
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
_JAIL_KEYS = ("name", "rules", "maxretry", "findtime", "bantime", "allowlist", "description")


@dataclass(frozen=True)
class Jail:
    """Ban an address after ``maxretry`` events of ``rules`` within ``findtime`` seconds."""

    name: str
    rules: tuple[str, ...]  # rule ids, or shell-style globs such as "php-*"
    maxretry: int
    findtime: float
    bantime: float
    allowlist: tuple[Network, ...] = ()

    def covers(self, rule_id: str) -> bool:
        return any(fnmatch.fnmatchcase(rule_id, pattern) for pattern in self.rules)


@dataclass(frozen=True)
class Decision:
    """Ban ``ip`` from ``time`` until ``until``: ``count`` events of ``jail`` in its window."""

    ip: str
    jail: str
    time: float
    until: float
    count: int
    rule: str  # the rule of the event that crossed the threshold


@dataclass(frozen=True)
class JailConfig:
    jails: tuple[Jail, ...]
    allowlist: tuple[Network, ...] = ()


@dataclass
class _Window:
    times: deque[float] = field(default_factory=deque)
    banned_until: float = float("-inf")


class Jails:
    """Window counting for a set of jails (see the module docstring).

    Each rule counts in the first jail that covers it. Events from allowlisted addresses
    (loopback always) and events older than the jail's findtime, by ``clock``, are ignored;
    while an address is banned by a jail, its further events there are not counted again.
    """

    def __init__(
        self,
        jails: Sequence[Jail],
        *,
        clock: Callable[[], float],
        allowlist: Iterable[Network] = (),
        max_tracked: int = MAX_TRACKED,
    ):
        self.jails = tuple(jails)
        self._clock = clock
        self._allow = LOOPBACK + tuple(allowlist)
        self._max = max_tracked
        self._windows: OrderedDict[tuple[str, str], _Window] = OrderedDict()
        self._jail_of: dict[str, Jail | None] = {}
        self._allowed: dict[str, bool] = {}
        self.evicted = 0

    def jail_for(self, rule_id: str) -> Jail | None:
        try:
            return self._jail_of[rule_id]
        except KeyError:
            jail = next((j for j in self.jails if j.covers(rule_id)), None)
            self._jail_of[rule_id] = jail
            return jail

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
        """Count one event; a Decision when its address crosses a jail's threshold."""
        return self.count(event.rule, event.ip, event.time, self._clock())

    def count(self, rule: str, ip: str, when: float, now: float) -> Decision | None:
        """:meth:`observe` for an event given by its parts, at ``now`` (what ``clock``
        says): offline scans replay millions of events without building them."""
        try:
            jail = self._jail_of[rule]
        except KeyError:
            jail = self.jail_for(rule)
        if jail is None:
            return None
        # most addresses are known not to be allowlisted: skip the call for them
        if (self._allowed.get(ip) is not False or jail.allowlist) and self.allowed(ip, jail):
            return None
        if when < now - jail.findtime:
            return None  # a backlog line too old to matter
        key = (jail.name, ip)
        windows = self._windows
        window = windows.get(key)
        if window is None:
            window = windows[key] = _Window()
            if len(windows) > self._max:
                windows.popitem(last=False)
                self.evicted += 1
        else:
            windows.move_to_end(key)
        if when < window.banned_until:
            return None
        times = window.times
        times.append(when)
        horizon = when - jail.findtime
        while times and times[0] < horizon:
            times.popleft()
        if len(times) < jail.maxretry:
            return None
        count = len(times)
        times.clear()
        window.banned_until = when + jail.bantime
        return Decision(ip, jail.name, when, window.banned_until, count, rule)

    @property
    def tracked(self) -> int:
        """(jail, address) windows currently held in memory."""
        return len(self._windows)


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
        if key not in ("jails", "allowlist"):
            problems.append(Problem(name, document.line_of(key), key, "unknown key"))
    allowlist = _networks(document, "allowlist", name, "allowlist", problems)
    entries = document["jails"]
    if not isinstance(entries, LineList):
        raise InputError([Problem(name, document.line_of("jails"), "jails", "must be a list")])
    known = sorted(set(rule_ids))
    jails: list[tuple[Jail, int]] = []
    for index, entry in enumerate(entries):
        jail = _jail(entry, name, f"jails[{index}]", entries.line_of(index), known, problems)
        if jail is not None:
            jails.append((jail, entries.line_of(index)))
    _check_overlaps(jails, known, name, problems)
    if problems:
        raise InputError(problems)
    return JailConfig(tuple(jail for jail, _ in jails), allowlist)


def _jail(
    raw: Any, file: str, where: str, line: int, known: list[str], problems: list[Problem]
) -> Jail | None:
    if not isinstance(raw, LineDict):
        problems.append(Problem(file, line, where, "must be a mapping"))
        return None
    before = len(problems)
    for key in raw:
        if key not in _JAIL_KEYS:
            problems.append(
                Problem(file, raw.line_of(key), f"{where}.{key}", f"unknown key ({_JAIL_KEYS})")
            )
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        problems.append(Problem(file, raw.line, f"{where}.name", "is required"))
    else:
        where = f"{where}({name})"
    rules = raw.get("rules")
    if not isinstance(rules, list) or not rules or not all(isinstance(r, str) for r in rules):
        problems.append(
            Problem(file, line_of(raw, "rules"), f"{where}.rules", "a list of rule ids or globs")
        )
        rules = []
    elif known:
        for index, pattern in enumerate(rules):
            if not fnmatch.filter(known, pattern):
                problems.append(
                    Problem(file, line_of(rules, index), f"{where}.rules[{index}]", "no such rule")
                )
    maxretry = raw.get("maxretry")
    if isinstance(maxretry, bool) or not isinstance(maxretry, int) or maxretry < 1:
        problems.append(
            Problem(file, line_of(raw, "maxretry"), f"{where}.maxretry", "a whole number >= 1")
        )
    times: dict[str, float] = {}
    for key in ("findtime", "bantime"):
        try:
            times[key] = parse_duration(raw[key])
        except KeyError:
            problems.append(Problem(file, raw.line, f"{where}.{key}", "is required (e.g. 10m)"))
        except ValueError as exc:
            problems.append(Problem(file, raw.line_of(key), f"{where}.{key}", str(exc)))
    allowlist = _networks(raw, "allowlist", file, f"{where}.allowlist", problems)
    if len(problems) != before:
        return None
    return Jail(name, tuple(rules), maxretry, times["findtime"], times["bantime"], allowlist)


def _networks(
    raw: LineDict, key: str, file: str, where: str, problems: list[Problem]
) -> tuple[Network, ...]:
    value = raw.get(key) or []
    if not isinstance(value, list):
        problems.append(Problem(file, raw.line_of(key), where, "a list of CIDRs"))
        return ()
    networks = []
    for index, item in enumerate(value):
        try:
            networks.append(ipaddress.ip_network(str(item), strict=False))
        except ValueError as exc:
            problems.append(Problem(file, line_of(value, index), f"{where}[{index}]", str(exc)))
    return tuple(networks)


def _check_overlaps(
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

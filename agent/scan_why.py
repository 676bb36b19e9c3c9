"""Why ``lappguard scan`` would not ban an address it saw events from.

A sysadmin trying rules on old logs asks of every address in the report "why was this
one not banned?". The answer is one of: it is never banned (loopback, this host's own
address, an allowlist), no jail counts the rules its events matched, or it stayed below
every threshold, and then how near it came: the most events it had inside one
``findtime`` window of each jail ("at most 3 of 5 in 10m (sshd)"), and the most weight its
long window reached.

:class:`Peaks` watches the scan's jail replay for that; it lives here, beside the scan, so
the daemon's per-event path (:meth:`agent.bans.jails.Jails.count`) does not pay for it.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Sequence, Set
from dataclasses import dataclass

from agent.bans.jails import LOOPBACK, Decision, Jail, JailConfig, Jails, Network, span

#: Reasons an address with events was not banned, in the order the report lists them.
REASONS = {
    "below_threshold": "below every threshold",
    "no_jail": "no jail counts their rules",
    "allowlisted": "never banned: allowlisted",
    "loopback": "never banned: loopback",
    "this_host": "never banned: this host's address",
}


@dataclass(frozen=True)
class Peak:
    """The most events an address had inside one ``findtime`` window of a jail."""

    jail: str
    most: int
    maxretry: int
    findtime: float


@dataclass(frozen=True)
class NotBanned:
    """An address with events and no ban: ``reason`` (a key of :data:`REASONS`) and
    ``why`` in words; ``peaks`` and ``weight`` (the most its long window weighed) say how
    near a ban it came, ``nearest`` as the largest fraction of a threshold reached."""

    ip: str
    events: int
    reason: str
    why: str
    peaks: tuple[Peak, ...] = ()
    weight: float = 0.0
    nearest: float = 0.0


class Peaks:
    """Per address and jail, the most events inside one ``findtime`` window, and per
    address the most weight of its long window, as the replay goes.

    Read from the jails' windows after each event the jails counted without a ban: a
    window then holds exactly the events of the ``findtime`` before that event, so the
    largest count seen is the fullest window there was.
    """

    def __init__(self, jails: Jails) -> None:
        self._jails = jails
        #: by (address, jail): one flat dict, as a flood brings a million addresses
        self.most: dict[tuple[str, str], int] = {}
        self.weight: dict[str, float] = {}

    def seen(self, rule: str, ip: str) -> None:
        """After ``jails.count`` of an event of ``rule`` from ``ip`` decided no ban."""
        jail = self._jails.jail_for(rule)
        if jail is None:
            return
        in_window, weight = self._jails.standing(ip, jail.name)
        key = (ip, jail.name)
        if in_window > self.most.get(key, -1):  # 0 too: the jail saw the address
            self.most[key] = in_window
        if weight > self.weight.get(ip, 0.0):
            self.weight[ip] = weight


def not_banned(
    by_ip: Counter[str],
    bans: Sequence[Decision],
    config: JailConfig,
    peaks: Peaks,
    hosts: Set[str],
) -> list[NotBanned]:
    """Every address of ``by_ip`` that no decision bans, nearest to a ban first;
    ``hosts`` are this host's addresses (:func:`host_addresses`)."""
    banned = {decision.ip for decision in bans}
    seen_by: dict[str, list[tuple[str, int]]] = {}  # the jails that saw each address
    for (ip, jail_name), most in peaks.most.items():
        if ip not in banned:
            seen_by.setdefault(ip, []).append((jail_name, most))
    jails = {jail.name: jail for jail in config.jails}
    found = []
    for ip, events in by_ip.items():
        if ip in banned:
            continue
        if _in(ip, LOOPBACK):
            found.append(NotBanned(ip, events, "loopback", REASONS["loopback"]))
        elif ip in hosts:
            found.append(NotBanned(ip, events, "this_host", REASONS["this_host"]))
        elif _in(ip, config.allowlist):
            why = "never banned: in the jails file's allowlist"
            found.append(NotBanned(ip, events, "allowlisted", why))
        elif ip not in seen_by:
            found.append(NotBanned(ip, events, "no_jail", REASONS["no_jail"]))
        else:
            seen = [jails[name] for name, _ in seen_by[ip]]
            if all(_in(ip, jail.allowlist) for jail in seen):
                names = ", ".join(jail.name for jail in seen)
                why = f"never banned: in the allowlist of jail {names}"
                found.append(NotBanned(ip, events, "allowlisted", why))
            else:
                weight = peaks.weight.get(ip, 0.0)
                long_window = config.evidence.findtime
                found.append(_below(ip, events, seen_by[ip], weight, jails, long_window))
    found.sort(key=lambda entry: (-entry.nearest, -entry.events, entry.ip))
    return found


def _below(
    ip: str,
    events: int,
    by_jail: list[tuple[str, int]],
    weight: float,
    jails: dict[str, Jail],
    long_window: float,
) -> NotBanned:
    """An address the jails counted that filled no window: how full each one got, from
    ``by_jail``'s (jail, most events in one window) and the most ``weight`` of its long
    window (a jail whose own allowlist holds it aside, as it never counts it)."""
    listed = tuple(
        Peak(name, most, jails[name].maxretry, jails[name].findtime)
        for name, most in sorted(by_jail)
        if not _in(ip, jails[name].allowlist)
    )
    parts = [f"at most {p.most} of {p.maxretry} in {span(p.findtime)} ({p.jail})" for p in listed]
    if weight:
        parts.append(f"weighed at most {weight:.2f} of 1 in {span(long_window)}")
    nearest = max([weight, *(peak.most / peak.maxretry for peak in listed)])
    return NotBanned(ip, events, "below_threshold", "; ".join(parts), listed, weight, nearest)


def host_addresses() -> set[str]:
    """This host's interface addresses, read from /proc: the daemon never bans them.
    (psutil, as the daemon uses, would make up most of a small scan's start-up.)"""
    found: set[str] = set()
    try:
        with open("/proc/net/fib_trie", encoding="ascii") as trie:
            previous = ""
            for line in trie:  # "|-- 192.0.2.2" then "/32 host LOCAL": a local address
                if line.strip() == "/32 host LOCAL":
                    found.add(previous.split()[-1])
                previous = line
        with open("/proc/net/if_inet6", encoding="ascii") as inet6:
            for line in inet6:  # "fd000000000000000000000000000002 04 40 00 82 eth0"
                found.add(str(ipaddress.ip_address(bytes.fromhex(line.split()[0]))))
    except (OSError, ValueError, IndexError):  # not Linux, or /proc not mounted
        pass
    return found


def _in(ip: str, networks: tuple[Network, ...]) -> bool:
    if not networks:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:  # not an address: nothing lists it
        return False
    return any(address.version == n.version and address in n for n in networks)

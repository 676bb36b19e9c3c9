"""ipset backend: two ``hash:net`` sets with timeouts, dropped by one iptables and one ip6tables
rule at the top of INPUT; for hosts whose firewall is managed with iptables.

Every change is one ``ipset restore`` script (argv and stdin, no shell). ``restore`` is not
a transaction: it stops at the first failing line and keeps the lines before it. A ban is
therefore safe to retry (``-exist`` makes re-adding a no-op), and ``sync`` fills temporary
sets and then ``swap``s them in, so a failure leaves the live sets as they were and packets
never meet a half-filled set.

Loss: ``intact`` checks both sets (type, family, maxelem) and both rules. As in the nftables
backend, only a backend object's first change creates sets and rules: a later ban into
destroyed sets fails instead of hiding the loss behind fresh, nearly empty sets.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agent.firewall.base import (
    Entry,
    Firewall,
    FirewallError,
    Network,
    error_line,
    run_tool,
    with_defaults,
)

TEMP_SUFFIX = "_new"
#: The longest set name ipset takes (IPSET_MAXNAMELEN 32, with its NUL).
MAX_NAME = 31
_LINE = re.compile(r"Error in line (\d+)")


class IpsetFirewall(Firewall):
    """Bans as ipset entries, dropped by ``-m set --match-set NAME src -j DROP`` rules."""

    name = "ipset"
    #: ipset's own limit (IPSET_MAX_TIMEOUT: (UINT_MAX >> 1) / MSEC_PER_SEC); restore
    #: refuses "2147484" as "out of range 0-2147483".
    max_timeout = 2_147_483
    expires_natively = True
    options = {
        "set_prefix": (str, "lappguard"),
        "maxelem": (int, 1_048_576),
        "ipset": (str, "ipset"),
        "iptables": (str, "iptables"),
        "ip6tables": (str, "ip6tables"),
    }

    def __init__(
        self,
        set_prefix: str = "lappguard",
        maxelem: int = 1_048_576,
        ipset: str = "ipset",
        iptables: str = "iptables",
        ip6tables: str = "ip6tables",
    ) -> None:
        if len(set_prefix) + 1 + len(TEMP_SUFFIX) > MAX_NAME:
            raise ValueError(f"ipset set_prefix {set_prefix!r} is too long for set names")
        self.maxelem = maxelem
        self.ipset = ipset
        #: Our set per IP version, its ipset family, and the program holding its rule.
        self.sets = {4: f"{set_prefix}4", 6: f"{set_prefix}6"}
        self.families = {4: "inet", 6: "inet6"}
        self.iptables = {4: iptables, 6: ip6tables}
        self._installed = False

    @classmethod
    def from_options(cls, options: Mapping[str, Any], state_dir: Path) -> IpsetFirewall:
        return cls(**with_defaults(cls.options, options))

    def ban(self, entries: Sequence[Entry], now: float) -> None:
        lines = self._adds(entries, now, self.sets)
        if not lines:
            return
        if self._installed:
            self._restore(lines)
            return
        self._restore([self._create(self.sets[v], v) for v in self.sets] + lines)
        self._ensure_rules()
        self._installed = True

    def unban(self, networks: Sequence[Network]) -> None:
        lines = [f"del {self.sets[n.version]} {n}" for n in networks]
        if not lines:
            return
        try:
            self._restore(lines)  # -exist: an absent entry is no error
        except FirewallError:
            if any(name in self._headers() for name in self.sets.values()):
                raise  # with our sets gone there is nothing left to unban

    def sync(self, entries: Sequence[Entry], now: float) -> None:
        existing = self._headers()
        temps = {v: name + TEMP_SUFFIX for v, name in self.sets.items()}
        lines = [f"destroy {temp}" for temp in temps.values() if temp in existing]
        lines += [self._create(temp, v) for v, temp in temps.items()]
        lines += self._adds(entries, now, temps)
        for v, name in self.sets.items():
            if name in existing:
                lines += [f"swap {temps[v]} {name}", f"destroy {temps[v]}"]
            else:
                lines.append(f"rename {temps[v]} {name}")
        self._restore(lines)
        self._ensure_rules()
        self._installed = True

    def listed(self) -> set[Network]:
        found: set[Network] = set()
        for name in self.sets.values():
            done = run_tool([self.ipset, "save", name], check=False)
            if done.returncode != 0:
                if name in self._headers():
                    raise FirewallError(f"ipset: {error_line(done.stderr)}")
                continue  # a set that is gone holds nothing
            for line in done.stdout.splitlines():
                words = line.split()
                if words[:2] == ["add", name]:
                    found.add(ipaddress.ip_network(words[2]))
        return found

    def intact(self) -> bool:
        try:
            headers = self._headers()
            rules_there = all(self._rule_present(v) for v in self.sets)
        except FirewallError:
            return False
        for v, name in self.sets.items():
            kind, header = headers.get(name, ("", ""))
            words = header.split()
            options = dict(itertools.pairwise(words))  # "family inet maxelem 5 ..."
            if kind != "hash:net" or "timeout" not in options:
                return False
            if (options.get("family"), options.get("maxelem")) != (
                self.families[v],
                str(self.maxelem),
            ):
                return False
        return rules_there

    def remove(self) -> None:
        for v in self.sets:
            while self._rule_present(v):
                run_tool([self.iptables[v], "-w", "-D", "INPUT", *self._match(v)])
        existing = self._headers()
        names = [n for name in self.sets.values() for n in (name, name + TEMP_SUFFIX)]
        lines = [f"destroy {name}" for name in names if name in existing]
        if lines:
            self._restore(lines)
        self._installed = False

    def _create(self, name: str, version: int) -> str:
        # timeout 0: the set takes timeouts and an entry added without one stays for good.
        family = self.families[version]
        return f"create {name} hash:net family {family} timeout 0 maxelem {self.maxelem}"

    def _adds(self, entries: Sequence[Entry], now: float, sets: Mapping[int, str]) -> list[str]:
        lines = []
        for entry in entries:
            timeout = entry.timeout(now, self.max_timeout)
            line = f"add {sets[entry.network.version]} {entry.network}"
            lines.append(line if timeout is None else f"{line} timeout {timeout}")
        return lines

    def _restore(self, lines: list[str]) -> None:
        """Run one restore script; a full set is named, never taken for a passing error."""
        try:
            run_tool([self.ipset, "-exist", "restore"], "\n".join(lines) + "\n")
        except FirewallError as exc:
            found = _LINE.search(str(exc))
            if "is full" not in str(exc) or not found:
                raise
            name = lines[int(found.group(1)) - 1].split()[1].removesuffix(TEMP_SUFFIX)
            raise FirewallError(f"set {name} is full (maxelem {self.maxelem})") from exc

    def _headers(self) -> dict[str, tuple[str, str]]:
        """Every set's type and header line, from ``ipset -t list`` (no entries: cheap)."""
        sets: dict[str, tuple[str, str]] = {}
        name = kind = ""
        for line in run_tool([self.ipset, "-t", "list"]).stdout.splitlines():
            key, _, value = line.partition(": ")
            if key == "Name":
                name = value
            elif key == "Type":
                kind = value
            elif key == "Header":
                sets[name] = (kind, value)
        return sets

    def _match(self, version: int) -> list[str]:
        return ["-m", "set", "--match-set", self.sets[version], "src", "-j", "DROP"]

    def _rule_present(self, version: int) -> bool:
        argv = [self.iptables[version], "-w", "-C", "INPUT", *self._match(version)]
        done = run_tool(argv, check=False)
        return done.returncode == 0

    def _ensure_rules(self) -> None:
        """Our drop rule first in INPUT for each family, unless it is already there."""
        for v in self.sets:
            if not self._rule_present(v):
                run_tool([self.iptables[v], "-w", "-I", "INPUT", "1", *self._match(v)])

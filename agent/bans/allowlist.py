"""Networks that are never banned, whatever the logs or the command line say.

Banning one of these locks the sysadmin out or breaks the host: loopback, every address of
this host (read from its interfaces, refreshed every few seconds so a new address is
covered at once), the configured allowlist, and the addresses of the SSH sessions logged in
right now (utmp, plus ``$SSH_CONNECTION`` of the command being run). A ban is refused when
its network *overlaps* a protected one either way: banning 10.0.0.0/8 would cut off an
allowlisted 10.1.0.0/16 just as surely as banning 10.1.2.3 would.

Only logged-in sessions count, never mere TCP connections to sshd: an attacker guessing
passwords holds those too.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from agent.bans.jails import LOOPBACK
from agent.firewall.base import Network

#: Seconds a reading of the interfaces and sessions is trusted before it is taken again.
REFRESH_SECONDS = 2.0


@dataclass(frozen=True)
class Protected:
    network: Network
    why: str  # e.g. "the allowlist's 192.0.2.0/24", "this host's address 10.0.0.1 (eth0)"


def interface_addresses() -> list[tuple[str, str]]:
    """(address, interface) for every address on this host's interfaces."""
    import psutil

    found = []
    for interface, addresses in psutil.net_if_addrs().items():
        for entry in addresses:
            if entry.family in (socket.AF_INET, socket.AF_INET6):
                found.append((entry.address.split("%", 1)[0], interface))
    return found


def session_addresses() -> list[tuple[str, str]]:
    """(address, who) for the SSH sessions logged in now and the one running this command."""
    import psutil

    found = [(user.host, f"{user.name}'s login session") for user in psutil.users() if user.host]
    connection = os.environ.get("SSH_CONNECTION", "").split()
    if connection:
        found.append((connection[0], "the SSH session running this command"))
    return found


class Allowlist:
    """Answers "may this network be banned?"; see the module docstring for what is protected."""

    def __init__(
        self,
        configured: Iterable[Network] = (),
        *,
        host_addresses: Callable[[], Iterable[tuple[str, str]]] = interface_addresses,
        sessions: Callable[[], Iterable[tuple[str, str]]] = session_addresses,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._static = [Protected(n, f"loopback {n}") for n in LOOPBACK]
        self._static += [Protected(n, f"the allowlist's {n}") for n in configured]
        self._host_addresses = host_addresses
        self._sessions = sessions
        self._clock = clock
        self._dynamic: list[Protected] = []
        self._taken = float("-inf")

    def protected(self) -> list[Protected]:
        """Everything protected right now (the dynamic part at most a few seconds old)."""
        now = self._clock()
        if now - self._taken >= REFRESH_SECONDS:
            self._dynamic = [
                *_hosts(self._host_addresses(), "this host's address {address} ({what})"),
                *_hosts(self._sessions(), "{what} from {address}"),
            ]
            self._taken = now
        return self._static + self._dynamic

    def refusal(self, network: Network) -> str | None:
        """Why ``network`` must not be banned, or None when it may be."""
        for entry in self.protected():
            if entry.network.version == network.version and entry.network.overlaps(network):
                if network == entry.network:
                    return f"{network} is {entry.why}"
                if network.subnet_of(entry.network):
                    return f"{network} is within {entry.why}"
                return f"{network} would cover {entry.why}"
        return None

    def scoped(self, address: Network, wanted: Network) -> tuple[Network, str | None]:
        """The ban network for an offending ``address`` (a /32 or /128) whose jail wants
        the wider ``wanted`` (say its /64): ``wanted`` when nothing protected is inside it,
        else the address alone; with the reason when even that is refused."""
        if wanted != address and self.refusal(wanted) is not None:
            wanted = address
        return wanted, self.refusal(wanted)


def _hosts(pairs: Iterable[tuple[str, str]], label: str) -> list[Protected]:
    found = []
    for address, what in pairs:
        try:
            network = ipaddress.ip_network(address.split("%", 1)[0])
        except ValueError:
            continue  # utmp holds host names too; those are not addresses we could ban
        if isinstance(network, ipaddress.IPv6Network) and network[0].ipv4_mapped is not None:
            network = ipaddress.ip_network(network[0].ipv4_mapped)
        address = network.network_address
        found.append(Protected(network, label.format(address=address, what=what)))
    return found

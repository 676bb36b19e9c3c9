"""The traces lappguard's own audit probes leave in the logs it reads, so they are not
counted as attacks.

The audit's live probes talk to the servers like any client, and the servers log them:
the SSH probe asks for the ``none`` method as the user ``lappguard-probe`` (auth.log:
``Invalid user lappguard-probe from 127.0.0.1``), and the TLS probe sends handshakes to
every port Apache listens on, so a plain-HTTP port logs a ``400`` of binary bytes (rule
``http-not-http``). Both connect from this host.

A line is our own probe only when *both* hold: it looks like a probe, and its address is
loopback or one of this host's. The look alone proves nothing (anyone can try the user
``lappguard-probe``, or send TLS bytes to port 80), and an attacker cannot send from
this host's addresses; those are never banned anyway, so nothing an attacker does can be
hidden by this.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterable

from checks.probes.ssh import PROBE_USER

#: The rule that fires on the TLS probe's bytes sent to a plain-HTTP port.
TLS_PROBE_RULE = "http-not-http"
#: Seconds the reading of this host's addresses is trusted before it is taken again.
REFRESH_SECONDS = 5.0
_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


def host_addresses() -> list[str]:
    """Every address on this host's interfaces (psutil; imported only when needed)."""
    import socket

    import psutil

    return [
        entry.address.split("%", 1)[0]
        for entries in psutil.net_if_addrs().values()
        for entry in entries
        if entry.family in (socket.AF_INET, socket.AF_INET6)
    ]


class OwnProbes:
    """Tells our own probes' lines from everybody else's (see the module docstring).

    ``addresses`` lists this host's addresses; it is asked only when a line that looks
    like a probe comes from an address that is not loopback, and at most every
    :data:`REFRESH_SECONDS`.
    """

    def __init__(
        self,
        addresses: Callable[[], Iterable[str]] = host_addresses,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._addresses = addresses
        self._clock = clock
        self._known: frozenset[str] = frozenset()
        self._taken = float("-inf")

    def is_own(self, rule: str, ip: str, user: str | None) -> bool:
        """Whether the event ``rule`` found for ``ip`` (and ``user``) is one of our probes."""
        if user != PROBE_USER and rule != TLS_PROBE_RULE:
            return False
        return self.is_local(ip)

    def is_local(self, ip: str) -> bool:
        """Whether ``ip`` (normalised, as events carry it) is loopback or this host's."""
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        if any(address in network for network in _LOOPBACK):
            return True
        now = self._clock()
        if now - self._taken >= REFRESH_SECONDS:
            self._known = frozenset(_normalised(self._addresses()))
            self._taken = now
        return str(address) in self._known


def _normalised(addresses: Iterable[str]) -> Iterable[str]:
    for text in addresses:
        try:
            yield str(ipaddress.ip_address(text))
        except ValueError:
            continue

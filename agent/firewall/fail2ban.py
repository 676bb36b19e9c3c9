"""Bans handed to a running fail2ban-server, for sites that keep every ban in one place.

lappguard bans into a jail of its own that the admin configures (contrib/fail2ban/ holds the
two files; fail2ban's jail.d and action.d are where they go)::

    [lappguard]
    enabled = true
    filter =
    backend = polling
    bantime = -1
    action = lappguard-nftables[protocol="tcp,udp"]

No filter and no log: fail2ban never bans there by itself, lappguard decides who and for
how long. ``lappguard-nftables`` is fail2ban's nftables-allports with sets that accept
prefixes (``flags interval``). With the stock action fail2ban records a /24 or a /64 as
banned while nft refuses the element, so packets pass although the jail lists the ban.

Why not ``add`` the jail at run time: fail2ban's configuration is read by its client, not its
server, so a jail added over the socket has no action unless we sent fail2ban shell
templates of our own, and the next ``fail2ban-client reload`` deletes it again.

Expiry: ``set <jail> banip`` (fail2ban 1.0.2) takes addresses and no ban time, so each ban
lasts the jail's bantime. The state store unbans at expiry, so the jail must keep bans for
good: every call checks for bantime -1 and refuses another value instead of setting it (a
run-time ``set bantime`` would override the admin's file silently and last until a reload).

No transactions: fail2ban runs the jail's action for one address after the other (a shell
and an ``nft`` each: ~10 ms a ban, ~30 ms an unban here) before it answers. A call is
therefore as few commands as fail2ban allows (``CHUNK`` addresses each, each with a deadline
that grows with its length), not one atomic change: a failure leaves part of it applied,
and repeating the call is harmless. The jail is lappguard's alone: sync unbans whatever
else is in it.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from agent.firewall.base import Entry, Firewall, Network, with_defaults
from agent.firewall.fail2ban_protocol import (
    CommandError,
    Fail2banConnection,
    Fail2banError,
    UnknownJailException,
    connect,
)

DEFAULT_SOCKET = "/var/run/fail2ban/fail2ban.sock"
DEFAULT_JAIL = "lappguard"
#: Addresses per banip/unbanip command: few commands, and no single wait without end.
CHUNK = 500
#: Extra answer time per address in a command, for the action fail2ban runs per address
#: (measured 10-30 ms; the rest is room for a loaded host).
PER_ADDRESS = 0.2


class JailMissing(Fail2banError):
    """fail2ban-server runs but has no jail of that name (not configured, or stopped)."""


def to_fail2ban(network: Network) -> str:
    """The text fail2ban keeps for a network: a bare address for a single host, else CIDR."""
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return network.with_prefixlen


def from_fail2ban(text: str) -> Network | None:
    """The network fail2ban's text names, or None for what is no network (a host name)."""
    try:
        return ipaddress.ip_network(text)
    except ValueError:
        return None


class Fail2banFirewall(Firewall):
    """Bans as entries of one fail2ban jail, through fail2ban-server's socket."""

    name = "fail2ban"
    max_timeout = math.inf  # bans carry no timeout: lappguard unbans them itself
    options: Mapping[str, tuple[type, Any]] = {
        "socket": (str, DEFAULT_SOCKET),
        "jail": (str, DEFAULT_JAIL),
        "timeout": (float, 10.0),  # seconds for connecting and for a command's answer
    }

    def __init__(self, socket_path: str, jail: str, timeout: float):
        self.socket_path = socket_path
        self.jail = jail
        self.timeout = timeout
        # What this object put in the jail and has not taken out: intact() checks it is
        # still there, since a restarted jail exists again but has lost its bans.
        self._held: set[Network] = set()

    @classmethod
    def from_options(cls, options: Mapping[str, Any], state_dir: Path) -> Fail2banFirewall:
        values = with_defaults(cls.options, options)
        return cls(str(values["socket"]), str(values["jail"]), float(values["timeout"]))

    def ban(self, entries: Sequence[Entry], now: float) -> None:
        if not entries:
            return
        with self._open() as connection:
            self._send(connection, "banip", [to_fail2ban(entry.network) for entry in entries])
        self._held.update(entry.network for entry in entries)

    def unban(self, networks: Sequence[Network]) -> None:
        """Unban only what the jail lists: given a network it does not hold, fail2ban would
        unban every address inside it instead."""
        with self._open() as connection:
            banned = self._banned(connection)
            self._send(connection, "unbanip", [banned[n] for n in networks if n in banned])
        self._held.difference_update(networks)

    def sync(self, entries: Sequence[Entry], now: float) -> None:
        """Ban the missing first, then unban the extra: a listed entry is never absent."""
        wanted = {entry.network for entry in entries}
        with self._open() as connection:
            banned = self._banned(connection)
            self._send(connection, "banip", [to_fail2ban(n) for n in wanted - banned.keys()])
            self._send(connection, "unbanip", [t for n, t in banned.items() if n not in wanted])
        self._held = wanted

    def listed(self) -> set[Network]:
        with self._open() as connection:
            return set(self._banned(connection))

    def intact(self) -> bool:
        """The jail exists and still holds what this object banned (a reload restarts it
        empty). A server that cannot be asked raises FirewallError."""
        try:
            with self._open() as connection:
                banned = self._banned(connection)
        except JailMissing:
            return False
        return self._held <= banned.keys()

    def remove(self) -> None:
        """Unban everything in the jail (which also deletes the bans from fail2ban's
        database, so a restart does not restore them), then stop the jail: its action takes
        its nft set and rule away. The next ``fail2ban-client reload`` starts it empty."""
        try:
            connection = self._open(check_bantime=False)
        except JailMissing:
            return
        with connection:
            self._send(connection, "unbanip", self._ban_texts(connection))
            connection.call("stop", self.jail)
        self._held.clear()

    def _open(self, check_bantime: bool = True) -> Fail2banConnection:
        """A checked connection to the server, and our jail there with bantime -1."""
        connection = connect(self.socket_path, self.timeout)
        try:
            bantime = connection.call("get", self.jail, "bantime")
            if check_bantime and bantime != -1:
                raise Fail2banError(
                    f"fail2ban jail {self.jail!r} has bantime {bantime!r}: lappguard unbans at"
                    " expiry itself and needs bantime = -1 there"
                )
        except CommandError as e:
            connection.close()
            if isinstance(e.exception, UnknownJailException):
                raise JailMissing(
                    f"fail2ban-server has no jail {self.jail!r}: add it (contrib/fail2ban/)"
                    " and run fail2ban-client reload"
                ) from None
            raise
        except Fail2banError:
            connection.close()
            raise
        return connection

    def _ban_texts(self, connection: Fail2banConnection) -> list[str]:
        texts = connection.call("get", self.jail, "banip")
        if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
            raise Fail2banError(f"fail2ban-server listed jail {self.jail!r} as {texts!r:.80}")
        return texts

    def _banned(self, connection: Fail2banConnection) -> dict[Network, str]:
        """The jail's networks, each with the text fail2ban knows it by."""
        banned = {}
        for text in self._ban_texts(connection):
            network = from_fail2ban(text)
            if network is not None:
                banned[network] = text
        return banned

    def _send(self, connection: Fail2banConnection, verb: str, texts: Iterable[str]) -> None:
        """``set <jail> banip|unbanip`` for all texts, ``CHUNK`` at a time."""
        texts = list(texts)
        for start in range(0, len(texts), CHUNK):
            chunk = texts[start : start + CHUNK]
            timeout = self.timeout + PER_ADDRESS * len(chunk)
            connection.call("set", self.jail, verb, *chunk, timeout=timeout)

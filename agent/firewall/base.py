"""The one interface every firewall backend offers, so the ban logic never knows which it got.

What the ban logic guarantees a backend: networks are canonical (``ip_network(strict)``),
IPv4 and IPv6 mixed; entries in one call never overlap each other, nor (for ``ban``) what
the backend already holds; an entry whose ``expires`` is past is never passed. What a
backend guarantees in return: each call is one atomic change where the tool allows it
(all of it or none), it never runs a shell, and any failure raises :class:`FirewallError`
with a one-line reason, leaving the caller to keep the bans pending and retry.

Expiry: the state store is the source of truth. Backends with native timeouts (nftables,
ipset) get each entry's remaining time, capped at :attr:`Firewall.max_timeout`; the ban
logic re-asserts longer bans at every sync and unbans expired ones itself.
"""

from __future__ import annotations

import ipaddress
import math
import os
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Seconds one run of a firewall tool may take: 100,000 elements take a few, a hung tool longer.
TOOL_TIMEOUT = 120.0


class FirewallError(Exception):
    """The firewall could not be changed or read (tool missing, permission denied, down)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One network to drop: until ``expires`` (UTC epoch seconds), or for good when None."""

    network: Network
    expires: float | None = None

    def timeout(self, now: float, cap: float) -> int | None:
        """Whole seconds left (at least 1, at most ``cap``), or None for a permanent entry."""
        if self.expires is None:
            return None
        return int(min(cap, max(1, math.ceil(self.expires - now))))


class Firewall(ABC):
    """A place bans take effect. Methods may block on a tool or socket for a few seconds."""

    #: Short name used in config, metrics and ``--backend``.
    name: str = ""
    #: Longest timeout the backend can hold natively (seconds); longer bans are re-asserted.
    max_timeout: float = math.inf
    #: True when the firewall drops an entry by itself when its time is up (nftables and
    #: ipset timeouts): the ban logic then need not unban expired bans one by one.
    expires_natively: bool = False
    #: The options of ``firewall.<name>:`` in the config: name -> (type, default). The
    #: config loader checks them (file:line:field errors) before ``from_options`` runs.
    options: Mapping[str, tuple[type, Any]] = {}

    @classmethod
    @abstractmethod
    def from_options(cls, options: Mapping[str, Any], state_dir: Path) -> Firewall:
        """The backend built from its validated options (defaults filled in)."""

    @abstractmethod
    def ban(self, entries: Sequence[Entry], now: float) -> None:
        """Add entries in one change (creating our structures first if they are missing).

        A backend may instead raise FirewallError when structures it already created or saw
        have vanished since: recreating them would hide the loss from :meth:`intact` and
        leave every earlier ban out until the next restart, while the error keeps these
        entries pending until the caller's intact()/sync() puts all of them back."""

    @abstractmethod
    def unban(self, networks: Sequence[Network]) -> None:
        """Remove networks in one change; one that is not there is not an error."""

    @abstractmethod
    def sync(self, entries: Sequence[Entry], now: float) -> None:
        """Make the firewall hold exactly ``entries``: create what is missing, drop what is
        not listed, re-assert every remaining timeout; one change, with no moment in which
        a listed entry is absent."""

    @abstractmethod
    def listed(self) -> set[Network]:
        """What the firewall holds now (expired elements it has not yet purged excluded)."""

    @abstractmethod
    def intact(self) -> bool:
        """Cheap check that our structures (table, sets, rules, jail) are still installed.
        False means someone flushed or reloaded the firewall: the caller re-syncs."""

    @abstractmethod
    def remove(self) -> None:
        """Delete everything of ours from the firewall (uninstall, tests)."""

    def close(self) -> None:  # noqa: B027 - most backends hold nothing open
        """Release connections or handles; the default has none."""


def run_tool(
    argv: Sequence[str], stdin: str | None = None, *, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a firewall program (an argv list, never a shell), feeding it ``stdin``.

    With ``check``, a non-zero exit raises FirewallError carrying the program's own error
    line; a missing program or one that hangs raises it too, whatever ``check`` says.
    """
    name = os.path.basename(argv[0])
    try:
        done = subprocess.run(
            list(argv), input=stdin, capture_output=True, text=True, timeout=TOOL_TIMEOUT
        )
    except OSError as exc:
        raise FirewallError(f"{name}: cannot run {argv[0]}: {exc.strerror}") from exc
    except subprocess.TimeoutExpired as exc:
        raise FirewallError(f"{name}: no answer within {TOOL_TIMEOUT:.0f} s") from exc
    if check and done.returncode != 0:
        raise FirewallError(f"{name}: {error_line(done.stderr or done.stdout)}")
    return done


def error_line(text: str) -> str:
    """The line of a tool's output that says what went wrong: the first one naming an error,
    else the first non-blank one (tools add usage hints and echo the input around it)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if "error" in line.lower():
            return line
    return lines[0] if lines else "failed without a message"


def with_defaults(spec: Mapping[str, tuple[type, Any]], given: Mapping[str, Any]) -> dict[str, Any]:
    """Every option of a backend's ``options`` spec: the given value, else the default."""
    return {name: given.get(name, default) for name, (_, default) in spec.items()}

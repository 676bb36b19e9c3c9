"""Plumbing shared by the probes: targets, bounded socket reads, and a per-protocol outcome.

A probe talks to servers that may be hostile or broken, so every connect and read is bounded
by one deadline and every length field is checked before it is trusted.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

DEFAULT_TIMEOUT = 5.0
Reply = TypeVar("Reply")


class ProbeError(Exception):
    """The target could not be probed at all (bad target, connection refused, timeout)."""


#: Opens a TCP connection to (host, port) within a timeout, raising OSError: how a probe
#: reaches a port that this machine does not connect to directly (through an SSH
#: connection to the host, as ``ssh -L`` would).
Connector = Callable[[str, int, float], socket.socket]


@dataclass(frozen=True)
class Target:
    host: str  # a name or an IP address, IPv6 without brackets
    port: int
    #: None: a direct connection from this machine. Part of the identity: 127.0.0.1:443
    #: reached through a host's connection is another port than this machine's.
    via: Connector | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def is_ip(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True


def parse_target(text: str, default_port: int) -> Target:
    """``host``, ``host:port``, ``1.2.3.4:443``, ``[::1]:443`` or a bare ``::1``."""
    text = text.strip()
    host, port_text = text, ""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"{text!r} is not host:port")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    if not host or any(c.isspace() for c in host):
        raise ValueError(f"{text!r} is not host:port")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise ValueError(f"{text!r}: {exc}") from exc
    if not port_text:
        return Target(host, default_port)
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{text!r}: port must be 1-65535")
    return Target(host, int(port_text))


@dataclass(frozen=True)
class Outcome:
    """Whether one protocol version was accepted; ``None`` when the probe could not tell."""

    protocol: str
    accepted: bool | None
    detail: str = ""


def connect(target: Target, timeout: float) -> socket.socket:
    """A TCP connection to the target; raises ProbeError with the reason."""
    try:
        if target.via is not None:
            sock = target.via(target.host, target.port, timeout)
        else:
            sock = socket.create_connection((target.host, target.port), timeout=timeout)
    except TimeoutError as exc:
        raise ProbeError(f"{target}: no answer within {timeout:g}s") from exc
    except OSError as exc:
        raise ProbeError(f"{target}: {exc.strerror or exc}") from exc
    sock.settimeout(timeout)
    return sock


class BoundedReader:
    """Reads exact byte counts from a socket, all reads together bounded by one deadline."""

    def __init__(self, sock: socket.socket, timeout: float):
        self.sock = sock
        self.deadline = time.monotonic() + timeout

    def read(self, size: int) -> bytes:
        """Exactly ``size`` bytes, or fewer if the peer closed the connection first.

        Raises TimeoutError once the deadline has passed.
        """
        data = bytearray()
        while len(data) < size:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("deadline passed")
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                break
            data += chunk
        return bytes(data)


def exchange(
    protocol: str,
    target: Target,
    hello: bytes,
    judge: Callable[[BoundedReader], Reply],
    timeout: float,
) -> Reply | Outcome:
    """Send a hand-built hello and let ``judge`` read and rate the reply.

    A reset or close is a refusal; silence until the deadline is undecided.
    """
    try:
        with connect(target, timeout) as sock:
            sock.sendall(hello)
            return judge(BoundedReader(sock, timeout))
    except ProbeError as exc:
        return Outcome(protocol, None, str(exc))
    except TimeoutError:
        return Outcome(protocol, None, f"no answer within {timeout:g}s")
    except ConnectionError as exc:
        return Outcome(protocol, False, f"connection closed ({exc.strerror or exc})")
    except OSError as exc:
        return Outcome(protocol, None, exc.strerror or str(exc))

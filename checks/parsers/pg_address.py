"""The ADDRESS and netmask columns of pg_hba.conf, read the way PostgreSQL reads them.

PostgreSQL hands the text before any ``/`` to getaddrinfo() with AI_NUMERICHOST, so the C
library decides what is an address: ``0``, ``0.0`` and ``10.1`` are IPv4 addresses in the
short inet_aton() forms (0.0.0.0, 0.0.0.0, 10.0.0.1), ``0x7f.1`` and ``010.0.0.1`` are hex and
octal, ``fe80::1%lo`` carries a scope, and whatever getaddrinfo() calls an unknown name is a
host name. We call the same function the same way (AI_NUMERICHOST never asks DNS), so
``host all all 0/0 trust`` is 0.0.0.0/0 here exactly as it is for the server. The CIDR length
is read with strtol() as pg_sockaddr_cidr_mask() does: ``/+8``, ``/-0`` and ``/08`` are valid.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass, replace

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
KEYWORDS = ("all", "samehost", "samenet")
_STRTOL = re.compile(r"[ \t\n\v\f\r]*([+-]?[0-9]+)")


class RejectedLine(ValueError):
    """PostgreSQL rejects the line (and so refuses the whole file); says why, in its words."""


@dataclass(frozen=True)
class HbaAddress:
    """What a host record matches: a keyword, a host name, or an address under a netmask."""

    text: str  # as written; a separate netmask column is joined as addr/mask
    keyword: str | None = None  # all, samehost or samenet (unquoted)
    hostname: str | None = None  # ".example.org" matches a suffix
    ip: IpAddress | None = None
    netmask: IpAddress | None = None  # None with an ip: the netmask column is still to read

    @property
    def needs_netmask(self) -> bool:
        return self.ip is not None and self.netmask is None

    @property
    def network(self) -> Network | None:
        """The address range, or None (keyword, host name, or a non-contiguous netmask, which
        PostgreSQL accepts and applies bit by bit)."""
        if self.ip is None or self.netmask is None:
            return None
        host_bits = ~int(self.netmask) & ((1 << self.ip.max_prefixlen) - 1)
        if host_bits & (host_bits + 1):
            return None  # not ones then zeros
        prefix = self.ip.max_prefixlen - host_bits.bit_length()
        return ipaddress.ip_network(f"{self.ip}/{prefix}", strict=False)

    @property
    def everyone(self) -> bool:
        """``all``, or an all-zero netmask (0.0.0.0/0, ::/0, but also 127.0.0.1/0 or ``0 0``)."""
        return self.keyword == "all" or (self.netmask is not None and int(self.netmask) == 0)

    def with_netmask(self, mask: str) -> HbaAddress:
        """This address with the separate netmask column applied."""
        netmask = numeric_host(mask, f"invalid IP mask {mask!r}")
        if netmask is None:
            raise RejectedLine(f"invalid IP mask {mask!r}: Name or service not known")
        if self.ip is None or netmask.version != self.ip.version:
            raise RejectedLine("IP address and mask do not match")
        return replace(self, text=f"{self.text}/{mask}", netmask=netmask)

    def __str__(self) -> str:
        return self.text


def read_address(text: str, quoted: bool) -> HbaAddress:
    """The ADDRESS column (one token). Raises RejectedLine for what PostgreSQL rejects."""
    if not quoted and text in KEYWORDS:
        return HbaAddress(text, keyword=text)
    host, slash, bits = text.partition("/")
    ip = numeric_host(host, f"invalid IP address {host!r}")
    if ip is None:
        if slash:
            raise RejectedLine(f"specifying both host name and CIDR mask is invalid: {text!r}")
        return HbaAddress(text, hostname=text)
    if not slash:
        return HbaAddress(text, ip=ip)
    length = _STRTOL.fullmatch(bits)
    prefix = int(length.group(1)) if length else -1
    if not 0 <= prefix <= ip.max_prefixlen:
        raise RejectedLine(f"invalid CIDR mask in address {text!r}")
    return HbaAddress(text, ip=ip, netmask=ipaddress.ip_interface(f"{ip}/{prefix}").netmask)


def numeric_host(text: str, error: str) -> IpAddress | None:
    """getaddrinfo(text, AI_NUMERICHOST) as pg_getaddrinfo_all() calls it: the address, or
    None when the C library says "no such name" (PostgreSQL then takes a host name)."""
    if not text:  # "" is passed as NULL: no name at all
        return None
    try:
        found = socket.getaddrinfo(
            text.encode("utf-8", "surrogateescape"), None, flags=socket.AI_NUMERICHOST
        )
    except socket.gaierror as exc:
        if exc.errno == socket.EAI_NONAME:
            return None
        raise RejectedLine(f"{error}: {exc.strerror}") from exc
    return ipaddress.ip_address(found[0][4][0].partition("%")[0])

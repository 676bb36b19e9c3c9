"""Where sshd listens: its ports, its address family and its listen addresses, judged from
the effective configuration (``sshd -T``, else the files) against the site's policy variables
``ssh_port``, ``ssh_address_family`` and ``ssh_listen_addresses``."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from typing import ClassVar

from checks.hosts import HostError
from checks.params import Param
from checks.parsers.sshd import DEFAULT_CONFIG, ConnectionSpec, EffectiveSshd, listen_host
from checks.parsers.sshd import listen_port as own_port
from checks.result import Verdict, errored, failed, passed
from checks.types.base import CheckContext, CheckType
from checks.types.sshd import AsksDefaultClient, _located, effective_config, variable_networks
from checks.variables import how_to_set

ASPECTS = ("port", "address_family", "addresses")
FAMILIES = {"inet": 4, "inet6": 6}


@dataclass(frozen=True)
class Listener:
    """One socket sshd opens: the address as written or printed, and its port."""

    host: str
    port: int | None

    @property
    def address(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        try:
            return ipaddress.ip_address(self.host.split("%", 1)[0])
        except ValueError:
            return None

    def __str__(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"{shown}:{self.port}" if self.port else shown


def listeners(view: EffectiveSshd) -> list[Listener]:
    """The sockets sshd opens: each ListenAddress (sshd -T prints each with its port; in the
    files one without a port takes every Port), less those AddressFamily leaves out."""
    ports = [int(p) for p in view.values("port") if p.isdigit()] or [None]
    version = FAMILIES.get((view.first("addressfamily") or "any").lower())
    found = []
    for value in view.values("listenaddress"):
        port = own_port(value)
        for each in [port] if port else ports:
            listener = Listener(listen_host(value), each)
            address = listener.address
            if version is None or address is None or address.version == version:
                found.append(listener)
    return found


class SshdListenCheck(AsksDefaultClient, CheckType):
    """One aspect of where sshd listens (``aspect``):

    - ``port``: every socket's port is ``ssh_port``, and no other port is open;
    - ``address_family``: AddressFamily is ``ssh_address_family`` (``any`` accepts each);
    - ``addresses``: no socket is on a wildcard address (0.0.0.0, ::), each is an address
      (not a name) and, when ``ssh_listen_addresses`` is set, inside those networks.
    """

    name = "sshd_listen"
    schema: ClassVar[dict[str, Param]] = {
        "aspect": Param("choice", required=True, choices=ASPECTS),
        "config": Param("str", default=DEFAULT_CONFIG, help="sshd_config path (sshd -f)"),
    }

    def run(self, ctx: CheckContext) -> Verdict:
        path = self.params["config"]
        try:
            view = effective_config(ctx, path, ConnectionSpec())
        except HostError as exc:
            return errored(f"cannot read {path}: {exc}")
        notes = [f"note: {n}" for n in view.notes]
        verdict = getattr(self, f"_{self.params['aspect']}")(ctx, view)
        return replace(verdict, evidence=(*verdict.evidence, *notes))

    def _where(self, ctx: CheckContext, view: EffectiveSshd, keyword: str) -> str:
        return _located(ctx, self.params["config"], view, keyword, None)

    def _port(self, ctx: CheckContext, view: EffectiveSshd) -> Verdict:
        wanted = ctx.variables.get("ssh_port")
        if not isinstance(wanted, int) or not 0 < wanted < 65536:
            return errored(
                f"the policy variable ssh_port is {wanted!r}, not a port: set it with "
                + how_to_set("ssh_port", "22")
            )
        sockets = listeners(view)
        where = [self._where(ctx, view, k) for k in ("port", "listenaddress")]
        other = [str(s) for s in sockets if s.port != wanted]
        if other:
            return failed(f"sshd listens on {', '.join(other)}, not port {wanted}", *where)
        if not sockets:
            excluded = "sshd opens no socket: AddressFamily excludes every ListenAddress"
            return failed(excluded, *where)
        return passed(f"sshd listens on port {wanted} only", *where)

    def _address_family(self, ctx: CheckContext, view: EffectiveSshd) -> Verdict:
        wanted = ctx.variables.get("ssh_address_family")
        if wanted not in ("any", *FAMILIES):
            return errored(
                f"the policy variable ssh_address_family is {wanted!r}, not any, inet or "
                f"inet6: set it with {how_to_set('ssh_address_family', 'inet')}"
            )
        where = self._where(ctx, view, "addressfamily")
        actual = (view.first("addressfamily") or "").lower()
        if wanted == "any" or actual == wanted:
            return passed(where, f"ssh_address_family={wanted}")
        return failed(f"sshd uses AddressFamily {actual}, not {wanted} (ssh_address_family)", where)

    def _addresses(self, ctx: CheckContext, view: EffectiveSshd) -> Verdict:
        allowed, bad = variable_networks(ctx, "ssh_listen_addresses", "192.0.2.5,2001:db8::5")
        if bad:
            return errored(bad)
        where = self._where(ctx, view, "listenaddress")
        problems = []
        for listener in listeners(view):
            address = listener.address
            if address is None:
                problems.append(f"{listener}: a name, not an address (it may resolve to any)")
            elif address.is_unspecified:
                problems.append(f"{listener}: every IPv{address.version} address of the host")
            elif allowed and not any(address in network for network in allowed):
                problems.append(f"{listener}: outside ssh_listen_addresses")
        if problems:
            return failed(*problems, where)
        scope = ", ".join(map(str, allowed)) if allowed else "any address but a wildcard"
        return passed(where, f"ssh_listen_addresses: {scope}")

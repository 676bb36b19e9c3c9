"""The outside view of a remote host: what the auditing machine, another machine on the
network, reaches. A host is often judged by its own sockets (``listening``), but a port
bound to every address can still be closed by a firewall, and one the host thinks private
can be open: here the port is asked from outside.

These checks apply to hosts audited over SSH and reached directly (an address this machine
connects to); on the host itself, or through a jump host, they are skipped with the reason.
The SSH and TLS parts of the outside view are ``ssh_probe`` and ``tls_probe`` with
``vantage: outside``.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

from checks.hosts import HostError
from checks.params import Param
from checks.probes.http import probe_http
from checks.probes.postgres import postgres_answer
from checks.probes.wire import ProbeError, Target, connect
from checks.result import Status, Verdict, errored, skipped
from checks.types.base import CheckContext, CheckType
from checks.types.probes import OUTSIDE_ONLY, combine, discover

#: Reaching a closed port: a refusal comes at once, a filtered port is silent this long.
REACH_TIMEOUT = 3.0


class _OutsideCheck(CheckType):
    """Ports at the host's outside address: listed, plus those discovered for ``owners``."""

    needs_live_host = True
    schema: ClassVar[dict[str, Param]] = {
        "ports": Param("str_list", default=(), help="ports to ask at the host's address"),
        "owners": Param("str_list", default=(), help="also every port these processes listen on"),
    }

    def run(self, ctx: CheckContext) -> Verdict:
        address = ctx.host.outside_address
        if address is None:
            return skipped(OUTSIDE_ONLY)
        try:
            listed = [Target(address, int(port)) for port in self.params["ports"]]
            owners = self.params["owners"]
            found = discover(ctx, owners, outside=True)[0] if owners else []
        except (ValueError, HostError) as exc:
            return errored(str(exc))
        targets = sorted(set(listed) | set(found), key=lambda t: (t.port, t.host))
        if not targets:
            return skipped("no port to ask: none listed, and none of the owners listens outside")
        return combine([self.judge(target) for target in targets])

    @abstractmethod
    def judge(self, target: Target) -> tuple[Status, str]: ...


class PortClosedCheck(_OutsideCheck):
    """The ports cannot be reached from the auditing machine. When one can, a PostgreSQL
    SSLRequest tells whether it is a database that answers."""

    name = "port_closed"
    schema: ClassVar[dict[str, Param]] = {
        **_OutsideCheck.schema,
        "owners": Param(
            "str_list", default=("postgres", "postmaster"), help="also every port these listen on"
        ),
    }

    def judge(self, target: Target) -> tuple[Status, str]:
        try:
            with connect(target, REACH_TIMEOUT):
                pass
        except ProbeError as exc:
            return Status.PASS, f"{target} cannot be reached from here ({_why(exc, target)})"
        try:
            answer = postgres_answer(target, REACH_TIMEOUT)
        except ProbeError as exc:
            answer = f"then: {_why(exc, target)}"
        return Status.FAIL, f"{target} accepts connections from here: {answer}"


class HttpRedirectCheck(_OutsideCheck):
    """Plain HTTP answers with a redirect to https:// (or is not served at all)."""

    name = "http_redirect"
    schema: ClassVar[dict[str, Param]] = {
        **_OutsideCheck.schema,
        "ports": Param("str_list", default=("80",), help="plain-HTTP ports at the host's address"),
    }

    def judge(self, target: Target) -> tuple[Status, str]:
        try:
            with connect(target, REACH_TIMEOUT):
                pass
        except ProbeError as exc:
            return Status.PASS, f"{target} serves no plain HTTP ({_why(exc, target)})"
        try:
            answer = probe_http(target, target.host)
        except ProbeError as exc:
            return Status.ERROR, str(exc)
        said = f"{target} answers {answer.status}" + (
            f" to {answer.location}" if answer.location else ""
        )
        if answer.redirects_to_https:
            return Status.PASS, said
        return Status.FAIL, f"{said}: plain HTTP is served, not redirected to https://"


def _why(exc: ProbeError, target: Target) -> str:
    return str(exc).removeprefix(f"{target}: ")

"""Check types that ask the running servers themselves: TLS versions and certificates, SSH
authentication methods. Config files say what should happen; a probe sees what does.

Targets are either listed (``host:port``, connected to from the auditing machine) or
discovered: every TCP socket the named processes listen on. A discovered port is seen from
the host itself (``vantage: inside``: at the host's probe address for it, through the SSH
connection when the host is remote) or, for a remote host, from the auditing machine
(``vantage: outside``: at the address it reaches the host at). Each port is probed once
per audit, however many checks look at it.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from checks.hosts import HostError, PlannedCommand
from checks.params import Param
from checks.probes.ssh import PROBE_USER, SSHAuthProbe, probe_ssh_auth
from checks.probes.tls import TLS_VERSIONS, TLSProbe, probe_tls
from checks.probes.wire import ProbeError, Target, parse_target
from checks.remote_facts import SOCKETS_COMMAND
from checks.result import Status, Verdict, errored, failed, passed, skipped
from checks.types.base import CheckContext, CheckType
from checks.types.system import is_loopback

Finding = tuple[Status, str]

TARGETS_HELP = (
    "host:port list to probe from the auditing machine; "
    "empty (default): discover the owners' listening ports"
)
VANTAGE = Param(
    "choice",
    default="inside",
    choices=("inside", "outside"),
    help="discovered ports seen from the host itself, or from the auditing machine",
)
OUTSIDE_ONLY = "the outside view needs a remote audit (a host audited over SSH, reached directly)"
WILDCARDS = ("0.0.0.0", "::", "")


class ProbeCheck(CheckType):
    """Target selection and verdict assembly shared by the probe check types."""

    needs_live_host = True
    default_port: ClassVar[int]

    def commands(self, ctx: CheckContext) -> Sequence[PlannedCommand]:
        return () if self.params["targets"] else (SOCKETS_COMMAND,)

    def run(self, ctx: CheckContext) -> Verdict:
        owners = self.params["owners"]
        unseen: list[str] = []
        outside = self.params["vantage"] == "outside"
        if outside and not self.params["targets"] and ctx.host.outside_address is None:
            return skipped(OUTSIDE_ONLY)
        try:
            if self.params["targets"]:
                texts = self.params["targets"]
                targets = [parse_target(text, self.default_port) for text in texts]
            else:
                targets, unseen = discover(ctx, owners, outside)
        except (ValueError, HostError) as exc:
            return errored(str(exc))
        if not targets:
            if unseen:  # e.g. not running as root: one of them may be it, so no skip
                return errored(
                    f"cannot tell whether a {'/'.join(owners)} process listens on a TCP port: "
                    f"the owner of {', '.join(unseen)} could not be seen (audit as root, or "
                    "over SSH with --sudo)"
                )
            return skipped(f"no {'/'.join(owners)} process is listening on a TCP port")
        return self.judge(ctx, targets, discovered=not self.params["targets"])

    @abstractmethod
    def judge(self, ctx: CheckContext, targets: list[Target], discovered: bool) -> Verdict: ...


def discover(
    ctx: CheckContext, owners: tuple[str, ...], outside: bool = False
) -> tuple[list[Target], list[str]]:
    """Where to connect to reach each TCP port that a process named in ``owners`` listens on,
    and the TCP sockets whose owning process could not be seen and might be one of them.

    From inside, the host's probe address for the socket, reached as the host reaches it;
    from outside, the host's outside address for a wildcard socket and the bound address
    for others, reached directly. Loopback sockets cannot be reached from outside.
    """
    host = ctx.host
    sockets = [s for s in host.listening_sockets() if s.proto == "tcp"]
    if outside:
        sockets = [s for s in sockets if not is_loopback(s.address)]
    found = {
        Target(host.outside_address if s.address in WILDCARDS else s.address, s.port)
        if outside
        else host.reach(Target(host.probe_address(s.address), s.port))
        for s in sockets
        if s.process in owners
    }
    # a socket whose process could not be seen, held by a user who runs one of the owners
    # (or whose processes could not be told either)
    unseen = [
        str(Target(s.address, s.port))
        for s in sockets
        if s.process is None and (not s.candidates or set(owners) & set(s.candidates))
    ]
    return sorted(found, key=lambda t: (t.port, t.host)), unseen


def combine(findings: list[Finding]) -> Verdict:
    """One verdict from per-port findings: any failure fails, else any error errs."""
    lines = [line for _, line in findings]
    statuses = {status for status, _ in findings}
    if Status.FAIL in statuses:
        return failed(*lines)
    if Status.ERROR in statuses:
        return errored("not every port could be probed", *lines)
    return passed(*lines)


class TLSProbeCheck(ProbeCheck):
    """``protocols``: no SSLv2/SSLv3 and nothing below ``min_version`` is accepted.
    ``certificate``: the served certificate is valid now and for ``expiry_days`` more."""

    name = "tls_probe"
    default_port = 443
    schema: ClassVar[dict[str, Param]] = {
        "mode": Param("choice", required=True, choices=("protocols", "certificate")),
        "targets": Param("str_list", default=(), help=TARGETS_HELP),
        "owners": Param("str_list", default=("apache2", "httpd"), help="processes to discover"),
        "vantage": VANTAGE,
        "min_version": Param(
            "choice", default="1.2", choices=("1.0", "1.1", "1.2", "1.3"), help="lowest TLS allowed"
        ),
        "expiry_days": Param("int", default=21, help="fail when the certificate expires sooner"),
        "require_trusted": Param(
            "bool", default=False, help="also fail when the chain does not verify for the name"
        ),
        "server_name": Param(
            "str", default=None, help="SNI name, and the name the certificate must be valid for"
        ),
        "ca_file": Param(
            "str", default=None, help="verify against this CA bundle, not the system's"
        ),
    }

    def judge(self, ctx: CheckContext, targets: list[Target], discovered: bool) -> Verdict:
        probes = https_ports(
            ctx, targets, discovered, self.params["server_name"], self.params["ca_file"]
        )
        if not probes:
            return skipped(no_https_port(targets))
        findings = []
        for target, probe in probes:
            if isinstance(probe, ProbeError):
                findings.append((Status.ERROR, str(probe)))
            elif not probe.speaks_tls:
                findings.append((Status.ERROR, f"{target}: {_refusals(probe)}"))
            elif self.params["mode"] == "protocols":
                findings.append(self._judge_protocols(probe))
            else:
                findings.append(self._judge_certificate(probe, ctx.clock()))
        return combine(findings)

    def _judge_protocols(self, probe: TLSProbe) -> Finding:
        minimum = f"TLSv{self.params['min_version']}"
        names = list(TLS_VERSIONS)
        allowed = set(names[names.index(minimum) :])
        accepts = f"{probe.target} accepts {', '.join(probe.accepted)}"
        forbidden = [p for p in probe.accepted if p not in allowed]
        if forbidden:
            return Status.FAIL, f"{accepts}; below {minimum}: {', '.join(forbidden)}"
        unknown = [
            f"{o.protocol} ({o.detail})" for o in probe.undecided if o.protocol not in allowed
        ]
        if unknown:
            return Status.ERROR, f"{accepts}; could not tell for {', '.join(unknown)}"
        return Status.PASS, accepts

    def _judge_certificate(self, probe: TLSProbe, now: float) -> Finding:
        cert = probe.certificate
        if cert is None:
            return Status.ERROR, f"{probe.target}: {probe.certificate_error}"
        about = (
            f"{probe.target} serves {cert.subject}, valid {cert.not_before:%Y-%m-%d %H:%M} to "
            f"{cert.not_after:%Y-%m-%d %H:%M} UTC"
        )
        days = cert.days_left(now)
        limit = self.params["expiry_days"]
        trust = f"; {cert.trust_detail}"
        if not cert.valid_at(now):
            state = "expired" if days < 0 else "not valid yet"
            return Status.FAIL, f"{about}: {state}{trust}"
        if days < limit:
            return Status.FAIL, f"{about}: expires in {days:.1f} days (< {limit}){trust}"
        if self.params["require_trusted"] and cert.trusted is not True:
            status = Status.FAIL if cert.trusted is False else Status.ERROR
            return status, f"{about}{trust}"
        return Status.PASS, f"{about}: {days:.1f} days left{trust}"


def https_ports(
    ctx: CheckContext,
    targets: list[Target],
    discovered: bool,
    server_name: str | None = None,
    ca_file: str | None = None,
) -> list[tuple[Target, TLSProbe | ProbeError]]:
    """Each target's protocol probe (once per audit, shared by every TLS check). Discovered
    ports that complete no TLS handshake are plain HTTP and left out; listed ones stay."""
    probes: list[tuple[Target, TLSProbe | ProbeError]] = []
    for target in targets:
        try:
            probe = ctx.memo(
                ("tls_probe", target, server_name, ca_file, discovered),
                lambda t=target: probe_tls(
                    t, server_name=server_name, cafile=ca_file, legacy_needs_tls=discovered
                ),
            )
        except ProbeError as exc:
            probes.append((target, exc))
        else:
            probes.append((target, probe))
    if discovered:
        probes = [(t, p) for t, p in probes if isinstance(p, ProbeError) or p.speaks_tls]
    return probes


def no_https_port(targets: list[Target]) -> str:
    ports = ", ".join(map(str, targets))
    return f"no HTTPS port: none of {ports} completes a TLS handshake"


def _refusals(probe: TLSProbe) -> str:
    detail = "; ".join(f"{o.protocol}: {o.detail}" for o in probe.outcomes)
    return f"no SSL/TLS handshake succeeded ({detail})"


class SSHProbeCheck(ProbeCheck):
    """The SSH server offers no authentication method outside ``expected``."""

    name = "ssh_probe"
    default_port = 22
    schema: ClassVar[dict[str, Param]] = {
        "targets": Param("str_list", default=(), help=TARGETS_HELP),
        "owners": Param("str_list", default=("sshd",), help="processes to discover"),
        "vantage": VANTAGE,
        "expected": Param("str_list", default=("publickey",), help="methods allowed to be offered"),
    }

    def judge(self, ctx: CheckContext, targets: list[Target], discovered: bool) -> Verdict:
        findings = []
        for target in targets:
            try:
                probe = ctx.memo(("ssh_probe", target), lambda t=target: probe_ssh_auth(t))
            except ProbeError as exc:
                findings.append((Status.ERROR, str(exc)))
                continue
            findings.append(self._judge(probe))
        return combine(findings)

    def _judge(self, probe: SSHAuthProbe) -> Finding:
        if probe.accepts_none:
            return Status.FAIL, f"{probe.target} let {PROBE_USER} in without authentication"
        offers = f"{probe.target} offers {', '.join(probe.methods)}"
        unexpected = [m for m in probe.methods if m not in self.params["expected"]]
        if unexpected:
            return Status.FAIL, f"{offers}; not expected: {', '.join(unexpected)}"
        return Status.PASS, offers

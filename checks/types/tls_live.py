"""Live TLS checks beyond protocol versions: the cipher suites each HTTPS port accepts, the
HSTS header each site sends, and each site's certificate (trust, key, lifetime), all judged
against a Mozilla profile (``checks.tls_profiles``).

Ports are found as for ``tls_probe`` (and share its per-audit probe). A port serves every
SSL virtual host configured on it, so the certificate and HSTS checks ask it once per site
name (SNI and Host), taken from Apache's configuration.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar
from urllib.parse import urlsplit

from checks.hosts import HostError, PlannedCommand
from checks.params import Param
from checks.parsers.apache import APACHECTL_MODULES, SERVER_ROOT, ApacheConfigError
from checks.parsers.hsts import hsts_max_age
from checks.probes.ciphers import SuiteScan, scan_suites
from checks.probes.handshake import CURVES, HandshakeScan, Stapling, probe_stapling, scan_handshakes
from checks.probes.http import HTTPAnswer, probe_http
from checks.probes.tls import Certificate, TLSProbe
from checks.probes.wire import Outcome, ProbeError, Target
from checks.result import Status, Verdict, skipped
from checks.tls_profiles import PROFILE_NAMES, PROFILES, Profile, describe
from checks.types.apache import apache_config
from checks.types.base import CheckContext
from checks.types.probes import (
    TARGETS_HELP,
    VANTAGE,
    Finding,
    ProbeCheck,
    combine,
    https_ports,
    no_https_port,
)

PROFILE = Param("choice", default="intermediate", choices=PROFILE_NAMES, help="Mozilla profile")
SERVER_NAMES = Param(
    "str_list",
    default=(),
    help="site names to ask for (SNI, Host); default: the SSL virtual hosts' ServerNames",
)
_MAX_REDIRECTS = 4  # as sslyze: a site's HSTS is read where "/" leads on the same host
_GOOD_HASHES = ("sha256", "sha384", "sha512", "")  # "": EdDSA signs without a separate hash


class _HTTPSCheck(ProbeCheck):
    """The HTTPS ports among the targets, and the site names each one serves."""

    default_port = 443
    schema: ClassVar[dict[str, Param]] = {
        "targets": Param("str_list", default=(), help=TARGETS_HELP),
        "owners": Param("str_list", default=("apache2", "httpd"), help="processes to discover"),
        "vantage": VANTAGE,
        "server_names": SERVER_NAMES,
    }

    def commands(self, ctx: CheckContext) -> Sequence[PlannedCommand]:
        return (*super().commands(ctx), APACHECTL_MODULES)  # site names: Apache's config

    def judge(self, ctx: CheckContext, targets: list[Target], discovered: bool) -> Verdict:
        ports = https_ports(ctx, targets, discovered)
        if not ports:
            return skipped(no_https_port(targets))
        jobs = [
            (target, probe if isinstance(probe, ProbeError) else None) for target, probe in ports
        ]
        with ThreadPoolExecutor(max(1, len(jobs))) as pool:
            findings = pool.map(lambda job: self._port(ctx, *job), jobs)
            return combine([finding for port in findings for finding in port])

    def _port(self, ctx: CheckContext, target: Target, error: ProbeError | None) -> list[Finding]:
        if error is not None:
            return [(Status.ERROR, str(error))]
        return self.judge_port(ctx, target)

    def names(self, ctx: CheckContext, target: Target) -> list[str]:
        """The site names to ask ``target`` for: the ``server_names`` parameter, else the
        ServerName of every SSL virtual host on its port (the server-level ServerName, then
        the host's name, for one without), else the target's own host."""
        if self.params["server_names"]:
            return list(self.params["server_names"])
        return site_names(ctx, target.port) or [target.host]

    def judge_port(self, ctx: CheckContext, target: Target) -> list[Finding]:
        raise NotImplementedError


def site_names(ctx: CheckContext, port: int) -> list[str]:
    """ServerNames of the SSL sites Apache's configuration puts on ``port`` (empty when there
    is no configuration to read)."""
    try:
        if not ctx.host.exists(f"{SERVER_ROOT}/apache2.conf"):
            return []
        config = apache_config(ctx)
    except (ApacheConfigError, HostError):
        return []
    fallback = [d.args[0] for d in config.server_level("ServerName") if d.args][-1:]
    names: list[str] = []
    for site in config.vhosts:
        ports = {a.rpartition(":")[2] for a in (site.section.args if site.section else ())}
        if site.ssl and ports & {str(port), "*"}:
            name = site.server_name or (fallback[0] if fallback else ctx.host.name)
            names.append(_bare_host(name))
    return list(dict.fromkeys(names))


def _bare_host(server_name: str) -> str:
    """``https://www.example.org:443`` -> ``www.example.org`` (ServerName's full form)."""
    text = server_name if "://" in server_name else f"//{server_name}"
    return urlsplit(text).hostname or server_name


class TLSCipherProbeCheck(_HTTPSCheck):
    """Every HTTPS port accepts only the ``profile``'s suites at each version (so nothing
    without forward secrecy, no NULL, export, RC4, DES, 3DES or anonymous suite) and no
    TLS compression."""

    name = "tls_cipher_probe"
    schema: ClassVar[dict[str, Param]] = {**_HTTPSCheck.schema, "profile": PROFILE}

    def judge_port(self, ctx: CheckContext, target: Target) -> list[Finding]:
        name = self.names(ctx, target)[0]
        try:
            scan = ctx.memo(("tls_suites", target, name), lambda: scan_suites(target, name))
        except ProbeError as exc:
            return [(Status.ERROR, str(exc))]
        return [judge_suites(scan, PROFILES[self.params["profile"]])]


def judge_suites(scan: SuiteScan, profile: Profile) -> Finding:
    """One line per port: what is outside the profile, or everything it accepts."""
    outside = []
    for version, suites in scan.accepted.items():
        allowed = profile.allowed(version)
        bad = [describe(s, profile) for s in suites if s not in allowed]
        if bad:
            outside.append(f"{version}: {', '.join(bad)}")
    if scan.compression:
        outside.append("TLS compression (CRIME)")
    if outside:
        return Status.FAIL, f"{scan.target} accepts outside Mozilla {profile.name}: " + (
            "; ".join(outside)
        )
    if scan.undecided or scan.compression is None:
        doubts = [f"{v}: {why}" for v, why in scan.undecided.items()]
        doubts += ["compression: unclear answer"] if scan.compression is None else []
        return Status.ERROR, f"{scan.target}: could not tell for {'; '.join(doubts)}"
    accepted = "; ".join(f"{v}: {', '.join(s)}" for v, s in scan.accepted.items() if s)
    return Status.PASS, f"{scan.target} accepts {accepted or 'no suite'}"


class HSTSProbeCheck(_HTTPSCheck):
    """Every HTTPS site (each SSL virtual host name on each port) answers ``GET /`` (after
    at most four redirects on the same site) with Strict-Transport-Security whose max-age
    is at least ``min_age``."""

    name = "hsts_probe"
    schema: ClassVar[dict[str, Param]] = {
        **_HTTPSCheck.schema,
        "min_age": Param("duration", default=365 * 86400.0, help="shortest acceptable max-age"),
    }

    def judge_port(self, ctx: CheckContext, target: Target) -> list[Finding]:
        return [self._site(target, name) for name in self.names(ctx, target)]

    def _site(self, target: Target, name: str) -> Finding:
        site = f"{target} ({name})"
        try:
            path, answer = _follow(target, name)
        except ProbeError as exc:
            return Status.ERROR, f"{site}: {exc}"
        header = answer.header("Strict-Transport-Security")
        got = f"GET {path} answered {answer.status}"
        minimum = int(self.params["min_age"])
        if header is None:
            return Status.FAIL, f"{site}: {got} without Strict-Transport-Security"
        age = hsts_max_age(header)
        shown = f"{got} with Strict-Transport-Security {header!r}"
        if age is None:
            return Status.FAIL, f"{site}: {shown}: no valid max-age"
        if age < minimum:
            return Status.FAIL, f"{site}: {shown}: max-age {age} < {minimum}"
        return Status.PASS, f"{site}: {shown}"


def _follow(target: Target, name: str) -> tuple[str, HTTPAnswer]:
    """``GET /``, then where it redirects while that stays on ``name`` over HTTPS."""
    path = "/"
    answer = probe_http(target, name, tls=True, path=path)
    for _ in range(_MAX_REDIRECTS):
        location = answer.location if answer.status in (301, 302, 303, 307, 308) else None
        if not location:
            break
        url = urlsplit(location)
        if url.scheme not in ("", "https") or (url.hostname and url.hostname != name):
            break
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        answer = probe_http(target, name, tls=True, path=path)
    return path, answer


class TLSCertificateProbeCheck(_HTTPSCheck):
    """Each HTTPS site's certificate, asked for by its name: ``trust`` (the chain verifies
    for the name against the system store or ``ca_file``), ``key`` (a key type and size the
    profile allows, signed with SHA-256 or better) or ``lifetime`` (no longer valid in total
    than the profile's maximum)."""

    name = "tls_certificate_probe"
    schema: ClassVar[dict[str, Param]] = {
        **_HTTPSCheck.schema,
        "aspect": Param("choice", required=True, choices=("trust", "key", "lifetime")),
        "profile": PROFILE,
        "ca_file": Param("str", default=None, help="verify against this CA bundle"),
    }

    def judge_port(self, ctx: CheckContext, target: Target) -> list[Finding]:
        findings = []
        for name in self.names(ctx, target):
            site = f"{target} ({name})"
            ports = https_ports(ctx, [target], False, name, self.params["ca_file"])
            probe: TLSProbe | ProbeError = ports[0][1]
            if isinstance(probe, ProbeError):
                findings.append((Status.ERROR, f"{site}: {probe}"))
            elif probe.certificate is None:
                findings.append((Status.ERROR, f"{site}: {probe.certificate_error}"))
            else:
                findings.append(self._judge(site, probe.certificate))
        return findings

    def _judge(self, site: str, cert: Certificate) -> Finding:
        about = f"{site} serves {cert.subject}"
        profile = PROFILES[self.params["profile"]]
        aspect = self.params["aspect"]
        if aspect == "trust":
            status = {True: Status.PASS, False: Status.FAIL}.get(cert.trusted, Status.ERROR)
            return status, f"{about}: {cert.trust_detail}"
        if aspect == "lifetime":
            line = f"{about}, valid {cert.lifetime_days} days in total"
            if cert.lifetime_days > profile.max_certificate_days:
                return Status.FAIL, f"{line} (> {profile.max_certificate_days}, {profile.name})"
            return Status.PASS, line
        key = f"{about}: {cert.key_type.upper()} {cert.key_bits} bits"
        key += f" ({cert.key_curve})" if cert.key_curve else ""
        key += f", signed with {cert.signature_hash or 'no separate hash'}"
        problems = _key_problems(cert, profile)
        return (Status.FAIL, f"{key}: {'; '.join(problems)}") if problems else (Status.PASS, key)


def _key_problems(cert: Certificate, profile: Profile) -> list[str]:
    problems = []
    if cert.key_type not in profile.certificate_types:
        allowed = " or ".join(t.upper() for t in profile.certificate_types)
        problems.append(f"Mozilla {profile.name} wants {allowed} keys")
    minimum = {"rsa": profile.rsa_bits, "ecdsa": profile.ec_bits}.get(cert.key_type, 0)
    if cert.key_bits < minimum:
        problems.append(f"fewer than {minimum} bits")
    if cert.key_type == "ecdsa" and cert.key_curve not in profile.certificate_curves:
        curves = " or ".join(profile.certificate_curves)
        problems.append(f"Mozilla {profile.name} wants the curve {curves}, not {cert.key_curve}")
    if cert.signature_hash not in _GOOD_HASHES:
        problems.append(f"{cert.signature_hash} is too weak a signature hash")
    return problems


class TLSHandshakeProbeCheck(_HTTPSCheck):
    """What every HTTPS port answers beyond its suites (``checks.probes.handshake``), one
    ``aspect`` a check: only the ``profile``'s elliptic curves; a DH group of at least
    ``min_dh_bits``; a downgraded handshake (TLS_FALLBACK_SCSV) refused; the extended master
    secret and secure renegotiation agreed at TLS 1.2; heartbeats refused; a premature
    ChangeCipherSpec (CCS injection) refused."""

    name = "tls_handshake_probe"
    schema: ClassVar[dict[str, Param]] = {
        **_HTTPSCheck.schema,
        "aspect": Param("choice", required=True, choices=(
            "curves", "dh", "fallback", "extended_master_secret", "renegotiation", "heartbeat",
            "ccs_injection")),
        "profile": PROFILE,
        "min_dh_bits": Param("int", default=2048, help="smallest DH prime, in bits"),
    }  # fmt: skip

    def judge_port(self, ctx: CheckContext, target: Target) -> list[Finding]:
        name = self.names(ctx, target)[0]
        scan = ctx.memo(("tls_handshakes", target, name), lambda: scan_handshakes(target, name))
        aspect = self.params["aspect"]
        asked = _QUESTIONS[aspect]
        doubts = [f"{q}: {why}" for q, why in scan.undecided.items() if asked(q)]
        if doubts:
            return [(Status.ERROR, f"{target}: could not tell for {'; '.join(doubts)}")]
        return [_JUDGES[aspect](self, scan)]

    def _curves(self, scan: HandshakeScan) -> Finding:
        profile = PROFILES[self.params["profile"]]
        outside = [curve for curve in scan.curves if curve not in profile.curves]
        if outside:
            return Status.FAIL, (
                f"{scan.target} accepts curves outside Mozilla {profile.name} "
                f"({', '.join(profile.curves)}): {', '.join(outside)}"
            )
        accepted = ", ".join(scan.curves) or "none"
        return Status.PASS, f"{scan.target} accepts the curves {accepted}"

    def _dh(self, scan: HandshakeScan) -> Finding:
        minimum = self.params["min_dh_bits"]
        if scan.dh_bits is None:
            return Status.PASS, f"{scan.target} accepts no DHE suite"
        if scan.dh_bits < minimum:
            return Status.FAIL, (
                f"{scan.target} serves a {scan.dh_bits}-bit DH group (at least {minimum})"
            )
        return Status.PASS, f"{scan.target} serves a {scan.dh_bits}-bit DH group"

    def _fallback(self, scan: HandshakeScan) -> Finding:
        if scan.fallback_refused is None:
            return Status.PASS, f"{scan.target} speaks no TLS 1.3: TLS 1.2 is no downgrade"
        if scan.fallback_refused:
            return Status.PASS, f"{scan.target} refuses a TLS 1.2 hello carrying TLS_FALLBACK_SCSV"
        return Status.FAIL, (
            f"{scan.target} speaks TLS 1.3 yet accepts a TLS 1.2 hello carrying "
            "TLS_FALLBACK_SCSV (a downgrade)"
        )

    def _tls12_extension(self, scan: HandshakeScan) -> Finding:
        aspect = self.params["aspect"]
        what, wanted = _EXTENSIONS[aspect]
        if scan.tls12 is None:
            return Status.PASS, f"{scan.target} speaks no TLS 1.2"
        agreed = getattr(scan.tls12, aspect)
        said = "agrees to" if agreed else "does not agree to"
        status = Status.PASS if agreed == wanted else Status.FAIL
        return status, f"{scan.target} {said} {what} at TLS 1.2"

    def _ccs(self, scan: HandshakeScan) -> Finding:
        if scan.ccs_accepted is None:
            return Status.PASS, f"{scan.target} speaks no TLS 1.2"
        if scan.ccs_accepted:
            return Status.FAIL, (
                f"{scan.target} takes a ChangeCipherSpec before any key exchange in silence "
                "(CCS injection, CVE-2014-0224)"
            )
        return Status.PASS, f"{scan.target} refuses a ChangeCipherSpec before any key exchange"


#: aspect -> (what the extension is called, whether the server must agree to it)
_EXTENSIONS = {
    "extended_master_secret": ("the extended master secret (RFC 7627)", True),
    "renegotiation": ("secure renegotiation (RFC 5746)", True),
    "heartbeat": ("heartbeats (RFC 6520, which Heartbleed abused)", False),
}
_JUDGES = {
    "curves": TLSHandshakeProbeCheck._curves,
    "dh": TLSHandshakeProbeCheck._dh,
    "fallback": TLSHandshakeProbeCheck._fallback,
    **dict.fromkeys(_EXTENSIONS, TLSHandshakeProbeCheck._tls12_extension),
    "ccs_injection": TLSHandshakeProbeCheck._ccs,
}


def _subject(question: str) -> str:
    return question.split(" at ", 1)[0]


#: aspect -> which undecided questions ("X25519 at TLSv1.3") bear on it (fallback needs to
#: know whether the port speaks TLS 1.3, which the curve questions tell)
_QUESTIONS = {
    "curves": lambda q: _subject(q) in CURVES.values(),
    "dh": lambda q: _subject(q) == "dh",
    "fallback": lambda q: _subject(q) == "fallback" or q.endswith("TLSv1.3"),
    **dict.fromkeys(_EXTENSIONS, lambda q: _subject(q) == "extensions"),
    "ccs_injection": lambda q: _subject(q) == "ccs",
}


class OCSPStaplingProbeCheck(_HTTPSCheck):
    """Each HTTPS site whose served certificate names an OCSP responder staples a good
    (``successful``) OCSP answer, asked for at TLS 1.2 by its name (TLS 1.3 encrypts it)."""

    name = "ocsp_stapling_probe"

    def judge_port(self, ctx: CheckContext, target: Target) -> list[Finding]:
        return [_judge_stapling(f"{target} ({name})", probe_stapling(target, name))
                for name in self.names(ctx, target)]  # fmt: skip


def _judge_stapling(site: str, answer: Stapling | Outcome) -> Finding:
    if isinstance(answer, Outcome):
        if answer.accepted is None:
            return Status.ERROR, f"{site}: {answer.detail}"
        return Status.PASS, (
            f"{site} speaks no TLS 1.2, where a staple can be seen ({answer.detail}); "
            "LAPP-TLS-008 judges the configuration"
        )
    if not answer.responders:
        return Status.PASS, f"{site}: the certificate names no OCSP responder"
    responder = answer.responders[0]
    if answer.status is None:
        return Status.FAIL, f"{site}: the certificate names {responder}, nothing is stapled"
    if answer.status != "successful":
        return Status.FAIL, (
            f"{site}: staples a '{answer.status}' answer: the server gets no good one "
            f"from {responder}"
        )
    return Status.PASS, f"{site}: staples a successful answer of {responder}"

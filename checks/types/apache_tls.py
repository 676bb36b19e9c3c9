"""Apache TLS configuration beyond protocol versions: the cipher suites each SSL site allows
(``SSLCipherSuite`` per protocol, ``SSLOpenSSLConfCmd CipherString``/``Ciphersuites``) and the
HSTS header it sets, per virtual host, after includes and inheritance from the server level.

Cipher strings are expanded by this machine's OpenSSL (``ssl``) at ``@SECLEVEL=0``, with the
``:!aNULL:!eNULL:!EXP`` that mod_ssl appends to every SSLCipherSuite: everything the string
names counts, even what a security level might hide at run time (the live check sees that).
Families this OpenSSL no longer knows (RC4, DES, 3DES, IDEA, RC2, SEED) are caught by name.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

from checks.hosts import HostError
from checks.params import Param
from checks.parsers.apache import ApacheConfig, Directive, VirtualHost
from checks.parsers.hsts import hsts_max_age
from checks.probes.handshake import ocsp_responders
from checks.tls_profiles import PROFILE_NAMES, PROFILES, TLS13_SUITES, Profile, describe
from checks.types.apache import ApacheCheck, Findings
from checks.types.base import CheckContext

#: What mod_ssl appends to every SSLCipherSuite (and uses when there is none).
MOD_SSL_SUFFIX = ":!aNULL:!eNULL:!EXP"
OPENSSL_DEFAULT = "DEFAULT"
_LEGACY_FAMILY = re.compile(r"RC4|DES|IDEA|RC2|SEED", re.IGNORECASE)
_PRE_TLS13 = ("SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2")
_HSTS = "strict-transport-security"


@dataclass(frozen=True)
class CipherSetting:
    spec: str
    source: Directive | None  # None: the default applies

    def where(self, default: str) -> str:
        if self.source is None:
            return default
        return f"'{self.source.name} {self.source.value}' at {self.source.origin}"


def cipher_settings(config: ApacheConfig, site: VirtualHost) -> tuple[CipherSetting, CipherSetting]:
    """The (TLS 1.2 and older, TLS 1.3) cipher specifications in effect for ``site``."""
    older, tls13 = CipherSetting(OPENSSL_DEFAULT, None), CipherSetting(":".join(TLS13_SUITES), None)
    for directive in _inherited(config, site, "SSLCipherSuite"):
        args = directive.args
        protocol, spec = (args[0], args[1]) if len(args) == 2 else ("SSL", directive.value)
        if protocol.lower() == "tlsv1.3":
            tls13 = CipherSetting(spec, directive)
        else:
            older = CipherSetting(spec + MOD_SSL_SUFFIX, directive)
    for directive in _inherited(config, site, "SSLOpenSSLConfCmd"):
        if len(directive.args) == 2 and directive.args[0].lower() == "cipherstring":
            older = CipherSetting(directive.args[1], directive)
        elif len(directive.args) == 2 and directive.args[0].lower() == "ciphersuites":
            tls13 = CipherSetting(directive.args[1], directive)
    return older, tls13


def _inherited(config: ApacheConfig, site: VirtualHost, name: str) -> list[Directive]:
    """Server-level lines then the site's own, in reading order: mod_ssl lets a vhost's line
    override the server's, and appends SSLOpenSSLConfCmd lists."""
    server = config.server_level(name)
    own = [] if site.is_main_server else [d for d in site.own if d.key == name.lower()]
    return server + own


@lru_cache(maxsize=256)
def expand(spec: str) -> tuple[str, ...]:
    """The TLS 1.2-and-older suites an OpenSSL cipher string selects here; ValueError when it
    selects none (httpd would refuse to start)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.set_ciphers(f"{spec}:@SECLEVEL=0")
    except ssl.SSLError as exc:
        raise ValueError(f"no cipher suite matches {spec!r}") from exc
    return tuple(c["name"] for c in context.get_ciphers() if c["protocol"] != "TLSv1.3")


def legacy_tokens(spec: str) -> list[str]:
    """Words of a cipher string that turn on a family this OpenSSL no longer has."""
    words = re.split(r"[:, ]+", spec)
    return [w for w in words if w and w[0] not in "!-" and _LEGACY_FAMILY.search(w)]


class ApacheTlsCiphers(ApacheCheck):
    """Every SSL site allows only ``profile``'s suites for each protocol it enables."""

    name = "apache_tls_ciphers"
    schema = {
        "profile": Param("choice", default="intermediate", choices=PROFILE_NAMES),
    }

    def judge(self, config: ApacheConfig, ctx: CheckContext) -> Findings:
        profile = PROFILES[self.params["profile"]]
        found = Findings()
        sites = [site for site in config.sites() if site.ssl]
        for site in sites:
            try:
                versions = config.ssl_protocols(site).versions
            except ValueError as exc:
                found.undecided.append(f"{site}: {exc}")
                continue
            older, tls13 = cipher_settings(config, site)
            lines: list[str] = []
            bad: list[str] = []
            if versions & set(_PRE_TLS13):
                self._older(site, older, profile, lines, bad, found)
            if "TLSv1.3" in versions:
                suites = [s for s in tls13.spec.split(":") if s]
                where = tls13.where("OpenSSL's default")
                lines.append(f"TLSv1.3: {', '.join(suites)} from {where}")
                allowed = profile.allowed("TLSv1.3")
                outside = [describe(s, profile) for s in suites if s not in allowed]
                if outside:
                    bad.append(f"TLSv1.3 from {where}: {', '.join(outside)}")
            if bad:
                found.violations.append(f"{site}: outside Mozilla {profile.name}: {'; '.join(bad)}")
            elif lines:
                found.evidence.append(f"{site}: {'; '.join(lines)}")
        if not sites:
            found.evidence.append("no SSL site in the configuration")
        return found

    def _older(
        self,
        site: VirtualHost,
        setting: CipherSetting,
        profile: Profile,
        lines: list[str],
        bad: list[str],
        found: Findings,
    ) -> None:
        where = setting.where(f"httpd's default ({OPENSSL_DEFAULT}{MOD_SSL_SUFFIX})")
        try:
            suites = expand(setting.spec)
        except ValueError as exc:
            found.undecided.append(f"{site}: {exc} ({where})")
            return
        allowed = profile.allowed("TLSv1.2")
        outside = [describe(s, profile) for s in suites if s not in allowed]
        outside += [f"{w} (a family this OpenSSL lacks)" for w in legacy_tokens(setting.spec)]
        lines.append(f"TLSv1.2 and older: {', '.join(suites)} from {where}")
        if outside:
            bad.append(f"TLSv1.2 and older from {where}: {', '.join(outside)}")


class ApacheHsts(ApacheCheck):
    """Every SSL site sends ``Strict-Transport-Security`` with max-age of at least
    ``min_age`` on every response (``Header always set``, so redirects and errors carry it
    too), from its own lines or the server level's."""

    name = "apache_hsts"
    schema = {
        "min_age": Param("duration", default=365 * 86400.0, help="shortest acceptable max-age"),
    }

    def judge(self, config: ApacheConfig, ctx: CheckContext) -> Findings:
        found = Findings()
        sites = [site for site in config.sites() if site.ssl]
        if sites and "headers_module" not in config.modules:
            found.violations.append(f"headers_module is not loaded ({config.module_source})")
            return found
        minimum = int(self.params["min_age"])
        for site in sites:
            lines = [d for d in _inherited(config, site, "Header") if _header_name(d) == _HSTS]
            if not lines:
                found.violations.append(f"{site}: no Header line sets Strict-Transport-Security")
                continue
            last = lines[-1]
            problem = _hsts_problem(last, minimum)
            (found.violations if problem else found.evidence).append(
                f"{site}: {last}" + (f": {problem}" if problem else "")
            )
        if not sites:
            found.evidence.append("no SSL site in the configuration")
        return found


def _header_name(directive: Directive) -> str:
    args = list(directive.args)
    if args and args[0].lower() in ("always", "onsuccess"):
        args = args[1:]
    return args[1].lower().rstrip(":") if len(args) >= 2 else ""


def _hsts_problem(directive: Directive, minimum: int) -> str | None:
    args = list(directive.args)
    condition = args.pop(0).lower() if args[0].lower() in ("always", "onsuccess") else "onsuccess"
    action = args[0].lower()
    if action == "unset":
        return "removes the header"
    if action not in ("set", "add", "append", "merge", "setifempty"):
        return f"'{action}' does not set a fixed value"
    if condition != "always":
        return "without 'always' it is not sent on redirects and error responses"
    value = args[2] if len(args) >= 3 else ""
    age = hsts_max_age(value)
    if age is None:
        return "no valid max-age"
    if age < minimum:
        return f"max-age {age} < {minimum}"
    return None


class ApacheOcspStapling(ApacheCheck):
    """Every SSL site whose certificate names an OCSP responder staples its answer
    (``SSLUseStapling On``, its own or the server level's). A certificate without one (an
    internal CA, Let's Encrypt since 2025) has nothing to staple and passes."""

    name = "apache_ocsp_stapling"
    schema: ClassVar[dict[str, Param]] = {}

    def judge(self, config: ApacheConfig, ctx: CheckContext) -> Findings:
        found = Findings()
        sites = [site for site in config.sites() if site.ssl]
        for site in sites:
            setting = config.effective("SSLUseStapling", site)
            stapling = setting is not None and setting.value.lower() == "on"
            where = str(setting.sources[-1]) if setting else "SSLUseStapling is not set (Off)"
            own = [d for d in site.own if d.key == "sslcertificatefile"]
            files = own if own and not site.is_main_server else config.server_level(
                "SSLCertificateFile")  # fmt: skip
            for directive in files:
                path = directive.args[0] if directive.args else ""
                path = path if path.startswith("/") else f"{config.server_root}/{path}"
                try:
                    responders = _ocsp_responders(ctx.host.read_bytes(path))
                except (HostError, ValueError) as exc:
                    found.undecided.append(f"{site}: cannot read the certificate {path}: {exc}")
                    continue
                if not responders:
                    found.evidence.append(f"{site}: {path} names no OCSP responder")
                elif stapling:
                    found.evidence.append(f"{site}: {path} staples {responders[0]} ({where})")
                else:
                    found.violations.append(
                        f"{site}: {path} names the OCSP responder {responders[0]}, but {where}"
                    )
            if not files:
                found.undecided.append(f"{site}: no SSLCertificateFile")
        if not sites:
            found.evidence.append("no SSL site in the configuration")
        return found


def _ocsp_responders(pem: bytes) -> tuple[str, ...]:
    """The OCSP URLs of the first certificate in a PEM file; ValueError when there is no
    certificate to read."""
    from cryptography import x509

    return ocsp_responders(x509.load_pem_x509_certificate(pem))

"""Which SSL/TLS versions a port accepts, and the certificate it serves.

TLS 1.0 to 1.3 are asked through the ``ssl`` module, one handshake per version with the
version pinned (minimum = maximum) and ``@SECLEVEL=0`` ciphers, so our client never refuses
what the server offers: a refusal then always comes from the server. SSLv2 and SSLv3, which
OpenSSL 3 cannot speak, are asked with hand-built hellos. Certificates are fetched without
verification (we probe, we do not trust) and verified in a separate handshake, whose result
is reported, not enforced.
"""

from __future__ import annotations

import datetime as dt
import ssl
import threading
import warnings
from dataclasses import dataclass

from checks.probes import sslv2, sslv3
from checks.probes.wire import DEFAULT_TIMEOUT, Outcome, ProbeError, Target, connect

TLS_VERSIONS = {
    "TLSv1.0": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}
LEGACY = {"SSLv2": sslv2.probe, "SSLv3": sslv3.probe}
#: Every version probed, oldest first.
PROTOCOLS = (*LEGACY, *TLS_VERSIONS)

_PERMISSIVE_CIPHERS = "ALL:COMPLEMENTOFALL:@SECLEVEL=0"
# OpenSSL 3 refuses servers without RFC 5746 renegotiation info unless told otherwise; old
# servers lack it and would look as if they refused the version. (ssl gained the name in 3.12.)
_OP_LEGACY_SERVER_CONNECT = getattr(ssl, "OP_LEGACY_SERVER_CONNECT", 0x4)
# catch_warnings swaps the process-wide filter list; audits probe from several threads.
_WARNINGS_LOCK = threading.Lock()


@dataclass(frozen=True)
class Certificate:
    subject: str
    issuer: str
    not_before: dt.datetime
    not_after: dt.datetime
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    #: None when the verifying handshake could not be made at all.
    trusted: bool | None
    trust_detail: str
    key_type: str = ""  # "rsa", "ecdsa", "ed25519", "dsa", ...
    key_bits: int = 0
    key_curve: str = ""  # an ECDSA key's curve, as OpenSSL names it ("prime256v1", ...)
    signature_hash: str = ""  # "sha256", ...; "" for signatures without one (Ed25519)

    @property
    def lifetime_days(self) -> int:
        """Whole days from notBefore to notAfter, as Mozilla's profiles count them."""
        return (self.not_after - self.not_before).days

    def valid_at(self, now: float) -> bool:
        return self.not_before.timestamp() <= now <= self.not_after.timestamp()

    def days_left(self, now: float) -> float:
        return (self.not_after.timestamp() - now) / 86400


@dataclass(frozen=True)
class TLSProbe:
    target: Target
    outcomes: tuple[Outcome, ...]  # one per protocol, in PROTOCOLS order
    certificate: Certificate | None
    certificate_error: str = ""

    @property
    def accepted(self) -> tuple[str, ...]:
        return tuple(o.protocol for o in self.outcomes if o.accepted)

    @property
    def undecided(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if o.accepted is None)

    @property
    def speaks_tls(self) -> bool:
        return bool(self.accepted)


def probe_tls(
    target: Target,
    *,
    server_name: str | None = None,
    cafile: str | None = None,
    legacy_needs_tls: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> TLSProbe:
    """Probe every version in PROTOCOLS, then fetch and verify the certificate.

    ``server_name`` is sent as SNI and is the name the certificate is verified for (default:
    the target host). With ``legacy_needs_tls`` the SSLv2/SSLv3 hellos are only sent when a
    TLS handshake succeeded: discovery uses it so that a plain-HTTP port, which would wait
    for a newline that an SSLv2 hello may not contain, costs no timeout.
    Raises ProbeError when the port cannot be reached at all.
    """
    with connect(target, timeout):
        pass
    name = server_name or target.host
    modern: list[Outcome] = []
    served: tuple[str, bytes] | None = None
    for protocol in reversed(TLS_VERSIONS):
        outcome, der = _probe_version(target, protocol, name, timeout)
        modern.insert(0, outcome)
        if outcome.accepted and served is None:
            served = (protocol, der)
    if legacy_needs_tls and served is None:
        skipped = "not probed: no TLS handshake succeeded"
        legacy = [Outcome(protocol, None, skipped) for protocol in LEGACY]
    else:
        legacy = [probe(target, timeout) for probe in LEGACY.values()]
    if served is None:
        return TLSProbe(target, (*legacy, *modern), None, "no TLS handshake succeeded")
    if not served[1]:
        return TLSProbe(
            target, (*legacy, *modern), None, "no certificate was sent (anonymous suite)"
        )
    try:
        certificate = _describe(served[1], _verify(target, served[0], name, cafile, timeout))
    except ValueError as exc:
        return TLSProbe(target, (*legacy, *modern), None, f"unreadable certificate: {exc}")
    return TLSProbe(target, (*legacy, *modern), certificate)


def client_context(protocol: str, verify: bool, cafile: str | None) -> ssl.SSLContext:
    """A client context pinned to one version, offering every suite it knows; verifying
    or not."""
    if verify:
        context = ssl.create_default_context(cafile=cafile)
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    # TLS 1.0/1.1 are deprecated in ssl: asking about them is the point.
    with _WARNINGS_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = context.maximum_version = TLS_VERSIONS[protocol]
    context.set_ciphers(_PERMISSIVE_CIPHERS)
    context.options |= _OP_LEGACY_SERVER_CONNECT
    return context


def _handshake(target: Target, context: ssl.SSLContext, name: str, timeout: float) -> bytes:
    """One handshake; returns the peer's leaf certificate (DER, b"" when none was sent)."""
    with (
        connect(target, timeout) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        return tls.getpeercert(binary_form=True) or b""


def _probe_version(
    target: Target, protocol: str, name: str, timeout: float
) -> tuple[Outcome, bytes]:
    try:
        der = _handshake(target, client_context(protocol, False, None), name, timeout)
    except ssl.SSLError as exc:
        if exc.reason == "NO_PROTOCOLS_AVAILABLE":  # our side, not the server's answer
            return Outcome(protocol, None, f"this machine's OpenSSL cannot offer {protocol}"), b""
        return Outcome(protocol, False, _ssl_reason(exc)), b""
    except ProbeError as exc:
        return Outcome(protocol, None, str(exc)), b""
    except TimeoutError:
        return Outcome(protocol, None, f"no answer within {timeout:g}s"), b""
    except ConnectionError as exc:
        return Outcome(protocol, False, f"connection closed ({exc.strerror or exc})"), b""
    except OSError as exc:
        return Outcome(protocol, None, exc.strerror or str(exc)), b""
    return Outcome(protocol, True), der


def _verify(
    target: Target, protocol: str, name: str, cafile: str | None, timeout: float
) -> tuple[bool | None, str]:
    """Does the served chain verify for ``name`` against the trust store (or ``cafile``)?"""
    store = cafile or "the system trust store"
    try:
        _handshake(target, client_context(protocol, True, cafile), name, timeout)
    except ssl.SSLCertVerificationError as exc:
        return False, f"does not verify for {name} against {store}: {exc.verify_message}"
    except ssl.SSLError as exc:
        return None, f"could not verify: {_ssl_reason(exc)}"
    except (ProbeError, OSError) as exc:
        return None, f"could not verify: {exc}"
    return True, f"verifies for {name} against {store}"


def _describe(der: bytes, trust: tuple[bool | None, str]) -> Certificate:
    """Raises ValueError for a certificate that does not parse."""
    from cryptography import x509  # 30 ms to import: paid only when a certificate is read

    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        dns_names, ip_addresses = (), ()
    else:
        dns_names = tuple(san.get_values_for_type(x509.DNSName))
        ip_addresses = tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    return Certificate(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        dns_names=dns_names,
        ip_addresses=ip_addresses,
        trusted=trust[0],
        trust_detail=trust[1],
        key_type=_key_type(cert.public_key()),
        key_bits=getattr(cert.public_key(), "key_size", 0),
        key_curve=_curve(cert.public_key()),
        signature_hash=cert.signature_hash_algorithm.name if cert.signature_hash_algorithm else "",
    )


#: SECG curve names (as ``cryptography`` gives them) that OpenSSL calls otherwise.
_OPENSSL_CURVES = {"secp256r1": "prime256v1", "secp192r1": "prime192v1"}


def _curve(key: object) -> str:
    curve = getattr(key, "curve", None)
    return "" if curve is None else _OPENSSL_CURVES.get(curve.name, curve.name)


def _key_type(key: object) -> str:
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

    kinds = {
        rsa.RSAPublicKey: "rsa",
        ec.EllipticCurvePublicKey: "ecdsa",
        ed25519.Ed25519PublicKey: "ed25519",
        ed448.Ed448PublicKey: "ed448",
        dsa.DSAPublicKey: "dsa",
    }
    return next((name for kind, name in kinds.items() if isinstance(key, kind)), "unknown")


def _ssl_reason(exc: ssl.SSLError) -> str:
    """OpenSSL's short reason (e.g. 'tlsv1 alert protocol version'), not the whole repr."""
    if isinstance(exc, ssl.SSLEOFError):
        return "connection closed during the handshake"
    reason = exc.reason or str(exc)
    return reason.lower().replace("_", " ")

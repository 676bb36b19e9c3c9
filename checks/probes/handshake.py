"""What a TLS port answers to a handshake beyond its suites, the questions of sslyze's
scans other than cipher suites and certificates: the elliptic curves it accepts for the key
exchange, the size of its finite-field Diffie-Hellman group, whether it refuses a
downgraded handshake (TLS_FALLBACK_SCSV, RFC 7507), whether it agrees to the extended
master secret (RFC 7627), to secure renegotiation (RFC 5746) and to heartbeats (the
extension Heartbleed abused), and whether it accepts a premature ChangeCipherSpec (the
OpenSSL CCS injection, CVE-2014-0224).

All by hand-built ClientHellos (``hello``), judged on what the server answers before any
key is exchanged:

- a curve is accepted when the server picks an ECDHE suite at TLS 1.2 with only that curve
  offered, or at TLS 1.3 answers a hello naming only that group (with no key share: a
  HelloRetryRequest for it, or a ServerHello) instead of refusing;
- the DH group: the prime of the ServerKeyExchange that a TLS 1.2 hello offering only DHE
  suites gets;
- TLS_FALLBACK_SCSV: a TLS 1.2 hello carrying the SCSV to a port that speaks TLS 1.3 must
  be refused (the signal's inappropriate_fallback, or no TLS 1.2 at all);
- the extended master secret, secure renegotiation and heartbeats: the extensions of the
  TLS 1.2 ServerHello to a hello that offers all three;
- CCS injection: after the server's first flight, a ChangeCipherSpec before any key
  exchange must be answered with an alert or a close, not taken in silence.

Every question of one port is asked concurrently, each within ``timeout``.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, TypeVar

from checks.probes import hello
from checks.probes.hello import ALERT, ALERTS, HANDSHAKE, MAX_RECORD, ServerHello
from checks.probes.wire import DEFAULT_TIMEOUT, BoundedReader, Outcome, Target, exchange

if TYPE_CHECKING:
    from cryptography import x509

#: Named curves (RFC 8422, 7748, 7027, 8734) by their TLS code, with OpenSSL's names as
#: Mozilla's profiles write them.
CURVES = {
    29: "X25519",
    30: "X448",
    23: "prime256v1",
    24: "secp384r1",
    25: "secp521r1",
    21: "secp224r1",
    22: "secp256k1",
    19: "prime192v1",
    26: "brainpoolP256r1",
    27: "brainpoolP384r1",
    28: "brainpoolP512r1",
    31: "brainpoolP256r1tls13",
    32: "brainpoolP384r1tls13",
    33: "brainpoolP512r1tls13",
}
#: Every ECDHE suite of TLS 1.2 (AEAD and CBC, ECDSA and RSA), so no curve is refused for
#: want of a suite.
ECDHE_SUITES = (
    0xC02B, 0xC02C, 0xC02F, 0xC030, 0xCCA8, 0xCCA9, 0xC009, 0xC00A,
    0xC013, 0xC014, 0xC023, 0xC024, 0xC027, 0xC028,
)  # fmt: skip
#: Every finite-field DHE suite with RSA or DSS authentication, AEAD and CBC.
DHE_SUITES = (0x009E, 0x009F, 0xCCAA, 0x0033, 0x0039, 0x0067, 0x006B, 0x0032, 0x0038,
              0x0040, 0x006A, 0x00A2, 0x00A3)  # fmt: skip
TLS13_SUITES = (0x1301, 0x1302, 0x1303, 0x1304, 0x1305)
#: What the TLS 1.2 hellos offer when the key exchange is not the question.
TLS12_SUITES = (*ECDHE_SUITES, *DHE_SUITES, 0x009C, 0x009D, 0x002F, 0x0035)
FALLBACK_SCSV = 0x5600
_RENEGOTIATION_INFO, _HEARTBEAT = 0xFF01, 15
_CERTIFICATE, _SERVER_KEY_EXCHANGE, _SERVER_HELLO_DONE, _CERTIFICATE_STATUS = 11, 12, 14, 22
#: RFC 6960 OCSPResponseStatus
_OCSP_STATUS = {0: "successful", 1: "malformedRequest", 2: "internalError", 3: "tryLater",
                5: "sigRequired", 6: "unauthorized"}  # fmt: skip
_CHANGE_CIPHER_SPEC = bytes([20, 3, 3, 0, 1, 1])
Answer = TypeVar("Answer")
#: A first flight (ServerHello to ServerHelloDone) larger than this is not a real server.
_MAX_FLIGHT = 2**18


@dataclass(frozen=True)
class Tls12Hello:
    """What the TLS 1.2 ServerHello to a hello offering every extension in question says."""

    extended_master_secret: bool
    renegotiation: bool  # secure renegotiation (RFC 5746)
    heartbeat: bool


@dataclass(frozen=True)
class HandshakeScan:
    target: Target
    curves: tuple[str, ...]  # accepted, in CURVES order
    #: bits of the DH prime served with a DHE suite at TLS 1.2 (None: no DHE suite)
    dh_bits: int | None
    #: True: a downgraded (TLS 1.2, SCSV) hello was refused; False: accepted; None: the
    #: port speaks no TLS 1.3, so TLS 1.2 is no downgrade
    fallback_refused: bool | None
    tls12: Tls12Hello | None  # None: the port speaks no TLS 1.2
    #: True: a premature ChangeCipherSpec was taken in silence; None: no TLS 1.2 to ask
    ccs_accepted: bool | None
    undecided: dict[str, str]  # "question at version" -> why it could not be told


def scan_handshakes(
    target: Target, server_name: str | None = None, timeout: float = DEFAULT_TIMEOUT
) -> HandshakeScan:
    """Ask ``target`` every question above at once."""
    ask = partial(hello.ask, target, server_name=server_name, timeout=timeout)
    questions = {
        **{(name, "TLSv1.2"): partial(ask, "TLSv1.2", ECDHE_SUITES, groups=(code,))
           for code, name in CURVES.items()},
        **{(name, "TLSv1.3"): partial(ask, "TLSv1.3", TLS13_SUITES, groups=(code,))
           for code, name in CURVES.items()},
        ("fallback", "TLSv1.2"): partial(ask, "TLSv1.2", (*TLS12_SUITES, FALLBACK_SCSV)),
        ("extensions", "TLSv1.2"): partial(
            ask, "TLSv1.2", TLS12_SUITES, extended_master_secret=True, heartbeat=True
        ),
        ("dh", "TLSv1.2"): partial(_flight, target, server_name, DHE_SUITES, timeout, _dh_bits),
        ("ccs", "TLSv1.2"): partial(
            _flight, target, server_name, TLS12_SUITES, timeout, _early_ccs
        ),
    }  # fmt: skip
    with ThreadPoolExecutor(len(questions)) as pool:
        futures = {key: pool.submit(question) for key, question in questions.items()}
        answers = {key: future.result() for key, future in futures.items()}
    undecided = {
        f"{question} at {protocol}": answer.detail
        for (question, protocol), answer in answers.items()
        if isinstance(answer, Outcome) and answer.accepted is None
    }
    curves = tuple(
        name
        for name in CURVES.values()
        if any(isinstance(answers[(name, v)], ServerHello) for v in ("TLSv1.2", "TLSv1.3"))
    )
    tls13 = any(isinstance(answers[(name, "TLSv1.3")], ServerHello) for name in CURVES.values())
    fallback = answers[("fallback", "TLSv1.2")]
    extensions = answers[("extensions", "TLSv1.2")]
    tls12 = None
    if isinstance(extensions, ServerHello):
        kinds = extensions.extensions
        tls12 = Tls12Hello(
            hello.EXTENDED_MASTER_SECRET in kinds, _RENEGOTIATION_INFO in kinds, _HEARTBEAT in kinds
        )
    dh, ccs = answers[("dh", "TLSv1.2")], answers[("ccs", "TLSv1.2")]
    return HandshakeScan(
        target,
        curves,
        dh if isinstance(dh, int) else None,
        not isinstance(fallback, ServerHello) if tls13 else None,
        tls12,
        ccs if isinstance(ccs, bool) else None,
        undecided,
    )


def _flight(
    target: Target,
    server_name: str | None,
    suites: tuple[int, ...],
    timeout: float,
    then: Callable[[dict[int, bytes], BoundedReader], Answer],
    status_request: bool = False,
) -> Answer | Outcome:
    """A TLS 1.2 hello offering ``suites``, the server's first flight up to its
    ServerHelloDone (type -> body), and what ``then`` makes of it (it may go on talking)."""
    record = hello.client_hello(
        hello.VERSIONS["TLSv1.2"], suites, server_name, status_request=status_request
    )

    def judge(reader: BoundedReader) -> Answer | Outcome:
        messages = _read_flight(reader)
        return messages if isinstance(messages, Outcome) else then(messages, reader)

    return exchange("TLSv1.2", target, record, judge, timeout)


def _dh_bits(messages: dict[int, bytes], _: BoundedReader) -> int | Outcome:
    """The bits of the DH prime in the ServerKeyExchange that follows a DHE suite."""
    key_exchange = messages.get(_SERVER_KEY_EXCHANGE)
    if key_exchange is None or len(key_exchange) < 2:
        return Outcome("TLSv1.2", None, "no ServerKeyExchange after a DHE suite")
    size = int.from_bytes(key_exchange[:2], "big")
    if len(key_exchange) < 2 + size:
        return Outcome("TLSv1.2", None, "ServerKeyExchange truncated")
    return int.from_bytes(key_exchange[2 : 2 + size], "big").bit_length()


def _early_ccs(_: dict[int, bytes], reader: BoundedReader) -> bool | Outcome:
    """Send a ChangeCipherSpec before any key exchange: whether it is taken in silence."""
    reader.sock.sendall(_CHANGE_CIPHER_SPEC)
    return _takes_in_silence(reader)


@dataclass(frozen=True)
class Stapling:
    """What a TLS 1.2 handshake asking for the certificate's status (RFC 6066) shows."""

    responders: tuple[str, ...]  # the OCSP responders the served certificate names
    status: str | None  # the stapled OCSP response's status, None when nothing is stapled


def probe_stapling(
    target: Target, server_name: str | None = None, timeout: float = DEFAULT_TIMEOUT
) -> Stapling | Outcome:
    """Ask ``target`` for the certificate's OCSP status at TLS 1.2: the responders its
    certificate names and the status of what it staples; an Outcome when the port speaks
    no TLS 1.2 (refused) or answers oddly (undecided)."""
    return _flight(target, server_name, TLS12_SUITES, timeout, _stapled, status_request=True)


def _stapled(messages: dict[int, bytes], _: BoundedReader) -> Stapling | Outcome:
    from cryptography import x509  # 30 ms to import: paid only when a certificate is read

    chain = messages.get(_CERTIFICATE, b"")
    leaf_size = int.from_bytes(chain[3:6], "big") if len(chain) >= 6 else 0
    if not leaf_size or len(chain) < 6 + leaf_size:
        return Outcome("TLSv1.2", None, "no certificate in the server's first flight")
    try:
        responders = ocsp_responders(x509.load_der_x509_certificate(chain[6 : 6 + leaf_size]))
    except ValueError as exc:
        return Outcome("TLSv1.2", None, f"unreadable certificate: {exc}")
    status = messages.get(_CERTIFICATE_STATUS)
    if status is None:
        return Stapling(responders, None)
    # CertificateStatus: type ocsp(1), a 3-byte length, then OCSPResponse ::= SEQUENCE {
    # responseStatus ENUMERATED, ...}: the enumeration follows the sequence's header
    response = status[4:]
    header = 2 + (response[1] & 0x7F if len(response) > 1 and response[1] & 0x80 else 0)
    field = response[header : header + 3]
    if status[:1] != b"\x01" or response[:1] != b"\x30" or field[:2] != b"\x0a\x01":
        return Outcome("TLSv1.2", None, "malformed CertificateStatus")
    return Stapling(responders, _OCSP_STATUS.get(field[2], f"status {field[2]}"))


def ocsp_responders(certificate: x509.Certificate) -> tuple[str, ...]:
    """The OCSP URLs a certificate's Authority Information Access names."""
    from cryptography import x509
    from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID

    try:
        access = certificate.extensions.get_extension_for_oid(
            ExtensionOID.AUTHORITY_INFORMATION_ACCESS
        ).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(
        str(item.access_location.value)
        for item in access
        if item.access_method == AuthorityInformationAccessOID.OCSP
    )


def _read_flight(reader: BoundedReader) -> dict[int, bytes] | Outcome:
    """The server's handshake messages (type -> body) up to ServerHelloDone; an alert or a
    close is a refusal, anything malformed or oversized undecided."""
    stream = bytearray()
    messages: dict[int, bytes] = {}
    while len(stream) <= _MAX_FLIGHT:
        header = reader.read(5)
        if len(header) < 5:
            return Outcome("TLSv1.2", False, "closed the connection")
        length = int.from_bytes(header[3:5], "big")
        if header[0] not in (HANDSHAKE, ALERT) or not 0 < length <= MAX_RECORD:
            return Outcome("TLSv1.2", None, f"unexpected record {header.hex()}")
        payload = reader.read(length)
        if len(payload) < length:
            return Outcome("TLSv1.2", None, "record truncated")
        if header[0] == ALERT:
            return Outcome("TLSv1.2", False, f"alert {ALERTS.get(payload[-1], payload[-1])}")
        stream += payload
        while len(stream) >= 4 and len(stream) >= 4 + int.from_bytes(stream[1:4], "big"):
            size = int.from_bytes(stream[1:4], "big")
            kind, body = stream[0], bytes(stream[4 : 4 + size])
            del stream[: 4 + size]
            if kind == 2 and body[:2] != b"\x03\x03":
                return Outcome("TLSv1.2", False, "answered with another version")
            messages.setdefault(kind, body)
            if kind == _SERVER_HELLO_DONE:
                return messages
    return Outcome("TLSv1.2", None, f"first flight larger than {_MAX_FLIGHT} bytes")


def _takes_in_silence(reader: BoundedReader) -> bool | Outcome:
    """After a premature ChangeCipherSpec: False when the server answers with an alert or
    closes, True when it waits for more (a vulnerable OpenSSL took it)."""
    try:
        header = reader.read(5)
    except TimeoutError:
        return True
    except ConnectionError:
        return False
    if not header or header[0] == ALERT:
        return False
    return Outcome("TLSv1.2", None, f"answered a ChangeCipherSpec with record {header.hex()}")

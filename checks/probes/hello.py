"""Hand-built TLS ClientHellos, for what the ``ssl`` module cannot ask a server.

Python's ``ssl`` cannot choose TLS 1.3 cipher suites, and this machine's OpenSSL 3 cannot
offer RC4, export, DES, 3DES, IDEA, RC2 or SEED suites at all. Whether a server accepts them
is still decided by its first answer: we send a ClientHello offering only the suites in
question and read the ServerHello (or HelloRetryRequest, which names a suite too) or the
alert that comes back. Nothing further is sent, so no key exchange is needed.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import partial

from checks.probes.wire import BoundedReader, Outcome, Target, exchange

VERSION_NAMES = {
    0x0300: "SSLv3",
    0x0301: "TLSv1.0",
    0x0302: "TLSv1.1",
    0x0303: "TLSv1.2",
    0x0304: "TLSv1.3",
}
VERSIONS = {name: code for code, name in VERSION_NAMES.items()}
HANDSHAKE, ALERT = 22, 21
_CLIENT_HELLO, _SERVER_HELLO = 1, 2
MAX_RECORD = 2**14 + 2048  # the largest record length RFC 5246 allows (compressed)
_MAX_RECORDS = 4  # a ServerHello is ~100 bytes: more fragments than this is not a real server
ALERTS = {
    10: "unexpected_message",
    40: "handshake_failure",
    47: "illegal_parameter",
    50: "decode_error",
    70: "protocol_version",
    71: "insufficient_security",
    80: "internal_error",
    86: "inappropriate_fallback",
    112: "unrecognized_name",
}
#: RFC 8446 4.1.3: a ServerHello with this random is a HelloRetryRequest.
HELLO_RETRY_RANDOM = hashlib.sha256(b"HelloRetryRequest").digest()
# Extensions: server_name, supported_groups, ec_point_formats, signature_algorithms,
# supported_versions, key_share, renegotiation_info.
_SNI, _GROUPS, _POINT_FORMATS, _SIGALGS = 0, 10, 11, 13
_SUPPORTED_VERSIONS, _KEY_SHARE, _RENEGOTIATION_INFO = 43, 51, 0xFF01
_X25519 = 29
EXTENDED_MASTER_SECRET = 23  # RFC 7627
_HEARTBEAT = 15  # RFC 6520
_STATUS_REQUEST = 5  # RFC 6066 8
#: x25519, secp256r1, secp384r1, secp521r1, x448, ffdhe2048-8192: every group a server
#: might insist on, so a suite is never refused for want of a group.
_GROUP_LIST = (_X25519, 23, 24, 25, 30, 256, 257, 258, 259, 260)
#: ECDSA, RSA-PSS, EdDSA, RSA PKCS#1 and the SHA-1/SHA-224 legacy ones, strongest first.
_SIGNATURE_ALGORITHMS = (
    0x0403, 0x0503, 0x0603, 0x0807, 0x0808, 0x0804, 0x0805, 0x0806,
    0x0809, 0x080A, 0x080B, 0x0401, 0x0501, 0x0601, 0x0303, 0x0301,
    0x0302, 0x0203, 0x0201, 0x0202,
)  # fmt: skip


@dataclass(frozen=True)
class ServerHello:
    version: int  # the negotiated version (supported_versions for TLS 1.3)
    suite: int
    compression: int
    retry: bool  # a HelloRetryRequest: the suite is chosen, the key share is not
    extensions: tuple[int, ...] = ()  # the kinds of the extensions it carries, in order


def client_hello(
    version: int,
    suites: tuple[int, ...],
    server_name: str | None = None,
    *,
    compression: bool = False,
    random: bytes | None = None,
    groups: tuple[int, ...] = _GROUP_LIST,
    extended_master_secret: bool = False,
    heartbeat: bool = False,
    status_request: bool = False,
) -> bytes:
    """The complete record carrying a ClientHello for ``version`` (0x0301 to 0x0304) that
    offers exactly ``suites`` (and DEFLATE before null compression when ``compression``)
    and the key-exchange ``groups`` (for TLS 1.3 a key share only when X25519 is among
    them: without one a server that accepts a group answers with a HelloRetryRequest), and
    when asked the extended master secret, heartbeat (peer allowed to send) and OCSP status
    request extensions."""
    random = os.urandom(32) if random is None else random
    if len(random) != 32:
        raise ValueError("the ClientHello random is 32 bytes")
    if not suites:
        raise ValueError("a ClientHello offers at least one cipher suite")
    tls13 = version >= 0x0304
    extensions = [
        _extension(_GROUPS, _vector(_u16s(groups), 2)),
        _extension(_POINT_FORMATS, b"\x01\x00"),
        _extension(_RENEGOTIATION_INFO, b"\x00"),
    ]
    if extended_master_secret:
        extensions.append(_extension(EXTENDED_MASTER_SECRET, b""))
    if heartbeat:
        extensions.append(_extension(_HEARTBEAT, b"\x01"))
    if status_request:  # OCSP, no responder IDs, no request extensions
        extensions.append(_extension(_STATUS_REQUEST, b"\x01\x00\x00\x00\x00"))
    if server_name and not _is_ip(server_name):
        name = server_name.encode("idna")
        extensions.insert(0, _extension(_SNI, _vector(b"\x00" + _vector(name, 2), 2)))
    if version >= 0x0303:
        extensions.append(_extension(_SIGALGS, _vector(_u16s(_SIGNATURE_ALGORITHMS), 2)))
    if tls13:
        share = _X25519.to_bytes(2, "big") + _vector(os.urandom(32), 2)
        shares = share if _X25519 in groups else b""
        extensions.append(_extension(_SUPPORTED_VERSIONS, _vector(_u16s((version,)), 1)))
        extensions.append(_extension(_KEY_SHARE, _vector(shares, 2)))
    legacy_version = min(version, 0x0303)
    methods = b"\x01\x00" if compression else b"\x00"
    body = (
        legacy_version.to_bytes(2, "big")
        + random
        + (_vector(os.urandom(32), 1) if tls13 else b"\x00")  # 1.3: a legacy session id
        + _vector(_u16s(suites), 2)
        + _vector(methods, 1)
        + _vector(b"".join(extensions), 2)
    )
    handshake = bytes([_CLIENT_HELLO]) + len(body).to_bytes(3, "big") + body
    record_version = min(version, 0x0301)  # what OpenSSL sends: old servers choke on more
    return (
        bytes([HANDSHAKE])
        + record_version.to_bytes(2, "big")
        + len(handshake).to_bytes(2, "big")
        + handshake
    )


def ask(
    target: Target,
    protocol: str,
    suites: tuple[int, ...],
    server_name: str | None,
    timeout: float,
    *,
    compression: bool = False,
    groups: tuple[int, ...] = _GROUP_LIST,
    extended_master_secret: bool = False,
    heartbeat: bool = False,
) -> ServerHello | Outcome:
    """Offer ``suites`` at ``protocol``: the ServerHello when the server chose one of them at
    that version, else the refusal (an alert, a close, another version) or undecided."""
    hello = client_hello(
        VERSIONS[protocol],
        suites,
        server_name,
        compression=compression,
        groups=groups,
        extended_master_secret=extended_master_secret,
        heartbeat=heartbeat,
    )
    return exchange(protocol, target, hello, partial(judge_reply, protocol), timeout)


def judge_reply(protocol: str, reader: BoundedReader) -> ServerHello | Outcome:
    """The ServerHello if it is at ``protocol``; refused on an alert, a close or another
    version; undecided on anything malformed."""
    body = first_handshake(reader, protocol)
    if isinstance(body, Outcome):
        return body
    hello = parse_server_hello(body)
    if isinstance(hello, str):
        return Outcome(protocol, None, hello)
    if hello.version != VERSIONS[protocol]:
        answered = VERSION_NAMES.get(hello.version, hex(hello.version))
        return Outcome(protocol, False, f"answered with {answered}")
    return hello


def first_handshake(reader: BoundedReader, protocol: str) -> bytes | Outcome:
    """The body of the server's first handshake message if it is a ServerHello; else the
    Outcome that its reply (an alert, a close, garbage) amounts to."""
    refused = partial(Outcome, protocol, False)
    undecided = partial(Outcome, protocol, None)
    handshake = bytearray()
    for _ in range(_MAX_RECORDS):
        header = reader.read(5)
        if not header:
            return refused("closed the connection without answering")
        if len(header) < 5:
            return undecided("truncated record header")
        content_type, major, length = header[0], header[1], int.from_bytes(header[3:5], "big")
        if content_type not in (HANDSHAKE, ALERT) or major != 3:
            return refused(f"answered with something other than SSL/TLS ({header.hex()})")
        if not 0 < length <= MAX_RECORD:
            return undecided(f"record length {length} is out of range")
        payload = reader.read(length)
        if len(payload) < length:
            return undecided("record truncated")
        if content_type == ALERT:
            if len(payload) != 2:
                return undecided("malformed alert")
            return refused(f"alert {ALERTS.get(payload[1], payload[1])}")
        handshake += payload
        if len(handshake) >= 4:
            if handshake[0] != _SERVER_HELLO:
                return undecided(f"first handshake message is type {handshake[0]}, not ServerHello")
            size = int.from_bytes(handshake[1:4], "big")
            if len(handshake) >= 4 + size:
                return bytes(handshake[4 : 4 + size])
            if size > MAX_RECORD:
                return undecided(f"ServerHello length {size} is out of range")
    return undecided(f"ServerHello not complete after {_MAX_RECORDS} records")


def parse_server_hello(body: bytes) -> ServerHello | str:
    """version(2) random(32) session_id(1+n) suite(2) compression(1) [extensions(2+n)];
    a string says what is malformed."""
    if len(body) < 38:
        return f"ServerHello of {len(body)} bytes is too short"
    version = int.from_bytes(body[0:2], "big")
    at = 35 + body[34]
    if body[34] > 32 or len(body) < at + 3:
        return "malformed ServerHello (session id)"
    suite = int.from_bytes(body[at : at + 2], "big")
    compression = body[at + 2]
    at += 3
    kinds: list[int] = []
    if len(body) >= at + 2:
        end = at + 2 + int.from_bytes(body[at : at + 2], "big")
        if end > len(body):
            return "malformed ServerHello (extensions)"
        at += 2
        while at + 4 <= end:
            kind, size = (
                int.from_bytes(body[at : at + 2], "big"),
                int.from_bytes(body[at + 2 : at + 4], "big"),
            )
            data = body[at + 4 : at + 4 + size]
            if len(data) != size:
                return "malformed ServerHello (extension length)"
            if kind == _SUPPORTED_VERSIONS and size == 2:
                version = int.from_bytes(data, "big")
            kinds.append(kind)
            at += 4 + size
    retry = body[2:34] == HELLO_RETRY_RANDOM
    return ServerHello(version, suite, compression, retry, tuple(kinds))


def _extension(kind: int, data: bytes) -> bytes:
    return kind.to_bytes(2, "big") + _vector(data, 2)


def _vector(data: bytes, length_size: int) -> bytes:
    return len(data).to_bytes(length_size, "big") + data


def _u16s(values: tuple[int, ...]) -> bytes:
    return b"".join(v.to_bytes(2, "big") for v in values)


def _is_ip(name: str) -> bool:
    """RFC 6066: SNI carries host names only, never addresses."""
    return name.replace(".", "").isdigit() or ":" in name

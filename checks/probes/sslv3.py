"""Does a server still accept SSLv3? Asked with a hand-built ClientHello.

OpenSSL 3 cannot speak SSLv3 at all, so the ``ssl`` module cannot ask. We send an SSLv3
ClientHello (record and client version 0x0300, no extensions, a broad list of cipher suites
that were usable with SSLv3) and read only the first handshake message of the reply: a
ServerHello with version 0x0300 means the server agreed to SSLv3. Nothing further is sent.
"""

from __future__ import annotations

import os
from functools import partial

from checks.probes.hello import HANDSHAKE, VERSION_NAMES, first_handshake
from checks.probes.wire import BoundedReader, Outcome, Target, exchange

PROTOCOL = "SSLv3"
SSL3 = 0x0300

#: RSA/DH/DHE/anon suites of the SSLv3 spec (NULL, RC4, RC2, IDEA, DES, 3DES, export), then
#: the AES, Camellia, SEED and ECC suites that SSLv3 stacks such as OpenSSL also negotiated.
CIPHER_SUITES: tuple[int, ...] = (
    *range(0x0001, 0x001C),
    *range(0x002F, 0x003B),
    *range(0x0041, 0x0047),
    *range(0x0084, 0x008A),
    *range(0x0096, 0x009C),
    *range(0xC001, 0xC01A),
)

_refused = partial(Outcome, PROTOCOL, False)
_undecided = partial(Outcome, PROTOCOL, None)


def client_hello(random: bytes | None = None) -> bytes:
    """The complete SSLv3 record carrying our ClientHello."""
    random = os.urandom(32) if random is None else random
    if len(random) != 32:
        raise ValueError("the ClientHello random is 32 bytes")
    suites = b"".join(s.to_bytes(2, "big") for s in CIPHER_SUITES)
    body = (
        SSL3.to_bytes(2, "big")
        + random
        + b"\x00"  # no session id
        + len(suites).to_bytes(2, "big")
        + suites
        + b"\x01\x00"  # compression: null only
    )
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return (
        bytes([HANDSHAKE]) + SSL3.to_bytes(2, "big") + len(handshake).to_bytes(2, "big") + handshake
    )


def probe(target: Target, timeout: float) -> Outcome:
    """Offer SSLv3 only and report whether the server agreed."""
    return exchange(PROTOCOL, target, client_hello(), judge_reply, timeout)


def judge_reply(reader: BoundedReader) -> Outcome:
    """Read records until the first handshake message is complete, then judge it."""
    body = first_handshake(reader, PROTOCOL)
    return body if isinstance(body, Outcome) else judge_server_hello(body)


def judge_server_hello(body: bytes) -> Outcome:
    """A ServerHello body: version(2) random(32) session_id(1+n) suite(2) compression(1)."""
    if len(body) < 38:
        return _undecided(f"ServerHello of {len(body)} bytes is too short")
    version = int.from_bytes(body[0:2], "big")
    session_id_length = body[34]
    if session_id_length > 32 or len(body) < 35 + session_id_length + 3:
        return _undecided("malformed ServerHello (session id)")
    if version != SSL3:
        return _refused(f"answered with {VERSION_NAMES.get(version, hex(version))}")
    suite = int.from_bytes(body[35 + session_id_length : 37 + session_id_length], "big")
    return Outcome(PROTOCOL, True, f"cipher suite 0x{suite:04x}")

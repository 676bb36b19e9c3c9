"""Does a server still speak SSLv2? Asked with a hand-built SSLv2 CLIENT-HELLO.

No OpenSSL since 1.1.0 can send SSLv2, yet old stacks still answer it (DROWN). We send the
SSLv2 record (2-byte header, CLIENT-HELLO, version 0x0002, the seven SSLv2 cipher kinds)
and read one record: an SSLv2 SERVER-HELLO means the server speaks SSLv2, even when it
lists no cipher (CVE-2015-3197 showed such servers still negotiate).
"""

from __future__ import annotations

import os
from functools import partial

from checks.probes.wire import BoundedReader, Outcome, Target, exchange

PROTOCOL = "SSLv2"
SSL2 = 0x0002
CIPHER_KINDS = (0x010080, 0x020080, 0x030080, 0x040080, 0x050080, 0x060040, 0x0700C0)

_refused = partial(Outcome, PROTOCOL, False)
_undecided = partial(Outcome, PROTOCOL, None)
_CLIENT_HELLO, _SERVER_HELLO, _ERROR = 1, 4, 0
_SERVER_HELLO_FIXED = 11  # type, session-id-hit, cert type, version, three lengths
_MAX_RECORD = 0x7FFF


def client_hello(challenge: bytes | None = None) -> bytes:
    """The complete SSLv2 record carrying our CLIENT-HELLO."""
    challenge = os.urandom(16) if challenge is None else challenge
    if not 16 <= len(challenge) <= 32:
        raise ValueError("the SSLv2 challenge is 16 to 32 bytes")
    specs = b"".join(kind.to_bytes(3, "big") for kind in CIPHER_KINDS)
    body = (
        bytes([_CLIENT_HELLO])
        + SSL2.to_bytes(2, "big")
        + len(specs).to_bytes(2, "big")
        + b"\x00\x00"  # no session id
        + len(challenge).to_bytes(2, "big")
        + specs
        + challenge
    )
    return (0x8000 | len(body)).to_bytes(2, "big") + body


def probe(target: Target, timeout: float) -> Outcome:
    """Offer SSLv2 only and report whether the server answered in SSLv2."""
    return exchange(PROTOCOL, target, client_hello(), judge_reply, timeout)


def judge_reply(reader: BoundedReader) -> Outcome:
    header = reader.read(2)
    if not header:
        return _refused("closed the connection without answering")
    if len(header) < 2:
        return _undecided("truncated record header")
    if not header[0] & 0x80:
        if header[0] in (21, 22) and header[1] == 3:
            return _refused("answered with an SSLv3/TLS record")
        return _refused(f"answered with something other than SSL ({header.hex()})")
    length = int.from_bytes(header, "big") & _MAX_RECORD
    if length < 1:
        return _undecided("empty SSLv2 record")
    body = reader.read(length)
    if len(body) < length:
        return _undecided("record truncated")
    if body[0] == _ERROR:
        return _refused("SSLv2 ERROR message")
    if body[0] != _SERVER_HELLO:
        return _undecided(f"SSLv2 message type {body[0]}, not SERVER-HELLO")
    return judge_server_hello(body)


def judge_server_hello(body: bytes) -> Outcome:
    if len(body) < _SERVER_HELLO_FIXED:
        return _undecided("SERVER-HELLO too short")
    version = int.from_bytes(body[3:5], "big")
    cert_length, specs_length, connection_id_length = (
        int.from_bytes(body[i : i + 2], "big") for i in (5, 7, 9)
    )
    if _SERVER_HELLO_FIXED + cert_length + specs_length + connection_id_length != len(body):
        return _undecided("SERVER-HELLO lengths do not add up")
    if specs_length % 3 or not 16 <= connection_id_length <= 32:
        return _undecided("malformed SERVER-HELLO")
    if version != SSL2:
        return _refused(f"SERVER-HELLO with version 0x{version:04x}")
    start = _SERVER_HELLO_FIXED + cert_length
    kinds = [int.from_bytes(body[i : i + 3], "big") for i in range(start, start + specs_length, 3)]
    listed = ", ".join(f"0x{k:06x}" for k in kinds) or "no cipher"
    return Outcome(PROTOCOL, True, f"SERVER-HELLO listing {listed}")

"""Cipher-suite enumeration: hand-built hellos and their parsing, and stand-ins for servers
that accept what no OpenSSL here can serve (RC4, 3DES, export), plus TLS compression.
Real servers are compared with sslyze in test_tls_differential.py."""

from __future__ import annotations

import pytest
from servers import run_canned_server

from checks.probes import hello
from checks.probes.ciphers import LEGACY_CODES, scan_suites
from checks.probes.wire import Target
from checks.result import Status
from checks.tls_profiles import PROFILES, weaknesses
from checks.types.tls_live import judge_suites


def server_hello(version: int, suite: int, compression: int = 0) -> bytes:
    body = version.to_bytes(2, "big") + bytes(32) + b"\x00" + suite.to_bytes(2, "big")
    body += bytes([compression])
    message = b"\x02" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + len(message).to_bytes(2, "big") + message


def offered(request: bytes) -> tuple[int, list[int], bytes]:
    """(client version, offered suites, compression methods) of a hand-built ClientHello."""
    body = request[9:]
    version = int.from_bytes(body[:2], "big")
    at = 34 + 1 + body[34]
    size = int.from_bytes(body[at : at + 2], "big")
    suites = [int.from_bytes(body[i : i + 2], "big") for i in range(at + 2, at + 2 + size, 2)]
    at += 2 + size
    return version, suites, body[at + 1 : at + 1 + body[at]]


def legacy_server(accepts: set[int], compression: bool = False):
    """A TLS 1.0-1.2 stand-in that picks the first offered suite it accepts, else alerts."""

    def reply(request: bytes) -> bytes:
        if request[:1] != b"\x16":
            return b""
        version, suites, methods = offered(request)
        chosen = next((s for s in suites if s in accepts), None)
        if chosen is None or version > 0x0303:
            return b"\x15\x03\x01\x00\x02\x02\x28"  # handshake_failure
        return server_hello(version, chosen, 1 if compression and b"\x01" in methods else 0)

    return reply


def test_hello_offers_exactly_the_suites_asked() -> None:
    record = hello.client_hello(0x0303, (0x0005, 0x000A), "www.example.org", compression=True)
    version, suites, methods = offered(record)
    assert (version, suites, methods) == (0x0303, [0x0005, 0x000A], b"\x01\x00")
    assert b"www.example.org" in record
    tls13 = hello.client_hello(0x0304, (0x1301,), "10.0.0.1")
    assert offered(tls13)[0] == 0x0303 and b"10.0.0.1" not in tls13  # no SNI for addresses


def test_server_hello_parsing_reads_supported_versions_and_retry() -> None:
    extensions = b"\x00\x2b\x00\x02\x03\x04"
    body = b"\x03\x03" + hello.HELLO_RETRY_RANDOM + b"\x00\x13\x01\x00"
    body += len(extensions).to_bytes(2, "big") + extensions
    assert hello.parse_server_hello(body) == hello.ServerHello(0x0304, 0x1301, 0, True, (43,))
    assert hello.parse_server_hello(body[:30]) == "ServerHello of 30 bytes is too short"


def test_rc4_and_3des_are_found_with_hand_built_hellos() -> None:
    accepts = {0x0005, 0x000A, 0xC011}
    with run_canned_server(legacy_server(accepts), whole_record=True) as server:
        scan = scan_suites(Target("127.0.0.1", server.port), timeout=2, budget=20)
    expected = {"RC4-SHA", "DES-CBC3-SHA", "ECDHE-RSA-RC4-SHA"}
    assert set(scan.accepted["TLSv1.2"]) == expected
    assert set(scan.accepted["TLSv1.0"]) == expected
    assert scan.accepted["TLSv1.3"] == ()
    verdict = judge_suites(scan, PROFILES["intermediate"])
    assert verdict[0] is Status.FAIL
    assert "RC4-SHA (RC4, no forward secrecy, not AEAD)" in verdict[1]
    assert "DES-CBC3-SHA (3DES, no forward secrecy, not AEAD)" in verdict[1]


def test_export_suites_are_asked_only_below_tls_1_1() -> None:
    with run_canned_server(legacy_server({0x0003}), whole_record=True) as server:
        scan = scan_suites(Target("127.0.0.1", server.port), timeout=2, budget=20)
    assert scan.accepted["TLSv1.0"] == ("EXP-RC4-MD5",)
    assert scan.accepted["TLSv1.2"] == ()


def test_compression_is_reported() -> None:
    with run_canned_server(legacy_server({0xC02F}, compression=True), whole_record=True) as s:
        scan = scan_suites(Target("127.0.0.1", s.port), timeout=2, budget=20)
    assert scan.compression is True
    assert "TLS compression (CRIME)" in judge_suites(scan, PROFILES["intermediate"])[1]


def test_budget_leaves_the_rest_undecided() -> None:
    with run_canned_server(lambda _: b"", request_size=1 << 20) as server:
        scan = scan_suites(Target("127.0.0.1", server.port), timeout=0.2, budget=0.5)
    assert scan.undecided and not any(scan.accepted.values())
    assert judge_suites(scan, PROFILES["intermediate"])[0] is Status.ERROR


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ECDHE-RSA-AES128-GCM-SHA256", []),
        ("TLS_AES_128_GCM_SHA256", []),
        ("AES128-SHA", ["no forward secrecy", "not AEAD"]),
        ("ADH-AES128-SHA", ["anonymous", "not AEAD"]),
        ("NULL-SHA256", ["NULL encryption", "no forward secrecy"]),
        ("EXP-RC4-MD5", ["EXPORT", "RC4", "MD5", "no forward secrecy", "not AEAD"]),
        ("EDH-RSA-DES-CBC-SHA", ["DES", "not AEAD"]),
    ],
)
def test_weaknesses(name: str, expected: list[str]) -> None:
    assert weaknesses(name) == expected


def test_every_legacy_suite_is_weak() -> None:
    assert all(weaknesses(name) for name in LEGACY_CODES.values())

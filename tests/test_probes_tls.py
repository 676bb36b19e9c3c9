"""TLS probes against real Apache mod_ssl servers; hand-built SSLv2/SSLv3 against stand-ins
(no OpenSSL here can run an SSLv2/SSLv3 server) and against byte streams for the parsers."""

from __future__ import annotations

import datetime as dt
import socket

import pytest
from conftest import free_port
from servers import (
    ServersOnlyHost,
    issue_certificate,
    new_audit,
    run_apache_ssl,
    run_canned_server,
    run_check,
    run_sshd,
)

from checks.probes import sslv2, sslv3
from checks.probes.tls import PROTOCOLS, probe_tls
from checks.probes.wire import BoundedReader, Outcome, Target, parse_target
from checks.result import Status, Verdict
from checks.types.probes import TLSProbeCheck

MODERN_ONLY = "-all +TLSv1.2 +TLSv1.3"
#: The audits' clock stands still at NOW, so evidence is exact; NOW is taken from the real
#: clock because OpenSSL verifies certificates against real time.
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def fixed_clock() -> float:
    return NOW.timestamp()


# --- targets ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("example.org", Target("example.org", 443)),
        ("example.org:8443", Target("example.org", 8443)),
        ("10.1.2.3:443", Target("10.1.2.3", 443)),
        ("[::1]:8443", Target("::1", 8443)),
        ("[2001:db8::1]", Target("2001:db8::1", 443)),
        ("::1", Target("::1", 443)),
    ],
)
def test_parse_target(text: str, expected: Target) -> None:
    assert parse_target(text, 443) == expected


@pytest.mark.parametrize(
    "text", ["", ":443", "host:0", "host:70000", "host:x", "[::1", "[::1]x", "a b:1", "::zz"]
)
def test_parse_target_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_target(text, 443)


def test_target_prints_ipv6_in_brackets() -> None:
    assert str(Target("::1", 443)) == "[::1]:443"
    assert str(Target("127.0.0.1", 443)) == "127.0.0.1:443"


# --- hand-built hellos and strict reply parsing ------------------------------------------------


def sslv3_server_hello(_request: bytes = b"", version: bytes = b"\x03\x00") -> bytes:
    """An SSLv3 ServerHello record choosing TLS_RSA_WITH_3DES_EDE_CBC_SHA (0x000a)."""
    body = version + bytes(32) + b"\x00" + b"\x00\x0a" + b"\x00"
    message = b"\x02" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x00" + len(message).to_bytes(2, "big") + message


def sslv2_server_hello(_request: bytes = b"", cipher_kinds: tuple[int, ...] = (0x0700C0,)) -> bytes:
    certificate, connection_id = b"\x30\x03\x02\x01\x00", bytes(16)
    specs = b"".join(k.to_bytes(3, "big") for k in cipher_kinds)
    body = (
        bytes([4, 0, 1])
        + b"\x00\x02"
        + b"".join(len(x).to_bytes(2, "big") for x in (certificate, specs, connection_id))
        + certificate
        + specs
        + connection_id
    )
    return (0x8000 | len(body)).to_bytes(2, "big") + body


def split_record(record: bytes, at: int) -> bytes:
    """The same handshake bytes carried in two records, the first holding ``at`` bytes."""
    payload = record[5:]
    return b"".join(
        record[:3] + len(part).to_bytes(2, "big") + part for part in (payload[:at], payload[at:])
    )


def judge_bytes(judge, data: bytes) -> Outcome:
    """Feed ``data`` then end-of-stream to a reply parser through a real socket pair."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(data)
        theirs.shutdown(socket.SHUT_WR)
        return judge(BoundedReader(ours, 2.0))


def test_sslv3_client_hello_layout() -> None:
    hello = sslv3.client_hello(bytes(range(32)))
    assert hello[:3] == b"\x16\x03\x00"
    assert int.from_bytes(hello[3:5], "big") == len(hello) - 5
    assert hello[5] == 1 and int.from_bytes(hello[6:9], "big") == len(hello) - 9
    assert hello[9:11] == b"\x03\x00" and hello[11:43] == bytes(range(32))
    assert hello[43] == 0  # no session id
    suites_length = int.from_bytes(hello[44:46], "big")
    assert suites_length == 2 * len(sslv3.CIPHER_SUITES)
    assert hello[46 + suites_length :] == b"\x01\x00"  # null compression, no extensions


def test_sslv2_client_hello_layout() -> None:
    hello = sslv2.client_hello(bytes(16))
    assert hello[0] & 0x80 and (int.from_bytes(hello[:2], "big") & 0x7FFF) == len(hello) - 2
    assert hello[2] == 1 and hello[3:5] == b"\x00\x02"
    assert int.from_bytes(hello[5:7], "big") == 3 * len(sslv2.CIPHER_KINDS)
    assert hello[-16:] == bytes(16)


ALERT_PROTOCOL_VERSION = b"\x15\x03\x00\x00\x02\x02\x46"


@pytest.mark.parametrize(
    ("reply", "accepted", "detail"),
    [
        (sslv3_server_hello(), True, "cipher suite 0x000a"),
        (split_record(sslv3_server_hello(), 3), True, "cipher suite 0x000a"),
        (sslv3_server_hello(version=b"\x03\x03"), False, "answered with TLSv1.2"),
        (ALERT_PROTOCOL_VERSION, False, "alert protocol_version"),
        (b"", False, "closed the connection without answering"),
        (
            b"HTTP/1.1 400 Bad Request\r\n\r\n",
            False,
            "answered with something other than SSL/TLS (485454502f)",
        ),
        (b"\x16\x03", None, "truncated record header"),
        (b"\x16\x03\x00\xff\xff", None, "record length 65535 is out of range"),
        (b"\x16\x03\x00\x00\x10" + bytes(4), None, "record truncated"),
        (
            b"\x16\x03\x00\x00\x04\x0b\x00\x00\x00",
            None,
            "first handshake message is type 11, not ServerHello",
        ),
        (
            b"\x16\x03\x00\x00\x06\x02\x00\x00\x02\x03\x00",
            None,
            "ServerHello of 2 bytes is too short",
        ),
        (b"\x15\x03\x00\x00\x01\x02", None, "malformed alert"),
    ],
)
def test_sslv3_reply_parsing(reply: bytes, accepted: bool | None, detail: str) -> None:
    assert judge_bytes(sslv3.judge_reply, reply) == Outcome("SSLv3", accepted, detail)


@pytest.mark.parametrize(
    ("reply", "accepted", "detail"),
    [
        (sslv2_server_hello(), True, "SERVER-HELLO listing 0x0700c0"),
        (sslv2_server_hello(cipher_kinds=()), True, "SERVER-HELLO listing no cipher"),
        (ALERT_PROTOCOL_VERSION, False, "answered with an SSLv3/TLS record"),
        (b"\x80\x03\x00\x00\x01", False, "SSLv2 ERROR message"),
        (b"", False, "closed the connection without answering"),
        (b"\x80\x20\x04", None, "record truncated"),
        (b"\x80\x05\x04\x00\x01\x00\x02", None, "SERVER-HELLO too short"),
        (sslv2_server_hello()[:-1], None, "record truncated"),
    ],
)
def test_sslv2_reply_parsing(reply: bytes, accepted: bool | None, detail: str) -> None:
    assert judge_bytes(sslv2.judge_reply, reply) == Outcome("SSLv2", accepted, detail)


def test_silent_server_is_undecided_not_refused() -> None:
    """A server that accepts and never answers must not look like a refusal, nor hang us."""
    with run_canned_server(lambda _: b"", request_size=1 << 20) as server:
        probe = probe_tls(Target("127.0.0.1", server.port), timeout=0.3)
    assert [(o.protocol, o.accepted, o.detail) for o in probe.outcomes] == [
        (protocol, None, "no answer within 0.3s") for protocol in PROTOCOLS
    ]
    verdict = run_check(TLSProbeCheck, {"mode": "protocols", "targets": [server.target]})
    assert verdict.status is Status.ERROR


# --- the tls_probe check against real Apache -------------------------------------------------


def protocols_check(target: str, **params) -> Verdict:
    return run_check(TLSProbeCheck, {"mode": "protocols", "targets": [target], **params})


@pytest.mark.parametrize(
    ("ssl_protocol", "ciphers", "status", "evidence"),
    [
        # SECLEVEL=0 is what really lets Debian 12's OpenSSL serve TLS 1.0/1.1 again
        (
            "all",
            "ALL:@SECLEVEL=0",
            Status.FAIL,
            "accepts TLSv1.0, TLSv1.1, TLSv1.2, TLSv1.3; below TLSv1.2: TLSv1.0, TLSv1.1",
        ),
        # "all" alone: Apache allows TLS 1.0/1.1 but OpenSSL's default level refuses them
        ("all", None, Status.PASS, "accepts TLSv1.2, TLSv1.3"),
        (MODERN_ONLY, None, Status.PASS, "accepts TLSv1.2, TLSv1.3"),
        ("-all +TLSv1.3", None, Status.PASS, "accepts TLSv1.3"),
    ],
)
def test_apache_protocols(tmp_path, ssl_protocol, ciphers, status, evidence) -> None:
    with run_apache_ssl(tmp_path, ssl_protocol, cipher_suite=ciphers) as apache:
        verdict = protocols_check(apache.target)
    assert verdict == Verdict(status, (f"{apache.target} {evidence}",))


def test_min_version_is_a_parameter(tmp_path) -> None:
    with run_apache_ssl(tmp_path, MODERN_ONLY) as apache:
        strict = protocols_check(apache.target, min_version="1.3")
        lenient = protocols_check(apache.target, min_version="1.0")
    assert strict.status is Status.FAIL
    assert strict.evidence == (f"{apache.target} accepts TLSv1.2, TLSv1.3; below TLSv1.3: TLSv1.2",)
    assert lenient.status is Status.PASS


def test_apache_legacy_protocols_are_refused(tmp_path) -> None:
    with run_apache_ssl(tmp_path, "all", cipher_suite="ALL:@SECLEVEL=0") as apache:
        probe = probe_tls(Target("127.0.0.1", apache.port))
    assert probe.outcomes[:2] == (
        Outcome("SSLv2", False, "answered with an SSLv3/TLS record"),
        Outcome("SSLv3", False, "alert handshake_failure"),
    )


def test_apache_over_ipv6(tmp_path) -> None:
    with run_apache_ssl(tmp_path, MODERN_ONLY, listen="::1") as apache:
        explicit = protocols_check(apache.target)
        discovered = run_check(
            TLSProbeCheck, {"mode": "protocols"}, new_audit(ServersOnlyHost(apache))
        )
    expected = Verdict(Status.PASS, (f"[::1]:{apache.port} accepts TLSv1.2, TLSv1.3",))
    assert explicit == discovered == expected


def test_discovery_probes_https_ports_and_ignores_plain_http(tmp_path) -> None:
    plain = free_port()
    with run_apache_ssl(
        tmp_path, "all", cipher_suite="ALL:@SECLEVEL=0", extra_config=f"Listen 127.0.0.1:{plain}"
    ) as apache:
        verdict = run_check(
            TLSProbeCheck, {"mode": "protocols"}, new_audit(ServersOnlyHost(apache))
        )
    assert verdict == Verdict(
        Status.FAIL,
        (
            f"{apache.target} accepts TLSv1.0, TLSv1.1, TLSv1.2, TLSv1.3; "
            "below TLSv1.2: TLSv1.0, TLSv1.1",
        ),
    )


def test_discovery_without_https_port_skips(tmp_path) -> None:
    """An SSH port stands in for any listener that is not TLS (apache2 cannot run without
    mod_ssl in this harness)."""
    with run_sshd(tmp_path) as sshd:
        ctx = new_audit(ServersOnlyHost(sshd))
        verdict = run_check(TLSProbeCheck, {"mode": "protocols", "owners": ["sshd"]}, ctx)
    assert verdict == Verdict(
        Status.SKIP, (), f"no HTTPS port: none of {sshd.target} completes a TLS handshake"
    )


def test_discovery_without_apache_skips() -> None:
    verdict = run_check(TLSProbeCheck, {"mode": "certificate"}, new_audit(ServersOnlyHost()))
    assert verdict == Verdict(
        Status.SKIP, (), "no apache2/httpd process is listening on a TCP port"
    )


def test_explicit_target_that_is_not_tls_is_an_error(tmp_path) -> None:
    with run_sshd(tmp_path) as sshd:
        verdict = protocols_check(sshd.target)
    assert verdict.status is Status.ERROR
    assert verdict.evidence[0].startswith(f"{sshd.target}: no SSL/TLS handshake succeeded (SSLv2: ")


def test_unreachable_target_is_an_error() -> None:
    port = free_port()
    verdict = protocols_check(f"127.0.0.1:{port}")
    assert verdict == Verdict(
        Status.ERROR, (f"127.0.0.1:{port}: Connection refused",), "not every port could be probed"
    )


def test_bad_target_is_an_error() -> None:
    verdict = protocols_check("host:99999")
    assert verdict == Verdict(Status.ERROR, (), "'host:99999': port must be 1-65535")


def test_each_port_is_probed_once_per_audit(tmp_path) -> None:
    """The certificate check reuses the protocol check's probe: it still answers after the
    server is gone."""
    ctx = new_audit(clock=lambda: dt.datetime.now(dt.UTC).timestamp())
    with run_apache_ssl(tmp_path, MODERN_ONLY) as apache:
        first = run_check(TLSProbeCheck, {"mode": "protocols", "targets": [apache.target]}, ctx)
    second = run_check(TLSProbeCheck, {"mode": "certificate", "targets": [apache.target]}, ctx)
    assert (first.status, second.status) == (Status.PASS, Status.PASS)
    assert run_check(TLSProbeCheck, {"mode": "certificate", "targets": [apache.target]}).status is (
        Status.ERROR
    )


# --- SSLv2/SSLv3 stand-ins -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "protocol", "detail"),
    [
        (sslv3_server_hello, "SSLv3", "cipher suite 0x000a"),
        (sslv2_server_hello, "SSLv2", "SERVER-HELLO listing 0x0700c0"),
    ],
)
def test_legacy_protocol_accepted_fails(reply, protocol: str, detail: str) -> None:
    with run_canned_server(reply) as server:
        probe = probe_tls(Target("127.0.0.1", server.port))
        verdict = protocols_check(server.target)
    assert probe.accepted == (protocol,)
    assert Outcome(protocol, True, detail) in probe.outcomes
    assert verdict == Verdict(
        Status.FAIL, (f"{server.target} accepts {protocol}; below TLSv1.2: {protocol}",)
    )


# --- certificates ----------------------------------------------------------------------------


def certificate_check(target: str, **params) -> Verdict:
    ctx = new_audit(clock=fixed_clock)
    return run_check(TLSProbeCheck, {"mode": "certificate", "targets": [target], **params}, ctx)


def window(cert) -> str:
    start, end = cert.certificate.not_valid_before_utc, cert.certificate.not_valid_after_utc
    return f"valid {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"


SELF_SIGNED = (
    "does not verify for 127.0.0.1 against the system trust store: self-signed certificate"
)


@pytest.mark.parametrize(
    ("days", "valid_from", "status", "state"),
    [
        (5, NOW - dt.timedelta(days=1), Status.FAIL, "expires in 4.0 days (< 21)"),
        (365, NOW - dt.timedelta(days=1), Status.PASS, "364.0 days left"),
        (30, NOW - dt.timedelta(days=40), Status.FAIL, "expired"),
        (30, NOW + dt.timedelta(days=2), Status.FAIL, "not valid yet"),
    ],
)
def test_certificate_validity(tmp_path, days, valid_from, status, state) -> None:
    cert = issue_certificate(tmp_path / "tls", days=days, valid_from=valid_from)
    with run_apache_ssl(tmp_path, MODERN_ONLY, cert=cert) as apache:
        verdict = certificate_check(apache.target)
    line = f"{apache.target} serves CN=localhost, {window(cert)}: {state}; {SELF_SIGNED}"
    assert verdict == Verdict(status, (line,))


def test_expiry_days_is_a_parameter(tmp_path) -> None:
    cert = issue_certificate(tmp_path / "tls", days=5, valid_from=NOW - dt.timedelta(days=1))
    with run_apache_ssl(tmp_path, MODERN_ONLY, cert=cert) as apache:
        verdict = certificate_check(apache.target, expiry_days=3)
    assert verdict.status is Status.PASS


def test_trust_against_a_given_ca(tmp_path) -> None:
    ca = issue_certificate(
        tmp_path / "ca", "Test CA", is_ca=True, valid_from=NOW - dt.timedelta(days=1)
    )
    cert = issue_certificate(tmp_path / "tls", ca=ca, valid_from=NOW - dt.timedelta(days=1))
    with run_apache_ssl(tmp_path, MODERN_ONLY, cert=cert) as apache:
        trusted = certificate_check(
            apache.target, server_name="localhost", ca_file=str(ca.cert), require_trusted=True
        )
        untrusted = certificate_check(apache.target, server_name="localhost", require_trusted=True)
        wrong_name = certificate_check(
            apache.target, server_name="db.example", ca_file=str(ca.cert), require_trusted=True
        )
    about = f"{apache.target} serves CN=localhost, {window(cert)}"
    assert trusted == Verdict(
        Status.PASS, (f"{about}: 364.0 days left; verifies for localhost against {ca.cert}",)
    )
    assert untrusted == Verdict(
        Status.FAIL,
        (
            f"{about}; does not verify for localhost against the system trust store: "
            "unable to get local issuer certificate",
        ),
    )
    assert wrong_name.status is Status.FAIL
    assert "Hostname mismatch" in wrong_name.evidence[0]


def test_certificate_details(tmp_path) -> None:
    cert = issue_certificate(tmp_path / "tls", "www.example.test")
    with run_apache_ssl(tmp_path, MODERN_ONLY, cert=cert) as apache:
        probe = probe_tls(Target("127.0.0.1", apache.port))
    found = probe.certificate
    assert found is not None
    assert (found.subject, found.issuer) == ("CN=www.example.test", "CN=www.example.test")
    assert found.dns_names == ("www.example.test", "localhost")
    assert found.ip_addresses == ("127.0.0.1", "::1")
    assert found.not_after == cert.certificate.not_valid_after_utc
    assert found.trusted is False

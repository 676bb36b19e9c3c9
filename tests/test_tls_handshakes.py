"""LAPP-TLS-057..063 (``tls_handshake_probe``) on real Apache servers: the elliptic curves
each HTTPS port accepts, its DH group, the downgrade signal (TLS_FALLBACK_SCSV), the
extended master secret, secure renegotiation, heartbeats and a premature ChangeCipherSpec.
Each has its passing and failing form (stand-in servers for what no current OpenSSL can be
made to do), and the answers equal sslyze's on the same servers (sslyze is a test
dependency only, run as its own command). For the extended master secret the oracle is
OpenSSL's s_client: sslyze 6.3.1 reports it supported by a server that turned it off."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import dh
from cryptography.hazmat.primitives.serialization import Encoding, ParameterFormat
from servers import (
    issue_certificate,
    run_apache_ssl,
    run_canned_server,
    run_check,
)

from checks.probes.handshake import scan_handshakes
from checks.probes.wire import Target
from checks.result import Status
from checks.types.tls_live import TLSHandshakeProbeCheck

ASPECTS = ("curves", "dh", "fallback", "extended_master_secret", "renegotiation", "heartbeat",
           "ccs_injection")  # fmt: skip
MOZILLA_CURVES = "SSLOpenSSLConfCmd Curves X25519:prime256v1:secp384r1"
NO_EMS = "SSLOpenSSLConfCmd Options -ExtendedMasterSecret"
WITH_DHE = "ECDHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES128-GCM-SHA256"
#: Apache as Debian runs it (OpenSSL 3's default groups), with the profile's curves, and
#: with the extended master secret turned off.
SERVERS = {"stock": "", "curves": MOZILLA_CURVES, "no_ems": NO_EMS}
#: sslyze names curves as SECG does; we, as OpenSSL and Mozilla's profiles do.
SECG_TO_OPENSSL = {"secp256r1": "prime256v1", "secp192r1": "prime192v1"}
#: RFC 2409's 1024-bit MODP group (Oakley group 2), a DH group Mozilla's profiles refuse.
OAKLEY_2 = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A0879"
    "8E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B"
    "0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF",
    16,
)


def verdicts(target: str, **params) -> dict[str, tuple[Status, tuple[str, ...]]]:
    found = {}
    for aspect in ASPECTS:
        verdict = run_check(
            TLSHandshakeProbeCheck, {"targets": [target], "aspect": aspect, **params}
        )
        found[aspect] = (verdict.status, verdict.evidence)
    return found


def test_stock_apache_fails_only_the_curves(tmp_path: Path) -> None:
    with run_apache_ssl(tmp_path, cipher_suite=WITH_DHE) as apache:
        found = verdicts(apache.target)
    t = apache.target
    assert found == {
        "curves": (Status.FAIL, (f"{t} accepts curves outside Mozilla intermediate (X25519, "
                                 "prime256v1, secp384r1): X448, secp521r1",)),
        "dh": (Status.PASS, (f"{t} serves a 2048-bit DH group",)),
        "fallback": (Status.PASS, (f"{t} refuses a TLS 1.2 hello carrying TLS_FALLBACK_SCSV",)),
        "extended_master_secret": (
            Status.PASS, (f"{t} agrees to the extended master secret (RFC 7627) at TLS 1.2",)),
        "renegotiation": (
            Status.PASS, (f"{t} agrees to secure renegotiation (RFC 5746) at TLS 1.2",)),
        "heartbeat": (Status.PASS, (f"{t} does not agree to heartbeats (RFC 6520, which "
                                    "Heartbleed abused) at TLS 1.2",)),
        "ccs_injection": (
            Status.PASS, (f"{t} refuses a ChangeCipherSpec before any key exchange",)),
    }  # fmt: skip


def test_the_profiles_curves_pass(tmp_path: Path) -> None:
    with run_apache_ssl(tmp_path, ssl_extra=MOZILLA_CURVES) as apache:
        verdict = run_check(
            TLSHandshakeProbeCheck, {"targets": [apache.target], "aspect": "curves"}
        )
    assert (verdict.status, verdict.evidence) == (
        Status.PASS,
        (f"{apache.target} accepts the curves X25519, prime256v1, secp384r1",),
    )


def test_a_tls13_only_port_passes_every_tls12_question(tmp_path: Path) -> None:
    with run_apache_ssl(tmp_path, "-all +TLSv1.3", ssl_extra=MOZILLA_CURVES) as apache:
        found = verdicts(apache.target)
    t = apache.target
    assert {aspect: status for aspect, (status, _) in found.items()} == dict.fromkeys(
        ASPECTS, Status.PASS
    )
    assert found["dh"][1] == (f"{t} accepts no DHE suite",)
    assert found["extended_master_secret"][1] == (f"{t} speaks no TLS 1.2",)
    assert found["ccs_injection"][1] == (f"{t} speaks no TLS 1.2",)


def test_without_the_extended_master_secret_fails(tmp_path: Path) -> None:
    with run_apache_ssl(tmp_path, ssl_extra=NO_EMS) as apache:
        found = verdicts(apache.target)
    assert found["extended_master_secret"] == (
        Status.FAIL,
        (f"{apache.target} does not agree to the extended master secret (RFC 7627) at TLS 1.2",),
    )


def test_a_1024_bit_dh_group_fails(tmp_path: Path) -> None:
    """mod_ssl takes DH parameters appended to the certificate file."""
    params = dh.DHParameterNumbers(OAKLEY_2, 2).parameters()
    cert = issue_certificate(tmp_path / "tls")
    with cert.cert.open("ab") as pem:
        pem.write(params.parameter_bytes(Encoding.PEM, ParameterFormat.PKCS3))
    suites = "DHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0"
    with run_apache_ssl(tmp_path, cert=cert, cipher_suite=suites) as apache:
        found = verdicts(apache.target)
        ours = scan_handshakes(Target(apache.address, apache.port))
    assert found["dh"] == (
        Status.FAIL,
        (f"{apache.target} serves a 1024-bit DH group (at least 2048)",),
    )
    assert ours.dh_bits == 1024


def _server_hello(tls13: bool, extensions: bytes = b"") -> bytes:
    """A ServerHello record: TLS 1.3 (TLS_AES_128_GCM_SHA256) or TLS 1.2
    (ECDHE-RSA-AES128-GCM-SHA256), carrying ``extensions``."""
    suite = b"\x13\x01" if tls13 else b"\xc0\x2f"
    extensions += b"\x00\x2b\x00\x02\x03\x04" if tls13 else b""
    body = b"\x03\x03" + bytes(32) + b"\x00" + suite + b"\x00"
    body += len(extensions).to_bytes(2, "big") + extensions
    handshake = b"\x02" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x03" + len(handshake).to_bytes(2, "big") + handshake


def _asks_tls13(request: bytes) -> bool:
    return b"\x00\x2b\x00\x03\x02\x03\x04" in request  # supported_versions: TLS 1.3


def test_a_port_that_accepts_a_downgrade_fails() -> None:
    """It speaks TLS 1.3, and answers a TLS 1.2 hello whatever it carries."""
    with run_canned_server(
        lambda request: _server_hello(_asks_tls13(request)), whole_record=True
    ) as server:
        found = verdicts(server.target)
    assert found["fallback"] == (
        Status.FAIL,
        (f"{server.target} speaks TLS 1.3 yet accepts a TLS 1.2 hello carrying "
         "TLS_FALLBACK_SCSV (a downgrade)",),
    )  # fmt: skip


def test_heartbeats_and_insecure_renegotiation_fail() -> None:
    """An old server: heartbeats on (OpenSSL 1.0.1), no renegotiation_info."""
    heartbeat = b"\x00\x0f\x00\x01\x01"
    with run_canned_server(lambda _: _server_hello(False, heartbeat), whole_record=True) as server:
        found = verdicts(server.target)
    t = server.target
    assert found["heartbeat"] == (
        Status.FAIL,
        (f"{t} agrees to heartbeats (RFC 6520, which Heartbleed abused) at TLS 1.2",),
    )
    assert found["renegotiation"] == (
        Status.FAIL,
        (f"{t} does not agree to secure renegotiation (RFC 5746) at TLS 1.2",),
    )


#: An OpenSSL before 1.0.1h: its first TLS 1.2 flight (ServerHello, ServerHelloDone), then
#: it waits, taking a ChangeCipherSpec in silence.
FIRST_FLIGHT = _server_hello(False) + b"\x16\x03\x03\x00\x04\x0e\x00\x00\x00"


def test_a_port_that_takes_a_premature_change_cipher_spec_fails() -> None:
    with run_canned_server(lambda _: FIRST_FLIGHT, whole_record=True, hold_open=True) as server:
        scan = scan_handshakes(Target(server.address, server.port), timeout=1.0)
        verdict = run_check(
            TLSHandshakeProbeCheck, {"targets": [server.target], "aspect": "ccs_injection"}
        )
    assert scan.ccs_accepted is True
    assert (verdict.status, verdict.evidence) == (
        Status.FAIL,
        (f"{server.target} takes a ChangeCipherSpec before any key exchange in silence "
         "(CCS injection, CVE-2014-0224)",),
    )  # fmt: skip


def sslyze(target: str, out: Path) -> dict:
    pytest.importorskip("sslyze", reason="pip install -e '.[test]' brings sslyze")
    argv = [sys.executable, "-m", "sslyze", "--quiet", "--mozilla_config=disable"]
    argv += ["--elliptic_curves", "--fallback", "--ems", "--reneg", "--heartbleed"]
    argv += ["--openssl_ccs", "--tlsv1_2", f"--json_out={out}", target]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())["server_scan_results"][0]["scan_result"]


def openssl_says_ems(target: str) -> bool:
    """Whether ``openssl s_client`` sees the extended master secret agreed at TLS 1.2."""
    argv = ["openssl", "s_client", "-connect", target, "-tls1_2"]
    done = subprocess.run(argv, input="", capture_output=True, text=True, timeout=30)
    (line,) = [ln for ln in done.stdout.splitlines() if "Extended master secret:" in ln]
    return line.split(":", 1)[1].strip() == "yes"


@pytest.mark.parametrize("kind", list(SERVERS))
def test_the_answers_equal_sslyzes(tmp_path: Path, kind: str) -> None:
    with run_apache_ssl(tmp_path, cipher_suite=WITH_DHE, ssl_extra=SERVERS[kind]) as apache:
        ours = scan_handshakes(Target(apache.address, apache.port))
        theirs = sslyze(apache.target, tmp_path / "sslyze.json")
        openssl_ems = openssl_says_ems(apache.target)
    curves = theirs["elliptic_curves"]["result"]["supported_curves"]
    assert set(ours.curves) == {SECG_TO_OPENSSL.get(c["name"], c["name"]) for c in curves}
    assert ours.fallback_refused == theirs["tls_fallback_scsv"]["result"]["supports_fallback_scsv"]
    assert ours.tls12 is not None
    assert ours.tls12.extended_master_secret == openssl_ems
    if kind != "no_ems":  # sslyze 6.3.1 says yes there, where OpenSSL's s_client says no
        ems = theirs["tls_extended_master_secret"]["result"]["supports_ems_extension"]
        assert ours.tls12.extended_master_secret == ems
    reneg = theirs["session_renegotiation"]["result"]
    assert ours.tls12.renegotiation == reneg["supports_secure_renegotiation"]
    assert ours.tls12.heartbeat == theirs["heartbleed"]["result"]["is_vulnerable_to_heartbleed"]
    ccs = theirs["openssl_ccs_injection"]["result"]["is_vulnerable_to_ccs_injection"]
    assert ours.ccs_accepted == ccs
    suites = theirs["tls_1_2_cipher_suites"]["result"]["accepted_cipher_suites"]
    dh_sizes = {
        s["ephemeral_key"]["size"] for s in suites if s["ephemeral_key"]["type_name"] == "DH"
    }
    assert {ours.dh_bits} == dh_sizes
    assert ours.undecided == {}

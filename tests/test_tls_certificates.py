"""LAPP-TLS-054..056 (``tls_certificate_probe``) on real Apache servers: the certificate each
site serves verifies for its name (trust), has a key Mozilla's profile allows (type, size,
curve, signature hash) and is not valid for longer than the profile's maximum lifespan.
Each with its passing and failing form; a self-signed 825-day certificate fails."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from servers import issue_certificate, run_apache_ssl, run_check

from checks.result import Status, Verdict
from checks.types.tls_live import TLSCertificateProbeCheck

SUBJECT = "CN=localhost"


def probe(tmp_path: Path, aspect: str, cert=None, **params) -> tuple[str, Verdict]:
    with run_apache_ssl(tmp_path, cert=cert) as apache:
        check = {"targets": [apache.target], "aspect": aspect, "server_names": ["localhost"]}
        verdict = run_check(TLSCertificateProbeCheck, {**check, **params})
    return f"{apache.target} (localhost) serves {SUBJECT}", verdict


@pytest.mark.parametrize(
    ("curve", "status", "detail"),
    [
        (None, Status.PASS, "RSA 2048 bits, signed with sha256"),
        (ec.SECP256R1(), Status.PASS, "ECDSA 256 bits (prime256v1), signed with sha256"),
        (ec.SECP384R1(), Status.PASS, "ECDSA 384 bits (secp384r1), signed with sha256"),
        (ec.SECP521R1(), Status.FAIL, "ECDSA 521 bits (secp521r1), signed with sha256: Mozilla "
         "intermediate wants the curve prime256v1 or secp384r1, not secp521r1"),
    ],
)  # fmt: skip
def test_certificate_key(tmp_path: Path, curve, status: Status, detail: str) -> None:
    key = ec.generate_private_key(curve) if curve else None
    cert = issue_certificate(tmp_path / "tls", key=key)
    about, verdict = probe(tmp_path, "key", cert)
    assert (verdict.status, verdict.evidence) == (status, (f"{about}: {detail}",))


def test_modern_wants_ecdsa_keys(tmp_path: Path) -> None:
    about, verdict = probe(tmp_path, "key", profile="modern")
    assert (verdict.status, verdict.evidence) == (
        Status.FAIL,
        (f"{about}: RSA 2048 bits, signed with sha256: Mozilla modern wants ECDSA keys",),
    )


@pytest.mark.parametrize(
    ("days", "status", "suffix"),
    [(366, Status.PASS, ""), (825, Status.FAIL, " (> 366, intermediate)")],
)
def test_certificate_lifetime(tmp_path: Path, days: int, status: Status, suffix: str) -> None:
    cert = issue_certificate(tmp_path / "tls", days=days)
    about, verdict = probe(tmp_path, "lifetime", cert)
    expected = f"{about}, valid {days} days in total{suffix}"
    assert (verdict.status, verdict.evidence) == (status, (expected,))


def test_certificate_trust(tmp_path: Path) -> None:
    cert = issue_certificate(tmp_path / "tls")
    about, untrusted = probe(tmp_path, "trust", cert)
    assert (untrusted.status, untrusted.evidence) == (
        Status.FAIL,
        (f"{about}: does not verify for localhost against the system trust store: "
         "self-signed certificate",),
    )  # fmt: skip
    about, trusted = probe(tmp_path, "trust", cert, ca_file=str(cert.cert))
    assert (trusted.status, trusted.evidence) == (
        Status.PASS,
        (f"{about}: verifies for localhost against {cert.cert}",),
    )

"""LAPP-TLS-065 (``ocsp_stapling_probe``) on real Apache servers and a real OCSP responder
(``openssl ocsp``): a site whose certificate names a responder must staple a successful
answer; one that staples nothing, or only an error because its responder is down, fails;
a certificate naming no responder passes."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from conftest import free_port, require_program
from servers import CertFiles, RunningServer, _daemon, issue_certificate, run_apache_ssl
from servers import run_check as check

from checks.probes.handshake import Stapling, probe_stapling
from checks.probes.wire import Target
from checks.result import Status, Verdict
from checks.types.tls_live import OCSPStaplingProbeCheck


def signed_by_a_ca(tmp_path: Path, port: int) -> tuple[CertFiles, CertFiles]:
    """A CA, and a leaf for localhost it signs naming the responder on ``port``, whose file
    carries the CA after the leaf (mod_ssl needs the issuer to ask the responder)."""
    ca = issue_certificate(tmp_path / "ca", "Test CA", is_ca=True)
    leaf = issue_certificate(tmp_path / "leaf", ca=ca, ocsp_url=f"http://127.0.0.1:{port}")
    with leaf.cert.open("ab") as chain:
        chain.write(ca.cert.read_bytes())
    return ca, leaf


@contextmanager
def ocsp_responder(tmp_path: Path, ca: CertFiles, leaf: CertFiles, port: int) -> Iterator[None]:
    """``openssl ocsp`` answering for the CA, the leaf listed as valid (OpenSSL 3.0 binds the
    port on every address: it serves only this test CA's answers)."""
    openssl = require_program("openssl")
    expiry = leaf.certificate.not_valid_after_utc.strftime("%y%m%d%H%M%SZ")
    index = tmp_path / "index.txt"
    serial = f"{leaf.certificate.serial_number:X}"
    index.write_text(f"V\t{expiry}\t\t{serial}\tunknown\t/CN=localhost\n")
    argv = [openssl, "ocsp", "-index", str(index), "-port", str(port),
            "-rsigner", str(ca.cert), "-rkey", str(ca.key), "-CA", str(ca.cert)]  # fmt: skip
    log = tmp_path / "ocsp.log"
    with _daemon(argv, log, signal.SIGTERM) as proc:
        # not by connecting: the responder, one request at a time, would wait on that one
        deadline = time.monotonic() + 20
        while b"waiting for OCSP client connections" not in log.read_bytes():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield


def stapling_apache(tmp_path: Path, cert: CertFiles, stapling: str = "On"):
    cache = f'SSLStaplingCache "shmcb:{tmp_path / "stapling"}(32768)"'
    return run_apache_ssl(
        tmp_path, cert=cert, ssl_extra=f"SSLUseStapling {stapling}", extra_config=cache
    )


def verdict_for(apache: RunningServer) -> Verdict:
    """LAPP-TLS-065's verdict on the site localhost of ``apache``."""
    params = {"targets": [apache.target], "server_names": ["localhost"]}
    return check(OCSPStaplingProbeCheck, params)


def test_a_good_staple_passes(tmp_path: Path) -> None:
    port = free_port("127.0.0.1")
    ca, leaf = signed_by_a_ca(tmp_path, port)
    with ocsp_responder(tmp_path, ca, leaf, port), stapling_apache(tmp_path, leaf) as apache:
        verdict = verdict_for(apache)
        seen = probe_stapling(Target(apache.address, apache.port), "localhost")
        openssl = subprocess.run(
            ["openssl", "s_client", "-connect", apache.target, "-tls1_2", "-status"],
            input="", capture_output=True, text=True, timeout=30,
        ).stdout  # fmt: skip
    responder = f"http://127.0.0.1:{port}"
    assert seen == Stapling((responder,), "successful")
    assert "OCSP Response Status: successful (0x0)" in openssl
    assert (verdict.status, verdict.evidence) == (
        Status.PASS,
        (f"{apache.target} (localhost): staples a successful answer of {responder}",),
    )


def test_nothing_stapled_fails(tmp_path: Path) -> None:
    port = free_port("127.0.0.1")
    _, leaf = signed_by_a_ca(tmp_path, port)
    with stapling_apache(tmp_path, leaf, "Off") as apache:
        verdict = verdict_for(apache)
    assert (verdict.status, verdict.evidence) == (
        Status.FAIL,
        (f"{apache.target} (localhost): the certificate names http://127.0.0.1:{port}, "
         "nothing is stapled",),
    )  # fmt: skip


def test_a_staple_of_an_error_fails(tmp_path: Path) -> None:
    """The responder is down: mod_ssl staples a 'tryLater' answer of its own making."""
    port = free_port("127.0.0.1")
    _, leaf = signed_by_a_ca(tmp_path, port)
    with stapling_apache(tmp_path, leaf) as apache:
        verdict = verdict_for(apache)
    assert (verdict.status, verdict.evidence) == (
        Status.FAIL,
        (f"{apache.target} (localhost): staples a 'tryLater' answer: the server gets no good "
         f"one from http://127.0.0.1:{port}",),
    )  # fmt: skip


def test_a_certificate_naming_no_responder_passes(tmp_path: Path) -> None:
    with run_apache_ssl(tmp_path) as apache:
        verdict = verdict_for(apache)
    assert (verdict.status, verdict.evidence) == (
        Status.PASS,
        (f"{apache.target} (localhost): the certificate names no OCSP responder",),
    )


def test_a_tls13_only_port_is_left_to_the_configuration_check(tmp_path: Path) -> None:
    with run_apache_ssl(tmp_path, "-all +TLSv1.3") as apache:
        verdict = verdict_for(apache)
    assert verdict.status is Status.PASS
    assert verdict.evidence[0].startswith(f"{apache.target} (localhost) speaks no TLS 1.2")

"""LAPP-TLS-008: an SSL site whose certificate names an OCSP responder staples its answer
(Mozilla's ocsp_staple); a certificate naming none passes, an unreadable one is an error."""

from __future__ import annotations

from pathlib import Path

import pytest
from servers import issue_certificate
from treeutil import context, make_tree

from checks.policy import load_policy
from checks.result import Status, Verdict
from policies import builtin_policy

POLICY = load_policy(builtin_policy("lapp-baseline"))
(CHECK,) = [check for check in POLICY.checks if check.id == "LAPP-TLS-008"]
CERT = "/etc/ssl/certs/site.pem"
RESPONDER = "http://ocsp.example.org"
VHOST = "<VirtualHost *:443>"
SITE = f"{VHOST} (/etc/apache2/apache2.conf:3)"


def audit(tmp_path: Path, lines: str, server: str = "", ocsp_url: str | None = RESPONDER,
          write_cert: bool = True) -> Verdict:  # fmt: skip
    cert = issue_certificate(tmp_path / "made", ocsp_url=ocsp_url)
    config = (f"Listen 443\n{server}\n<VirtualHost *:443>\n  SSLEngine on\n"
              f"  SSLCertificateFile {CERT}\n{lines}\n</VirtualHost>\n")  # fmt: skip
    files = {"/etc/apache2/apache2.conf": config}
    if write_cert:
        files[CERT] = cert.cert.read_bytes()
    root = make_tree(tmp_path / "root", files)
    return CHECK.implementation.run(context(root, dict(POLICY.values)))


@pytest.mark.parametrize(
    ("lines", "server", "status", "evidence"),
    [
        ("", "", Status.FAIL, f"{SITE}: {CERT} names the OCSP responder {RESPONDER}, "
         "but SSLUseStapling is not set (Off)"),
        ("  SSLUseStapling off", "", Status.FAIL, f"{SITE}: {CERT} names the OCSP responder "
         f"{RESPONDER}, but /etc/apache2/apache2.conf:6: SSLUseStapling off in {VHOST}"),
        ("  SSLUseStapling On", "", Status.PASS, f"{SITE}: {CERT} staples {RESPONDER} "
         f"(/etc/apache2/apache2.conf:6: SSLUseStapling On in {VHOST})"),
        ("", "SSLUseStapling On", Status.PASS, f"{SITE}: {CERT} staples {RESPONDER} "
         "(/etc/apache2/apache2.conf:2: SSLUseStapling On)"),
    ],
)  # fmt: skip
def test_a_certificate_naming_a_responder_needs_stapling(
    tmp_path: Path, lines: str, server: str, status: Status, evidence: str
) -> None:
    verdict = audit(tmp_path, lines, server)
    assert (verdict.status, verdict.evidence) == (status, (evidence,))


def test_a_certificate_naming_no_responder_passes(tmp_path: Path) -> None:
    verdict = audit(tmp_path, "", ocsp_url=None)
    assert (verdict.status, verdict.evidence) == (
        Status.PASS,
        (f"{SITE}: {CERT} names no OCSP responder",),
    )


def test_a_missing_certificate_is_an_error(tmp_path: Path) -> None:
    verdict = audit(tmp_path, "", write_cert=False)
    assert verdict.status is Status.ERROR
    assert verdict.reason.startswith(f"{SITE}: cannot read the certificate {CERT}: ")

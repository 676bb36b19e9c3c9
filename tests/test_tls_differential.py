"""Differential tests: lappguard's live TLS findings equal sslyze's on the same real Apache
servers (a weak, a Mozilla intermediate and a Mozilla modern configuration): the cipher
suites accepted at each TLS version, and the HSTS header's max-age.

sslyze (AGPL) is a test dependency only; it runs as its own command, with JSON output."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT
from servers import APACHE_MODULES, run_apache_ssl, run_check

from checks.probes.ciphers import scan_suites
from checks.probes.wire import Target
from checks.result import Status
from checks.tls_profiles import PROFILES
from checks.types.tls_live import HSTSProbeCheck, TLSCipherProbeCheck

HEADERS = f"LoadModule headers_module {APACHE_MODULES / 'mod_headers.so'}"
INTERMEDIATE = ":".join(PROFILES["intermediate"].allowed("TLSv1.2"))
SERVERS = {
    # everything OpenSSL 3 can still serve, from TLS 1.0 on, and no HSTS
    "weak": ("all", "ALL:COMPLEMENTOFALL:@SECLEVEL=0", ""),
    "intermediate": (
        "-all +TLSv1.2 +TLSv1.3",
        INTERMEDIATE,
        'Header always set Strict-Transport-Security "max-age=63072000; includeSubDomains"',
    ),
    "modern": ("-all +TLSv1.3", None, 'Header always set Strict-Transport-Security "max-age=300"'),
}
SSLYZE_VERSIONS = {
    "TLSv1.0": "tls_1_0_cipher_suites",
    "TLSv1.1": "tls_1_1_cipher_suites",
    "TLSv1.2": "tls_1_2_cipher_suites",
    "TLSv1.3": "tls_1_3_cipher_suites",
}
#: What each server is expected to fail, so the comparison is never between two empty sets.
EXPECTED = {
    "weak": (Status.FAIL, Status.FAIL),
    "intermediate": (Status.PASS, Status.PASS),
    "modern": (Status.PASS, Status.FAIL),
}


def sslyze(target: str, out: Path) -> dict:
    """sslyze's scan of ``target`` (cipher suites of every TLS version, HTTP headers)."""
    pytest.importorskip("sslyze", reason="pip install -e '.[test]' brings sslyze")
    argv = [sys.executable, "-m", "sslyze", "--quiet", "--mozilla_config=disable"]
    argv += ["--tlsv1", "--tlsv1_1", "--tlsv1_2", "--tlsv1_3", "--http_headers"]
    done = subprocess.run(
        [*argv, f"--json_out={out}", target], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())["server_scan_results"][0]["scan_result"]


@pytest.mark.parametrize("kind", list(SERVERS))
def test_accepted_suites_and_hsts_equal_sslyze(tmp_path: Path, kind: str) -> None:
    protocol, ciphers, header = SERVERS[kind]
    with run_apache_ssl(
        tmp_path, protocol, cipher_suite=ciphers, ssl_extra=header, extra_config=HEADERS
    ) as apache:
        ours = scan_suites(Target(apache.address, apache.port))
        theirs = sslyze(apache.target, tmp_path / "sslyze.json")
        cipher_verdict = run_check(TLSCipherProbeCheck, {"targets": [apache.target]})
        hsts_verdict = run_check(HSTSProbeCheck, {"targets": [apache.target]})
    for version, key in SSLYZE_VERSIONS.items():
        accepted = theirs[key]["result"]["accepted_cipher_suites"]
        assert set(ours.accepted[version]) == {s["cipher_suite"]["openssl_name"] for s in accepted}
    assert ours.undecided == {}
    hsts = theirs["http_headers"]["result"]["strict_transport_security_header"]
    their_age = hsts["max_age"] if hsts else None
    their_pass = their_age is not None and their_age >= 730 * 86400
    assert (hsts_verdict.status is Status.PASS) == their_pass
    assert (cipher_verdict.status, hsts_verdict.status) == EXPECTED[kind]
    if their_age is not None:
        assert f"max-age={their_age}" in hsts_verdict.evidence[0]


def test_lappguard_never_imports_sslyze() -> None:
    """sslyze is AGPL: it may test lappguard, never ship inside it."""
    sources = [*(PROJECT_ROOT / "checks").rglob("*.py"), *(PROJECT_ROOT / "agent").rglob("*.py")]
    imports = re.compile(r"^\s*(import|from)\s+sslyze\b|import_module\([\"']sslyze", re.M)
    assert [p for p in sources if imports.search(p.read_text())] == []

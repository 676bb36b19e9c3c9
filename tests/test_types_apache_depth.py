"""The deeper Apache checks (TLS suites and HSTS per SSL site, Options, methods, access logs,
status pages, file modes, limits): Debian's stock tree fails them, the hardened-root tree
passes them, and each has its failing and passing forms."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from apache_tree import debian_stock
from conftest import require_root
from treeutil import context, hardened_root, make_tree

from checks.policy import load_policy
from checks.result import Status, Verdict
from policies import builtin_policy

ETC = "/etc/apache2"
NEW_IDS = [f"LAPP-TLS-{n:03d}" for n in range(2, 8)] + [f"LAPP-WEB-{n:03d}" for n in range(9, 21)]


def run(root: Path, cid: str, **variables: str) -> Verdict:
    """One baseline check, as the shipped policy configures it (with ``variables`` set), on
    a tree."""
    policy = load_policy(builtin_policy("lapp-baseline"), variables)
    check = next(c for c in policy.checks if c.id == cid)
    return check.implementation.run(context(root, dict(policy.values)))


def statuses(root: Path, ids=NEW_IDS) -> dict[str, Status]:
    return {cid: run(root, cid).status for cid in ids}


def site(tmp_path: Path, body: str, server: str = "") -> Path:
    """A one-file configuration: server-level lines, then one SSL virtual host."""
    config = f"Listen 443\n{server}\n<VirtualHost *:443>\n  SSLEngine on\n{body}\n</VirtualHost>\n"
    return make_tree(tmp_path, {f"{ETC}/apache2.conf": config})


def test_debian_stock_fails_the_new_controls_it_violates(tmp_path: Path) -> None:
    debian_stock(tmp_path)
    failing = {cid for cid, status in statuses(tmp_path).items() if status is Status.FAIL}
    assert failing == {
        "LAPP-TLS-002",  # HIGH:!aNULL keeps RSA key exchange and CBC suites
        "LAPP-TLS-003",
        "LAPP-TLS-004",
        "LAPP-WEB-009",  # Options Indexes for /var/www
        "LAPP-WEB-010",
        "LAPP-WEB-011",
        "LAPP-WEB-013",  # 0644 files, 0755 directories
        "LAPP-WEB-014",  # Timeout 300
        "LAPP-WEB-016",  # 1 GiB request bodies
        "LAPP-WEB-020",
    }
    indexes = run(tmp_path, "LAPP-WEB-009")
    assert (
        f"{ETC}/apache2.conf:171: Options Indexes FollowSymLinks in <Directory /var/www/>"
        in (indexes.evidence[1])
    )


def test_hardened_root_passes_every_new_control(tmp_path: Path) -> None:
    require_root()
    root = hardened_root(tmp_path)
    assert set(statuses(root).values()) == {Status.PASS}
    ciphers = run(root, "LAPP-TLS-002")
    assert ciphers.evidence[0].startswith(
        f"<VirtualHost *:443> ({ETC}/sites-enabled/default-ssl.conf:1): TLSv1.2 and older:"
        " ECDHE-ECDSA-AES256-GCM-SHA384, ECDHE-RSA-AES256-GCM-SHA384,"
    )
    tls13 = "TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256"
    assert ciphers.evidence[0].endswith(f"TLSv1.3: {tls13} from OpenSSL's default")


@pytest.mark.parametrize(
    ("lines", "status", "named"),
    [
        ("SSLCipherSuite ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305", Status.PASS,
         ""),
        ("SSLCipherSuite HIGH:!aNULL", Status.FAIL, "AES256-SHA (no forward secrecy, not AEAD)"),
        ("SSLCipherSuite ECDHE-RSA-AES128-GCM-SHA256:RC4-SHA", Status.FAIL,
         "RC4-SHA (a family this OpenSSL lacks)"),
        ("SSLCipherSuite ECDHE-RSA-AES128-SHA", Status.FAIL, "ECDHE-RSA-AES128-SHA (not AEAD)"),
        ("SSLCipherSuite ECDHE-RSA-AES128-GCM-SHA256\n"
         "  SSLCipherSuite TLSv1.3 TLS_AES_128_CCM_8_SHA256", Status.FAIL,
         "TLS_AES_128_CCM_8_SHA256 (not in Mozilla intermediate)"),
        ("SSLCipherSuite ECDHE-RSA-AES128-GCM-SHA256\n  SSLOpenSSLConfCmd CipherString ALL",
         Status.FAIL, "'SSLOpenSSLConfCmd CipherString ALL'"),
        ("", Status.FAIL, "httpd's default (DEFAULT:!aNULL:!eNULL:!EXP)"),
        ("SSLProtocol -all +TLSv1.3\n  SSLCipherSuite ALL", Status.PASS, ""),
        ("SSLCipherSuite NOSUCHCIPHER", Status.ERROR, "no cipher suite matches"),
    ],
)  # fmt: skip
def test_cipher_suites_per_site(tmp_path: Path, lines: str, status: Status, named: str) -> None:
    verdict = run(
        site(tmp_path, f"  SSLProtocol -all +TLSv1.2 +TLSv1.3\n  {lines}"), "LAPP-TLS-002"
    )
    assert verdict.status is status
    assert named in " ".join(verdict.evidence)


def test_modern_profile_refuses_any_tls12_suite(tmp_path: Path) -> None:
    root = site(tmp_path, "  SSLProtocol -all +TLSv1.2 +TLSv1.3\n  SSLCipherSuite " + (
        "ECDHE-RSA-AES128-GCM-SHA256"))  # fmt: skip
    modern = run(root, "LAPP-TLS-002", tls_profile="modern")
    assert modern.status is Status.FAIL
    assert "outside Mozilla modern" in modern.evidence[0]


def test_vhost_inherits_server_level_cipher_suite(tmp_path: Path) -> None:
    root = site(tmp_path, "", server="SSLCipherSuite ECDHE-RSA-AES128-GCM-SHA256")
    assert run(root, "LAPP-TLS-002").status is Status.PASS


@pytest.mark.parametrize(
    ("lines", "status", "problem"),
    [
        ('Header always set Strict-Transport-Security "max-age=63072000"', Status.PASS, ""),
        ('Header set Strict-Transport-Security "max-age=63072000"', Status.FAIL,
         "without 'always'"),
        ('Header always set Strict-Transport-Security "max-age=86400"', Status.FAIL,
         "max-age 86400 < 63072000"),
        ('Header always set Strict-Transport-Security "max-age=63072000"\n'
         "  Header always unset Strict-Transport-Security", Status.FAIL, "removes the header"),
        ("", Status.FAIL, "no Header line sets Strict-Transport-Security"),
    ],
)  # fmt: skip
def test_hsts_forms(tmp_path: Path, lines: str, status: Status, problem: str) -> None:
    headers = "LoadModule headers_module /usr/lib/apache2/modules/mod_headers.so"
    verdict = run(site(tmp_path, f"  {lines}", server=headers), "LAPP-TLS-004")
    assert verdict.status is status
    assert problem in " ".join(verdict.evidence)


def test_hsts_needs_mod_headers(tmp_path: Path) -> None:
    verdict = run(site(tmp_path, 'Header always set Strict-Transport-Security "max-age=1"'),
                  "LAPP-TLS-004")  # fmt: skip
    assert verdict.status is Status.FAIL
    assert verdict.evidence[0].startswith("headers_module is not loaded")


@pytest.mark.parametrize(
    ("server", "status"),
    [
        ("<Location />\n<LimitExcept GET POST>\nRequire all denied\n</LimitExcept>\n</Location>",
         Status.PASS),
        ("<Location />\nAllowMethods GET POST HEAD\n</Location>", Status.PASS),
        ("<LimitExcept GET POST PUT>\nRequire all denied\n</LimitExcept>", Status.FAIL),
        ("<Location /app>\n<LimitExcept GET>\nRequire all denied\n</LimitExcept>\n</Location>",
         Status.FAIL),
        ("<LimitExcept GET POST>\nRequire all granted\n</LimitExcept>", Status.FAIL),
    ],
)  # fmt: skip
def test_methods(tmp_path: Path, server: str, status: Status) -> None:
    assert run(site(tmp_path, "", server=server), "LAPP-WEB-011").status is status


@pytest.mark.parametrize(
    ("server", "vhost", "status"),
    [
        ("CustomLog /var/log/apache2/access.log combined", "", Status.PASS),
        ("", "  CustomLog /var/log/apache2/ssl.log combined", Status.PASS),
        ("CustomLog /var/log/apache2/access.log combined", "  CustomLog /dev/null common",
         Status.FAIL),
        ("", "", Status.FAIL),
    ],
)  # fmt: skip
def test_access_log(tmp_path: Path, server: str, vhost: str, status: Status) -> None:
    assert run(site(tmp_path, vhost, server=server), "LAPP-WEB-012").status is status


@pytest.mark.parametrize(
    ("section", "status"),
    [
        ("<Location /server-status>\nSetHandler server-status\nRequire local\n</Location>",
         Status.PASS),
        ("<Location /server-status>\nSetHandler server-status\nRequire ip 10.0.0.0/8\n</Location>",
         Status.PASS),
        ("<Location /server-status>\nSetHandler server-status\nRequire all granted\n</Location>",
         Status.FAIL),
        ("<Location /server-info>\nSetHandler server-info\n</Location>", Status.FAIL),
        ("SetHandler server-status", Status.FAIL),
    ],
)  # fmt: skip
def test_status_pages(tmp_path: Path, section: str, status: Status) -> None:
    assert run(site(tmp_path, "", server=section), "LAPP-WEB-019").status is status


@pytest.mark.parametrize(
    ("lines", "cid", "status"),
    [
        ("<Directory />\nOptions None\n</Directory>", "LAPP-WEB-010", Status.PASS),
        ("", "LAPP-WEB-010", Status.FAIL),  # httpd's default is FollowSymLinks
        ("<Directory />\nOptions None\n</Directory>\n<Directory /srv>\nOptions +FollowSymLinks\n"
         "</Directory>", "LAPP-WEB-010", Status.FAIL),
        ("<Directory /srv>\nOptions All\n</Directory>", "LAPP-WEB-009", Status.FAIL),
        ("<Directory /srv>\nOptions -Indexes\n</Directory>", "LAPP-WEB-009", Status.PASS),
        ("FileETag All", "LAPP-WEB-018", Status.FAIL),
        ("FileETag MTime +INode", "LAPP-WEB-018", Status.FAIL),
        ("FileETag MTime Size -INode", "LAPP-WEB-018", Status.PASS),
        ("Timeout 30", "LAPP-WEB-014", Status.PASS),
        ("LimitRequestBody 0", "LAPP-WEB-016", Status.FAIL),
        ("LimitRequestBody 10485760", "LAPP-WEB-016", Status.PASS),
        ("KeepAliveTimeout 30", "LAPP-WEB-015", Status.FAIL),
        ("SSLCompression on", "LAPP-TLS-005", Status.FAIL),
        ("SSLInsecureRenegotiation on", "LAPP-TLS-006", Status.FAIL),
        ("SSLHonorCipherOrder on", "LAPP-TLS-003", Status.PASS),
        ("LoadModule qos_module /usr/lib/apache2/modules/mod_qos.so", "LAPP-WEB-017", Status.PASS),
        ("", "LAPP-WEB-017", Status.FAIL),
    ],
)  # fmt: skip
def test_directive_forms(tmp_path: Path, lines: str, cid: str, status: Status) -> None:
    assert run(site(tmp_path, "", server=lines), cid).status is status


def test_file_modes_of_configuration_and_keys(tmp_path: Path) -> None:
    require_root()
    root = site(tmp_path, "  SSLCertificateKeyFile /etc/ssl/private/site.key")
    make_tree(root, {"/etc/ssl/private/site.key": "key"})
    for path in (root / "etc", root / "etc/apache2"):
        os.chmod(path, 0o750)
    os.chmod(root / "etc/apache2/apache2.conf", 0o640)
    os.chmod(root / "etc/ssl/private/site.key", 0o640)
    assert (run(root, "LAPP-WEB-013").status, run(root, "LAPP-TLS-007").status) == (
        Status.PASS,
        Status.PASS,
    )
    os.chmod(root / "etc/apache2/apache2.conf", 0o644)
    os.chmod(root / "etc/ssl/private/site.key", 0o644)
    config, keys = run(root, "LAPP-WEB-013"), run(root, "LAPP-TLS-007")
    # owners are shown by the tree's own account names: it has no etc/passwd, so numbers
    assert config.evidence == (f"{ETC}/apache2.conf: 0644 0:0: mode allows more than 0750",)
    assert keys.evidence == ("/etc/ssl/private/site.key: 0644 0:0: mode allows more than 0640",)
    os.remove(root / "etc/ssl/private/site.key")
    assert run(root, "LAPP-TLS-007").status is Status.ERROR

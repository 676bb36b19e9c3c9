"""The metrics endpoint with real clients: sockets, TLS with certificates from openssl,
bcrypt hashes from htpasswd, a real Prometheus server scraping it, and ``promtool check
web-config`` as the judge of which web configs are valid."""

from __future__ import annotations

import base64
import gzip
import http.client
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import pytest
from conftest import PROJECT_ROOT, free_port, require_program
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge
from prometheus_server import prometheus, query_until

from agent import basicauth, metrics_http
from agent.basicauth import BasicAuth
from agent.metrics_http import MetricsServer, serve_metrics
from agent.webconfig import CIPHER_SUITES, load_web_config
from checks.yamlsource import InputError

ALERTS = PROJECT_ROOT / "contrib" / "prometheus" / "alerts.yml"

# --- certificates and hashes, made by the tools a sysadmin uses ------------------------------

_OPENSSL_CONFIG = "[req]\ndistinguished_name = dn\n[dn]\n"  # extensions come from -addext only
_NEW_EC_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2")


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path  # a client certificate our CA did not sign
    stranger_key: Path
    garbage: Path  # a file that is no PEM at all


def openssl(*args: str | Path) -> None:
    require_program("openssl")
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def _issue(directory: Path, name: str, ca: tuple[Path, Path] | None, *ext: str) -> Path:
    """``openssl req -x509``: self-signed (a CA) or signed by ``ca``; returns the cert path."""
    key, cert = directory / f"{name}.key", directory / f"{name}.crt"
    signer = ["-CA", ca[0], "-CAkey", ca[1]] if ca else []
    argv = ["req", "-config", directory / "openssl.cnf", "-x509", *signer, *_NEW_EC_KEY]
    extensions = [arg for e in ext for arg in ("-addext", e)]
    openssl(*argv, "-subj", f"/CN={name}", "-keyout", key, "-out", cert, *extensions)
    return cert


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    (directory / "openssl.cnf").write_text(_OPENSSL_CONFIG)
    ca_ext = ("basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign")
    ca = _issue(directory, "ca", None, *ca_ext)
    ca_pair = (ca, directory / "ca.key")
    _issue(
        directory,
        "server",
        ca_pair,
        "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost",
        "extendedKeyUsage=serverAuth",
    )
    _issue(directory, "client", ca_pair, "extendedKeyUsage=clientAuth")
    other_ca = _issue(directory, "other-ca", None, *ca_ext)
    _issue(
        directory, "stranger", (other_ca, directory / "other-ca.key"), "extendedKeyUsage=clientAuth"
    )
    (directory / "garbage.pem").write_text("not a certificate\n")
    files = [directory / name for name in ("server.crt", "server.key", "client.crt",
             "client.key", "stranger.crt", "stranger.key", "garbage.pem")]  # fmt: skip
    return Pki(ca, *files)


def htpasswd_hash(user: str, password: str) -> str:
    """The bcrypt hash Apache's htpasswd makes (``$2y$``), as a sysadmin would."""
    require_program("htpasswd")
    line = subprocess.run(
        ["htpasswd", "-nbBC", "10", user, password], check=True, capture_output=True, text=True
    ).stdout.strip()
    return line.split(":", 1)[1]


@pytest.fixture(scope="module")
def scraper_hash() -> str:
    return htpasswd_hash("scraper", "s3cret pass")


# --- a client ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


def fetch(
    server: MetricsServer,
    path: str = "/metrics",
    *,
    ca: Path | None = None,
    auth: str | None = None,
    cert: tuple[Path, Path] | None = None,
    headers: dict[str, str] | None = None,
    method: str = "GET",
) -> Response:
    """One request over a new connection; TLS (verified with ``ca``) when ``ca`` is given."""
    headers = dict(headers or {})
    if auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    if ca is None:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    else:
        context = ssl.create_default_context(cafile=ca)
        if cert is not None:
            context.load_cert_chain(*cert)
        conn = http.client.HTTPSConnection(server.host, server.port, timeout=10, context=context)
    try:
        conn.request(method, path, headers=headers)
        response = conn.getresponse()
        return Response(response.status, response.headers, response.read())
    finally:
        conn.close()


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Gauge("lappguard_test_answer", "A metric only our registry has", registry=registry).set(42)
    return registry


@contextmanager
def serving(
    registry: CollectorRegistry, web_config: str | None = None, host: str = "127.0.0.1"
) -> Iterator[MetricsServer]:
    listen = f"[{host}]:{free_port(host)}" if ":" in host else f"{host}:{free_port(host)}"
    with serve_metrics(registry, listen, web_config) as server:
        yield server


# --- plain HTTP --------------------------------------------------------------------------------


def test_scrape_serves_our_registry_and_not_the_global_one(registry) -> None:
    global_only = Gauge("lappguard_test_global_only", "Registered in the global registry")
    try:
        with serving(registry) as server:
            response = fetch(server)
    finally:
        REGISTRY.unregister(global_only)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b"\nlappguard_test_answer 42.0\n" in response.body
    assert b"lappguard_test_global_only" not in response.body
    assert b"python_info" not in response.body  # the global registry's platform collector


def test_openmetrics_and_gzip_when_the_scraper_asks(registry) -> None:
    with serving(registry) as server:
        response = fetch(
            server,
            headers={
                "Accept": "application/openmetrics-text; version=1.0.0",
                "Accept-Encoding": "gzip",
            },
        )
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert response.headers["Content-Encoding"] == "gzip"
    body = gzip.decompress(response.body)
    assert b"lappguard_test_answer 42.0\n" in body
    assert body.endswith(b"# EOF\n")


def test_landing_page_not_found_and_other_methods(registry) -> None:
    with serving(registry) as server:
        landing = fetch(server, "/")
        missing = fetch(server, "/metrics/../etc/passwd")
        head = fetch(server, method="HEAD")
        post = fetch(server, method="POST")
    assert landing.status == 200 and b'href="/metrics"' in landing.body
    assert missing.status == 404
    assert head.status == 200 and head.body == b""
    assert post.status == 501
    assert landing.headers["Server"] == "lappguard"


def test_ipv6_loopback(registry) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this kernel")
    with serving(registry, host="::1") as server:
        assert server.url.startswith("http://[::1]:")
        assert b"lappguard_test_answer" in fetch(server).body


def test_a_collector_that_fails_gives_500_and_the_server_goes_on(registry) -> None:
    class Broken:
        def collect(self):
            raise RuntimeError("store unreadable")

    broken = Broken()
    with serving(registry) as server:
        registry.register(broken)
        assert fetch(server).status == 500
        registry.unregister(broken)
        assert fetch(server).status == 200


# --- TLS, client certificates --------------------------------------------------------------


def test_tls_scrape_verified_with_the_ca(tmp_path, registry, pki) -> None:
    config = write(
        tmp_path / "web.yml",
        f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n",
    )
    with serving(registry, config) as server:
        assert server.url.startswith("https://")
        response = fetch(server, ca=pki.ca)
        assert response.status == 200 and b"lappguard_test_answer 42.0" in response.body
        with pytest.raises(ssl.SSLCertVerificationError):
            fetch(server, ca=pki.stranger_cert)  # a client that does not trust our CA
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            fetch(server)  # plain HTTP to a TLS port gets no answer


def test_client_certificate_required(tmp_path, registry, pki) -> None:
    config = write(
        tmp_path / "web.yml",
        f"tls_server_config:\n  cert_file: {pki.server_cert}\n"
        f"  key_file: {pki.server_key}\n  client_ca_file: {pki.ca}\n"
        "  client_auth_type: RequireAndVerifyClientCert\n",
    )
    with serving(registry, config) as server:
        assert fetch(server, ca=pki.ca, cert=(pki.client_cert, pki.client_key)).status == 200
        for cert in (None, (pki.stranger_cert, pki.stranger_key)):
            # TLS 1.3 reports the refusal on the first read, not in the handshake.
            with pytest.raises((ssl.SSLError, ConnectionError)):
                fetch(server, ca=pki.ca, cert=cert)


def test_tls_settings_are_honoured(tmp_path, registry, pki) -> None:
    config = write(
        tmp_path / "web.yml",
        f"tls_server_config:\n  cert_file: {pki.server_cert}\n"
        f"  key_file: {pki.server_key}\n  max_version: TLS12\n"
        "  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]\n"
        "  curve_preferences: [CurveP384]\n",
    )
    with serving(registry, config) as server:
        context = ssl.create_default_context(cafile=pki.ca)
        with (
            socket.create_connection((server.host, server.port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            assert tls.version() == "TLSv1.2"
            assert tls.cipher()[0] == "ECDHE-ECDSA-AES256-GCM-SHA384"
        context.set_ecdh_curve("prime256v1")  # a client offering only a curve we do not
        with (
            pytest.raises(ssl.SSLError),
            socket.create_connection((server.host, server.port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="localhost"),
        ):
            pass


# --- basic auth ----------------------------------------------------------------------------


def test_basic_auth_with_an_htpasswd_hash(tmp_path, registry, scraper_hash) -> None:
    assert scraper_hash.startswith("$2y$10$")
    config = write(
        tmp_path / "web.yml",
        "http_server_config:\n  headers:\n"
        "    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\n"
        f"basic_auth_users:\n  scraper: '{scraper_hash}'\n",
    )
    with serving(registry, config) as server:
        anonymous = fetch(server)
        wrong = fetch(server, auth="scraper:wrong")
        unknown = fetch(server, auth="nobody:s3cret pass")
        right = fetch(server, auth="scraper:s3cret pass")
        too_long = fetch(server, auth="scraper:s3cret pass" + "x" * 80)
        not_basic = fetch(server, headers={"Authorization": "Bearer s3cret pass"})
        not_base64 = fetch(server, headers={"Authorization": "Basic !!!"})
        landing = fetch(server, "/")
    for refused in (anonymous, wrong, unknown, too_long, not_basic, not_base64, landing):
        assert refused.status == 401
        assert refused.headers["WWW-Authenticate"] == "Basic"
        assert b"lappguard_test_answer" not in refused.body
    assert right.status == 200 and b"lappguard_test_answer 42.0" in right.body
    for response in (anonymous, right):
        assert response.headers["X-Frame-Options"] == "deny"
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_a_password_that_matched_once_skips_bcrypt(monkeypatch, scraper_hash) -> None:
    calls = []
    real_checkpw = bcrypt.checkpw

    def counting_checkpw(password: bytes, hashed: bytes) -> bool:
        calls.append(password)
        return real_checkpw(password, hashed)

    monkeypatch.setattr(basicauth.bcrypt, "checkpw", counting_checkpw)
    auth = BasicAuth({"scraper": scraper_hash.encode()})
    header = "Basic " + base64.b64encode(b"scraper:s3cret pass").decode()
    wrong = "Basic " + base64.b64encode(b"scraper:guess").decode()
    stranger = "Basic " + base64.b64encode(b"mallory:s3cret pass").decode()
    assert auth.allows(header) and auth.allows(header)
    assert len(calls) == 1
    assert not auth.allows(wrong) and not auth.allows(wrong)
    assert len(calls) == 3  # failures are never remembered
    assert not auth.allows(stranger)
    assert len(calls) == 4  # an unknown user costs a bcrypt run too (the decoy)
    assert auth.allows(header) and len(calls) == 4


# --- slow and hostile clients --------------------------------------------------------------


def test_a_silent_client_does_not_block_scrapes(tmp_path, registry, pki) -> None:
    config = write(
        tmp_path / "web.yml",
        f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n",
    )
    with serving(registry, config) as server:
        silent = [socket.create_connection((server.host, server.port)) for _ in range(3)]
        try:  # three connections that never send a TLS ClientHello
            assert fetch(server, ca=pki.ca).status == 200
        finally:
            for sock in silent:
                sock.close()


def test_a_trickling_client_is_hung_up_on(monkeypatch, registry) -> None:
    monkeypatch.setattr(metrics_http, "HEAD_TIMEOUT", 0.5)
    with (
        serving(registry) as server,
        socket.create_connection((server.host, server.port), timeout=5) as sock,
    ):
        sock.sendall(b"GET /metrics HTTP/1.1\r\n")
        sent = 0
        try:
            while sent < 100:  # 100 bytes, one every 0.1 s: twenty times the deadline
                sock.sendall(b"X")
                sent += 1
                time.sleep(0.1)
            answer = sock.recv(1024)
        except ConnectionError:
            answer = b""
    assert sent < 100 or answer == b"", "the server waited for the whole trickle"


def test_a_huge_request_head_gets_431(registry) -> None:
    with (
        serving(registry) as server,
        socket.create_connection((server.host, server.port), timeout=5) as sock,
    ):
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        try:
            for _ in range(40):
                sock.sendall(b"X-Padding: " + b"a" * 1000 + b"\r\n")
        except ConnectionError:
            pass  # the server may hang up before we finish
        answer = sock.recv(1024)
    assert answer.startswith(b"HTTP/1.1 431")


def test_connections_beyond_the_limit_are_hung_up_on(monkeypatch, registry) -> None:
    monkeypatch.setattr(metrics_http, "MAX_CONNECTIONS", 2)
    with serving(registry) as server:
        idle = [socket.create_connection((server.host, server.port)) for _ in range(2)]
        try:
            with socket.create_connection((server.host, server.port), timeout=5) as third:
                third.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                with suppress(ConnectionResetError):  # hung up on: no answer
                    assert third.recv(1024) == b""
        finally:
            for sock in idle:
                sock.close()
        for _ in range(50):  # the slots come back once the idle connections are gone
            try:
                if fetch(server).status == 200:
                    break
            except ConnectionError:
                time.sleep(0.1)
        else:
            pytest.fail("no scrape succeeded after the idle connections closed")


# --- reload --------------------------------------------------------------------------------


def test_reload_turns_tls_and_auth_on_and_refuses_a_broken_file(
    tmp_path, registry, pki, scraper_hash
) -> None:
    config = tmp_path / "web.yml"
    config.write_text("")
    with serving(registry, str(config)) as server:
        assert fetch(server).status == 200
        config.write_text(
            f"tls_server_config:\n  cert_file: {pki.server_cert}\n"
            f"  key_file: {pki.server_key}\n"
            f"basic_auth_users:\n  scraper: '{scraper_hash}'\n"
        )
        server.reload(str(config))
        assert server.url.startswith("https://")
        assert fetch(server, ca=pki.ca).status == 401
        assert fetch(server, ca=pki.ca, auth="scraper:s3cret pass").status == 200
        config.write_text(
            f"tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: {pki.server_key}\n"
        )
        with pytest.raises(InputError) as error:
            server.reload(str(config))
        assert str(error.value).startswith(f"{config}:2: tls_server_config.cert_file: ")
        assert fetch(server, ca=pki.ca, auth="scraper:s3cret pass").status == 200  # old config


# --- the web config loader -----------------------------------------------------------------


def test_every_problem_is_located(tmp_path, pki) -> None:
    config = write(
        tmp_path / "web.yml",
        "tls_server_config:\n"
        f"  cert_file: {pki.server_cert}\n"
        "  min_version: TLS14\n"
        "  client_allowed_sans: [a]\n"
        "http_server_config:\n  headers:\n    Server: apache\n"
        "basic_auth_users:\n  admin: hunter2\n",
    )
    with pytest.raises(InputError) as error:
        load_web_config(config)
    lines = str(error.value).splitlines()
    assert lines == [
        f"{config}:4: tls_server_config.client_allowed_sans: unknown key (known: cert_file,"
        " key_file, client_auth_type, client_ca_file, cipher_suites, curve_preferences,"
        " min_version, max_version, prefer_server_cipher_suites)",
        f"{config}:3: tls_server_config.min_version: unknown TLS version 'TLS14' (known:"
        " TLS10, TLS11, TLS12, TLS13)",
        f"{config}:1: tls_server_config.key_file: missing: TLS needs cert_file and key_file",
        f"{config}:7: http_server_config.headers.Server: cannot be set"
        " (Strict-Transport-Security, X-Content-Type-Options, X-Frame-Options,"
        " X-XSS-Protection, Content-Security-Policy can)",
        f"{config}:9: basic_auth_users.admin: not a bcrypt hash; make one with"
        " htpasswd -nBC 10 '' | tr -d ':\\n'",
    ]


def test_relative_paths_are_relative_to_the_web_config(tmp_path, pki) -> None:
    for name in ("server.crt", "server.key"):
        (tmp_path / "tls").mkdir(exist_ok=True)
        (tmp_path / "tls" / name).write_bytes((pki.ca.parent / name).read_bytes())
    config = write(
        tmp_path / "web.yml",
        "tls_server_config: {cert_file: tls/server.crt, key_file: tls/server.key}\n",
    )
    assert load_web_config(config).tls is not None


@dataclass(frozen=True)
class Case:
    id: str
    text: str  # @CERT@ @KEY@ @CA@ @CLIENT_KEY@ @GARBAGE@ @HASH@ are filled in
    ours: str | None  # None: we accept; else a part of our error (line: field)
    promtool: bool  # whether promtool check web-config accepts it


# fmt: off
TLS = "tls_server_config:\n  cert_file: @CERT@\n  key_file: @KEY@\n"
CASES = [
    # -- both accept
    Case("empty", "", None, True),
    Case("comments only", "# nothing yet\n", None, True),
    Case("nulls", "tls_server_config:\nhttp_server_config:\nbasic_auth_users:\n", None, True),
    Case("tls", TLS, None, True),
    Case("tls 1.3 only", TLS + "  min_version: TLS13\n  max_version: TLS13\n", None, True),
    Case("tls 1.2 only", TLS + "  min_version: TLS12\n  max_version: TLS12\n", None, True),
    Case("suites, 1.2 and 1.3", TLS + "  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,"
         " TLS_AES_128_GCM_SHA256]\n  prefer_server_cipher_suites: false\n", None, True),
    Case("every suite", TLS + f"  cipher_suites: [{', '.join(CIPHER_SUITES)}]\n", None, True),
    Case("one curve", TLS + "  curve_preferences: [X25519]\n", None, True),
    Case("client certs", TLS + "  client_auth_type: RequireAndVerifyClientCert\n"
         "  client_ca_file: @CA@\n", None, True),
    Case("client certs if given", TLS + "  client_auth_type: VerifyClientCertIfGiven\n"
         "  client_ca_file: @CA@\n", None, True),
    Case("no client certs", TLS + "  client_auth_type: NoClientCert\n", None, True),
    Case("headers", "http_server_config:\n  http2: false\n  headers:\n"
         "    Strict-Transport-Security: max-age=31536000\n    X-Content-Type-Options: nosniff\n"
         "    X-Frame-Options: sameorigin\n    X-XSS-Protection: 0\n"
         "    Content-Security-Policy: \"default-src 'none'\"\n", None, True),
    Case("blank header", "http_server_config:\n  headers:\n    X-XSS-Protection: ''\n", None, True),
    Case("users", "basic_auth_users:\n  scraper: '@HASH@'\n  '1234': '@HASH@'\n", None, True),
    Case("tls keys without tls", "tls_server_config:\n  min_version: TLS10\n", None, True),
    # -- both refuse
    Case("not a mapping", "- tls_server_config\n", "web.yml:1: the web config must be", False),
    Case("bad yaml", "tls_server_config: [\n", "invalid YAML", False),
    Case("duplicate key", "basic_auth_users: {}\nbasic_auth_users: {}\n", "duplicate key", False),
    Case("unknown key", "tls_config: {}\n", ":1: tls_config: unknown key", False),
    Case("newer toolkit: inline cert", TLS + "  cert: x\n", ":4: tls_server_config.cert:", False),
    Case("newer toolkit: allowed sans", TLS + "  client_allowed_sans: [a]\n",
         ":4: tls_server_config.client_allowed_sans: unknown key", False),
    Case("newer toolkit: rate limit", "rate_limit: {burst: 1}\n", ":1: rate_limit:", False),
    Case("cert without key", "tls_server_config:\n  cert_file: @CERT@\n",
         ":1: tls_server_config.key_file: missing", False),
    Case("key without cert", "tls_server_config:\n  key_file: @KEY@\n",
         ":1: tls_server_config.cert_file: missing", False),
    Case("client auth without cert", "tls_server_config:\n  client_auth_type: NoClientCert\n",
         "tls_server_config.cert_file: missing", False),
    Case("missing cert file", "tls_server_config:\n  cert_file: /nonexistent.crt\n"
         "  key_file: @KEY@\n", ":2: tls_server_config.cert_file: cannot load", False),
    Case("key of another cert", "tls_server_config:\n  cert_file: @CERT@\n"
         "  key_file: @CLIENT_KEY@\n", ":2: tls_server_config.cert_file: cannot load", False),
    Case("garbage cert", "tls_server_config:\n  cert_file: @GARBAGE@\n  key_file: @KEY@\n",
         ":2: tls_server_config.cert_file: cannot load", False),
    Case("missing client ca file", TLS + "  client_auth_type: RequireAndVerifyClientCert\n"
         "  client_ca_file: /nonexistent.pem\n", ":5: tls_server_config.client_ca_file",
         False),
    Case("client ca without client auth", TLS + "  client_ca_file: @CA@\n",
         ":4: tls_server_config.client_ca_file: set, but", False),
    Case("unknown client auth", TLS + "  client_auth_type: Always\n",
         ":4: tls_server_config.client_auth_type: unknown 'Always'", False),
    Case("unknown tls version", TLS + "  min_version: TLS14\n",
         ":4: tls_server_config.min_version: unknown TLS version", False),
    Case("insecure suite", TLS + "  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n",
         ":4: tls_server_config.cipher_suites[0]: unknown name", False),
    Case("openssl suite name", TLS + "  cipher_suites: [ECDHE-ECDSA-AES128-GCM-SHA256]\n",
         ":4: tls_server_config.cipher_suites[0]: unknown name", False),
    Case("suites not a list", TLS + "  cipher_suites: TLS_AES_128_GCM_SHA256\n",
         ":4: tls_server_config.cipher_suites: expected a list", False),
    Case("unknown curve", TLS + "  curve_preferences: [P-256]\n",
         ":4: tls_server_config.curve_preferences[0]: unknown name", False),
    Case("header not settable", "http_server_config:\n  headers:\n    Server: x\n",
         ":3: http_server_config.headers.Server: cannot be set", False),
    Case("header value case", "http_server_config:\n  headers:\n    X-Frame-Options: DENY\n",
         ":3: http_server_config.headers.X-Frame-Options: 'DENY' is not", False),
    Case("blank restricted header", "http_server_config:\n  headers:\n    X-Frame-Options: ''\n",
         ":3: http_server_config.headers.X-Frame-Options: '' is not", False),
    Case("http2 not a bool", "http_server_config:\n  http2: maybe\n",
         ":2: http_server_config.http2: expected true or false", False),
    Case("users as a list", "basic_auth_users: [scraper]\n",
         ":1: basic_auth_users: expected a mapping", False),
    Case("plaintext password", "basic_auth_users:\n  scraper: hunter2\n",
         ":2: basic_auth_users.scraper: not a bcrypt hash", False),
    Case("bcrypt cost 3", "basic_auth_users:\n  scraper: '$2y$03$"
         "Xi/YO62EBljXdkfua6A8JeL6jqc8qbsw.jxK5.sBF/ttRLe/NOjzO'\n",
         ":2: basic_auth_users.scraper: not a bcrypt hash", False),
    # -- we refuse what Python's ssl cannot honour, or what would silently lock everyone out
    Case("TLS 1.0", TLS + "  min_version: TLS10\n", ":4: tls_server_config.min_version: TLS10",
         True),
    Case("TLS 1.1 at most", TLS + "  max_version: TLS11\n",
         ":4: tls_server_config.max_version: TLS11", True),
    Case("min above max", TLS + "  min_version: TLS13\n  max_version: TLS12\n",
         ":4: tls_server_config.min_version: above max_version", True),
    Case("request unverified cert", TLS + "  client_auth_type: RequestClientCert\n"
         "  client_ca_file: @CA@\n", ":4: tls_server_config.client_auth_type: RequestClientCert",
         True),
    Case("require any cert", TLS + "  client_auth_type: RequireAnyClientCert\n"
         "  client_ca_file: @CA@\n", ":4: tls_server_config.client_auth_type: RequireAnyClientCert",
         True),
    Case("verify against public CAs", TLS + "  client_auth_type: RequireAndVerifyClientCert\n",
         ":4: tls_server_config.client_auth_type: RequireAndVerifyClientCert needs", True),
    Case("client ca without a cert in it", TLS + "  client_auth_type: VerifyClientCertIfGiven\n"
         "  client_ca_file: @GARBAGE@\n", ":5: tls_server_config.client_ca_file: no CA",
         True),
    Case("two curves", TLS + "  curve_preferences: [X25519, CurveP256]\n",
         ":4: tls_server_config.curve_preferences: Python's ssl can offer only one", True),
    Case("only tls 1.3 suites", TLS + "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
         ":4: tls_server_config.cipher_suites: only TLS 1.3 suites", True),
    Case("header on two lines", "http_server_config:\n  headers:\n"
         "    Content-Security-Policy: \"a\\nb\"\n", ":3: http_server_config.headers."
         "Content-Security-Policy: must be one line", True),
    Case("hash bcrypt cannot read", "basic_auth_users:\n  scraper: '$2$10$"
         "Xi/YO62EBljXdkfua6A8JeL6jqc8qbsw.jxK5.sBF/ttRLe/NOjzO'\n",
         ":2: basic_auth_users.scraper: not a bcrypt hash", True),
]
# fmt: on


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_web_config_verdicts_match_promtool(tmp_path, pki, scraper_hash, case) -> None:
    promtool = require_program("promtool")
    fills = {
        "@CERT@": pki.server_cert,
        "@KEY@": pki.server_key,
        "@CA@": pki.ca,
        "@CLIENT_KEY@": pki.client_key,
        "@GARBAGE@": pki.garbage,
        "@HASH@": scraper_hash,
    }
    text = case.text
    for token, value in fills.items():
        text = text.replace(token, str(value))
    config = write(tmp_path / "web.yml", text)
    checked = subprocess.run(
        [promtool, "check", "web-config", config], capture_output=True, text=True
    )
    assert (checked.returncode == 0) == case.promtool, checked.stdout + checked.stderr
    try:
        load_web_config(config)
        ours = None
    except InputError as error:
        ours = str(error)
    if case.ours is None:
        assert ours is None, ours
    else:
        assert ours is not None and case.ours in ours, ours


def test_cipher_suite_names_match_openssl() -> None:
    require_program("openssl")
    listing = subprocess.run(
        ["openssl", "ciphers", "-stdname", "ALL"], check=True, capture_output=True, text=True
    ).stdout
    openssl_name = {}
    for line in listing.splitlines():
        standard, _, rest = line.partition(" - ")
        openssl_name[standard.strip()] = rest.split()[0]
    for standard, ours in CIPHER_SUITES.items():
        if ours is None:  # TLS 1.3: same name in both
            assert openssl_name[standard] == standard
        else:
            assert openssl_name[standard] == ours, standard


# --- a real Prometheus ---------------------------------------------------------------------


@pytest.mark.slow
def test_prometheus_scrapes_over_tls_with_basic_auth(tmp_path, pki, scraper_hash) -> None:
    """Prometheus scrapes us over TLS with basic auth, and an alert we ship fires on what it
    scraped: the endpoint, the exposition and the rules agree end to end."""
    registry = CollectorRegistry()
    scrapes = Counter("lappguard_test_scrapes", "Scrapes seen by this test", registry=registry)
    scrapes.inc(7)
    events = Counter("lappguard_events", "Detections", ["rule", "jail"], registry=registry)
    events.labels("web-sqli", "web-attacks").inc(0)  # exported at 0 from the start
    config = write(
        tmp_path / "web.yml",
        f"tls_server_config:\n  cert_file: {pki.server_cert}\n"
        f"  key_file: {pki.server_key}\n"
        f"basic_auth_users:\n  scraper: '{scraper_hash}'\n",
    )
    with serving(registry, config) as server:
        scrape_config = (
            "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\n"
            f"rule_files: [{ALERTS}]\n"
            "scrape_configs:\n"
            "  - job_name: lappguard\n"
            "    scheme: https\n"
            f"    tls_config: {{ca_file: {pki.ca}}}\n"
            "    basic_auth: {username: scraper, password: 's3cret pass'}\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{server.port}']}}]\n"
        )
        with prometheus(tmp_path / "prometheus", scrape_config) as base:
            query_until(base, 'up{job="lappguard"}', "1")
            series = query_until(base, "lappguard_test_scrapes_total", "7")
            query_until(base, 'lappguard_events_total{rule="web-sqli"}', "0")
            events.labels("web-sqli", "web-attacks").inc(3)
            alert = query_until(base, 'ALERTS{alertname="LappguardInjectionAttack"}', "1",
                                want={"alertstate": "firing"})  # fmt: skip
    assert series["metric"]["instance"] == f"127.0.0.1:{server.port}"
    assert alert["metric"]["rule"] == "web-sqli"
    assert alert["metric"]["severity"] == "warning"

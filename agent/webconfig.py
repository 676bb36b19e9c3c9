"""The metrics endpoint's web config: TLS, client certificates, response headers and
basic-auth users, in the file format of the Prometheus exporter toolkit.

Why that format: a fleet already has one ``web.yml`` for node_exporter and
postgres_exporter, and ``promtool check web-config`` validates it. We follow the toolkit
that Debian 12's Prometheus is built with (exporter-toolkit 0.8.2): the same keys, defaults,
names and rules, relative paths resolved against the file's directory, unknown keys refused.
Keys of later toolkits (inline ``cert``/``key``/``client_ca``, ``client_allowed_sans``,
``rate_limit``) are refused as unknown, as that promtool refuses them.

Where Python's ssl cannot do what a file asks, the file is refused with the reason instead of
being served differently (each is also a case in the promtool comparison test):

- ``min_version``/``max_version`` ``TLS10``/``TLS11``: OpenSSL 3 negotiates neither at its
  default security level; and ``min_version`` above ``max_version`` (no handshake could work).
- ``client_auth_type`` ``RequestClientCert`` and ``RequireAnyClientCert``: Python's ssl
  verifies every client certificate it asks for; it cannot take one unverified.
- client-certificate verification without ``client_ca_file``: Go would trust every public
  CA, so anyone who can buy a certificate could scrape; and a ``client_ca_file`` without a
  certificate in it (Go skips it silently, then verifies no one).
- more than one ``curve_preferences`` entry: Python's ssl can offer only one curve.
- ``cipher_suites`` naming only TLS 1.3 suites: those are always on (in Go too), so TLS 1.2
  would be left with none; and header values spanning lines.

``http2`` is accepted and changes nothing: we speak HTTP/1.1, which every scraper speaks.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from checks.yamlsource import InputError, LineDict, LineList, Problem, line_of, load_yaml

_TOP_KEYS = ("tls_server_config", "http_server_config", "basic_auth_users")
_TLS_KEYS = (
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "cipher_suites",
    "curve_preferences",
    "min_version",
    "max_version",
    "prefer_server_cipher_suites",
)
_HTTP_KEYS = ("http2", "headers")

#: Headers the toolkit lets a file set, and the values allowed where it restricts them.
HEADERS: dict[str, tuple[str, ...] | None] = {
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}
TLS_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
_OLD_TLS_VERSIONS = ("TLS10", "TLS11")
#: Go's curve names -> OpenSSL's.
CURVES = {
    "CurveP256": "prime256v1",
    "CurveP384": "secp384r1",
    "CurveP521": "secp521r1",
    "X25519": "X25519",
}
#: The suites Go's tls.CipherSuites() names (its secure ones) -> OpenSSL's name; None for the
#: TLS 1.3 suites, which neither Go nor OpenSSL's cipher list can turn off.
CIPHER_SUITES: dict[str, str | None] = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_AES_128_GCM_SHA256": None,
    "TLS_AES_256_GCM_SHA384": None,
    "TLS_CHACHA20_POLY1305_SHA256": None,
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
CLIENT_AUTH_TYPES = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_UNVERIFIED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert")
#: What htpasswd -B and Go's bcrypt write: version, cost 04-31, 22 salt + 31 hash characters.
_BCRYPT_HASH = re.compile(r"\$2[abxy]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")


@dataclass(frozen=True)
class WebConfig:
    """How to serve: ``tls`` None means plain HTTP, empty ``users`` means no basic auth."""

    file: str | None = None
    tls: ssl.SSLContext | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    users: Mapping[str, bytes] = field(default_factory=dict)  # user -> bcrypt hash


def load_web_config(path: str | Path | None) -> WebConfig:
    """The web config at ``path`` with its TLS context built (certificates read now), or plain
    HTTP without auth for None. Raises InputError naming file, line and field of every
    problem."""
    if path is None:
        return WebConfig()
    name = str(path)
    document = load_yaml(path)
    if document is None:  # an empty file is valid: plain HTTP, no users
        return WebConfig(file=name)
    reader = _Reader(name)
    if not isinstance(document, LineDict):
        reader.problem(document, None, "", "the web config must be a YAML mapping")
        raise InputError(reader.problems)
    reader.known_keys(document, _TOP_KEYS, "")
    tls = reader.tls(document)
    headers = reader.headers(document)
    users = reader.users(document)
    if reader.problems:
        raise InputError(reader.problems)
    return WebConfig(name, tls, headers, users)


class _Reader:
    """Walks one web config, collecting every problem instead of stopping at the first."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.directory = os.path.dirname(os.path.abspath(file))
        self.problems: list[Problem] = []

    def problem(self, container: Any, key: Any, where: str, message: str) -> None:
        """Record a problem with ``container[key]``; ``where`` is the field's dotted path."""
        self.problems.append(Problem(self.file, line_of(container, key), where, message))

    @contextmanager
    def failure_at(self, raw: LineDict, key: str, where: str, what: str) -> Iterator[None]:
        """Turn an ssl call's failure into a problem at ``key``."""
        try:
            yield
        except (OSError, ssl.SSLError, ValueError) as exc:
            self.problem(raw, key, where, f"{what}: {exc}")

    def known_keys(self, raw: LineDict, keys: tuple[str, ...], where: str) -> None:
        for key in raw:
            field_name = f"{where}.{key}" if where else str(key)
            if key not in keys:
                self.problem(raw, key, field_name, f"unknown key (known: {', '.join(keys)})")

    # -- values ---------------------------------------------------------------------------

    def section(self, raw: LineDict, key: str, where: str) -> LineDict:
        """A mapping under ``key``; absent or null is an empty one."""
        value = raw.get(key)
        if isinstance(value, LineDict):
            return value
        if value is not None:
            self.problem(raw, key, where, "expected a mapping")
        empty = LineDict()
        empty.line, empty.key_lines = line_of(raw, key), {}
        return empty

    def text(self, raw: LineDict, key: Any, where: str) -> str:
        """A string (null is empty); a number is taken as written, as Go's YAML does."""
        value = raw.get(key)
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        self.problem(raw, key, where, f"expected a string, got {value!r}")
        return ""

    def flag(self, raw: LineDict, key: str, where: str, default: bool) -> bool:
        if key not in raw:
            return default
        value = raw[key]
        if value is None:  # null: Go's zero value
            return False
        if not isinstance(value, bool):
            self.problem(raw, key, where, f"expected true or false, got {value!r}")
            return default
        return value

    def names(self, raw: LineDict, key: str, where: str, known: Mapping[str, Any]) -> list[str]:
        """A list of names, each one of ``known``."""
        value = raw.get(key)
        if value is None:
            return []
        if not isinstance(value, LineList):
            self.problem(raw, key, where, "expected a list")
            return []
        for index, item in enumerate(value):
            if item not in known:
                self.problem(value, index, f"{where}[{index}]", f"unknown name {item!r}")
        return [item for item in value if item in known]

    def path(self, raw: LineDict, key: str, where: str) -> str:
        """A file name; relative ones are relative to the web config's directory."""
        value = self.text(raw, key, where)
        return os.path.join(self.directory, value) if value else ""

    # -- sections -------------------------------------------------------------------------

    def tls(self, doc: LineDict) -> ssl.SSLContext | None:
        """The TLS context, or None for plain HTTP (no certificate or client-auth key set)."""
        raw = self.section(doc, "tls_server_config", "tls_server_config")
        self.known_keys(raw, _TLS_KEYS, "tls_server_config")
        at = {key: f"tls_server_config.{key}" for key in _TLS_KEYS}
        cert = self.path(raw, "cert_file", at["cert_file"])
        key = self.path(raw, "key_file", at["key_file"])
        client_ca = self.path(raw, "client_ca_file", at["client_ca_file"])
        client_auth = self.text(raw, "client_auth_type", at["client_auth_type"])
        low = self.version(raw, "min_version", at["min_version"], "TLS12")
        high = self.version(raw, "max_version", at["max_version"], "TLS13")
        suites = self.names(raw, "cipher_suites", at["cipher_suites"], CIPHER_SUITES)
        curves = self.names(raw, "curve_preferences", at["curve_preferences"], CURVES)
        prefer_server = self.flag(
            raw, "prefer_server_cipher_suites", at["prefer_server_cipher_suites"], True
        )
        if not (cert or key or client_auth or client_ca):
            return None  # the toolkit ignores the other keys then
        before = len(self.problems)
        for name, value in (("cert_file", cert), ("key_file", key)):
            if not value:
                # at the key if it is there but blank, else at tls_server_config
                where, key_name = (raw, name) if name in raw else (doc, "tls_server_config")
                self.problem(where, key_name, at[name], "missing: TLS needs cert_file and key_file")
        for name, version in (("min_version", low), ("max_version", high)):
            if version in _OLD_TLS_VERSIONS:
                self.problem(raw, name, at[name], f"{version}: OpenSSL 3 refuses TLS 1.0 and"
                             " 1.1 at its default security level; use TLS12 or TLS13")  # fmt: skip
        if low in TLS_VERSIONS and high in TLS_VERSIONS and TLS_VERSIONS[low] > TLS_VERSIONS[high]:
            self.problem(raw, "min_version", at["min_version"], "above max_version")
        if len(curves) > 1:
            self.problem(raw, "curve_preferences", at["curve_preferences"],
                         "Python's ssl can offer only one curve: list one")  # fmt: skip
        tls12_suites = [CIPHER_SUITES[name] for name in suites if CIPHER_SUITES[name]]
        if suites and not tls12_suites:
            self.problem(raw, "cipher_suites", at["cipher_suites"], "only TLS 1.3 suites,"
                         " which are always on: list TLS 1.2 suites too, or none")  # fmt: skip
        verify = self.client_auth(raw, client_auth, bool(client_ca))
        if len(self.problems) > before:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = TLS_VERSIONS[low]
        context.maximum_version = TLS_VERSIONS[high]
        if not prefer_server:
            context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
        with self.failure_at(raw, "cert_file", at["cert_file"], "cannot load it with key_file"):
            context.load_cert_chain(cert, key, password=_no_password)
        if tls12_suites:
            with self.failure_at(raw, "cipher_suites", at["cipher_suites"], "OpenSSL refuses"):
                context.set_ciphers(":".join(tls12_suites))
        if curves:
            with self.failure_at(raw, "curve_preferences", at["curve_preferences"], "refused"):
                context.set_ecdh_curve(CURVES[curves[0]])
        if client_ca:
            with self.failure_at(raw, "client_ca_file", at["client_ca_file"], "no CA read"):
                context.load_verify_locations(client_ca)
        context.verify_mode = verify
        return None if len(self.problems) > before else context

    def version(self, raw: LineDict, key: str, where: str, default: str) -> str:
        """A TLS version name of Go's list (TLS10 and TLS11 are refused once TLS is on)."""
        name = self.text(raw, key, where) or default
        if name not in TLS_VERSIONS and name not in _OLD_TLS_VERSIONS:
            known = ", ".join((*_OLD_TLS_VERSIONS, *TLS_VERSIONS))
            self.problem(raw, key, where, f"unknown TLS version {name!r} (known: {known})")
            return default
        return name

    def client_auth(self, raw: LineDict, client_auth: str, has_ca: bool) -> ssl.VerifyMode:
        """The verify mode of ``client_auth_type``, checked against ``client_ca_file``."""
        where = "tls_server_config.client_auth_type"
        verify = CLIENT_AUTH_TYPES.get(client_auth or "NoClientCert")
        if client_auth in _UNVERIFIED_CLIENT_AUTH:
            self.problem(raw, "client_auth_type", where, f"{client_auth}: Python's ssl"
                         " verifies every client certificate it asks for; use"
                         " VerifyClientCertIfGiven or RequireAndVerifyClientCert")  # fmt: skip
        elif verify is None:
            known = ", ".join((*CLIENT_AUTH_TYPES, *_UNVERIFIED_CLIENT_AUTH))
            self.problem(raw, "client_auth_type", where, f"unknown {client_auth!r} ({known})")
        elif verify == ssl.CERT_NONE and has_ca:
            self.problem(raw, "client_ca_file", "tls_server_config.client_ca_file",
                         "set, but client_auth_type asks for no client certificate")  # fmt: skip
        elif verify != ssl.CERT_NONE and not has_ca:
            self.problem(raw, "client_auth_type", where, f"{client_auth} needs client_ca_file:"
                         " without it every public CA would be trusted")  # fmt: skip
        return verify or ssl.CERT_NONE

    def headers(self, doc: LineDict) -> dict[str, str]:
        raw = self.section(doc, "http_server_config", "http_server_config")
        self.known_keys(raw, _HTTP_KEYS, "http_server_config")
        self.flag(raw, "http2", "http_server_config.http2", True)  # accepted: see the docstring
        section = self.section(raw, "headers", "http_server_config.headers")
        headers: dict[str, str] = {}
        for name in section:
            where = f"http_server_config.headers.{name}"
            value = self.text(section, name, where)
            allowed = HEADERS.get(name)
            if name not in HEADERS:
                self.problem(section, name, where, f"cannot be set ({', '.join(HEADERS)} can)")
            elif allowed and value not in allowed:
                self.problem(section, name, where, f"{value!r} is not {' or '.join(allowed)}")
            elif any(ord(char) < 32 or ord(char) == 127 for char in value):
                self.problem(section, name, where, "must be one line of printable text")
            elif value:  # blank: unset, as the toolkit documents
                headers[name] = value
        return headers

    def users(self, doc: LineDict) -> dict[str, bytes]:
        raw = self.section(doc, "basic_auth_users", "basic_auth_users")
        users: dict[str, bytes] = {}
        for user in raw:
            where = f"basic_auth_users.{user}"
            hashed = self.text(raw, user, where)
            if isinstance(user, bool) or not isinstance(user, str | int):
                self.problem(raw, user, where, "a user name must be a string")
            elif not _BCRYPT_HASH.fullmatch(hashed):
                self.problem(raw, user, where, "not a bcrypt hash; make one with"
                             " htpasswd -nBC 10 '' | tr -d ':\\n'")  # fmt: skip
            else:
                users[str(user)] = hashed.encode("ascii")
        return users


def _no_password() -> bytes:
    """An encrypted key cannot be unlocked at start (no one to type a passphrase): fail."""
    return b""

"""Whom a real Apache's lines name: its error log's ``[client %a]`` (IPv4 and IPv6, with a
source port, under three ErrorLogFormats) and the X-Forwarded-For hops of its access log
behind a trusted proxy (ports, brackets, ``unknown``, garbage, several hops).

Requests go over loopback; a wrong address in an event here would be a wrong ban live.
"""

from __future__ import annotations

import base64
import errno
import http.client
import socket
import tempfile
from collections import Counter
from datetime import UTC
from pathlib import Path

from conftest import free_port
from servers import run_apache_ssl
from test_detect_live import wait_for

from agent.detect.detector import Detector
from agent.detect.rules import load_rules

RULES = load_rules()
XFF_FORMAT = '%h %l %u %t \\"%r\\" %>s %O \\"%{User-Agent}i\\" \\"%{X-Forwarded-For}i\\"'
#: ErrorLogFormats: Apache 2.4's default, one with microseconds and no module, and one in
#: Apache 2.2's shape (no microseconds, module or pid)
ERROR_FORMATS = {
    "default": "",
    "micro": 'ErrorLogFormat "[%{u}t] [%l] [client %a] %M"',
    "plain": 'ErrorLogFormat "[%t] [%l] [client %a] %M"',
}
WRONG = {"Authorization": "Basic " + base64.b64encode(b"alice:wrong").decode()}


def request(host: str, port: int, target: str, headers: dict, source_port: int = 0) -> None:
    connection = http.client.HTTPConnection(
        host, port, timeout=10, source_address=(host, source_port)
    )
    connection.request("GET", target, headers={"User-Agent": "curl/8.0", **headers})
    connection.getresponse().read()
    connection.close()


def low_port(host: str, taken: set[int]) -> int:
    """A free source port of four digits: ``::1:4321`` also reads as one IPv6 address."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for port in range(4100, 9999):
        if port in taken:
            continue
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    continue
                raise
        taken.add(port)
        return port
    raise AssertionError("no free four-digit port")


def test_real_apache_names_the_client_of_its_error_and_access_logs(tmp_path: Path):
    with tempfile.TemporaryDirectory(prefix="lappguard-site-") as public:
        _scenario(tmp_path, Path(public))


def _scenario(tmp_path: Path, public: Path) -> None:
    public.chmod(0o755)
    site = public / "site"
    (site / "private").mkdir(parents=True)
    site.chmod(0o755)
    (public / "htpasswd").write_text("alice:{SHA}2jmj7l5rSw0yVb/vlWAYkK/YBwk=\n")
    modules = Path("/usr/lib/apache2/modules")
    load = "\n".join(
        f"LoadModule {name}_module {modules / f'mod_{name}.so'}"
        for name in ("authn_core", "authn_file", "auth_basic", "authz_user")
    )
    ports = {name: free_port() for name in ERROR_FORMATS}
    hosts = []
    for name, error_format in ERROR_FORMATS.items():
        port = ports[name]
        hosts.append(f"""Listen 127.0.0.1:{port}
Listen [::1]:{port}
<VirtualHost 127.0.0.1:{port} [::1]:{port}>
    DocumentRoot "{site}"
    CustomLog "{tmp_path / f"{name}-access.log"}" "{XFF_FORMAT}"
    ErrorLog "{tmp_path / f"{name}-error.log"}"
    {error_format}
    <Directory "{site}">
        Require all granted
    </Directory>
    <Location "/private/">
        AuthType Basic
        AuthName "private"
        AuthUserFile "{public / "htpasswd"}"
        Require valid-user
    </Location>
</VirtualHost>""")
    forwarded = [
        "198.51.100.7:51234",  # the client, with its port
        "6.6.6.6, [2001:db8::7]:443",  # an IPv6 client, bracketed with its port
        "[2001:db8::8]",
        "6.6.6.6, 198.51.100.9, 127.0.0.5",  # past a second trusted proxy
        "unknown",  # the proxy did not name the client: no one
        "6.6.6.6, unknown",
        "6.6.6.6, 198.51.100.10, not-an-address",
    ]
    taken: set[int] = set()
    with run_apache_ssl(tmp_path, extra_config=load + "\n" + "\n".join(hosts)):
        for port in ports.values():
            for host in ("127.0.0.1", "::1"):
                request(host, port, "/private/", WRONG, low_port(host, taken))
                request(host, port, "/private/", WRONG)  # an ephemeral, five-digit port
        for value in forwarded:
            request("127.0.0.1", ports["default"], "/.env", {"X-Forwarded-For": value})
        errors = {
            name: wait_for((tmp_path / f"{name}-error.log").read_text, 4, "AH01617")
            for name in ERROR_FORMATS
        }
        access = wait_for((tmp_path / "default-access.log").read_text, 7, "/.env")
    assert "[client ::1:4" in errors["plain"] and "[client ::1:4" in errors["default"]
    found = {}
    for name, text in errors.items():
        detector = Detector(RULES, tz=UTC)
        events = [
            event
            for number, line in enumerate(text.splitlines(), 1)
            for event in detector.feed(line, "apache_error", f"{name}.log", number)
        ]
        found[name] = (Counter(e.ip for e in events), detector.counters.no_address)
    both = Counter({"127.0.0.1": 2, "::1": 2})
    assert found["default"] == (both, 0)
    assert found["micro"] == (both, 0)
    # Apache 2.2's shape: "::1:41xx" also reads as one address; it names no one
    assert found["plain"] == (Counter({"127.0.0.1": 2, "::1": 1}), 1)

    detector = Detector(
        RULES, access_log_format=XFF_FORMAT.replace('\\"', '"'), trusted_proxies=["127.0.0.0/8"]
    )
    # Each Apache process logs the requests it served once their response is sent: requests
    # sent one after another may be logged in another order. Each line names its header.
    probes = {line.rsplit('"', 2)[-2]: line for line in access.splitlines() if "/.env" in line}
    clients = {
        value: [
            e.ip for e in detector.feed(line, "apache_access", "a.log", 1) if e.rule == "http-404"
        ]
        for value, line in probes.items()
    }
    assert clients == dict(
        zip(
            forwarded,
            [["198.51.100.7"], ["2001:db8::7"], ["2001:db8::8"], ["198.51.100.9"], [], [], []],
            strict=True,
        )
    )
    assert detector.counters.no_address == 3

"""The rules against what Debian's own daemons write: real sshd, PostgreSQL 15 and Apache,
attacked over loopback, their logs fed to the detector.

Loopback is the attacker here (never banned, but every event must still name it); the
injected address 6.6.6.6 rides in user names, headers and URLs and must never be named.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC
from pathlib import Path

import paramiko
from conftest import free_port, require_program
from servers import run_apache_ssl, run_postgres, run_sshd

from agent.detect.detector import Detector
from agent.detect.events import Event
from agent.detect.rules import load_rules

RULES = load_rules()
INJECTED = "6.6.6.6"


def wait_for(read: Callable[[], str], count: int, text: str, timeout: float = 10.0) -> str:
    """The log once ``text`` shows up ``count`` times (daemons write asynchronously)."""
    deadline = time.monotonic() + timeout
    content = read()
    while content.count(text) < count and time.monotonic() < deadline:
        time.sleep(0.05)
        content = read()
    assert content.count(text) >= count, content
    return content


def summary(events: list[Event]) -> Counter[tuple[str, str, str | None]]:
    return Counter((e.rule, e.ip, e.user) for e in events)


# --- sshd -----------------------------------------------------------------------------------


def ssh_password(host: str, port: int, user: str, *passwords: str) -> None:
    transport = paramiko.Transport((host, port))
    try:
        transport.start_client(timeout=10)
        for password in passwords:
            try:
                transport.auth_password(user, password)
            except paramiko.AuthenticationException:
                continue
            except paramiko.SSHException:
                break  # the server hung up (MaxAuthTries)
    finally:
        transport.close()


def sshd_events(log: Path) -> list[Event]:
    """sshd -e writes bare messages, exactly the journal's MESSAGE field for ssh.service."""
    detector = Detector(RULES, tz=UTC)
    events = []
    for number, line in enumerate(log.read_bytes().splitlines(), 1):
        events += detector.feed(line, "sshd", "journal:ssh.service", number, time=0.0)
    return events


def test_real_sshd_failures_are_detected_with_the_peer_address(tmp_path: Path):
    config = "PasswordAuthentication yes\nMaxAuthTries 2\nLogLevel INFO"
    with run_sshd(tmp_path, config) as v4, run_sshd(tmp_path, config, listen="::1") as v6:
        ssh_password("127.0.0.1", v4.port, "nosuchuser", "guess")
        ssh_password("127.0.0.1", v4.port, "root", "wrong")
        ssh_password("127.0.0.1", v4.port, f"root from {INJECTED} port 22", "x")
        ssh_password("127.0.0.1", v4.port, "root", "a", "b", "c")
        ssh_password("::1", v6.port, "admin", "guess")
        log4 = wait_for((v4.workdir / "sshd.log").read_text, 5, "[preauth]")
        log6 = wait_for((v6.workdir / "sshd.log").read_text, 1, "[preauth]")
    assert "maximum authentication attempts exceeded for root" in log4
    injected = f"root from {INJECTED} port 22"
    assert summary(sshd_events(v4.workdir / "sshd.log")) == Counter(
        {
            ("sshd-invalid-user", "127.0.0.1", "nosuchuser"): 1,
            ("sshd-failed-auth", "127.0.0.1", "nosuchuser"): 1,
            ("sshd-preauth-disconnect-user", "127.0.0.1", "nosuchuser"): 1,
            ("sshd-failed-auth", "127.0.0.1", "root"): 3,  # one, then two before the third
            ("sshd-preauth-disconnect-user", "127.0.0.1", "root"): 1,
            ("sshd-max-auth-tries", "127.0.0.1", "root"): 1,
            ("sshd-invalid-user", "127.0.0.1", injected): 1,
            ("sshd-failed-auth", "127.0.0.1", injected): 1,
            ("sshd-preauth-disconnect-user", "127.0.0.1", injected): 1,
        }
    )
    assert summary(sshd_events(v6.workdir / "sshd.log")) == Counter(
        {
            ("sshd-invalid-user", "::1", "admin"): 1,
            ("sshd-failed-auth", "::1", "admin"): 1,
            ("sshd-preauth-disconnect-user", "::1", "admin"): 1,
        }
    )
    assert "Connection closed by 127.0.0.1" in log4 and log6  # the harness's probe: no event


# --- PostgreSQL -------------------------------------------------------------------------------

DEBIAN_PREFIX = "%m [%p] %q%u@%d "
HOST_PREFIX = "%m [%p] %h %q%u@%d "


def test_real_postgres_failures_with_and_without_the_host_in_the_prefix(tmp_path: Path):
    psql = require_program("psql")
    settings = f"log_connections = on\nlog_line_prefix = '{DEBIAN_PREFIX}'\n"
    with run_postgres(tmp_path, "127.0.0.1,::1", settings) as pg:
        sockets, log = str(pg.workdir / "sockets"), pg.workdir / "server.log"

        def admin(sql: str) -> None:
            argv = ["runuser", "-u", "postgres", "--", psql, "-h", sockets, "-p", str(pg.port)]
            subprocess.run([*argv, "-X", "-q", "-c", sql], check=True, capture_output=True)

        def login(host: str, user: str) -> None:
            env = {**os.environ, "PGPASSWORD": "wrong", "PGCONNECT_TIMEOUT": "10"}
            argv = [psql, "-X", "-w", "-h", host, "-p", str(pg.port), "-U", user, "-d", "postgres"]
            done = subprocess.run([*argv, "-c", "select 1"], env=env, capture_output=True)
            assert done.returncode != 0

        admin("CREATE ROLE app LOGIN PASSWORD 'secret'")
        hba = pg.workdir / "data" / "pg_hba.conf"
        hba.write_text("local all postgres peer\nhost all all 127.0.0.1/32 scram-sha-256\n")
        admin("SELECT pg_reload_conf()")
        wait_for(log.read_text, 1, "reloading configuration files")
        login("127.0.0.1", "app")
        login("127.0.0.1", "app")
        login("127.0.0.1", "nosuchrole")
        login("127.0.0.1", INJECTED)
        login("::1", "app")  # no pg_hba.conf line for ::1
        first = wait_for(log.read_text, 5, "FATAL:  ")
        admin(f"ALTER SYSTEM SET log_line_prefix = '{HOST_PREFIX}'")
        admin("SELECT pg_reload_conf()")
        wait_for(log.read_text, 2, "reloading configuration files")
        admin("ALTER SYSTEM SET log_connections = off")  # %h alone must be enough
        admin("SELECT pg_reload_conf()")
        wait_for(log.read_text, 3, "reloading configuration files")
        login("127.0.0.1", "app")
        login("::1", f"x {INJECTED}")
        everything = wait_for(log.read_text, 7, "FATAL:  ")
    debian_part = everything[: len(first)]
    host_part = everything[len(first) :]
    assert summary(pg_events(debian_part, DEBIAN_PREFIX)) == Counter(
        {
            ("pg-password-failed", "127.0.0.1", "app"): 2,
            ("pg-password-failed", "127.0.0.1", "nosuchrole"): 1,
            ("pg-password-failed", "127.0.0.1", INJECTED): 1,
            ("pg-no-hba-entry", "::1", "app"): 1,
        }
    )
    assert summary(pg_events(host_part, HOST_PREFIX)) == Counter(
        {
            ("pg-password-failed", "127.0.0.1", "app"): 1,
            ("pg-no-hba-entry", "::1", f"x {INJECTED}"): 1,
        }
    )


def pg_events(text: str, prefix: str) -> list[Event]:
    detector = Detector(RULES, postgres_prefix=prefix, tz=UTC)
    return [
        event
        for number, line in enumerate(text.splitlines(), 1)
        for event in detector.feed(line, "postgresql", "postgresql.log", number)
    ]


# --- Apache -----------------------------------------------------------------------------------


def test_real_apache_access_and_error_logs(tmp_path: Path):
    with tempfile.TemporaryDirectory(prefix="lappguard-site-") as public:
        _apache_scenario(tmp_path, Path(public))


def _apache_scenario(tmp_path: Path, public: Path) -> None:
    """``public`` holds what Apache's www-data children read (tmp_path is root-only)."""
    port = free_port()
    public.chmod(0o755)
    site = public / "site"
    (site / "private").mkdir(parents=True)
    site.chmod(0o755)
    secret = base64.b64encode(hashlib.sha1(b"right").digest()).decode()
    (public / "htpasswd").write_text(f"alice:{{SHA}}{secret}\n")
    modules = Path("/usr/lib/apache2/modules")
    load = "\n".join(
        f"LoadModule {name}_module {modules / f'mod_{name}.so'}"
        for name in ("authn_core", "authn_file", "auth_basic", "authz_user")
    )
    extra = f"""{load}
LogFormat "%h %l %u %t \\"%r\\" %>s %O \\"%{{Referer}}i\\" \\"%{{User-Agent}}i\\"" combined
Listen 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
    DocumentRoot "{site}"
    CustomLog "{tmp_path / "plain-access.log"}" combined
    ErrorLog "{tmp_path / "plain-error.log"}"
    <Directory "{site}">
        Require all granted
    </Directory>
    <Location "/private/">
        AuthType Basic
        AuthName "private"
        AuthUserFile "{public / "htpasswd"}"
        Require valid-user
    </Location>
</VirtualHost>
"""
    requests = [
        ("/private/", {"Authorization": "Basic " + base64.b64encode(b"alice:wrong").decode()}),
        ("/private/", {"Authorization": "Basic " + base64.b64encode(b"mallory:x").decode()}),
        ("/products.php?id=1%27%20UNION%20SELECT%20password%20FROM%20users--%20", {}),
        ("/.env", {"User-Agent": f"Mozilla/5.0 ({INJECTED})", "X-Forwarded-For": INJECTED}),
        ("/", {"User-Agent": "sqlmap/1.7.2#stable (https://sqlmap.org)"}),
        ("/index.html", {"Referer": f"http://{INJECTED}/"}),
    ]
    with run_apache_ssl(tmp_path, extra_config=extra):
        for target, headers in requests:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", target, headers={"User-Agent": "curl/8.0", **headers})
            connection.getresponse().read()
            connection.close()
        access = wait_for((tmp_path / "plain-access.log").read_text, 6, "HTTP/1.1")
        errors = wait_for((tmp_path / "plain-error.log").read_text, 2, "[client 127.0.0.1:")
    detector = Detector(RULES, tz=UTC)
    access_events = [
        e
        for n, line in enumerate(access.splitlines(), 1)
        for e in detector.feed(line, "apache_access", "access.log", n)
    ]
    error_events = [
        e
        for n, line in enumerate(errors.splitlines(), 1)
        for e in detector.feed(line, "apache_error", "error.log", n)
    ]
    assert summary(access_events) == Counter(
        {
            ("http-sqli", "127.0.0.1", None): 1,
            ("http-404", "127.0.0.1", None): 4,  # products.php, .env, / and index.html
            ("http-sensitive-file", "127.0.0.1", None): 1,
            ("http-scanner", "127.0.0.1", None): 1,
        }
    )
    assert summary(error_events) == Counter(
        {
            ("apache-auth-mismatch", "127.0.0.1", "alice"): 1,
            ("apache-auth-unknown-user", "127.0.0.1", "mallory"): 1,
        }
    )

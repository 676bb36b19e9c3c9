"""Real daemons for tests: sshd, Apache httpd with mod_ssl and PostgreSQL, each on loopback.

Every helper is a context manager that starts the distribution's own binary on a free port
with all of its files (config, keys, pid file, logs, sockets) in a private directory, waits
until the port accepts connections, and stops the daemon when the block ends, also when the
test fails. Nothing under /etc is read for the daemon's configuration or written.
Checks are only worth what they are tested against, hence real servers instead of fakes.
"""

from __future__ import annotations

import atexit
import datetime as dt
import glob
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
from conftest import free_port, require_program, require_root
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from checks.hosts import CachedHost, Host, ListeningSocket, LocalHost
from checks.params import validate_params
from checks.probes.wire import DEFAULT_TIMEOUT
from checks.result import Verdict
from checks.types.base import CheckContext, CheckType

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
APACHE_MODULES = Path("/usr/lib/apache2/modules")


@dataclass(frozen=True)
class RunningServer:
    """A started daemon: where it listens, its main process and its private directory."""

    address: str
    port: int
    pid: int
    workdir: Path | None  # None for an in-process stand-in

    @property
    def target(self) -> str:
        """``host:port`` as a probe target (IPv6 in brackets)."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"

    def pids(self) -> set[int]:
        """The main process and its descendants (Apache's children share its sockets)."""
        try:
            main = psutil.Process(self.pid)
            return {self.pid, *(child.pid for child in main.children(recursive=True))}
        except psutil.Error:
            return {self.pid}


class ServersOnlyHost(LocalHost):
    """This machine as a check sees it, minus listening sockets of daemons the test did not start.

    Discovery tests then assert exact results even when the developer's own sshd or another
    test's server runs on the same machine; everything else is the real LocalHost.
    """

    def __init__(self, *servers: RunningServer):
        super().__init__()
        self._servers = servers

    def listening_sockets(self) -> list[ListeningSocket]:
        sockets = super().listening_sockets()
        # the servers' processes listed after their sockets: a socket is shown with one of
        # the processes holding it, which may be an Apache child started a moment ago
        ours = set().union(*(server.pids() for server in self._servers))
        return [s for s in sockets if s.pid in ours]


def new_audit(host: Host | None = None, clock: Callable[[], float] = time.time) -> CheckContext:
    """What one audit gives its checks: a cached host (default: this machine) and a clock."""
    return CheckContext(CachedHost(host or LocalHost()), clock=clock)


def run_check(
    check_type: type[CheckType], params: dict, ctx: CheckContext | None = None
) -> Verdict:
    """Validate ``params`` as a policy would, then run one check of ``check_type`` in ``ctx``
    (default: a fresh audit of this machine)."""
    values, problems = validate_params(check_type.schema, params, "test", "params", 1)
    assert not problems, problems
    return check_type(values).run(ctx or new_audit())


# --- certificates --------------------------------------------------------------------------


@dataclass(frozen=True)
class CertFiles:
    cert: Path
    key: Path
    certificate: x509.Certificate
    private_key: PrivateKey


def issue_certificate(
    directory: Path,
    name: str = "localhost",
    *,
    days: float = 365,
    valid_from: dt.datetime | None = None,
    ca: CertFiles | None = None,
    is_ca: bool = False,
    key: PrivateKey | None = None,
    ocsp_url: str | None = None,
) -> CertFiles:
    """A certificate for ``name`` (with SANs localhost, 127.0.0.1, ::1) valid ``days`` from
    ``valid_from`` (default: one hour ago), self-signed unless ``ca`` signs it, for ``key``
    (default: a new RSA 2048 key), naming ``ocsp_url`` as its OCSP responder."""
    directory.mkdir(parents=True, exist_ok=True)
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    start = valid_from or dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name = ca.certificate.subject if ca else subject
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if not is_ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [
                    *(x509.DNSName(n) for n in dict.fromkeys((name, "localhost"))),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
    if ocsp_url:
        responder = x509.AccessDescription(
            x509.oid.AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url)
        )
        builder = builder.add_extension(
            x509.AuthorityInformationAccess([responder]), critical=False
        )
    certificate = builder.sign(ca.private_key if ca else key, hashes.SHA256())
    stem = name.replace("/", "_")
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return CertFiles(cert_path, key_path, certificate, key)


# --- sshd ----------------------------------------------------------------------------------


@contextmanager
def run_sshd(
    tmp_path: Path,
    extra_config: str = "",
    listen: str = "127.0.0.1",
    host_keys: tuple[str, ...] = ("ed25519",),
) -> Iterator[RunningServer]:
    """OpenSSH's sshd in the foreground with its own host keys, config and pid file.

    ``extra_config`` lines come first, so they win over the harness defaults (sshd keeps the
    first value it reads); any ``Match`` block in it is moved after the defaults.
    ``host_keys``: ssh-keygen types, ``rsa:4096`` giving a size (Debian's are rsa (3072),
    ecdsa and ed25519).
    """
    require_root()
    sshd = require_program("sshd")
    keygen = require_program("ssh-keygen")
    workdir = tmp_path / f"sshd-{_unique()}"
    workdir.mkdir(parents=True)
    key_lines = ""
    for spec in host_keys:
        kind, _, bits = spec.partition(":")
        host_key = workdir / f"ssh_host_{kind}_key"
        size = ["-b", bits] if bits else []
        _check_call([keygen, "-q", "-t", kind, *size, "-N", "", "-C", "", "-f", str(host_key)])
        key_lines += f"HostKey {host_key}\n"
    # sshd refuses to start without its privilege-separation directory.
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    port = free_port(listen)
    global_part, match_part = _split_match_blocks(extra_config)
    config = workdir / "sshd_config"
    config.write_text(
        f"{global_part}\n"
        f"ListenAddress {listen}\n"
        f"Port {port}\n"
        f"{key_lines}"
        f"PidFile {workdir / 'sshd.pid'}\n"
        "UsePAM no\n"
        f"{match_part}\n"
    )
    _check_call([sshd, "-t", "-f", str(config)])
    log = workdir / "sshd.log"
    with _daemon([sshd, "-D", "-e", "-f", str(config)], log, signal.SIGTERM) as proc:
        _wait_listening(listen, port, proc, log)
        yield RunningServer(listen, port, proc.pid, workdir)


def _split_match_blocks(config: str) -> tuple[str, str]:
    lines = config.splitlines()
    for index, line in enumerate(lines):
        if line.strip().lower().startswith("match "):
            return "\n".join(lines[:index]), "\n".join(lines[index:])
    return config, ""


# --- Apache httpd with mod_ssl ---------------------------------------------------------------


@contextmanager
def run_apache_ssl(
    tmp_path: Path,
    ssl_protocol: str = "-all +TLSv1.2 +TLSv1.3",
    *,
    cert: CertFiles | None = None,
    cipher_suite: str | None = None,
    ssl_extra: str = "",
    extra_config: str = "",
    listen: str = "127.0.0.1",
) -> Iterator[RunningServer]:
    """Debian's apache2 binary serving one mod_ssl virtual host on ``listen``:<free port>.

    ``cert`` defaults to a fresh self-signed one-year certificate; ``cipher_suite`` and
    ``ssl_extra`` go into the virtual host, ``extra_config`` at server level (another
    ``Listen`` for a plain-HTTP port, for example). The system Apache is not involved.
    """
    require_root()
    apache = require_program("apache2", "httpd")
    workdir = tmp_path / f"apache-{_unique()}"
    (workdir / "run").mkdir(parents=True)
    (workdir / "htdocs").mkdir()
    cert = cert or issue_certificate(workdir / "tls")
    port = free_port(listen)
    host = f"[{listen}]" if ":" in listen else listen
    modules = ("mpm_event", "authz_core", "socache_shmcb", "ssl")
    load = "\n".join(f"LoadModule {m}_module {APACHE_MODULES / f'mod_{m}.so'}" for m in modules)
    ciphers = f"SSLCipherSuite {cipher_suite}" if cipher_suite else ""
    config = workdir / "httpd.conf"
    config.write_text(
        f"""ServerRoot "{workdir}"
ServerName localhost
{load}
User www-data
Group www-data
PidFile "{workdir / "httpd.pid"}"
DefaultRuntimeDir "{workdir / "run"}"
Mutex file:{workdir / "run"} default
ErrorLog "{workdir / "error.log"}"
LogLevel warn
LogFormat "%h %l %u %t \\"%r\\" %>s %b" common
CustomLog "{workdir / "access.log"}" common
DocumentRoot "{workdir / "htdocs"}"
SSLSessionCache "shmcb:{workdir / "run" / "ssl_scache"}(512000)"
{extra_config}
Listen {host}:{port}
<VirtualHost {host}:{port}>
    SSLEngine on
    SSLCertificateFile "{cert.cert}"
    SSLCertificateKeyFile "{cert.key}"
    SSLProtocol {ssl_protocol}
    {ciphers}
    {ssl_extra}
</VirtualHost>
"""
    )
    argv = [apache, "-d", str(workdir), "-f", str(config)]
    _check_call([*argv, "-t"])
    log = workdir / "stderr.log"
    with _daemon([*argv, "-DFOREGROUND"], log, signal.SIGTERM) as proc:
        _wait_listening(listen, port, proc, log, workdir / "error.log")
        yield RunningServer(listen, port, proc.pid, workdir)


# --- PostgreSQL ----------------------------------------------------------------------------


@contextmanager
def run_postgres(
    tmp_path: Path,
    listen_addresses: str = "localhost",
    extra_conf: str = "",
    hba: str | None = None,
    prepare: Callable[[Path], None] | None = None,
) -> Iterator[RunningServer]:
    """A throw-away PostgreSQL cluster (a copy of one initdb as ``postgres``) on a free port.

    The cluster lives in its own directory under the system temp dir because the postgres
    user cannot enter pytest's root-only ``tmp_path``; its server log is copied into
    ``tmp_path`` when it stops. Settings are written to postgresql.conf, not passed through
    ``pg_ctl -o``, which pg_ctl hands to a shell. ``hba`` replaces initdb's pg_hba.conf, and
    ``prepare(data directory)`` runs last before the server starts (certificates, modes).
    """
    require_root()
    require_program("runuser")
    bindir = _postgres_bindir()
    base = Path(tempfile.mkdtemp(prefix="lappguard-pg-"))
    try:
        shutil.chown(base, "postgres", "postgres")
        data, sockets, log = base / "data", base / "sockets", base / "server.log"
        as_postgres = ["runuser", "-u", "postgres", "--"]
        _check_call([*as_postgres, "mkdir", str(sockets)])
        _check_call(["cp", "-a", str(_initdb_once(bindir)), str(data)])
        port = free_port()
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = {_pg_quote(listen_addresses)}\n"
                f"port = {port}\n"
                f"unix_socket_directories = {_pg_quote(str(sockets))}\n"
                f"{extra_conf}\n"
            )
        if hba is not None:
            (data / "pg_hba.conf").write_text(hba)
        if prepare is not None:
            prepare(data)
        pg_ctl = [*as_postgres, str(bindir / "pg_ctl"), "-D", str(data)]
        _check_call([*pg_ctl, "-l", str(log), "-w", "-t", "30", "start"], log)
        try:
            ready = [str(bindir / "pg_isready"), "-h", str(sockets), "-p", str(port), "-t", "10"]
            _check_call(ready, log)
            pid = int((data / "postmaster.pid").read_text().split("\n", 1)[0])
            yield RunningServer(listen_addresses, port, pid, base)
        finally:
            subprocess.run([*pg_ctl, "-m", "fast", "-w", "stop"], capture_output=True, check=False)
            if log.exists():
                shutil.copyfile(log, tmp_path / f"postgresql-{port}.log")
    finally:
        shutil.rmtree(base, ignore_errors=True)


_CLUSTERS: dict[Path, Path] = {}


def _initdb_once(bindir: Path) -> Path:
    """A data directory made by initdb once per test run, which each cluster copies: initdb
    takes seconds of CPU, a copy (the same files, owners and modes) a fraction of one."""
    if bindir not in _CLUSTERS:
        base = Path(tempfile.mkdtemp(prefix="lappguard-pg-initdb-"))
        atexit.register(shutil.rmtree, base, ignore_errors=True)
        shutil.chown(base, "postgres", "postgres")
        _check_call(
            [
                *("runuser", "-u", "postgres", "--", str(bindir / "initdb")),
                *("-D", str(base / "data"), "-U", "postgres", "--no-sync", "--auth=peer"),
                *("--encoding=UTF8", "--locale=C"),
            ]
        )
        _CLUSTERS[bindir] = base / "data"
    return _CLUSTERS[bindir]


def psql_as_postgres(server: RunningServer, sql: str, database: str = "postgres") -> str:
    """Run ``sql`` in a throw-away cluster as its superuser (peer on the unix socket), each
    statement in turn, stopping at the first error; returns what psql printed."""
    assert server.workdir is not None
    psql = str(_postgres_bindir() / "psql")
    argv = ["runuser", "-u", "postgres", "--", psql, "-X", "-q", "-A", "-t",
            "-v", "ON_ERROR_STOP=1", "-h", str(server.workdir / "sockets"),
            "-p", str(server.port), "-d", database, "-c", sql]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"psql exited {done.returncode}: {done.stderr}")
    return done.stdout


def _postgres_bindir() -> Path:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    if not found:
        require_program("initdb")  # skips (or fails in CI) naming the missing program
    return Path(found[-1]).parent


def _pg_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# --- a canned-reply TCP server for protocols no real server here speaks ------------------------


@contextmanager
def run_canned_server(
    reply: Callable[[bytes], bytes],
    listen: str = "127.0.0.1",
    request_size: int = 5,
    *,
    whole_record: bool = False,
    hold_open: bool = False,
) -> Iterator[RunningServer]:
    """A loopback TCP server that reads the first ``request_size`` bytes of each connection
    (with ``whole_record``: one whole TLS record, header and body), sends ``reply(those
    bytes)`` and closes (with ``hold_open``: waits, reading in silence, until the client
    closes; each connection in a thread of its own). Stands in for servers no current
    OpenSSL can run (SSLv2, SSLv3, RC4, 3DES, export suites, an OpenSSL that takes a
    premature ChangeCipherSpec); never use it where a real daemon exists."""
    family = socket.AF_INET6 if ":" in listen else socket.AF_INET
    server = socket.socket(family, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((listen, 0))
    server.listen(64)  # a scan opens some thirty connections at once
    server.settimeout(0.2)
    stop = threading.Event()

    def answer(conn: socket.socket) -> None:
        with conn:
            # held in silence longer than a probe waits for an answer (wire.DEFAULT_TIMEOUT):
            # held just as long, the hold could end first and read as the server refusing
            conn.settimeout(3 * DEFAULT_TIMEOUT if hold_open else 5)
            try:
                request = _recv_exact(conn, request_size)
                if whole_record and len(request) >= 5:
                    request += _recv_exact(conn, int.from_bytes(request[3:5], "big"))
                conn.sendall(reply(request))
                while hold_open and not stop.is_set() and conn.recv(4096):
                    pass
            except OSError:
                return

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if hold_open:
                threading.Thread(target=answer, args=(conn,), daemon=True).start()
            else:
                answer(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield RunningServer(listen, server.getsockname()[1], os.getpid(), None)
    finally:
        stop.set()
        thread.join(STOP_TIMEOUT)
        server.close()


def _recv_exact(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


# --- process plumbing ----------------------------------------------------------------------

_counter = iter(range(1_000_000))


def _unique() -> int:
    """Distinguishes several servers of one kind started by the same test."""
    return next(_counter)


def _check_call(argv: list[str], log: Path | None = None) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout}{done.stderr}{_tail(log)}"
        )


@contextmanager
def _daemon(argv: list[str], log: Path, stop_signal: int) -> Iterator[subprocess.Popen]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(stop_signal)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_listening(address: str, port: int, proc: subprocess.Popen, *logs: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{proc.args[0]} exited {proc.returncode}:" + "".join(_tail(p) for p in logs)
            )
        try:
            with socket.create_connection((address, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(
        f"{proc.args[0]} did not listen on {port}:" + "".join(_tail(p) for p in logs)
    )


def _tail(path: Path | None, size: int = 4000) -> str:
    if path is None or not path.exists():
        return ""
    return f"\n--- {path} ---\n" + path.read_bytes()[-size:].decode("utf-8", "replace")

"""Real remote hosts for tests: network namespaces on one bridge, each a real sshd over its
own view of the files.

The auditing side is a network namespace of its own holding a bridge; every host is another
namespace joined to that bridge by a veth pair, with a 10.x address that exists only inside
these namespaces. A host's sshd runs in a private mount namespace where its own copy of
/etc (the machine's, with a fixture tree's directories in place of the machine's), /srv,
/var/lib/dpkg, /usr/lib/systemd/system and /root are bound over the real ones, so each host
has its own configuration while programs and libraries are the machine's. /root is a fresh
one with Debian's default dotfiles: sshd runs every session through the login shell, which
reads root's .bashrc, and the auditing machine's own (a developer's pyenv, say) would cost
each session a tenth of a second of CPU that no real server spends. The daemon reads the
audited /etc/ssh/sshd_config itself; command-line options only add what a test login needs
(address, host key, the test's authorized key, root and ``auditor`` allowed).

``RemoteHost.view`` (/proc/PID/root of the sshd) is the host's ``/`` seen from the test, so
``LocalHost(root=host.view)`` audits exactly the files the SSH audit reads.
Code that connects to a host must run in the auditing namespace (``with entered(lan.auditor)``);
threads started there inherit it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
from conftest import require_program, require_root
from namespaces import entered, in_namespace
from treeutil import hardened_root

from checks.ssh_connect import SSHOptions

START_TIMEOUT = 20.0
#: Check types that read the processes of the whole machine: the namespace hosts share its PID
#: namespace, where other tests start and stop servers, agents and Apache children (which hold
#: deleted SSL caches), so two audits a moment apart may differ there for a reason of their own.
#: ``postgresql_inside`` asks every PostgreSQL server it finds running, the tests' own too.
MACHINE_WIDE_TYPES = frozenset({"process", "deleted_files", "postgresql_inside"})
#: Directories of a fixture's etc/ merged file by file into the host's (PAM must keep working).
MERGED_ETC_DIRS = ("pam.d", "security")
#: Bound over the machine's in the host's mount namespace (each exists on the machine).
BOUND = ("etc", "srv", "var/lib/dpkg", "usr/lib/systemd/system", "root")
#: Debian's root dotfiles (base-files), as a fresh install has them.
ROOT_DOTFILES = {".bashrc": "dot.bashrc", ".profile": "dot.profile"}
BASE_FILES = Path("/usr/share/base-files")
SSHD_BIND_SCRIPT = (
    "tree=$1; shift; for dir in " + " ".join(BOUND) + "; do "
    'mount --bind "$tree/$dir" "/$dir" || exit 1; done; '
    'mount -t tmpfs tmpfs /run && mkdir /run/sshd /run/lock && exec "$@"'
)


@dataclass
class RemoteHost:
    name: str
    namespace: str
    address: str
    tree: Path  # its own files, bound over the machine's in its mount namespace
    port: int = 22
    pid: int = 0  # its sshd
    host_key: str = ""  # "ssh-ed25519 AAAA..." as known_hosts lists it
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def view(self) -> str:
        """The host's / as the test process sees it (follow with LocalHost(root=...))."""
        return f"/proc/{self.pid}/root"

    def drop_connections(self) -> list[int]:
        """Kill (SIGKILL) every per-connection process of this host's sshd, the listener
        left running: its clients' connections drop as a crash of them would drop them.
        Returns the pids killed."""
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
                except (OSError, IndexError, ValueError):
                    continue  # gone meanwhile
                children.setdefault(ppid, []).append(int(entry.name))
        killed, parents = [], [self.pid]
        while parents:
            for pid in children.get(parents.pop(), []):
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                parents.append(pid)
        return killed

    @property
    def known_hosts_line(self) -> str:
        name = self.address if self.port == 22 else f"[{self.address}]:{self.port}"
        return f"{name} {self.host_key}\n"


class Lan:
    """The auditing namespace, its bridge, and the hosts on it; built by ``lan()``."""

    def __init__(self, workdir: Path, stack: ExitStack):
        self.workdir = workdir
        self._stack = stack
        tag = uuid.uuid4().hex[:6]
        self.tag = tag
        self.prefix = f"10.{int(tag[:2], 16) % 250 + 1}"
        self.auditor = f"lg_aud_{tag}"
        self.auditor_address = f"{self.prefix}.0.1"
        self.hosts: dict[str, RemoteHost] = {}
        self._next = 10
        keygen = require_program("ssh-keygen")
        self.client_key = workdir / "client_ed25519"
        _run([keygen, "-q", "-t", "ed25519", "-N", "", "-C", "auditor", "-f", str(self.client_key)])
        self.known_hosts = workdir / "known_hosts"
        self.known_hosts.write_text("")
        self._namespace(self.auditor)
        in_namespace(self.auditor, "ip", "link", "add", "br0", "type", "bridge")
        in_namespace(self.auditor, "ip", "addr", "add", f"{self.auditor_address}/16", "dev", "br0")
        in_namespace(self.auditor, "ip", "link", "set", "br0", "up")
        in_namespace(self.auditor, "ip", "link", "set", "lo", "up")

    # --- hosts -------------------------------------------------------------------------------

    def add_host(
        self,
        name: str,
        fixture: Path,
        *,
        sshd_options: tuple[str, ...] = (),
        max_sessions: int = 100,
    ) -> RemoteHost:
        """A host whose /etc is the machine's with ``fixture``'s etc/ laid over it, running
        sshd on port 22 of a fresh address. The test key logs in as root or ``auditor``.
        ``max_sessions`` replaces the fixture's MaxSessions (the hardened one says 2)."""
        host = self._attach(name)
        host.tree = build_tree(self.workdir / name / "tree", fixture)
        # the host listens on its own address (given to sshd below), not the tree's
        (host.tree / "etc/ssh/sshd_config.d/60-listen.conf").unlink(missing_ok=True)
        private = self.workdir / name / "private"
        private.mkdir(parents=True)
        key = private / "ssh_host_ed25519_key"
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(key)])
        host.host_key = " ".join(Path(f"{key}.pub").read_text().split()[:2])
        # the login user reads its keys itself: a world-readable place in the host's /etc
        keys = host.tree / "etc/lappguard-test-keys"
        keys.mkdir(mode=0o755)
        public = Path(f"{self.client_key}.pub").read_text()
        for user in ("root", "auditor"):
            (keys / user).write_text(public)
        sshd = require_program("sshd")
        argv = [
            "ip", "netns", "exec", host.namespace,
            "unshare", "--mount", "--propagation", "private",
            "/bin/sh", "-c", SSHD_BIND_SCRIPT, "sh", str(host.tree),
            sshd, "-D", "-e", "-f", "/etc/ssh/sshd_config",
            "-o", f"ListenAddress={host.address}", "-o", "Port=22",
            "-o", f"HostKey={key}", "-o", f"PidFile={private / 'sshd.pid'}",
            "-o", "AuthorizedKeysFile=/etc/lappguard-test-keys/%u",
            "-o", "AllowUsers=root auditor",
            "-o", "PermitRootLogin=prohibit-password", "-o", "UsePAM=no",
            "-o", "StrictModes=no", "-o", "MaxStartups=200", "-o", f"MaxSessions={max_sessions}",
            # probes reach ports through the connection, which the fixture's sshd_config forbids
            "-o", "AllowTcpForwarding=yes", "-o", "PerSourceMaxStartups=none",
            *(item for option in sshd_options for item in ("-o", option)),
        ]  # fmt: skip
        log = (private / "sshd.log").open("wb")
        host.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        host.pid = host.process.pid  # ip netns exec, unshare and sh each exec the next
        self._stack.callback(_stop, host.process)
        self._wait(host, private / "sshd.log")
        return host

    def add_silent(self, name: str) -> RemoteHost:
        """A host whose port 22 completes the TCP handshake and then never says a word."""
        host = self._attach(name)
        with entered(host.namespace):
            listener = socket.socket()
            listener.bind((host.address, 22))
            listener.listen(64)  # the kernel accepts; nobody ever reads or writes
        self._stack.callback(listener.close)
        return host

    def unused_address(self) -> str:
        """An address on the LAN where no host is (connections to it find nobody)."""
        return f"{self.prefix}.1.250"

    def trust(self, *hosts: RemoteHost) -> None:
        with self.known_hosts.open("a") as handle:
            handle.writelines(host.known_hosts_line for host in hosts)

    def ssh_config(self, user: str = "root") -> Path:
        """An ssh_config naming every host (alias = host name) with the test's key."""
        path = self.workdir / f"ssh_config_{user}"
        path.write_text(
            "".join(
                f"Host {host.name}\n  HostName {host.address}\n  Port {host.port}\n"
                f"  User {user}\n  IdentityFile {self.client_key}\n  IdentitiesOnly yes\n"
                f"  UserKnownHostsFile {self.known_hosts}\n"
                for host in self.hosts.values()
            )
        )
        return path

    def options(self, user: str = "root", **changes) -> SSHOptions:
        return SSHOptions(config_files=(str(self.ssh_config(user)),), use_agent=False, **changes)

    def _attach(self, name: str) -> RemoteHost:
        index = self._next
        self._next += 1
        namespace = f"lg_h{index}_{self.tag}"
        self._namespace(namespace)
        outer, inner = f"v{self.tag}a{index}", f"v{self.tag}h{index}"
        _run(["ip", "link", "add", inner, "netns", namespace, "type", "veth",
              "peer", "name", outer, "netns", self.auditor])  # fmt: skip
        in_namespace(self.auditor, "ip", "link", "set", outer, "master", "br0", "up")
        address = f"{self.prefix}.1.{index}"
        in_namespace(namespace, "ip", "addr", "add", f"{address}/16", "dev", inner)
        in_namespace(namespace, "ip", "link", "set", inner, "up")
        in_namespace(namespace, "ip", "link", "set", "lo", "up")
        host = RemoteHost(name, namespace, address, tree=Path())
        self.hosts[name] = host
        return host

    def _namespace(self, name: str) -> None:
        _run(["ip", "netns", "add", name])
        self._stack.callback(subprocess.run, ["ip", "netns", "delete", name], check=False)

    def _wait(self, host: RemoteHost, log: Path) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        with entered(self.auditor):
            while time.monotonic() < deadline:
                if host.process is not None and host.process.poll() is not None:
                    raise RuntimeError(f"sshd of {host.name} exited:\n{log.read_text()[-3000:]}")
                try:
                    with socket.create_connection((host.address, host.port), timeout=0.5) as s:
                        s.settimeout(2)
                        if s.recv(4).startswith(b"SSH-"):
                            return
                except OSError:
                    time.sleep(0.05)
        raise RuntimeError(f"sshd of {host.name} did not answer:\n{log.read_text()[-3000:]}")


@contextmanager
def lan(workdir: Path) -> Iterator[Lan]:
    """A LAN of test hosts, all torn down (daemons stopped, namespaces deleted) afterwards."""
    require_root()
    require_program("unshare")
    workdir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        yield Lan(workdir, stack)


@contextmanager
def lan_of_one(workdir: Path, name: str) -> Iterator[Lan]:
    """A LAN of one hardened host, trusted, whose ``auditor`` may sudo: for the tests of
    what one SSH host answers."""
    with lan(workdir / "lan") as net:
        host = net.add_host(name, hardened_root(workdir))
        allow_sudo(host)
        net.trust(host)
        yield net


def build_tree(tree: Path, fixture: Path) -> Path:
    """A host's own files: the machine's /etc with the fixture's etc/ directories replacing
    the machine's (pam.d and security merged file by file), the fixture's srv, dpkg
    status and unit files, and a fresh /root. A test login user ``auditor`` (uid 4242) is
    added."""
    tree.mkdir(parents=True)
    _run(["cp", "-a", "/etc", str(tree / "etc")])
    for entry in sorted((fixture / "etc").iterdir()):
        target = tree / "etc" / entry.name
        if entry.is_dir() and entry.name in MERGED_ETC_DIRS:
            shutil.copytree(entry, target, symlinks=True, dirs_exist_ok=True)
            continue
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
        if entry.is_dir():
            shutil.copytree(entry, target, symlinks=True)
        else:
            shutil.copy2(entry, target, follow_symlinks=False)
    for part, source in (
        ("srv", fixture / "srv"),
        ("var/lib/dpkg", fixture / "var/lib/dpkg"),
        ("usr/lib/systemd/system", fixture / "lib/systemd/system"),
    ):
        if source.exists():
            shutil.copytree(source, tree / part, symlinks=True)
        else:
            (tree / part).mkdir(parents=True)
    home = tree / "root"
    home.mkdir(mode=0o700)
    for name, source in ROOT_DOTFILES.items():
        if (BASE_FILES / source).exists():
            shutil.copy2(BASE_FILES / source, home / name)
    etc = tree / "etc"
    with (etc / "passwd").open("a") as handle:
        handle.write("auditor:x:4242:4242:lappguard test login:/nonexistent:/bin/sh\n")
    with (etc / "group").open("a") as handle:
        handle.write("auditor:x:4242:\n")
    with (etc / "shadow").open("a") as handle:
        handle.write("auditor:*:19000:0:99999:7:::\n")
    return tree


def allow_sudo(host: RemoteHost, user: str = "auditor") -> None:
    """Let ``user`` run anything as root without a password (sudo -n) on that host."""
    rule = host.tree / "etc/sudoers.d" / f"lappguard-test-{user}"
    rule.parent.mkdir(exist_ok=True)
    rule.write_text(f"{user} ALL=(root) NOPASSWD: ALL\n")
    rule.chmod(0o440)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr}")


def counted_sftp_requests(monkeypatch) -> list[int]:
    """The type of every SFTP request sent from now on (the test's monkeypatch undoes it)."""
    requests: list[int] = []
    sftp_request = paramiko.SFTPClient._async_request
    monkeypatch.setattr(
        paramiko.SFTPClient,
        "_async_request",
        lambda client, *args: requests.append(args[1]) or sftp_request(client, *args),
    )
    return requests

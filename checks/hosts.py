"""The one seam between checks and the machine they judge.

Checks read files, list globs, run argv commands and list sockets, processes and packages
only through a ``Host``. ``LocalHost`` serves this machine (or, with ``root``, a directory
tree audited as if it were ``/``); a remote host implements the same methods, so a check
never knows which one it got. Nothing here goes through a shell.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import stat as statlib
import subprocess
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from checks.parsers.dpkg import (
    DPKG_STATUS,
    DpkgError,
    DpkgPackage,
    installed_versions,
    read_status,
)
from checks.probes.wire import Target
from checks.rootfs import NOTHING_THERE, FileSystem, HostFS, RootFS

T = TypeVar("T")

DEFAULT_COMMAND_TIMEOUT = 15.0


class HostError(Exception):
    """A fact could not be read from the host (missing file, permission, no such command)."""


class CommandNotFound(HostError):
    pass


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class PlannedCommand:
    """A command a check will run (``CheckType.commands``), and the timeout it will give it."""

    argv: tuple[str, ...]
    timeout: float = DEFAULT_COMMAND_TIMEOUT


@dataclass(frozen=True)
class FileStat:
    path: str
    mode: int  # permission bits only (0o7777)
    uid: int
    gid: int
    owner: str
    group: str
    size: int
    mtime: float
    is_dir: bool
    is_file: bool
    is_link: bool


@dataclass(frozen=True)
class ListeningSocket:
    proto: str  # "tcp" or "udp"
    address: str  # "0.0.0.0", "::", "127.0.0.1", ...
    port: int
    pid: int | None
    process: str | None  # process name, None when the owner cannot be seen
    uid: int | None = None  # the socket's owner, which the kernel shows to everyone
    #: When the process cannot be seen (no right to ptrace it): the names of the processes
    #: its user runs, one of which holds the socket.
    candidates: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    name: str
    cmdline: tuple[str, ...]
    user: str


class Host(ABC):
    """Everything a check may learn about a machine."""

    name: str
    #: False when there is no running system behind the files (``--root`` audits):
    #: commands, sockets, processes and live probes are then not applicable.
    is_live: bool
    #: The address the auditing machine reaches the host at, for probes of its outside
    #: view; None when the audit runs on the host itself (or reaches it through a jump host).
    outside_address: str | None = None
    #: Whether ``prefetch`` runs commands at once (worth the checks announcing theirs).
    batches_commands: bool = False

    @abstractmethod
    def read_bytes(self, path: str, limit: int | None = None) -> bytes: ...

    @abstractmethod
    def stat(self, path: str, follow_symlinks: bool = True) -> FileStat: ...

    @abstractmethod
    def glob(self, pattern: str) -> list[str]:
        """Sorted paths (as seen on the host) matching a shell glob."""

    @abstractmethod
    def readlink(self, path: str) -> str: ...

    @abstractmethod
    def listdir(self, path: str) -> list[str]: ...

    @abstractmethod
    def run(self, argv: Sequence[str], timeout: float = DEFAULT_COMMAND_TIMEOUT) -> CommandResult:
        """Run an argv list (never a shell string); raises CommandNotFound."""

    def prefetch(self, commands: Sequence[PlannedCommand]) -> None:
        """The audit is about to ``run`` these. A host where each command costs a round
        trip runs them all at once now; here, each runs when asked."""
        return None

    @abstractmethod
    def which(self, program: str) -> str | None: ...

    @abstractmethod
    def listening_sockets(self) -> list[ListeningSocket]: ...

    @abstractmethod
    def processes(self) -> list[ProcessInfo]: ...

    def probe_address(self, listen_address: str) -> str:
        """The address a live probe should connect to for a socket bound to listen_address."""
        if listen_address in ("0.0.0.0", ""):
            return "127.0.0.1"
        if listen_address == "::":
            return "::1"
        return listen_address

    def reach(self, target: Target) -> Target:
        """``target`` (an address as the host itself sees it) as a live probe reaches it:
        directly here; a remote host routes it through its connection."""
        return target

    # Derived facts: built only from the primitives above, so every Host gets them.

    def read_text(self, path: str) -> str:
        return self.read_bytes(path).decode("utf-8", errors="replace")

    def exists(self, path: str) -> bool:
        """Whether ``path`` names a file (links followed). A path that cannot be looked
        at (permission denied, a lost connection) raises HostError: "absent" would let a
        check that passes on a missing file pass on one it never saw."""
        return self._found(path, follow_symlinks=True)

    def lexists(self, path: str) -> bool:
        """As ``exists``, a link itself counting (dangling or not)."""
        return self._found(path, follow_symlinks=False)

    def _found(self, path: str, follow_symlinks: bool) -> bool:
        try:
            self.stat(path, follow_symlinks=follow_symlinks)
        except HostError as exc:
            if getattr(exc.__cause__, "errno", None) in NOTHING_THERE:
                return False
            raise
        return True

    def dpkg_packages(self) -> list[DpkgPackage]:
        """Every package dpkg's status file describes, with its state. Raises HostError."""
        try:
            return read_status(self.read_text(DPKG_STATUS))
        except DpkgError as exc:
            raise HostError(str(exc)) from exc

    def packages(self) -> dict[str, str]:
        """Installed Debian packages (name -> version), read from dpkg's status file."""
        return installed_versions(self.dpkg_packages())


def parse_dpkg_status(text: str, source: str = DPKG_STATUS) -> dict[str, str]:
    """Installed packages (name -> version), see ``checks.parsers.dpkg``; what dpkg would
    refuse raises HostError."""
    try:
        return installed_versions(read_status(text, source))
    except DpkgError as exc:
        raise HostError(str(exc)) from exc


class LocalHost(Host):
    """This machine, or a directory tree standing in for its ``/``.

    Under ``root`` every path is resolved inside the tree as under chroot (see
    ``checks.rootfs``): no link in an image can make the audit read the auditor's files.
    """

    def __init__(self, root: str | None = None):
        self.root = os.path.abspath(root) if root else None
        self.is_live = self.root is None
        self.name = os.uname().nodename if self.is_live else f"root:{self.root}"
        self._fs: FileSystem = HostFS() if self.root is None else RootFS(self.root)
        self._tree_names = AccountNames(self.read_text)

    def read_bytes(self, path: str, limit: int | None = None) -> bytes:
        with host_errors(path):
            return self._fs.read(path, limit)

    def stat(self, path: str, follow_symlinks: bool = True) -> FileStat:
        with host_errors(path):
            link = self._fs.stat(path, follow_symlinks=False)
            is_link = statlib.S_ISLNK(link.st_mode)
            info = self._fs.stat(path) if follow_symlinks and is_link else link
        return FileStat(
            path=path,
            mode=statlib.S_IMODE(info.st_mode),
            uid=info.st_uid,
            gid=info.st_gid,
            owner=self._name("/etc/passwd", info.st_uid),
            group=self._name("/etc/group", info.st_gid),
            size=info.st_size,
            mtime=info.st_mtime,
            is_dir=statlib.S_ISDIR(info.st_mode),
            is_file=statlib.S_ISREG(info.st_mode),
            is_link=is_link,
        )

    def glob(self, pattern: str) -> list[str]:
        with host_errors(pattern):
            return self._fs.glob(pattern)

    def _name(self, database: str, number: int) -> str:
        """A uid or gid's name: this machine's (NSS) when live; under ``root`` the tree's own
        passwd or group file, since the auditing machine's names mean nothing for an image."""
        if self.is_live:
            return _user_name(number) if database == "/etc/passwd" else _group_name(number)
        return self._tree_names.name(database, number)

    def readlink(self, path: str) -> str:
        with host_errors(path):
            return self._fs.readlink(path)

    def listdir(self, path: str) -> list[str]:
        with host_errors(path):
            return sorted(self._fs.listdir(path))

    def run(self, argv: Sequence[str], timeout: float = DEFAULT_COMMAND_TIMEOUT) -> CommandResult:
        if not self.is_live:
            raise CommandNotFound(f"{argv[0]}: commands do not run under --root")
        program = argv[0] if "/" in argv[0] else self.which(argv[0])
        if program is None or not os.path.exists(program):
            raise CommandNotFound(f"{argv[0]}: command not found")
        try:
            done = subprocess.run(
                [program, *argv[1:]],
                capture_output=True,
                timeout=timeout,
                check=False,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "LC_ALL": "C"},
            )
        except subprocess.TimeoutExpired as exc:
            raise HostError(f"{argv[0]}: timed out after {timeout:g}s") from exc
        except OSError as exc:
            raise HostError(f"{argv[0]}: {exc.strerror or exc}") from exc
        return CommandResult(
            tuple(argv),
            done.returncode,
            done.stdout.decode("utf-8", errors="replace"),
            done.stderr.decode("utf-8", errors="replace"),
        )

    def which(self, program: str) -> str | None:
        if not self.is_live:
            return None
        path = os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin"
        return shutil.which(program, path=path)

    def listening_sockets(self) -> list[ListeningSocket]:
        import psutil

        self._require_live("listening sockets")
        names: dict[int, str] = {}
        owners = _socket_owners()
        by_uid: dict[int, tuple[str, ...]] | None = None
        found = set()
        for conn in psutil.net_connections(kind="inet"):
            is_tcp = conn.type == 1  # SOCK_STREAM
            if is_tcp and conn.status != psutil.CONN_LISTEN:
                continue
            if not is_tcp and conn.raddr:
                continue
            if not conn.laddr:
                continue
            proto = "tcp" if is_tcp else "udp"
            uid = owners.get((proto, _canonical(conn.laddr.ip), conn.laddr.port))
            name, candidates = None, ()
            if conn.pid is not None:
                if conn.pid not in names:
                    try:
                        names[conn.pid] = psutil.Process(conn.pid).name()
                    except psutil.Error:
                        names[conn.pid] = None
                name = names[conn.pid]
            elif uid is not None:  # no ptrace right on its process: what could it be?
                by_uid = _process_names_by_uid() if by_uid is None else by_uid
                candidates = by_uid.get(uid, ())
            found.add(ListeningSocket(proto, conn.laddr.ip, conn.laddr.port, conn.pid, name,
                                      uid, candidates))  # fmt: skip
        return sorted(found, key=lambda s: (s.proto, s.port, s.address, s.pid or 0))

    def processes(self) -> list[ProcessInfo]:
        import psutil

        self._require_live("processes")
        found = []
        for proc in psutil.process_iter(["pid", "name", "cmdline", "username"]):
            info = proc.info
            found.append(
                ProcessInfo(
                    info["pid"],
                    info["name"] or "",
                    tuple(info["cmdline"] or ()),
                    info["username"] or "",
                )
            )
        return found

    def _require_live(self, what: str) -> None:
        if not self.is_live:
            raise HostError(f"{what} are not available when auditing a directory tree")


class CachedHost(Host):
    """Memoises a host's facts for one audit, so fifty checks cost one read of each file.

    Thread-safe: concurrent checks asking for the same fact wait for a single computation.
    """

    def __init__(self, inner: Host):
        self.inner = inner
        self.name = inner.name
        self.is_live = inner.is_live
        self.outside_address = inner.outside_address
        self.batches_commands = inner.batches_commands
        self._values: dict[tuple, tuple[bool, Any]] = {}
        self._locks: dict[tuple, threading.Lock] = {}
        self._guard = threading.Lock()

    def memo(self, key: tuple, compute: Callable[[], T]) -> T:
        """Compute a value once per audit; an exception is remembered and raised again."""
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._values:
                try:
                    self._values[key] = (True, compute())
                except Exception as exc:
                    self._values[key] = (False, exc)
            ok, value = self._values[key]
        if ok:
            return value
        raise value

    def read_bytes(self, path: str, limit: int | None = None) -> bytes:
        return self.memo(("read", path, limit), lambda: self.inner.read_bytes(path, limit))

    def stat(self, path: str, follow_symlinks: bool = True) -> FileStat:
        return self.memo(
            ("stat", path, follow_symlinks), lambda: self.inner.stat(path, follow_symlinks)
        )

    def glob(self, pattern: str) -> list[str]:
        return list(self.memo(("glob", pattern), lambda: self.inner.glob(pattern)))

    def readlink(self, path: str) -> str:
        return self.memo(("readlink", path), lambda: self.inner.readlink(path))

    def listdir(self, path: str) -> list[str]:
        return list(self.memo(("listdir", path), lambda: self.inner.listdir(path)))

    def run(self, argv: Sequence[str], timeout: float = DEFAULT_COMMAND_TIMEOUT) -> CommandResult:
        return self.memo(("run", tuple(argv)), lambda: self.inner.run(argv, timeout))

    def prefetch(self, commands: Sequence[PlannedCommand]) -> None:
        self.inner.prefetch(commands)

    def which(self, program: str) -> str | None:
        return self.memo(("which", program), lambda: self.inner.which(program))

    def listening_sockets(self) -> list[ListeningSocket]:
        return list(self.memo(("sockets",), self.inner.listening_sockets))

    def processes(self) -> list[ProcessInfo]:
        return list(self.memo(("processes",), self.inner.processes))

    def dpkg_packages(self) -> list[DpkgPackage]:
        return self.memo(("dpkg packages",), self.inner.dpkg_packages)

    def packages(self) -> dict[str, str]:
        return self.memo(("packages",), lambda: installed_versions(self.dpkg_packages()))

    def probe_address(self, listen_address: str) -> str:
        return self.inner.probe_address(listen_address)

    def reach(self, target: Target) -> Target:
        return self.inner.reach(target)


@contextmanager
def host_errors(path: str) -> Iterator[None]:
    """Turn the file system's OSError into a HostError naming the path as the check asked."""
    if not path.startswith("/"):
        raise HostError(f"{path}: not an absolute path")
    try:
        yield
    except OSError as exc:
        raise HostError(f"{path}: {exc.strerror or exc}") from exc


def _socket_owners() -> dict[tuple[str, str, int], int]:
    """(proto, address, port) -> owner uid of every socket, from /proc/net: readable without
    privileges, unlike the process that holds a socket (that needs the right to ptrace it,
    which an agent running with few capabilities does not have)."""
    owners: dict[tuple[str, str, int], int] = {}
    for proto, table in (("tcp", "tcp"), ("tcp", "tcp6"), ("udp", "udp"), ("udp", "udp6")):
        try:
            with open(f"/proc/net/{table}", encoding="ascii") as handle:
                rows = handle.read().split("\n")[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) < 8:
                continue
            address, _, port = fields[1].partition(":")
            owners[(proto, _kernel_address(address), int(port, 16))] = int(fields[7])
    return owners


def _kernel_address(text: str) -> str:
    """An address as /proc/net prints it (32-bit words in host byte order) -> canonical."""
    raw = bytes.fromhex(text)
    if sys.byteorder == "little":
        raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(raw))


def _canonical(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address.split("%", 1)[0]))
    except ValueError:
        return address


def _process_names_by_uid() -> dict[int, tuple[str, ...]]:
    """uid -> the names of the processes that user runs (names need no ptrace right)."""
    import psutil

    seen: dict[int, set[str]] = {}
    for proc in psutil.process_iter(["uids", "name"]):
        uids = proc.info["uids"]
        if uids is not None:
            seen.setdefault(uids.real, set()).add(proc.info["name"] or "")
    return {uid: tuple(sorted(names)) for uid, names in seen.items()}


class AccountNames:
    """Uid and gid names from a host's own passwd and group files, each read once (else the
    number): what an image or a remote host calls its accounts, not what this machine does."""

    def __init__(self, read_text: Callable[[str], str]) -> None:
        self._read_text = read_text
        self._names: dict[str, dict[int, str]] = {}
        self._lock = threading.Lock()

    def name(self, database: str, number: int) -> str:
        with self._lock:
            if database not in self._names:
                try:
                    text = self._read_text(database)
                except HostError as exc:
                    if getattr(exc.__cause__, "errno", None) not in NOTHING_THERE:
                        # an owner shown as a number would fail "owned by root" checks:
                        # the check errors instead, and the next one reads the file again
                        raise HostError(f"cannot name owners: {exc}") from exc
                    text = ""  # no such file: the tree has no names, numbers it is
                self._names[database] = names_by_id(text)
        return self._names[database].get(number, str(number))


def names_by_id(text: str) -> dict[int, str]:
    """uid or gid -> name from a passwd or group file; the first line for a number wins,
    as for getpwuid()."""
    names: dict[int, str] = {}
    for line in text.split("\n"):  # nss_files reads LF-ended lines
        fields = line.split(":")
        if len(fields) > 2 and fields[2].isdigit():
            names.setdefault(int(fields[2]), fields[0])
    return names


def _user_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group_name(gid: int) -> str:
    import grp

    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)

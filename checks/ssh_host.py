"""A host audited over SSH: files over SFTP, argv commands over exec, probes through the link.

``SSHHost`` answers every ``Host`` question as ``LocalHost`` would on that machine: the same
read rules (regular files of at most 32 MiB), the same glob matcher (over SFTP listdir),
sockets and processes shaped as psutil gives them (from ``ss`` and ``ps``), packages from
the remote dpkg status file. Commands are argv lists joined with ``shlex.join`` into the one
string SSH carries, so no argument is ever read by the remote shell as syntax.

With ``sudo``, the SFTP server itself runs as root (``sudo -n sftp-server``) and commands
run under ``sudo -n``, so root-only files are read with the same semantics as any other;
without it, a file the login user cannot read is an error naming the file, never a pass.
Live probes of the host's ports go through the SSH connection (as ``ssh -L`` does), so they
see what a probe on the host would see, loopback-only ports included.
"""

from __future__ import annotations

import errno
import os
import queue
import selectors
import shlex
import socket
import stat as statlib
import tarfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

from checks.hosts import (
    DEFAULT_COMMAND_TIMEOUT,
    AccountNames,
    CommandNotFound,
    CommandResult,
    FileStat,
    Host,
    HostError,
    ListeningSocket,
    PlannedCommand,
    ProcessInfo,
    host_errors,
)
from checks.probes.wire import Target
from checks.remote_facts import PS_ARGV, SS_ARGV, names_by_uid, parse_ps, parse_ss
from checks.rootfs import MAX_READ_BYTES, GlobMatcher, refuse_unreadable, too_large
from checks.ssh_batch import NOT_FOUND, batch_results, batch_script, batch_words
from checks.ssh_connect import ConnectError, Connection, SSHOptions, connect, resolve
from checks.ssh_snapshot import AUDIT_LAYOUT, TAR_ARGV, Layout, Snapshot

if TYPE_CHECKING:
    import paramiko

#: Where Debian's openssh-server installs the SFTP server that ``sudo`` runs.
DEFAULT_SFTP_SERVER = "/usr/lib/openssh/sftp-server"
#: The PATH a root login on Debian has; ``which`` looks there, as LocalHost adds the sbins.
REMOTE_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
T = TypeVar("T")
#: SFTP sessions per host at most (fewer where sshd's MaxSessions says so: _SessionGate):
#: checks run concurrently, and one session answers one at a time.
DEFAULT_SFTP_SESSIONS = 3
#: Seconds a refused session is retried while we hold none (sshd frees slots a moment late).
REFUSED_GRACE = 2.0
#: An SFTP request or a tunnelled connection that gets no answer this long has failed.
IO_TIMEOUT = 30.0
#: Seconds the commands that fetch a snapshot may take, each.
SNAPSHOT_TIMEOUT = 30.0
#: Seconds a timed-out command gets between TERM and KILL (coreutils ``timeout -k``).
_KILL_AFTER = 2
_CHUNK = 65536


class SSHHost(Host):
    """A logged-in SSH connection seen as a Host. Close it when the audit is done."""

    def __init__(
        self,
        connection: Connection,
        name: str | None = None,
        *,
        sudo: bool = False,
        sftp_server: str = DEFAULT_SFTP_SERVER,
        sftp_sessions: int = DEFAULT_SFTP_SESSIONS,
    ):
        self.connection = connection
        self.name = name or connection.endpoint.alias
        self.is_live = True
        self.batches_commands = True
        # through a jump host, this machine's view of the host is not the outside one
        self.outside_address = None if connection.jumps else connection.endpoint.hostname
        self.sudo = sudo
        self._sudo = ("sudo", "-n", "--") if sudo else ()
        self._gate = _SessionGate()
        self._files = _SFTPFiles(self._open_sftp, sftp_server, sftp_sessions, self._gate)
        self._account_names = AccountNames(self.read_text)
        #: argv -> (result or NOT_FOUND, the timeout it ran under), from ``prefetch``
        self._prefetched: dict[tuple[str, ...], tuple[CommandResult | str, float]] = {}
        if sudo:
            self._files.check_sudo()

    @classmethod
    def open(
        cls,
        destination: str,
        options: SSHOptions | None = None,
        *,
        name: str | None = None,
        user: str | None = None,
        port: int | None = None,
        sudo: bool = False,
        sftp_sessions: int = DEFAULT_SFTP_SESSIONS,
    ) -> SSHHost:
        """Log in to ``destination`` (a name the SSH config may know) and wrap the connection.

        Raises ConnectError (a HostError) saying why the host could not be audited.
        """
        options = options or SSHOptions()
        connection = connect(resolve(destination, options, user=user, port=port), options)
        try:
            return cls(connection, name or destination, sudo=sudo, sftp_sessions=sftp_sessions)
        except BaseException:
            connection.close()
            raise

    def close(self) -> None:
        """End the connection; operations still under way fail at once (a HostError)."""
        self._files.close()
        self.connection.close()

    def __enter__(self) -> SSHHost:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- files ---------------------------------------------------------------------------

    def read_bytes(self, path: str, limit: int | None = None) -> bytes:
        with host_errors(path):
            return self._files.read(path, limit)

    def stat(self, path: str, follow_symlinks: bool = True) -> FileStat:
        with host_errors(path):
            link = self._files.stat(path, follow_symlinks=False)
            is_link = statlib.S_ISLNK(link.st_mode or 0)
            info = self._files.stat(path) if follow_symlinks and is_link else link
        uid, gid = info.st_uid or 0, info.st_gid or 0
        return FileStat(
            path=path,
            mode=statlib.S_IMODE(info.st_mode or 0),
            uid=uid,
            gid=gid,
            owner=self._account_names.name("/etc/passwd", uid),
            group=self._account_names.name("/etc/group", gid),
            size=info.st_size or 0,
            mtime=float(info.st_mtime or 0),
            is_dir=statlib.S_ISDIR(info.st_mode or 0),
            is_file=statlib.S_ISREG(info.st_mode or 0),
            is_link=is_link,
        )

    def glob(self, pattern: str) -> list[str]:
        with host_errors(pattern):
            return self._files.glob(pattern)

    def readlink(self, path: str) -> str:
        with host_errors(path):
            return self._files.readlink(path)

    def listdir(self, path: str) -> list[str]:
        with host_errors(path):
            return sorted(self._files.listdir(path))

    # --- commands ------------------------------------------------------------------------

    def which(self, program: str) -> str | None:
        for directory in REMOTE_PATH:
            path = f"{directory}/{program}"
            try:
                info = self._files.stat(path)
            except OSError:
                continue
            if statlib.S_ISREG(info.st_mode or 0) and (info.st_mode or 0) & 0o111:
                return path
        return None

    def run(self, argv: Sequence[str], timeout: float = DEFAULT_COMMAND_TIMEOUT) -> CommandResult:
        fetched, within = self._prefetched.get(tuple(argv), (None, 0.0))
        if fetched is not None and within <= timeout:  # it ended within the time asked
            if fetched == NOT_FOUND:
                raise CommandNotFound(f"{argv[0]}: command not found")
            return fetched
        program = argv[0] if "/" in argv[0] else self.which(argv[0])
        if program is None or (program == argv[0] and not self.exists(program)):
            raise CommandNotFound(f"{argv[0]}: command not found")
        code, stdout, stderr = self._command([program, *argv[1:]], timeout)
        return CommandResult(
            tuple(argv),
            code,
            stdout.decode("utf-8", errors="replace"),
            stderr.decode("utf-8", errors="replace"),
        )

    def prefetch(self, commands: Sequence[PlannedCommand]) -> None:
        """Run ``commands`` in one exec (``checks.ssh_batch``); ``run`` then answers from
        their results. Whatever the batch cannot vouch for (it failed, a command timed out
        or its program was not plainly found) runs alone when asked, as without it."""
        planned = [c for c in dict.fromkeys(commands) if tuple(c.argv) not in self._prefetched]
        if not planned:
            return
        script = batch_script(planned, REMOTE_PATH, _KILL_AFTER)
        argv = ["sh", "-c", script, "sh", *batch_words(planned)]
        budget = sum(c.timeout + _KILL_AFTER for c in planned)
        try:
            code, archive, _ = self._command(argv, budget)
            results = batch_results(planned, archive) if code == 0 else {}
        except (HostError, tarfile.TarError):
            return
        for command, result in results.items():
            self._prefetched[tuple(command.argv)] = (result, command.timeout)

    def _command(
        self, argv: Sequence[str], timeout: float, stdin: bytes = b""
    ) -> tuple[int, bytes, bytes]:
        """Exit code, stdout and stderr of ``argv`` (its program found by the remote PATH
        unless a path), under sudo if asked, in the C locale; raises HostError past
        ``timeout``."""
        # coreutils timeout ends the command on the host too, not only our wait for it
        remote = [*self._sudo, "env", "LC_ALL=C", "timeout", "-k", str(_KILL_AFTER),
                  f"{timeout:g}", *argv]  # fmt: skip
        begin = time.monotonic()
        try:
            code, stdout, stderr = self._exec(shlex.join(remote), timeout + _KILL_AFTER + 3, stdin)
        except TimeoutError:
            code, stdout, stderr = 124, b"", b""
        if code in (124, 137) and time.monotonic() - begin >= timeout:
            raise HostError(f"{argv[0]}: timed out after {timeout:g}s")
        return code, stdout, stderr

    def _exec(self, command: str, timeout: float, stdin: bytes = b"") -> tuple[int, bytes, bytes]:
        """Exit code, stdout and stderr of one command; raises TimeoutError past ``timeout``.
        ``stdin`` goes to the command whole before its output is read: keep it well under
        the channel's window (2 MiB)."""
        deadline = time.monotonic() + timeout
        with _ssh_errors(self.connection):
            channel = self._gate.open(self._new_session, self._files.reclaim)
            try:
                channel.exec_command(command)
                channel.sendall(stdin)
                channel.shutdown_write()  # then end of file, as LocalHost's /dev/null
                stdout, stderr = bytearray(), bytearray()
                channel.settimeout(0.05)
                while True:
                    try:
                        chunk = channel.recv(_CHUNK)
                    except TimeoutError:
                        chunk = None
                    while channel.recv_stderr_ready():
                        stderr += channel.recv_stderr(_CHUNK)
                    if chunk == b"":
                        break
                    stdout += chunk or b""
                    if time.monotonic() > deadline:
                        raise TimeoutError(command)
                channel.settimeout(max(0.1, deadline - time.monotonic()))
                while chunk := channel.recv_stderr(_CHUNK):
                    stderr += chunk
                if not channel.status_event.wait(max(0.1, deadline - time.monotonic())):
                    raise TimeoutError(command)
                return channel.recv_exit_status(), bytes(stdout), bytes(stderr)
            finally:
                channel.close()
                self._gate.release()

    def _new_session(self) -> paramiko.Channel:
        return self.connection.transport.open_session(timeout=IO_TIMEOUT)

    def take_snapshot(self, layout: Layout = AUDIT_LAYOUT) -> bool:
        """Fetch the configuration trees in two commands (``checks.ssh_snapshot``) and answer
        file questions from them from now on, where they can; the files are then seen as
        they were now. False, and every question asked over SFTP as before, when the host
        cannot give a snapshot (no GNU find or tar, an error not understood)."""
        try:
            code, listing, errors = self._command(layout.find_argv(), SNAPSHOT_TIMEOUT)
            if code not in (0, 1):  # 1: some directory could not be read (it is not used)
                return False
            snapshot = Snapshot(listing, errors.decode("utf-8", errors="replace"), layout)
            names = snapshot.wanted()
            if names:
                request = b"".join(name.encode() + b"\0" for name in names)
                code, archive, _ = self._command(TAR_ARGV, SNAPSHOT_TIMEOUT, request)
                if code == 0:  # else no contents: every file is read over SFTP
                    snapshot.add_contents(archive)
        except (HostError, ValueError, tarfile.TarError):
            return False
        self._files.snapshot = snapshot
        return True

    # --- sockets, processes, probes ------------------------------------------------------

    def listening_sockets(self) -> list[ListeningSocket]:
        sockets = parse_ss(self._facts(SS_ARGV))
        if any(s.pid is None for s in sockets):  # no right to see some owners: who may it be?
            by_uid = names_by_uid(parse_ps(self._facts(PS_ARGV)))
            sockets = [
                replace(s, candidates=by_uid.get(s.uid, ())) if s.pid is None else s
                for s in sockets
            ]
        return sorted(set(sockets), key=lambda s: (s.proto, s.port, s.address, s.pid or 0))

    def processes(self) -> list[ProcessInfo]:
        return [process for process, _ in parse_ps(self._facts(PS_ARGV))]

    def _facts(self, argv: Sequence[str]) -> str:
        done = self.run(argv)
        if done.exit_code != 0:
            raise HostError(f"{shlex.join(argv)} exited {done.exit_code}: {done.stderr.strip()}")
        return done.stdout

    def reach(self, target: Target) -> Target:
        return replace(target, via=self._tunnel)

    def _tunnel(self, host: str, port: int, timeout: float) -> socket.socket:
        """A local socket connected, through the SSH connection, to host:port as the
        host reaches it; raises OSError like a direct connection would."""
        import paramiko

        try:
            channel = self.connection.transport.open_channel(
                "direct-tcpip", (host, port), ("127.0.0.1", 0), timeout=timeout
            )
        except paramiko.ChannelException as exc:
            if exc.code == paramiko.common.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED:
                raise PermissionError(
                    errno.EACCES,
                    f"{self.name} refuses TCP forwarding (AllowTcpForwarding), so the port "
                    "cannot be probed as the host sees it",
                ) from exc
            refused = os.strerror(errno.ECONNREFUSED)
            raise ConnectionRefusedError(errno.ECONNREFUSED, refused) from exc
        except (paramiko.SSHException, ConnectError, EOFError) as exc:
            raise ConnectionResetError(errno.ECONNRESET, f"SSH connection: {exc}") from exc
        ours, theirs = socket.socketpair()
        ours.settimeout(timeout)
        threading.Thread(
            target=_relay, args=(theirs, channel), name="lappguard-ssh-tunnel", daemon=True
        ).start()
        return ours

    def _open_sftp(self, server: str, as_root: bool) -> paramiko.SFTPClient:
        """An SFTP session, its channel counted by the gate (the caller releases it when
        it closes the client)."""
        import paramiko

        with _ssh_errors(self.connection):
            channel = self._gate.open(self._new_session, self._files.reclaim)
            try:
                channel.settimeout(IO_TIMEOUT)
                if as_root:
                    channel.exec_command(shlex.join(["sudo", "-n", "--", server]))
                else:
                    channel.invoke_subsystem("sftp")
                return paramiko.SFTPClient(channel)
            except BaseException as exc:
                said = channel.recv_stderr(4096).decode("utf-8", "replace").strip()
                channel.close()
                self._gate.release()
                if as_root and isinstance(exc, (paramiko.SSHException, EOFError)):
                    raise ConnectError(
                        f"{self.connection.endpoint}: sudo -n {server} failed: {said or exc}"
                    ) from exc
                raise


class _SessionGate:
    """Opens a host's session channels (exec, SFTP) within what its sshd allows.

    sshd refuses a session beyond ``MaxSessions`` (OpenSSH: "open failed", code 2), and a
    server hardened as our own baseline asks (LAPP-SSH-022) allows 2 or even 1. A session
    refused while we hold others teaches the limit: the sessions we hold then. Past it, a
    new session first closes an idle SFTP session of ours (``reclaim``), else waits for one
    of ours to close; the SFTP pool closes a session it would keep idle while one waits.
    sshd frees a closed session's slot a moment after our close, so a refusal while we
    hold none is retried for REFUSED_GRACE seconds before it counts.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._held = 0
        self._limit: int | None = None
        self._waiting = 0

    @property
    def contended(self) -> bool:
        with self._changed:
            return self._waiting > 0

    def open(self, open_session: Callable[[], T], reclaim: Callable[[], bool]) -> T:
        """``open_session()`` once a session may be opened; raises HostError when none
        frees up within IO_TIMEOUT, and whatever else ``open_session`` raises."""
        import paramiko

        started = time.monotonic()
        while True:
            with self._changed:
                free = self._limit is None or self._held < self._limit
                if free:
                    self._held += 1
            if free:
                try:
                    return open_session()
                except paramiko.ChannelException:
                    with self._changed:
                        self._held -= 1
                        self._changed.notify()
                        if self._held > 0:
                            self._limit = self._held  # the server's MaxSessions
                        elif time.monotonic() - started > REFUSED_GRACE:
                            raise  # refused with none of ours open: not a limit of ours
                    self._wait(0.02)
                    continue
                except BaseException:
                    self.release()
                    raise
            if reclaim():
                continue
            if time.monotonic() - started > IO_TIMEOUT:
                raise HostError(
                    f"no SSH session free after {IO_TIMEOUT:g}s (MaxSessions {self._limit})"
                )
            self._wait(0.5)

    def _wait(self, seconds: float) -> None:
        """Until one of our sessions closes, or ``seconds`` pass."""
        with self._changed:
            self._waiting += 1
            self._changed.wait(seconds)
            self._waiting -= 1

    def release(self) -> None:
        """A session opened through ``open`` has closed."""
        with self._changed:
            self._held -= 1
            self._changed.notify()


class _SFTPFiles(GlobMatcher):
    """File operations over a few SFTP sessions, each used by one thread at a time (an SFTP
    client answers requests in order and is not safe to share). Raises OSError."""

    def __init__(self, opener, server: str, sessions: int, gate: _SessionGate):
        self._open = opener
        self._server = server
        self._gate = gate
        self._idle: queue.LifoQueue = queue.LifoQueue()
        self._slots = threading.Semaphore(max(1, sessions))
        self._all: list = []
        self._lock = threading.Lock()
        self.as_root = False
        self.closed = False
        #: Answers what it can without a request (SSHHost.take_snapshot).
        self.snapshot: Snapshot | None = None

    def check_sudo(self) -> None:
        """Switch to root's SFTP server; raises ConnectError when sudo -n refuses."""
        self.as_root = True
        with self._session():
            pass

    @contextmanager
    def _session(self) -> Iterator[paramiko.SFTPClient]:
        import paramiko

        with self._slots:
            try:
                client = self._idle.get_nowait()
            except queue.Empty:
                client = self._open(self._server, self.as_root)
                with self._lock:
                    self._all.append(client)
            try:
                yield client
            except (paramiko.SSHException, EOFError) as exc:
                self._discard(client)  # a session that failed mid-request is not reused
                raise ConnectionResetError(errno.ECONNRESET, f"SSH connection lost: {exc}") from exc
            except BaseException as exc:
                if client.get_channel().closed:  # paramiko: OSError "Socket is closed"
                    self._discard(client)
                    lost = f"SFTP session lost: {exc}"
                    raise ConnectionResetError(errno.ECONNRESET, lost) from exc
                self._put_back(client)  # a refused request leaves the session usable
                raise
            self._put_back(client)

    def _put_back(self, client: paramiko.SFTPClient) -> None:
        """Keep a session for the next request, unless another channel waits for its slot."""
        if self._gate.contended:
            self._discard(client)
        else:
            self._idle.put(client)

    def _discard(self, client: paramiko.SFTPClient) -> None:
        client.close()
        self._gate.release()

    def reclaim(self) -> bool:
        """Close an idle session so that its slot serves another channel; False if none."""
        try:
            client = self._idle.get_nowait()
        except queue.Empty:
            return False
        self._discard(client)
        return True

    def close(self) -> None:
        with self._lock:
            self.closed = True
            for client in self._all:
                client.close()

    def _ask(self, request: Callable[[paramiko.SFTPClient], T]) -> T:
        """``request`` on a session; once more on a fresh session when the first one died
        under it (every request here only reads, so asking twice changes nothing)."""
        try:
            with self._session() as sftp:
                return request(sftp)
        except ConnectionResetError:
            if self.closed:
                raise
            with self._session() as sftp:
                return request(sftp)

    def stat(self, path: str, follow_symlinks: bool = True) -> paramiko.SFTPAttributes:
        known = self.snapshot and self.snapshot.stat(path, follow_symlinks)
        if known is not None:
            return known
        return self._ask(lambda sftp: _kernel(sftp.stat if follow_symlinks else sftp.lstat, path))

    def listdir(self, path: str) -> list[str]:
        known = self.snapshot and self.snapshot.listdir(path)
        if known is not None:
            return known
        return self._ask(lambda sftp: _kernel(sftp.listdir, path))

    def readlink(self, path: str) -> str:
        target = self.snapshot and self.snapshot.readlink(path)
        if target is None:
            target = self._ask(lambda sftp: _kernel(sftp.readlink, path))
        if target is None:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        return target

    def read(self, path: str, limit: int | None = None) -> bytes:
        """As ``FileSystem.read``: a regular file, whole up to MAX_READ_BYTES, or its head."""
        wanted = MAX_READ_BYTES + 1 if limit is None else limit
        data = self.snapshot and self.snapshot.read(
            path, lambda info: refuse_unreadable(path, info.st_mode, info.st_size, limit)
        )
        if data is not None:
            return data[:wanted]
        data = self._ask(lambda sftp: _read(sftp, path, limit))
        if limit is None and len(data) > MAX_READ_BYTES:  # it grew while being read
            raise too_large(path, len(data))
        return data


def _read(sftp: paramiko.SFTPClient, path: str, limit: int | None) -> bytes:
    info = _kernel(sftp.stat, path)
    refuse_unreadable(path, info.st_mode or 0, info.st_size or 0, limit)
    wanted = MAX_READ_BYTES + 1 if limit is None else limit
    with _as_kernel_says(), sftp.open(path, "rb") as handle:
        if (info.st_size or 0) > _CHUNK:
            handle.prefetch(min(info.st_size, wanted))  # pipelined, not 1 RTT per 32K
        return handle.read(wanted)


def _kernel(call: Callable[[str], T], path: str) -> T:
    with _as_kernel_says():
        return call(path)


@contextmanager
def _as_kernel_says() -> Iterator[None]:
    """SFTP errors worded as the kernel words them, so a remote host's errors read as a local
    one's: paramiko keeps the server's text ("No such file"), and sftp-server answers
    "bad message", without an errno, where the kernel said EINVAL (readlink of no link)."""
    try:
        yield
    except OSError as exc:
        if exc.errno is not None:
            raise OSError(exc.errno, os.strerror(exc.errno)) from exc
        if str(exc) == "Bad message":
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL)) from exc
        raise


@contextmanager
def _ssh_errors(connection: Connection) -> Iterator[None]:
    """A lost or refused channel becomes a HostError naming the host."""
    import paramiko

    try:
        yield
    except (paramiko.SSHException, EOFError) as exc:
        raise HostError(f"{connection.endpoint}: SSH connection: {exc or 'closed'}") from exc


def _relay(sock: socket.socket, channel: paramiko.Channel) -> None:
    """Copy bytes both ways until either side closes, then close both."""
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ, channel)
    selector.register(channel, selectors.EVENT_READ, sock)
    channel.settimeout(IO_TIMEOUT)
    sock.settimeout(IO_TIMEOUT)
    try:
        while True:
            events = selector.select(IO_TIMEOUT)
            if not events:
                return
            for key, _ in events:
                data = key.fileobj.recv(_CHUNK)
                if not data:
                    return
                key.data.sendall(data)
    except (OSError, EOFError):
        return
    finally:
        selector.close()
        sock.close()
        with suppress(EOFError):  # the connection is gone (the audit was cut off): so is it
            channel.close()

"""The fail2ban socket client: what a real fail2ban-server sends is read, a hostile one is refused.

The hostile servers are fakes served by the test on real unix sockets, since a real
fail2ban-server never sends a malicious pickle, runs as nobody or stays silent. Everything
the allow-list admits is checked against a real fail2ban-server, whose answers it must read.
"""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from conftest import require_program, require_root
from fail2ban_server import JAIL, Fail2banServer, running_fail2ban
from namespaces import network_namespace

from agent.firewall import FirewallError
from agent.firewall.fail2ban_protocol import (
    CLOSE,
    END,
    CommandError,
    Fail2banError,
    UnknownJailException,
    connect,
    loads_answer,
)

NOBODY = 65534
SYSTEM_PYTHON = "/usr/bin/python3"  # fail2ban's own interpreter, runnable by nobody
#: An answer never comes in time for these tests: short, so a failing test does not hang.
TIMEOUT = 2.0

Reply = Callable[[list[str]], bytes | None]


def answer(value: object, status: int = 0) -> bytes:
    return pickle.dumps((status, value))


def fail2ban_like(words: list[str]) -> bytes | None:
    """What fail2ban 1.0.2 answers to the handshake."""
    return answer({"ping": "pong", "version": "1.0.2"}.get(words[0]))


@contextmanager
def fake_server(path: Path, reply: Reply) -> Iterator[Path]:
    """A unix socket at ``path`` answering each request with ``reply(words)`` + END; None
    means never answer (the connection stays open until the test ends)."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(4)
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)
            data = b""
            while chunk := _recv(conn):
                data += chunk
                while END in data:
                    request, data = data.split(END, 1)
                    if request == CLOSE:
                        break
                    response = reply(pickle.loads(request))  # our own client's request
                    if response is not None:
                        conn.sendall(response + END)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield path
    finally:
        listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() the thread waits in
        listener.close()
        for conn in held:
            with suppress(OSError):  # the client may have hung up already
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        thread.join(5)


def _recv(conn: socket.socket) -> bytes:
    try:
        return conn.recv(65536)
    except OSError:  # the client went away, or the test ends
        return b""


@pytest.fixture
def private_dir(tmp_path: Path) -> Path:
    """A root-owned directory no one else can write: where a genuine socket would be."""
    require_root()
    directory = tmp_path / "run"
    directory.mkdir(mode=0o755)
    return directory


class RunsCommand:
    """Unpickles into ``os.system(command)``: what a hostile server would send."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.command,))


def test_a_malicious_pickle_is_refused_and_nothing_runs(private_dir: Path) -> None:
    marker = private_dir / "pwned"

    def hostile(words: list[str]) -> bytes:
        return answer(RunsCommand(f"touch {marker}"))

    with (
        fake_server(private_dir / "f2b.sock", hostile) as path,
        pytest.raises(FirewallError, match=r"forbidden global posix\.system"),
    ):
        connect(str(path), TIMEOUT)
    assert not marker.exists()


def test_a_malicious_pickle_after_the_handshake_is_refused(private_dir: Path) -> None:
    marker = private_dir / "pwned"

    def hostile_later(words: list[str]) -> bytes | None:
        if words[0] == "get":
            return answer([RunsCommand(f"touch {marker}")])
        return fail2ban_like(words)

    with (
        fake_server(private_dir / "f2b.sock", hostile_later) as path,
        connect(str(path), TIMEOUT) as connection,
        pytest.raises(Fail2banError, match="forbidden global"),
    ):
        connection.call("get", JAIL, "banip")
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(pickle.dumps((0, eval)), id="builtins.eval"),
        pytest.param(pickle.dumps((0, getattr)), id="builtins.getattr"),
        pytest.param(pickle.dumps((0, subprocess.Popen)), id="subprocess.Popen"),
        pytest.param(b"\x80\x04c__builtin__\nexec\n.", id="__builtin__.exec"),
        pytest.param(b"\x80\x04P1\n.", id="persistent id"),
    ],
)
def test_only_the_allowed_globals_are_built(payload: bytes) -> None:
    with pytest.raises(Fail2banError, match=r"forbidden global|persistent id"):
        loads_answer(payload)


def test_garbage_is_an_error_not_a_crash() -> None:
    with pytest.raises(Fail2banError, match="unreadable answer"):
        loads_answer(b"\x80\x04not a pickle")


def test_a_socket_owned_by_another_user_is_refused(private_dir: Path) -> None:
    with fake_server(private_dir / "f2b.sock", fail2ban_like) as path:
        os.chown(path, NOBODY, NOBODY)
        with pytest.raises(FirewallError, match=f"belongs to uid {NOBODY}, not root"):
            connect(str(path), TIMEOUT)


def test_a_socket_in_a_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    require_root()
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with (
        fake_server(shared / "f2b.sock", fail2ban_like) as path,
        pytest.raises(FirewallError, match="can be changed by users other than root"),
    ):
        connect(str(path), TIMEOUT)


def test_a_server_running_as_another_user_is_refused(private_dir: Path) -> None:
    """Its socket file made to look like root's: the peer credentials still tell."""
    script = (
        "import socket, sys, time\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "s.bind(sys.argv[1])\n"
        "s.listen(4)\n"
        "time.sleep(60)\n"
    )
    # Somewhere nobody can bind; the system's python, which nobody may run. The temporary
    # directory (not tmp_path, which only root may enter) is on tmp_path's file system.
    with tempfile.TemporaryDirectory() as drop:
        os.chmod(drop, 0o777)
        bound = Path(drop) / "f2b.sock"
        server = subprocess.Popen([SYSTEM_PYTHON, "-c", script, str(bound)], user=NOBODY)
        try:
            deadline = time.monotonic() + 10
            while not bound.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            genuine_looking = private_dir / "f2b.sock"
            os.rename(bound, genuine_looking)
            os.chown(genuine_looking, 0, 0)
            with pytest.raises(FirewallError, match=f"runs as uid {NOBODY}, not root"):
                connect(str(genuine_looking), TIMEOUT)
        finally:
            server.kill()
            server.wait()


def test_a_server_that_never_answers_times_out(private_dir: Path) -> None:
    with (
        fake_server(private_dir / "f2b.sock", lambda words: None) as path,
        pytest.raises(FirewallError, match="did not answer in time"),
    ):
        connect(str(path), 0.5)


def test_a_server_that_hangs_up_is_an_error(private_dir: Path) -> None:
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(private_dir / "f2b.sock"))
    listener.listen(1)

    def accept_and_close() -> None:
        conn, _ = listener.accept()
        conn.close()

    thread = threading.Thread(target=accept_and_close)
    thread.start()
    try:
        with pytest.raises(FirewallError, match=r"closed the connection|Broken pipe|reset"):
            connect(str(private_dir / "f2b.sock"), TIMEOUT)
    finally:
        thread.join()
        listener.close()


def test_an_unsupported_version_is_refused(private_dir: Path) -> None:
    def old(words: list[str]) -> bytes:
        return answer({"ping": "pong", "version": "0.9.6"}[words[0]])

    with (
        fake_server(private_dir / "f2b.sock", old) as path,
        pytest.raises(FirewallError, match=r"'0\.9\.6'.*fail2ban 1\.x"),
    ):
        connect(str(path), TIMEOUT)


def test_something_else_than_fail2ban_is_refused(private_dir: Path) -> None:
    with (
        fake_server(private_dir / "f2b.sock", lambda words: answer("hello")) as path,
        pytest.raises(FirewallError, match="does not answer ping like fail2ban-server"),
    ):
        connect(str(path), TIMEOUT)


@pytest.fixture(scope="module")
def real_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fail2banServer]:
    require_root()
    require_program("fail2ban-server")
    with (
        network_namespace() as namespace,
        running_fail2ban(namespace, tmp_path_factory.mktemp("fail2ban")) as server,
    ):
        yield server


def test_what_a_real_server_answers_is_read(real_server: Fail2banServer) -> None:
    """Results (lists of fail2ban's IPAddr, tuples, ints) and the exceptions it raises."""
    with connect(str(real_server.socket), TIMEOUT) as connection:
        assert connection.version.startswith("1.")
        assert connection.call("set", JAIL, "banip", "192.0.2.1", "2001:db8::/64") == 2
        assert connection.call("get", JAIL, "banip") == ["192.0.2.1", "2001:db8::/64"]
        assert ("Currently banned", 2) in connection.call("status", JAIL)[1][1]
        assert connection.call("set", JAIL, "unbanip", "192.0.2.1", "2001:db8::/64") == 2
        with pytest.raises(CommandError) as unknown:
            connection.call("get", "no-such-jail", "banip")
        assert isinstance(unknown.value.exception, UnknownJailException)
        with pytest.raises(CommandError, match="Invalid command"):
            connection.call("no-such-command")
        with pytest.raises(CommandError, match="not banned"):
            connection.call("set", JAIL, "unbanip", "--report-absent", "192.0.2.1")

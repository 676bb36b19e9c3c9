"""A client for fail2ban-server's control socket that a hostile socket cannot run code in.

The wire format, read from fail2ban 1.0's ``client/csocket.py`` and ``server/asyncserver.py``:
the client sends ``pickle([word, ...]) + END``; the server answers ``pickle((status, value))
+ END``, status 0 with the command's result, 1 with the exception the command raised (or a
bare ``"ERROR: ..."`` string when it could not read the request). One connection carries any
number of commands; ``CLOSE + END`` ends it. There is no framing beyond the terminator.

Unpickling what a socket sends runs code chosen by the peer, so before a byte is read the
socket must belong to root, twice over: the socket file and its directory are root's (and no
one else can replace the file), and the process listening on it is root (``SO_PEERCRED``). The
answer is then read by :class:`AnswerUnpickler`, which builds only containers, strings and
numbers plus the few classes listed in ``ALLOWED_GLOBALS``. Every wait has a deadline.
"""

from __future__ import annotations

import io
import os
import pickle
import socket
import stat
import struct
import time
from collections.abc import Sequence
from typing import Any

from agent.firewall.base import FirewallError

END = b"<F2B_END_COMMAND>"
CLOSE = b"<F2B_CLOSE_COMMAND>"
#: Longest answer read (a list of 100,000 bans is about 3 MB); more is not fail2ban.
MAX_ANSWER = 64 * 1024 * 1024
#: Requests use pickle protocol 4 (Python 3.4+), which any fail2ban 1.x server reads.
REQUEST_PROTOCOL = 4
#: fail2ban major versions whose protocol this client speaks (written against 1.0.2).
SUPPORTED_MAJOR = "1"


class Fail2banError(FirewallError):
    """Talking to fail2ban-server failed: refused socket, no server, timeout, bad answer."""


class CommandError(Fail2banError):
    """fail2ban-server ran the command and the command raised ``exception``."""

    def __init__(self, command: Sequence[str], exception: object):
        self.exception = exception
        super().__init__(f"fail2ban-server refused {' '.join(command[:3])!r}: {exception!r}")


class UnknownJailException(KeyError):
    """Stand-in for ``fail2ban.exceptions.UnknownJailException`` (fail2ban is not imported)."""


class DuplicateJailException(Exception):
    """Stand-in for ``fail2ban.exceptions.DuplicateJailException``."""


#: The exception classes a command may raise on the server (``Transmitter`` and ``Server``:
#: "Invalid command" is a bare Exception, a missing argument an IndexError, an address not
#: banned a ValueError, an unknown action attribute an AttributeError, ...). Building one only
#: stores its arguments, so none of them can run code.
_BUILTIN_EXCEPTIONS = (
    Exception, ValueError, KeyError, IndexError, TypeError, AttributeError, RuntimeError, OSError,
)  # fmt: skip

#: Everything an answer may name, and what we build for it. Nothing else is ever looked up.
ALLOWED_GLOBALS: dict[tuple[str, str], type] = {
    # fail2ban's IPAddr pickles itself as ``str(text)`` so that clients need not import it
    # (IPAddr.__reduce__): ``get <jail> banip`` answers with a list of those.
    ("builtins", "str"): str,
    **{("builtins", cls.__name__): cls for cls in _BUILTIN_EXCEPTIONS},
    # fail2ban's own exceptions for jail names, rebuilt as local look-alikes.
    ("fail2ban.exceptions", "UnknownJailException"): UnknownJailException,
    ("fail2ban.exceptions", "DuplicateJailException"): DuplicateJailException,
}


class AnswerUnpickler(pickle.Unpickler):
    """Reads a pickle that may only name the classes in ``ALLOWED_GLOBALS``."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[module, name]
        except KeyError:
            raise Fail2banError(
                f"fail2ban-server answered with a forbidden global {module}.{name}: refused"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise Fail2banError("fail2ban-server answered with a persistent id: refused")


def loads_answer(data: bytes) -> Any:
    """The object a server's pickle holds, built by :class:`AnswerUnpickler` only."""
    try:
        return AnswerUnpickler(io.BytesIO(data)).load()
    except Fail2banError:
        raise
    except Exception as e:  # a truncated or garbled pickle raises almost anything
        raise Fail2banError(f"fail2ban-server sent an unreadable answer: {e}") from None


def check_socket_owner(path: str) -> None:
    """Refuse a socket that someone other than root could have put or be serving there."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise Fail2banError(f"no fail2ban-server socket at {path} (is fail2ban running?)") from None
    except OSError as e:
        raise Fail2banError(f"cannot inspect {path}: {e.strerror}") from None
    if not stat.S_ISSOCK(st.st_mode):
        raise Fail2banError(f"{path} is not a socket")
    if st.st_uid != 0:
        raise Fail2banError(f"{path} belongs to uid {st.st_uid}, not root: refused")
    directory = os.path.dirname(os.path.abspath(path))
    dst = os.stat(directory)  # the directory the socket is really in (/var/run -> /run)
    writable_by_others = dst.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if dst.st_uid != 0 or (writable_by_others and not dst.st_mode & stat.S_ISVTX):
        raise Fail2banError(
            f"{directory} (holding {path}) can be changed by users other than root: refused"
        )


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process that listens on the other end of a connected unix socket."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


class Fail2banConnection:
    """One checked connection to fail2ban-server; :meth:`call` sends a command, returns its result.

    Use :func:`connect`, which checks the socket's owner and the server's version first.
    """

    def __init__(self, sock: socket.socket, path: str, timeout: float):
        self._sock = sock
        self.path = path
        self.timeout = timeout
        self.version = ""

    def call(self, *words: str, timeout: float | None = None) -> Any:
        """Run one command; its result, or :class:`CommandError` with the server's exception.

        ``timeout`` bounds the whole exchange (default: the connection's); fail2ban runs a
        ban's actions before it answers, so a long ``banip`` needs a longer one.
        """
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        self._send(pickle.dumps(list(words), REQUEST_PROTOCOL) + END, deadline)
        answer = loads_answer(self._receive(deadline))
        if isinstance(answer, str):  # the server could not read our request
            raise Fail2banError(f"fail2ban-server: {answer}")
        if not (isinstance(answer, tuple) and len(answer) == 2 and answer[0] in (0, 1)):
            raise Fail2banError(f"fail2ban-server sent an unexpected answer {answer!r:.80}")
        status, value = answer
        if status == 1:
            raise CommandError(words, value)
        return value

    def close(self) -> None:
        """Say goodbye as fail2ban's own client does, then close; never raises."""
        try:
            self._sock.settimeout(1.0)
            self._sock.sendall(CLOSE + END)
        except OSError:
            pass
        self._sock.close()

    def __enter__(self) -> Fail2banConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, data: bytes, deadline: float) -> None:
        try:
            self._sock.settimeout(_remaining(deadline, self.path))
            self._sock.sendall(data)
        except TimeoutError:
            raise Fail2banError(f"fail2ban-server at {self.path} does not read") from None
        except OSError as e:
            raise Fail2banError(f"sending to fail2ban-server at {self.path}: {e}") from None

    def _receive(self, deadline: float) -> bytes:
        data = bytearray()
        while not data.endswith(END):
            try:
                self._sock.settimeout(_remaining(deadline, self.path))
                chunk = self._sock.recv(1 << 16)
            except TimeoutError:
                raise Fail2banError(
                    f"fail2ban-server at {self.path} did not answer in time"
                ) from None
            except OSError as e:
                raise Fail2banError(f"reading from fail2ban-server at {self.path}: {e}") from None
            if not chunk:
                raise Fail2banError(f"fail2ban-server at {self.path} closed the connection")
            data += chunk
            if len(data) > MAX_ANSWER:
                raise Fail2banError(f"fail2ban-server at {self.path} sent more than 64 MiB")
        return bytes(data[: -len(END)])


def connect(path: str, timeout: float) -> Fail2banConnection:
    """A connection to the fail2ban-server listening on ``path``, checked before it is used:
    root's socket, root's process, an answer to ``ping`` and a supported ``version``."""
    check_socket_owner(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        reason = "timed out" if isinstance(e, TimeoutError) else e.strerror or str(e)
        raise Fail2banError(f"cannot connect to fail2ban-server at {path}: {reason}") from None
    uid = peer_uid(sock)
    if uid != 0:
        sock.close()
        raise Fail2banError(f"the process serving {path} runs as uid {uid}, not root: refused")
    connection = Fail2banConnection(sock, path, timeout)
    try:
        if connection.call("ping") != "pong":
            raise Fail2banError(f"{path} does not answer ping like fail2ban-server")
        version = connection.call("version")
        if not isinstance(version, str) or version.split(".")[0] != SUPPORTED_MAJOR:
            raise Fail2banError(
                f"fail2ban-server {version!r:.40} at {path}: lappguard speaks the protocol"
                f" of fail2ban {SUPPORTED_MAJOR}.x"
            )
    except Fail2banError:
        connection.close()
        raise
    connection.version = version
    return connection


def _remaining(deadline: float, path: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise Fail2banError(f"fail2ban-server at {path} did not answer in time")
    return left

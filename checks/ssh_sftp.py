"""One SFTP session shared by every check of a host, its requests pipelined.

paramiko's ``SFTPClient`` sends a request, then reads answers until its own comes, dropping
any other thread's answer on the way: a session can serve one check at a time. A host then
needed a session per concurrent check (each a process on the host, started through the
login shell) and paid a round trip per request per session. ``SharedSFTP`` lets every
thread have requests in flight on one session: each request waits for its own answer, and
whichever thread is reading hands every answer to the request it belongs to.

Imported only when a host is audited over SSH (paramiko is not needed otherwise).
"""

from __future__ import annotations

import threading

import paramiko
from paramiko.sftp import CMD_STATUS


class SharedSFTP(paramiko.SFTPClient):
    """An ``SFTPClient`` safe to use from many threads at once.

    Only ``_request`` (every call ``SSHHost`` makes: stat, lstat, listdir, readlink, open,
    read, close) and prefetching reads are shared this way; ``listdir_iter`` and ``readv``
    wait for an answer by number and are refused.
    """

    def __init__(self, channel: paramiko.Channel):
        self._sending = threading.Lock()  # a packet is written whole, never interleaved
        self._turn = threading.Condition()  # guards _reading: one thread reads at a time
        self._reading = False
        super().__init__(channel)  # says hello to the server: needs the locks above

    def _send_packet(self, t: int, packet: paramiko.Message) -> None:
        with self._sending:
            super()._send_packet(t, packet)

    def _request(self, t: int, *args: object) -> tuple[int, paramiko.Message]:
        answer = _Answer()
        self._async_request(answer, t, *args)
        while answer.reply is None:
            self._read_response()
        kind, message = answer.reply
        if kind == CMD_STATUS:
            self._convert_status(message)  # raises the error it carries, as paramiko does
        return kind, message

    def _read_response(self, waitfor: int | None = None) -> tuple[None, None]:
        """Read one answer and hand it to its request, or wait while another thread does.

        Either way the caller then looks whether its own answer has come. A reader that
        fails (connection lost, timeout) raises; the threads waiting on it then read
        themselves and meet the same failure.
        """
        if waitfor is not None:
            raise NotImplementedError("a shared SFTP session answers requests by _request")
        with self._turn:
            if self._reading:
                self._turn.wait()
                return None, None
            self._reading = True
        try:
            super()._read_response()
        finally:
            with self._turn:
                self._reading = False
                self._turn.notify_all()
        return None, None


class _Answer:
    """Where the reading thread puts the answer to one request (paramiko's async hook)."""

    reply: tuple[int, paramiko.Message] | None = None

    def _async_response(self, kind: int, message: paramiko.Message, number: int) -> None:
        self.reply = (kind, message)

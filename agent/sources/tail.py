"""Reading one open inode line by line from a byte offset, and recognising it again later.

A ``Tail`` owns one file descriptor. It hands out complete lines only: bytes after the last
newline wait (at most ``LINE_CAP`` of them are kept) until their newline arrives, so the
position it reports always sits on a line boundary and can be persisted as is.

Identity: (device, inode) says which file an open descriptor is, but inode numbers are
reused after a delete and a truncated file keeps its inode. So a tail also remembers a hash
of the file's first ``head_len`` bytes (up to ``HEAD_BYTES``; fewer while the file is
shorter, extended as it grows after checking the bytes already covered). Same inode and
same head: the same file, continue. Anything else: the file was replaced or truncated.
"""

from __future__ import annotations

import hashlib
import os
import stat as statlib
from dataclasses import dataclass, replace

from agent.sources.base import LINE_CAP, LogLine, cap_line
from agent.state import FilePosition

HEAD_BYTES = 256
CHUNK_BYTES = 256 * 1024


def head_hash(head: bytes) -> bytes:
    return hashlib.blake2b(head, digest_size=16).digest()


@dataclass
class _Cursor:
    """Progress through the file: ``offset`` is on a line boundary, ``read_pos`` >= it."""

    offset: int
    line_no: int
    read_pos: int
    partial: bytes = b""  # the unfinished line so far, bytes offset..read_pos (capped)


class Tail:
    """One open log file (inode), read from a saved position onwards."""

    def __init__(self, fd: int, position: FilePosition) -> None:
        self.fd = fd
        self.path = position.path  # the followed path; names the source of its lines
        self.key = (position.dev, position.ino)
        self.retired = position.retired
        self.active_at: float | None = None  # when a retired tail was retired or last grew
        self._head_len = position.head_len
        self._head_hash = position.head_hash
        self._cur = _Cursor(position.offset, position.line_no, position.offset)

    @classmethod
    def open(cls, path: str) -> Tail | None:
        """Open ``path`` at offset 0, or None when it is gone or not a regular file.

        Other failures (permission denied, I/O error) raise OSError for the caller to report.
        """
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except (FileNotFoundError, NotADirectoryError):
            return None
        st = os.fstat(fd)
        if not statlib.S_ISREG(st.st_mode):
            os.close(fd)
            return None
        tail = cls(fd, FilePosition(path, st.st_dev, st.st_ino, 0, 0, 0, head_hash(b"")))
        tail.matches_head()  # records the head as far as the file goes
        return tail

    def position(self) -> FilePosition:
        """Where reading stopped: just after the last line handed out."""
        return FilePosition(
            self.path, self.key[0], self.key[1], self._cur.offset, self._cur.line_no,
            self._head_len, self._head_hash, self.retired,
        )  # fmt: skip

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def unread(self) -> int:
        """Bytes in the file not yet looked at."""
        return max(0, self.size() - self._cur.read_pos)

    def matches_head(self, position: FilePosition | None = None) -> bool:
        """Does the file still start with the bytes recorded (ours, or a saved position's)?

        Checking our own head also extends it while the file is shorter than HEAD_BYTES.
        """
        want_len = position.head_len if position else self._head_len
        want_hash = position.head_hash if position else self._head_hash
        head = os.pread(self.fd, HEAD_BYTES, 0)
        if len(head) < want_len or head_hash(head[:want_len]) != want_hash:
            return False
        if position is None and len(head) > self._head_len:
            self._head_len, self._head_hash = len(head), head_hash(head)
        return True

    def replaced(self) -> bool:
        """Truncated (copytruncate), or truncated and rewritten past where we were."""
        return self.size() < self._cur.read_pos or not self.matches_head()

    def seek(self, offset: int, line_no: int) -> None:
        """Continue from a line boundary (dropping any partial line read so far)."""
        self._cur = _Cursor(offset, line_no, offset)

    def restart(self) -> None:
        """The file's content was replaced: read it again from its first byte."""
        self._head_len, self._head_hash = 0, head_hash(b"")
        self.seek(0, 0)
        self.matches_head()

    def skip_to_end(self) -> None:
        """Start after the last complete line present now (a first start at the end)."""
        offset = line_no = pos = 0
        while chunk := os.pread(self.fd, CHUNK_BYTES, pos):
            last = chunk.rfind(b"\n")
            if last >= 0:
                line_no += chunk.count(b"\n")
                offset = pos + last + 1
            pos += len(chunk)
        self.seek(offset, line_no)

    def read(self, budget: int) -> list[LogLine]:
        """Up to ``budget`` complete lines from where reading stopped."""
        cur, lines = self._cur, []
        while len(lines) < budget:
            chunk = os.pread(self.fd, CHUNK_BYTES, cur.read_pos)
            if not chunk:
                break
            parts = chunk.split(b"\n")
            pos = cur.read_pos  # file offset of parts[0]
            for part in parts[:-1]:
                if len(lines) == budget:
                    cur.read_pos = cur.offset  # re-read the rest of the chunk next time
                    cur.partial = b""
                    return lines
                data = cap_line(cur.partial + part) if cur.partial else cap_line(part)
                cur.partial = b""
                pos += len(part) + 1
                cur.line_no += 1
                cur.offset = pos
                lines.append(LogLine(self.path, cur.line_no, data, None))
            last = parts[-1]
            if len(cur.partial) < LINE_CAP:
                cur.partial = (cur.partial + last)[:LINE_CAP]  # contiguous, cut later
            cur.read_pos = pos + len(last)
        return lines

    def flush_partial(self) -> LogLine | None:
        """The unfinished last line, handed out as a line when its file is done for good."""
        cur = self._cur
        if cur.read_pos == cur.offset:
            return None
        data, cur.partial = cap_line(cur.partial), b""
        cur.line_no += 1
        cur.offset = cur.read_pos
        return LogLine(self.path, cur.line_no, data, None)

    def with_path(self, path: str, retired: bool, now: float | None = None) -> None:
        self.path, self.retired, self.active_at = path, retired, now

    def close(self) -> None:
        os.close(self.fd)


def open_at(path: str, position: FilePosition) -> Tail | None:
    """Open ``path`` if it is the file ``position`` describes, positioned there; else None."""
    tail = Tail.open(path)
    if tail is None:
        return None
    if tail.key != (position.dev, position.ino) or not _continues(tail, position):
        tail.close()
        return None
    tail.seek(position.offset, position.line_no)
    tail.with_path(position.path, position.retired)
    return tail


def open_copy(path: str, position: FilePosition) -> Tail | None:
    """Open ``path`` if it is a copy of the file ``position`` describes (copytruncate)."""
    tail = Tail.open(path)
    if tail is None:
        return None
    if tail.key == (position.dev, position.ino) or not _continues(tail, position):
        tail.close()
        return None
    return Tail(tail.fd, replace(position, dev=tail.key[0], ino=tail.key[1], retired=True))


def _continues(tail: Tail, position: FilePosition) -> bool:
    return tail.size() >= position.offset and tail.matches_head(position)

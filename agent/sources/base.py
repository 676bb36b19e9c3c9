"""What every log source hands the detector, and the reading contract all sources keep.

Delivery guarantee (the same for every source): lines are handed out in order by
``read_new()`` / ``wait()``; ``commit()`` acknowledges every line handed out so far and
stores the position after the last of them in the state store, in one transaction. A new
source object on the same state store (a restart, or a crash at any instant) resumes just
after the last committed line: nothing committed is delivered again, nothing after it is
skipped. So after a crash (or a ``close()`` without ``commit()``) exactly the lines handed
out since the last ``commit()`` are delivered again; nothing else is ever delivered twice,
and ``commit()`` after every batch makes that at most one batch. Each source documents
the few cases outside its control where lines can be missed (files rotated away and
compressed while the daemon was stopped, journal files vacuumed, ...).

Lines are raw bytes: decoding, NUL and invalid UTF-8 handling belong to the detector, which
inspects at most ``MAX_LINE_CHARS`` characters of a line. To keep memory bounded a source
never holds or delivers more than ``LINE_CAP`` bytes of one line: enough for more than
``MAX_LINE_CHARS`` characters of any UTF-8 text, so the detector still sees (and counts)
that the line was too long. A line is cut on a UTF-8 character boundary, so that cutting
never turns valid text into invalid UTF-8.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

#: The detector inspects at most this many characters of a line (the 16 KiB rule).
MAX_LINE_CHARS = 16 * 1024
#: Bytes of one line a source keeps: even cut back to a character boundary (up to 3 bytes)
#: it holds more than MAX_LINE_CHARS characters of 4-byte UTF-8.
LINE_CAP = 4 * MAX_LINE_CHARS + 4
#: Lines returned by one read_new()/wait() call unless the caller asks otherwise.
DEFAULT_BATCH = 10_000


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line of a log, as bytes without its newline.

    ``line_no`` is the 1-based line number within ``source`` (a file path), or 0 when the
    source has no line numbers (the journal). ``time`` is set only when the source knows
    when the line was logged (journald's ``__REALTIME_TIMESTAMP``, UTC epoch seconds).
    """

    source: str
    line_no: int
    data: bytes
    time: float | None


def cap_line(data: bytes) -> bytes:
    """``data``, or its first LINE_CAP bytes less a UTF-8 character cut in two at the end."""
    if len(data) <= LINE_CAP:
        return data
    cut = data[:LINE_CAP]
    for back in range(1, 4):  # a lead byte in the last 3 bytes whose sequence is incomplete
        byte = cut[-back]
        if byte < 0x80 or byte >= 0xF8:  # ASCII, or never part of UTF-8: nothing to mend
            break
        if byte >= 0xC0:
            needed = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return cut[:-back] if needed > back else cut
    return cut


class SourceError(Exception):
    """A source cannot be set up (bad unit name, journalctl missing, file is compressed)."""


class LogSource(ABC):
    """Follows one log and hands out its new lines; not for concurrent readers.

    Only ``wake()`` may be called from another thread (e.g. a signal handler's thread asking
    a blocked ``wait()`` to return so the daemon can stop or reload).
    """

    def __init__(self, name: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        #: What cannot be read now and why (a path, or "journalctl"), for status and metrics;
        #: the source keeps retrying, and an entry goes away when reading works again.
        self.errors: dict[str, str] = {}
        self._clock = clock
        self._woken = threading.Event()
        self._closed = False

    @abstractmethod
    def read_new(self, max_lines: int = DEFAULT_BATCH) -> list[LogLine]:
        """The lines available now, oldest first, without blocking (may be empty)."""

    def commit(self) -> None:
        """Acknowledge every line handed out so far and persist the position after them.

        After ``close()`` it does nothing: the position saved last stays as it was.
        """
        if not self._closed:
            self._save()

    @abstractmethod
    def _save(self) -> None:
        """Store the position after the last line handed out (if it changed)."""

    @abstractmethod
    def _block(self, timeout: float) -> None:
        """Sleep until new data may be there, ``wake()`` is called, or ``timeout`` passes."""

    @abstractmethod
    def _interrupt(self) -> None:
        """Make a running ``_block()`` return now (called from any thread)."""

    @abstractmethod
    def _release(self) -> None:
        """Free what the source holds open (files, watches, processes)."""

    def wait(self, timeout: float, max_lines: int = DEFAULT_BATCH) -> list[LogLine]:
        """Block until lines arrive (returned at once), ``timeout`` passes or ``wake()``."""
        deadline = self._clock() + timeout
        while not self._closed:
            lines = self.read_new(max_lines)
            if lines or self._woken.is_set():
                self._woken.clear()
                return lines
            remaining = deadline - self._clock()
            if remaining <= 0:
                return []
            self._block(remaining)
        return []

    def lag_bytes(self) -> int | None:
        """Bytes logged but not yet read (None where the source cannot tell: the journal).
        May be called from another thread (metrics)."""
        return None

    def wake(self) -> None:
        """Make a blocked ``wait()`` return soon, with whatever lines are there."""
        self._woken.set()
        self._interrupt()

    def close(self) -> None:
        """Stop following; uncommitted lines will be delivered again by the next source."""
        if not self._closed:
            self._closed = True
            self._release()

    def __enter__(self) -> LogSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""How far a long ``lappguard scan`` has got, on one line of a terminal's stderr.

A scan of a few gigabytes of logs takes minutes; without a sign of life a sysadmin cannot
tell a slow scan from a stuck one. The line (``read 120/800 MB, 1,234,567 lines``) is
redrawn at most every :data:`INTERVAL` seconds and erased before the report, and drawn
only when stderr is a terminal and the input is large: a pipe, a log or a CI job gets the
report and real errors only.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from contextlib import suppress
from typing import TextIO

#: Input (bytes on disk, all files) from which a terminal gets a progress line.
PROGRESS_MIN_BYTES = 50 << 20
#: Seconds between two redraws at least.
INTERVAL = 0.25
_MB = 1 << 20


class ScanProgress:
    """Bytes read of the files' total size on disk, and lines, as the scan reports them
    (:meth:`advance`); :meth:`erase` clears the line (for a warning, or the report), the
    next advance drawing it again."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.stream = stream
        self.done = 0
        self.lines = 0
        self._drawn = time.monotonic()
        self._draw()

    def advance(self, size: int, lines: int) -> None:
        """``size`` more bytes (on disk) and ``lines`` more lines were read."""
        self.done += size
        self.lines += lines
        now = time.monotonic()
        if now - self._drawn >= INTERVAL:
            self._drawn = now
            self._draw()

    def erase(self) -> None:
        self.stream.write("\r\x1b[K")
        self.stream.flush()

    def _draw(self) -> None:
        done = min(self.done, self.total)  # a file may grow while it is read
        line = f"read {done // _MB}/{self.total // _MB} MB, {self.lines:,} lines"
        self.stream.write(f"\r\x1b[K{line}")
        self.stream.flush()


def progress_for(paths: Sequence[str], stream: TextIO) -> ScanProgress | None:
    """A progress line on ``stream`` when it is a terminal and the files (stdin aside,
    ``.gz`` by their compressed size) add up to PROGRESS_MIN_BYTES or more."""
    if not stream.isatty():
        return None
    total = 0
    for path in paths:
        with suppress(OSError):  # a file that cannot be read is reported by the scan
            total += os.path.getsize(path) if path != "-" else 0
    return ScanProgress(total, stream) if total >= PROGRESS_MIN_BYTES else None

"""Following log files by path or glob across rotation, resuming exactly after a restart.

A ``FileSource`` follows inodes, not names: a path (or each path a glob matches) points at
the inode being written now; when the path points elsewhere (rename-and-create rotation,
delete-and-recreate) the old inode is *retired*: it stays open and is drained first, and is
closed only after it found nothing new for ``rotate_grace`` seconds (writers such as Apache
keep writing to the renamed file until they are reloaded). A file that shrinks below what
was read, or whose first bytes change (copytruncate, also truncate-and-regrow between two
looks), is read again from its start, after the unread rest of its content is drained from
the rotated copy (``access.log.1``) when one with the same first bytes is found.

Waking: inotify through ``watchdog`` on the directories involved; a poll every
``poll_interval`` seconds is the safety net (missed events, watches that failed, globs
whose directory part is itself a pattern).

Persistence (``commit()``): (device, inode, offset, line number, head hash) of every open
inode, current and retired. At start each saved inode is looked for at its path, then among
its uncompressed rotated siblings (``path.1``, ``path-20240105``...) by inode and head,
then, for copytruncate, among the siblings by head alone; it is drained from the saved
offset before the file now at the path, which is read from its start.

Beyond the guarantee in ``agent.sources.base``, lines can be missed only when the logs
themselves lose them, or when what we would need was removed while we were not looking:
- a rotated file compressed or deleted before we drained it while lappguard was stopped
  (``lappguard scan`` reads ``.gz`` files), or rotated more than once while stopped (only
  the inode we were in and the file now at the path are read);
- logrotate's ``copytruncate`` window (lines written between its copy and its truncate)
  and a truncated file whose copy is compressed at once or kept in another directory;
- a file truncated and rewritten between two looks with the same first bytes as before.
A first run (no position saved under the source's name) begins at the end of the files
that exist when the source is built (``start_at="end"``) or at their start; files new to a
source that has saved positions, and files appearing later, are read from their first byte.
"""

from __future__ import annotations

import glob as globlib
import logging
import os
import re
import stat as statlib
import threading
import time
from collections.abc import Callable
from fnmatch import fnmatchcase
from typing import Literal

from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from agent.sources.base import DEFAULT_BATCH, LogLine, LogSource, SourceError
from agent.sources.tail import Tail, open_at, open_copy
from agent.state import FilePosition, StateStore

log = logging.getLogger(__name__)

#: Compressed rotations are never followed (their content is final; ``scan`` reads them).
COMPRESSED = re.compile(r"\.(?:gz|xz|bz2|zst|lz4|Z|zip)$")
#: Names a glob match is ignored for: rotated copies of another matched file.
ROTATED = re.compile(r"(?:\.\d+|-\d{8,10})$")
_EVENTS = [FileModifiedEvent, FileCreatedEvent, FileMovedEvent, FileDeletedEvent, FileClosedEvent]

Key = tuple[int, int]


class FileSource(LogSource):
    """Follows ``path_or_glob``; positions are stored in ``state`` under ``name``."""

    def __init__(
        self,
        path_or_glob: str,
        state: StateStore,
        *,
        name: str | None = None,
        start_at: Literal["end", "start"] = "end",
        poll_interval: float = 2.0,
        rotate_grace: float = 60.0,
        use_inotify: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(name or path_or_glob, clock)
        if start_at not in ("end", "start"):
            raise SourceError(f"start_at must be 'end' or 'start', not {start_at!r}")
        self.pattern = os.path.abspath(path_or_glob)
        self.is_glob = globlib.has_magic(self.pattern)
        if not self.is_glob and COMPRESSED.search(self.pattern):
            raise SourceError(f"{self.pattern} is compressed: it is not followed (use scan)")
        self.start_at = start_at
        self.poll_interval = poll_interval
        self.rotate_grace = rotate_grace
        self._state = state
        self._tails: dict[Key, Tail] = {}
        self._current: dict[str, Key] = {}  # path -> the inode written through it now
        self._retired: list[Key] = []  # rotated away, oldest first
        self._paths: list[str] = []
        self._rescan = True
        self._first_scan = True
        self._last_poll = float("-inf")
        self._saved: list[FilePosition] = state.file_positions(self.name)
        self._first_run = not self._saved  # no saved position: start_at applies
        self._signal = threading.Event()
        self._watch_prefixes: tuple[str, ...] = ()
        self._watched: set[str] = set()
        self._observer = Observer() if use_inotify else None
        try:
            self._restore(self._saved)
            if self._observer is not None:
                self._observer.start()
            # the files are found (and, on a first run, their ends taken) now, not at the
            # first read in the reader's thread: the daemon says READY once its sources are
            # built, and a line written between the two would be skipped
            self._scan(self._clock())
        except BaseException:
            self._release()
            raise

    # -- start ---------------------------------------------------------------------------

    def _restore(self, positions: list[FilePosition]) -> None:
        for position in positions:
            tail = self._find(position)
            if tail is None:
                log.warning(
                    "%s: %s (inode %d) is gone; lines after byte %d of it are not read",
                    self.name, position.path, position.ino, position.offset,
                )  # fmt: skip
                continue
            self._tails[tail.key] = tail
            if tail.retired:
                self._retired.append(tail.key)
            else:
                self._current[tail.path] = tail.key

    def _find(self, position: FilePosition) -> Tail | None:
        """The saved inode at its path or renamed beside it, else its copy (copytruncate)."""
        candidates = [position.path, *_siblings(position.path)]
        for candidate in candidates:
            tail = self._try_open(candidate, open_at, position)
            if tail is not None:
                tail.with_path(position.path, retired=candidate != position.path)
                return tail
        for candidate in candidates:
            tail = self._try_open(candidate, open_copy, position)
            if tail is not None:
                return tail
        return None

    def _try_open(
        self, path: str, opener: Callable[[str, FilePosition], Tail | None], pos: FilePosition
    ) -> Tail | None:
        try:
            tail = opener(path, pos)
        except OSError as exc:
            self._report(path, exc)
            return None
        if tail is not None and tail.key in self._tails:
            tail.close()
            return None
        return tail

    # -- reading -------------------------------------------------------------------------

    def read_new(self, max_lines: int = DEFAULT_BATCH) -> list[LogLine]:
        if self._closed:
            return []
        now = self._clock()
        self._scan(now)
        for path in list(self._current):
            tail = self._tails[self._current[path]]
            if tail.replaced():
                self._copytruncated(tail)
        lines: list[LogLine] = []
        for key in list(self._retired):
            self._drain(self._tails[key], lines, max_lines, now)
        for path in sorted(self._current):
            lines += self._tails[self._current[path]].read(max_lines - len(lines))
        return lines

    def _drain(self, tail: Tail, lines: list[LogLine], max_lines: int, now: float) -> None:
        """Read a retired inode; close it once it stayed unchanged for ``rotate_grace``."""
        got = tail.read(max_lines - len(lines))
        lines += got
        if got or tail.unread() or tail.active_at is None:
            tail.active_at = now
            return
        if now - tail.active_at >= self.rotate_grace and len(lines) < max_lines:
            last = tail.flush_partial()
            if last is not None:
                lines.append(last)
            self._retired.remove(tail.key)
            del self._tails[tail.key]
            tail.close()

    def _scan(self, now: float) -> None:
        """Point each path at the inode it names now, retiring what it named before."""
        moved = self.is_glob and any(_inode(p) != k for p, k in self._current.items())
        if moved or self._rescan or now - self._last_poll >= self.poll_interval:
            self._rescan = False  # a followed name changed: maybe renamed within the glob
            self._last_poll = now
            self._paths = self._expand()
            self._watch()
        for path in sorted(set(self._paths) | set(self._current)):
            self._follow(path, now)
        self._first_scan = False
        self._watch_prefixes = tuple(t.path for t in self._tails.values())

    def _expand(self) -> list[str]:
        if not self.is_glob:
            return [self.pattern]
        return sorted(
            p
            for p in globlib.glob(self.pattern)
            if not ROTATED.search(p) and not COMPRESSED.search(p)
        )

    def _follow(self, path: str, now: float) -> None:
        key = _inode(path)
        old = self._current.get(path)
        if old == key:
            return
        if old is not None:
            del self._current[path]
            self._tails[old].with_path(path, retired=True, now=now)
            self._retired.append(old)
        if key is None:
            return
        tail = self._tails.get(key)
        if tail is not None:  # an inode we follow was renamed to this (matching) path
            if self._current.get(tail.path) == key:
                del self._current[tail.path]
            if key in self._retired:
                self._retired.remove(key)
            tail.with_path(path, retired=False)
        else:
            tail = self._open_new(path)
            if tail is None:
                return
        self._current[path] = tail.key

    def _open_new(self, path: str) -> Tail | None:
        try:
            tail = Tail.open(path)
        except OSError as exc:
            self._report(path, exc)
            return None
        if tail is None or tail.key in self._tails:  # replaced again since the stat
            if tail is not None:
                tail.close()
            return None
        self.errors.pop(path, None)
        if self._first_scan and self._first_run and self.start_at == "end":
            tail.skip_to_end()
        self._tails[tail.key] = tail
        return tail

    def _copytruncated(self, tail: Tail) -> None:
        """Drain the unread rest from the rotated copy if there is one, then restart at 0."""
        position = tail.position()
        for candidate in _siblings(tail.path):
            copy = self._try_open(candidate, open_copy, position)
            if copy is None:
                continue
            if copy.unread():
                self._tails[copy.key] = copy
                self._retired.append(copy.key)
            else:
                copy.close()
            break
        else:
            log.info("%s: %s was truncated; no copy of it found", self.name, tail.path)
        tail.restart()

    def _report(self, path: str, exc: OSError) -> None:
        reason = exc.strerror or str(exc)
        if self.errors.get(path) != reason:
            log.warning("%s: cannot read %s: %s", self.name, path, reason)
        self.errors[path] = reason

    # -- persistence and waiting ---------------------------------------------------------

    def lag_bytes(self) -> int | None:
        try:
            return sum(tail.unread() for tail in list(self._tails.values()))
        except OSError:  # a tail closed by the reading thread meanwhile: ask again later
            return None

    def positions(self) -> list[FilePosition]:
        """Where each open inode stands now (what ``commit()`` stores), retired first."""
        keys = [*self._retired, *(self._current[p] for p in sorted(self._current))]
        return [self._tails[k].position() for k in keys]

    def _save(self) -> None:
        positions = self.positions()
        if positions != self._saved:
            self._state.save_file_positions(self.name, positions)
            self._saved = positions

    def _block(self, timeout: float) -> None:
        until_poll = self._last_poll + self.poll_interval - self._clock()
        self._signal.wait(max(0.0, min(timeout, until_poll)))
        self._signal.clear()

    def _interrupt(self) -> None:
        self._signal.set()

    def _on_event(self, event: FileSystemEvent) -> None:
        """Watchdog thread: wake the reader if the event concerns a file we (may) follow."""
        paths = [os.fsdecode(event.src_path), os.fsdecode(getattr(event, "dest_path", "") or "")]
        prefixes = self._watch_prefixes
        if any(p and (fnmatchcase(p, self.pattern) or p.startswith(prefixes)) for p in paths):
            if not isinstance(event, FileModifiedEvent | FileClosedEvent):
                self._rescan = True
            self._signal.set()

    def _watch(self) -> None:
        if self._observer is None:
            return
        dirs = {os.path.dirname(p) for p in self._paths}
        dirs |= {os.path.dirname(t.path) for t in self._tails.values()}
        if not globlib.has_magic(os.path.dirname(self.pattern)):
            dirs.add(os.path.dirname(self.pattern))
        handler = _Handler(self._on_event)
        for directory in sorted(dirs - self._watched):
            try:
                self._observer.schedule(handler, directory, event_filter=_EVENTS)
            except OSError:
                continue  # not there (yet): the poll looks again
            self._watched.add(directory)

    def _release(self) -> None:
        if self._observer is not None and self._observer.is_alive():
            self._observer.stop()
            self._observer.join()
        for tail in self._tails.values():
            tail.close()
        self._tails.clear()
        self._current.clear()
        self._retired.clear()


class _Handler(FileSystemEventHandler):
    def __init__(self, callback: Callable[[FileSystemEvent], None]) -> None:
        self._callback = callback

    def on_any_event(self, event: FileSystemEvent) -> None:
        self._callback(event)


def _inode(path: str) -> Key | None:
    """The (device, inode) of the regular file at ``path`` now, if there is one."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if statlib.S_ISREG(st.st_mode) else None


def _siblings(path: str) -> list[str]:
    """Uncompressed rotated names of ``path`` beside it, most recently written first."""
    directory, base = os.path.split(path)
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    found = []
    for name in names:
        if name.startswith(base) and name[len(base) : len(base) + 1] in (".", "-", "_"):
            if COMPRESSED.search(name):
                continue
            try:
                found.append((os.stat(os.path.join(directory, name)).st_mtime, name))
            except OSError:
                continue
    return [os.path.join(directory, name) for _, name in sorted(found, reverse=True)]

"""The daemon's audits: at start, every ``audit.interval``, on reload, and within a second
of a change to any file the last audit read.

The audit runs on a ``RecordingHost``, which notes every path it reads, stats or lists; a
watchdog observer watches the directories holding them, and a change there (debounced for a
moment, since editors write a file in several steps) runs the audit again. A whole audit
takes a fraction of a second, so the whole policy is re-run rather than guessing which
checks a change could touch (commands such as ``sshd -T`` read files we never see).

The last report is what the check metrics show. Policies are loaded on every run, so an
edited policy file counts from the next run; a policy that no longer loads is logged and
the last good report stays (its age shows in ``lappguard_audit_last_run_timestamp_seconds``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable

from watchdog.events import (
    DirAttribEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from agent.config import AuditConfig
from checks.engine import HostReport, audit_host
from checks.hosts import FileStat, LocalHost
from checks.policy import Policy, load_policies
from checks.yamlsource import InputError
from policies import policy_path

log = logging.getLogger("lappguard")

#: Seconds to let an edit settle before auditing again.
SETTLE_SECONDS = 0.3
#: The changes an audit can see: writes, mode and owner (the Modified events ask the kernel
#: for IN_ATTRIB, which watchdog 7 delivers as Attrib events), entries made, moved or
#: removed. Only these: a watch that also took opens and no-write closes woke the agent for
#: every process reading /etc/passwd (13% of a core idle at 1,800 opens a second).
CHANGES = [FileModifiedEvent, FileAttribEvent, FileClosedEvent, FileCreatedEvent,
           FileMovedEvent, FileDeletedEvent, DirModifiedEvent, DirAttribEvent, DirCreatedEvent,
           DirMovedEvent, DirDeletedEvent]  # fmt: skip


class RecordingHost(LocalHost):
    """This machine, noting every path an audit looks at (files and listed directories)."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: set[str] = set()
        self.directories: set[str] = set()

    def read_bytes(self, path: str, limit: int | None = None) -> bytes:
        self.paths.add(path)
        return super().read_bytes(path, limit)

    def stat(self, path: str, follow_symlinks: bool = True) -> FileStat:
        self.paths.add(path)
        return super().stat(path, follow_symlinks)

    def readlink(self, path: str) -> str:
        self.paths.add(path)
        return super().readlink(path)

    def listdir(self, path: str) -> list[str]:
        self.directories.add(path.rstrip("/") or "/")
        return super().listdir(path)

    def glob(self, pattern: str) -> list[str]:
        self.directories.add(os.path.dirname(pattern) or "/")
        return super().glob(pattern)


class _Changed(FileSystemEventHandler):
    """Calls back when a watched path, or anything in a listed directory, changes."""

    def __init__(self, worker: AuditWorker) -> None:
        self.worker = worker

    def on_any_event(self, event: FileSystemEvent) -> None:
        for path in (event.src_path, getattr(event, "dest_path", "")):
            if path and self.worker.concerns(os.fsdecode(path)):
                self.worker.changed()
                return


class AuditWorker(threading.Thread):
    """Runs audits in the background; ``report`` is the latest (None before the first)."""

    def __init__(self, config: AuditConfig, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(name="audit", daemon=True)
        self.config = config
        self.report: HostReport | None = None
        self.policies: list[Policy] = []
        self.runs: Counter[str] = Counter()  # trigger -> audits run
        self._clock = clock
        self._trigger: str | None = "start"
        self._wake = threading.Event()
        self._stop_event = threading.Event()
        self._observer: Observer | None = None
        self._folders: set[str] = set()
        self._watched_paths: frozenset[str] = frozenset()
        self._watched_dirs: frozenset[str] = frozenset()
        self.heartbeat = time.monotonic()

    def run(self) -> None:
        next_run = time.monotonic()
        while not self._stop_event.is_set():
            timeout = max(0.0, next_run - time.monotonic())
            self._wake.wait(min(timeout, 10.0))
            self._wake.clear()
            self.heartbeat = time.monotonic()
            if self._stop_event.is_set():
                break
            if self._trigger is None and time.monotonic() < next_run:
                continue
            if self._trigger == "change":
                self._stop_event.wait(SETTLE_SECONDS)  # let the editor finish writing
            trigger, self._trigger = self._trigger or "schedule", None
            self.audit(trigger)
            next_run = time.monotonic() + self.config.interval
            self.heartbeat = time.monotonic()
        if self._observer is not None:
            self._observer.stop()

    def audit(self, trigger: str) -> HostReport | None:
        """One audit now; the report (kept for metrics), or None when policies fail."""
        try:
            policies = load_policies([policy_path(p) for p in self.config.policies],
                                     self.config.vars)  # fmt: skip
        except InputError as exc:
            log.error("audit skipped, a policy does not load: %s", exc)
            return None
        host = RecordingHost()
        report = audit_host(policies, host, clock=self._clock)
        self.policies, self.report = policies, report
        self._watch(host)
        self.runs[trigger] += 1
        failing = sum(1 for r in report.results if r.status.value in ("fail", "error"))
        log.info("audit (%s): %d checks, %d failing or undecided, %.2f s",
                 trigger, len(report.results), failing, report.duration_s)  # fmt: skip
        return report

    def concerns(self, path: str) -> bool:
        """Whether a change at ``path`` may change the audit's answer."""
        return path in self._watched_paths or os.path.dirname(path) in self._watched_dirs

    def changed(self) -> None:
        """A watched file changed (called from the observer's thread)."""
        if self._trigger is None:
            self._trigger = "change"
        self._wake.set()

    def _watch(self, host: RecordingHost) -> None:
        """Watch the directories of every path the last audit looked at."""
        self._watched_paths = frozenset(host.paths)
        self._watched_dirs = frozenset(host.directories)
        folders = {os.path.dirname(p) for p in host.paths} | set(host.directories)
        folders = {f for f in folders if os.path.isdir(f)}
        if self._observer is not None and folders == self._folders:
            return
        if self._observer is not None:
            self._observer.stop()
        observer = Observer()
        handler = _Changed(self)
        for folder in sorted(folders):
            try:
                observer.schedule(handler, folder, recursive=False, event_filter=CHANGES)
            except OSError as exc:  # too many watches, or the folder vanished
                log.warning("cannot watch %s for changes: %s", folder, exc)
        observer.daemon = True
        observer.start()
        self._observer, self._folders = observer, folders

    def reconfigure(self, config: AuditConfig) -> None:
        """Take a reloaded config and audit with it now."""
        self.config = config
        self._trigger = "reload"
        self._wake.set()

    def stop(self) -> None:
        self._stop_event.set()
        self._wake.set()

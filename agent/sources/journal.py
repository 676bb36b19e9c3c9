"""Following journald for some systemd units, resuming at a saved cursor.

Why ``journalctl -o json --follow`` and not a C binding: journalctl is on every systemd host
(no compiled dependency), and it already handles journal rotation, vacuuming, corrupt
files and inotify; we only parse one JSON object per line. It runs as an argv list (no
shell), filtered on ``_SYSTEMD_UNIT``: journald sets that field itself from the cgroup of
the logging process, while ``SYSLOG_IDENTIFIER`` is whatever a local user passes to
``logger -t sshd``. The unit is checked again on every entry we parse.

``--merge`` is not optional: in follow mode journalctl v252 otherwise shows only the
current boot, so after a reboot the entries between the saved cursor and the shutdown
would be skipped (and a cursor from an earlier boot yields nothing at all). Merging drops
journalctl's "local machine only" default, so for the system journal we ask for system
journal files (not user or ``journal-remote`` files) with this machine's ``_MACHINE_ID``.

``MESSAGE`` comes back as bytes: journalctl prints a field that is not valid UTF-8 (or has
control characters) as an array of byte values, and with ``--all`` never drops large ones.

Guarantee: the one in ``agent.sources.base`` (the position is the journal cursor of the
last entry handed out). If journalctl exits it is restarted after ``restart_delay`` seconds
from that in-memory cursor, so nothing is lost or repeated; ``errors["journalctl"]`` says
why it exited.
Entries vacuumed from the journal while lappguard was stopped cannot be read (journalctl
then continues at the oldest entry still there).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import select
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from agent.sources.base import DEFAULT_BATCH, LogLine, LogSource, SourceError, cap_line
from agent.state import StateStore

log = logging.getLogger(__name__)

UNIT_NAME = re.compile(r"^[A-Za-z0-9:_.@\\-]+\.[a-z]+$")
#: One JSON entry longer than this is dropped rather than buffered (memory bound).
MAX_ENTRY_BYTES = 16 * 1024 * 1024
READ_BYTES = 1024 * 1024
STDERR_KEEP = 4096


class JournalSource(LogSource):
    """Entries of ``units`` (e.g. ``["ssh.service"]``) from the system journal or a directory."""

    def __init__(
        self,
        units: Sequence[str],
        state: StateStore,
        journal_dir: str | None = None,
        *,
        name: str | None = None,
        start_at: Literal["end", "start"] = "end",
        journalctl: str = "journalctl",
        restart_delay: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        units = list(units)
        if not units or any(not UNIT_NAME.match(u) for u in units):
            raise SourceError(f"journal units must be systemd unit names, got {units!r}")
        if start_at not in ("end", "start"):
            raise SourceError(f"start_at must be 'end' or 'start', not {start_at!r}")
        super().__init__(name or "journal:" + ",".join(sorted(units)), clock)
        program = shutil.which(journalctl, path=os.environ.get("PATH", "") + ":/usr/bin:/bin")
        if program is None:
            raise SourceError(f"{journalctl} not found (it comes with systemd)")
        self.units = frozenset(units)
        self.restart_delay = restart_delay
        self._state = state
        self._program = program
        if journal_dir:
            self._where = [f"--directory={journal_dir}"]
        else:  # system journal files of this machine only (no user, remote or container files)
            self._where = ["--system", *(f"_MACHINE_ID={m}" for m in _machine_id())]
        self._saved = state.journal_cursor(self.name)
        self._cursor = self._saved
        if self._cursor is None and start_at == "end":
            self._cursor = self._tail_cursor()
        self._buf = bytearray()
        self._dropping = False  # inside an over-long entry, skipping to its end
        self._stderr = b""
        self._proc: subprocess.Popen[bytes] | None = None
        self._next_start = float("-inf")
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            self._start()
        except BaseException:
            self._release()
            raise

    def _tail_cursor(self) -> str | None:
        """The newest entry of the whole journal now: a first start follows from there."""
        argv = [self._program, "--merge", *self._where, "--output=json", "--lines=1"]
        try:
            done = subprocess.run(argv, capture_output=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("%s: cannot find the journal's end: %s", self.name, exc)
            return None
        lines = done.stdout.splitlines()
        if done.returncode != 0 or not lines:
            return None
        cursor, _ = parse_entry(lines[-1], None)
        return cursor

    def _start(self) -> None:
        argv = [self._program, "--merge", "--output=json", "--all", "--follow", "--no-pager"]
        argv += ["--output-fields=MESSAGE,_SYSTEMD_UNIT"]  # plus cursor and times: faster
        argv += [f"--after-cursor={self._cursor}", "--no-tail"] if self._cursor else ["--no-tail"]
        argv += [*self._where, *(f"_SYSTEMD_UNIT={u}" for u in sorted(self.units))]
        self._proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for stream in (self._proc.stdout, self._proc.stderr):
            assert stream is not None
            os.set_blocking(stream.fileno(), False)
        self._stderr = b""

    # -- reading -------------------------------------------------------------------------

    def read_new(self, max_lines: int = DEFAULT_BATCH) -> list[LogLine]:
        if self._closed:
            return []
        self._pump()
        lines: list[LogLine] = []
        while len(lines) < max_lines:
            end = self._buf.find(b"\n")
            if end < 0:
                break
            raw = bytes(self._buf[:end])
            del self._buf[: end + 1]
            if self._dropping:
                self._dropping = False
                continue
            cursor, line = parse_entry(raw, self.units)
            if cursor is not None:
                self._cursor = cursor
                self.errors.pop("journalctl", None)
            if line is not None:
                lines.append(line)
        if not self._dropping and len(self._buf) > MAX_ENTRY_BYTES and b"\n" not in self._buf:
            log.warning("%s: dropping a journal entry over %d bytes", self.name, MAX_ENTRY_BYTES)
            self._buf.clear()
            self._dropping = True
        self._restart_if_exited()
        return lines

    def _pump(self) -> None:
        """Move what journalctl wrote so far into our buffer, without blocking."""
        if self._proc is None:
            return
        assert self._proc.stdout is not None and self._proc.stderr is not None
        while len(self._buf) <= MAX_ENTRY_BYTES:
            chunk = _read_some(self._proc.stdout.fileno())
            if not chunk:
                break
            if self._dropping and b"\n" not in chunk:
                continue
            self._buf += chunk
        self._stderr = (self._stderr + _read_some(self._proc.stderr.fileno()))[-STDERR_KEEP:]

    def _restart_if_exited(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is not None:
            self._pump()  # whatever it wrote before exiting
            if b"\n" in self._buf:
                return  # hand that out first; the next read restarts it
            reason = self._stderr.decode("utf-8", "replace").strip()
            self.errors["journalctl"] = f"exited with {proc.returncode}: {reason}"
            log.warning("%s: journalctl %s", self.name, self.errors["journalctl"])
            if b"cursor" in self._stderr and self._cursor is not None:
                log.error("%s: journalctl refuses cursor %r; following from the journal's end",
                          self.name, self._cursor)  # fmt: skip
                self._cursor = self._tail_cursor()
            self._close_process()
            self._buf.clear()
            self._dropping = False
            self._next_start = self._clock() + self.restart_delay
        if self._proc is None and self._clock() >= self._next_start:
            self._start()

    # -- persistence and waiting ---------------------------------------------------------

    def cursor(self) -> str | None:
        """The cursor of the last entry handed out (what ``commit()`` stores)."""
        return self._cursor

    def _save(self) -> None:
        if self._cursor is not None and self._cursor != self._saved:
            self._state.save_journal_cursor(self.name, self._cursor)
            self._saved = self._cursor

    def _block(self, timeout: float) -> None:
        fds = [self._wake_r]
        if self._proc is not None:
            assert self._proc.stdout is not None and self._proc.stderr is not None
            fds += [self._proc.stdout.fileno(), self._proc.stderr.fileno()]
        else:
            timeout = max(0.0, min(timeout, self._next_start - self._clock()))
        ready, _, _ = select.select(fds, [], [], timeout)
        if self._wake_r in ready:
            _read_some(self._wake_r)

    def _interrupt(self) -> None:
        with contextlib.suppress(BlockingIOError):  # already full of wake-ups
            os.write(self._wake_w, b"!")

    def _close_process(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()

    def _release(self) -> None:
        self._close_process()
        os.close(self._wake_r)
        os.close(self._wake_w)


def _machine_id() -> list[str]:
    """This machine's id (one item), or none when /etc/machine-id is missing or odd."""
    try:
        machine = Path("/etc/machine-id").read_text().strip()
    except OSError:
        return []
    return [machine] if re.fullmatch(r"[0-9a-f]{32}", machine) else []


def _read_some(fd: int) -> bytes:
    try:
        return os.read(fd, READ_BYTES)
    except BlockingIOError:
        return b""


def parse_entry(raw: bytes, units: frozenset[str] | None) -> tuple[str | None, LogLine | None]:
    """(cursor, line) of one ``journalctl -o json`` entry; line None when not ours or empty.

    ``units`` None accepts any unit (used only to read a cursor). Malformed input yields
    (None, None) rather than an exception: journal content is attacker-influenced.
    """
    try:
        entry = json.loads(raw)
    except ValueError:
        return None, None
    if not isinstance(entry, dict):
        return None, None
    cursor = entry.get("__CURSOR")
    cursor = cursor if isinstance(cursor, str) else None
    if units is None:
        return cursor, None
    unit = entry.get("_SYSTEMD_UNIT")
    message = _field_bytes(entry.get("MESSAGE"))
    if not isinstance(unit, str) or unit not in units or message is None:
        return cursor, None
    return cursor, LogLine(f"journal:{unit}", 0, cap_line(message), _realtime(entry))


def _field_bytes(value: object) -> bytes | None:
    """A field's value as bytes: a string, a byte array, or the first of several values."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if not isinstance(value, list):
        return None  # absent, or null: too large for journalctl without --all
    if all(type(b) is int and 0 <= b <= 255 for b in value):
        return bytes(value)
    return _field_bytes(value[0])


def _realtime(entry: dict[str, object]) -> float | None:
    value = entry.get("__REALTIME_TIMESTAMP")
    if isinstance(value, str) and value.isdigit():
        return int(value) / 1_000_000
    return None

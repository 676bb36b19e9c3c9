"""lappguard's durable memory: one SQLite file shared by the daemon's parts.

Why SQLite in WAL mode: log positions must survive a crash exactly (a position that is lost
means lines read twice, one saved too early means lines never read), and the bans issue will
store active bans that the firewall is re-synced from at start. WAL lets ``lappguard bans``
read while the daemon writes; every change is one transaction with ``synchronous=FULL``, so
a committed change survives even a power cut and a half-done one never becomes visible.

The schema is versioned with ``PRAGMA user_version``. To add tables (audit results, ...),
append one SQL script to ``_MIGRATIONS``: it runs once, in its own
transaction, on every existing database. A database written by a newer lappguard (version
above ours) is refused rather than guessed at.

One ``StateStore`` may be shared by threads: a lock serialises use of its one connection.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

DEFAULT_STATE_PATH = Path("/var/lib/lappguard/state.db")
BUSY_TIMEOUT_MS = 5000

_MIGRATIONS: tuple[str, ...] = (
    # 1: where each log source stopped.
    """
    CREATE TABLE file_position (
        source     TEXT    NOT NULL,  -- the FileSource's name (its path or glob by default)
        path       TEXT    NOT NULL,  -- the followed path the inode was found at
        dev        INTEGER NOT NULL,
        ino        INTEGER NOT NULL,
        "offset"   INTEGER NOT NULL,  -- byte just after the last acknowledged line
        line_no    INTEGER NOT NULL,  -- lines before "offset"
        head_len   INTEGER NOT NULL,  -- how many leading bytes head_hash covers
        head_hash  BLOB    NOT NULL,
        retired    INTEGER NOT NULL,  -- 1: rotated or deleted away from path, being drained
        seq        INTEGER NOT NULL,  -- reading order within the source
        updated    REAL    NOT NULL,
        PRIMARY KEY (source, dev, ino)
    );
    CREATE TABLE journal_cursor (
        source  TEXT PRIMARY KEY,
        cursor  TEXT NOT NULL,
        updated REAL NOT NULL
    );
    """,
    # 2: bans (active ones and their history) and the hash-chained audit trail.
    """
    CREATE TABLE ban (
        id         INTEGER PRIMARY KEY,
        network    TEXT    NOT NULL,  -- what the firewall drops: canonical CIDR, scope applied
        family     INTEGER NOT NULL,  -- 4 or 6
        lo         BLOB    NOT NULL,  -- first address of network, 16 bytes big-endian
        hi         BLOB    NOT NULL,  -- last address: overlaps and containment are range tests
        ip         TEXT    NOT NULL,  -- the address the events named (the network if manual)
        jail       TEXT    NOT NULL,  -- the jail, or "manual"
        created    REAL    NOT NULL,
        expires    REAL,              -- NULL: until removed
        ended      REAL,              -- NULL while active
        end_reason TEXT,              -- expired | unbanned | superseded
        level      INTEGER NOT NULL,  -- 1 for a first ban, n for the n-th (escalation)
        count      INTEGER NOT NULL,  -- events behind it (0 for a manual ban)
        rule       TEXT,              -- the rule of the event that crossed the threshold
        reason     TEXT    NOT NULL,
        actor      TEXT    NOT NULL,  -- "daemon", or the person behind a manual action
        first_line TEXT,
        last_line  TEXT,
        replaces   INTEGER NOT NULL,  -- bans inside it that it superseded (0 mostly)
        applied    INTEGER NOT NULL   -- 1 once the firewall confirmed it, 0 while pending
    );
    CREATE UNIQUE INDEX ban_one_active ON ban (network) WHERE ended IS NULL;
    CREATE INDEX ban_active_range ON ban (family, lo, hi) WHERE ended IS NULL;
    CREATE INDEX ban_history ON ban (family, lo, hi, created);
    CREATE INDEX ban_by_ip ON ban (ip);
    CREATE TABLE trail (
        seq       INTEGER PRIMARY KEY,
        time      REAL    NOT NULL,
        action    TEXT    NOT NULL,
        network   TEXT,
        jail      TEXT,
        actor     TEXT    NOT NULL,
        detail    TEXT    NOT NULL,  -- canonical JSON
        prev_hash BLOB    NOT NULL,
        hash      BLOB    NOT NULL   -- sha256(prev_hash || canonical JSON of the record)
    );
    CREATE TABLE trail_head (
        id   INTEGER PRIMARY KEY CHECK (id = 1),
        seq  INTEGER NOT NULL,
        hash BLOB    NOT NULL
    );
    CREATE INDEX ban_pending ON ban (applied) WHERE ended IS NULL AND applied = 0;
    CREATE TABLE event (
        id       INTEGER PRIMARY KEY,
        time     REAL    NOT NULL,  -- when the line says it happened (UTC epoch seconds)
        rule     TEXT    NOT NULL,
        jail     TEXT    NOT NULL,
        ip       TEXT    NOT NULL,
        source   TEXT    NOT NULL,
        line     INTEGER,
        evidence TEXT    NOT NULL
    );
    CREATE INDEX event_by_time ON event (time);
    CREATE INDEX event_by_ip ON event (ip, time);
    CREATE TABLE firewall_debt (
        id      INTEGER PRIMARY KEY CHECK (id = 1),
        since   REAL    NOT NULL,  -- first failure not yet repaired by a sync
        error   TEXT    NOT NULL,  -- the latest failure
        retries INTEGER NOT NULL
    );
    """,
    # 3: how sure each kept event is that its line is an attack (the jails weigh it by that
    # when their windows are refilled at start); events kept before were all counted alike.
    """
    ALTER TABLE event ADD COLUMN confidence TEXT NOT NULL DEFAULT 'weak';
    """,
)
SCHEMA_VERSION = len(_MIGRATIONS)


def open_private(path: Path) -> int:
    """Open (creating, mode 0600) a file of the state directory for reading and writing.

    The agent runs as its own user; a sysadmin runs ``lappguard bans`` as root. A file root
    creates here is given to the directory's owner, so the agent can still write it (SQLite
    does the same for its -wal and -shm files when run as root).
    """
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    if os.geteuid() == 0:
        owner = os.stat(path.parent)
        if owner.st_uid != 0:
            os.fchown(descriptor, owner.st_uid, owner.st_gid)
    return descriptor


class StateError(Exception):
    """The state database cannot be opened or used (corrupt, newer schema, unwritable)."""


@dataclass(frozen=True)
class FilePosition:
    """Where reading of one inode stopped; identity is (dev, ino) confirmed by the head hash."""

    path: str
    dev: int
    ino: int
    offset: int
    line_no: int
    head_len: int
    head_hash: bytes
    retired: bool = False


class StateStore:
    """The state database. Open once per process, share between threads, ``close()`` at exit."""

    def __init__(
        self, path: str | Path = DEFAULT_STATE_PATH, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.RLock()
        try:
            self._conn = self._open()
        except sqlite3.Error as exc:
            raise StateError(f"cannot open state database {self.path}: {exc}") from exc
        try:
            self._migrate()
        except (sqlite3.Error, StateError) as exc:
            self._conn.close()
            if isinstance(exc, StateError):
                raise
            raise StateError(f"state database {self.path} is unusable: {exc}") from exc

    def _open(self) -> sqlite3.Connection:
        # Bans and log excerpts are personal data: directory 0700, file 0600 (SQLite gives
        # its -wal and -shm files the database file's mode).
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.close(open_private(self.path))
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            conn.close()
            raise sqlite3.OperationalError(f"journal_mode WAL refused (got {mode})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def _migrate(self) -> None:
        while True:
            with self.transaction() as conn:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise StateError(
                        f"state database {self.path} has schema version {version}, newer than"
                        f" this lappguard ({SCHEMA_VERSION}); refusing to touch it"
                    )
                if version == SCHEMA_VERSION:
                    return
                for statement in _statements(_MIGRATIONS[version]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {version + 1}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: everything inside commits together or not at all.

        The connection is only valid inside the block; other threads wait meanwhile.
        """
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """A consistent read: one snapshot for the whole block, never blocking writers."""
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            finally:
                self._conn.execute("COMMIT")

    def schema_version(self) -> int:
        with self._lock:
            return self._conn.execute("PRAGMA user_version").fetchone()[0]

    # -- log positions -------------------------------------------------------------------

    def file_positions(self, source: str) -> list[FilePosition]:
        """The saved positions of one file source, in the order they were saved."""
        with self._lock:
            rows = self._conn.execute(
                'SELECT path, dev, ino, "offset", line_no, head_len, head_hash, retired'
                " FROM file_position WHERE source = ? ORDER BY seq",
                (source,),
            ).fetchall()
        return [
            FilePosition(path, dev, ino, off, line, hlen, bytes(hhash), bool(retired))
            for path, dev, ino, off, line, hlen, hhash, retired in rows
        ]

    def save_file_positions(self, source: str, positions: Iterable[FilePosition]) -> None:
        """Replace all positions of ``source`` at once (an inode not listed is forgotten)."""
        now = self._clock()
        rows = [
            (source, p.path, p.dev, p.ino, p.offset, p.line_no, p.head_len, p.head_hash,
             int(p.retired), seq, now)
            for seq, p in enumerate(positions)
        ]  # fmt: skip
        with self.transaction() as conn:
            conn.execute("DELETE FROM file_position WHERE source = ?", (source,))
            conn.executemany(
                "INSERT INTO file_position VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
            )

    def journal_cursor(self, source: str) -> str | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT cursor FROM journal_cursor WHERE source = ?", (source,)
            ).fetchone()
        return row[0] if row else None

    def save_journal_cursor(self, source: str, cursor: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO journal_cursor VALUES (?, ?, ?) ON CONFLICT (source)"
                " DO UPDATE SET cursor = excluded.cursor, updated = excluded.updated",
                (source, cursor, self._clock()),
            )

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _statements(script: str) -> list[str]:
    """Split a migration into statements (``executescript`` would commit on its own)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return [s for s in statements if s]

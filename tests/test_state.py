"""The SQLite state store: schema versioning, round trips, threads and real crashes."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT

from agent.state import SCHEMA_VERSION, FilePosition, StateError, StateStore


def position(path: str, ino: int, offset: int, retired: bool = False) -> FilePosition:
    return FilePosition(path, 2049, ino, offset, offset // 10, 64, b"\x01" * 16, retired)


def test_a_new_database_is_private_wal_and_current(tmp_path: Path) -> None:
    db = tmp_path / "var" / "lib" / "lappguard" / "state.db"
    with StateStore(db) as store:
        assert store.schema_version() == SCHEMA_VERSION
        store.save_journal_cursor("journal:ssh.service", "s=1")
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


def test_file_positions_round_trip_in_order_and_replace(tmp_path: Path) -> None:
    saved = [position("/var/log/apache2/access.log", 7, 100, retired=True),
             position("/var/log/apache2/access.log", 9, 20),
             position("/var/log/apache2/error.log", 3, 5)]  # fmt: skip
    with StateStore(tmp_path / "s.db") as store:
        store.save_file_positions("apache", saved)
        store.save_file_positions("auth", [position("/var/log/auth.log", 4, 1)])
        assert store.file_positions("apache") == saved
        store.save_file_positions("apache", saved[1:2])  # the others are forgotten
        assert store.file_positions("apache") == saved[1:2]
        assert store.file_positions("auth") == [position("/var/log/auth.log", 4, 1)]
        assert store.file_positions("nothing") == []


def test_journal_cursor_is_replaced_not_added(tmp_path: Path) -> None:
    with StateStore(tmp_path / "s.db") as store:
        assert store.journal_cursor("journal:ssh.service") is None
        store.save_journal_cursor("journal:ssh.service", "s=a;i=1")
        store.save_journal_cursor("journal:ssh.service", "s=a;i=2")
        store.save_journal_cursor("journal:apache2.service", "s=a;i=9")
        assert store.journal_cursor("journal:ssh.service") == "s=a;i=2"
    with StateStore(tmp_path / "s.db") as store:
        assert store.journal_cursor("journal:ssh.service") == "s=a;i=2"
        assert store.journal_cursor("journal:apache2.service") == "s=a;i=9"


def test_an_older_empty_database_is_migrated(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    sqlite3.connect(db).close()  # user_version 0: no tables yet
    with StateStore(db) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert store.file_positions("x") == []


def test_a_newer_schema_is_refused_untouched(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StateError, match="newer than this lappguard"):
        StateStore(db)
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION + 1,)
    conn.close()


def test_a_corrupt_file_is_an_error_not_a_fresh_start(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StateError, match=str(db)):
        StateStore(db)
    assert db.read_bytes() == b"this is not a database" * 100


def test_a_failed_transaction_leaves_nothing(tmp_path: Path) -> None:
    with StateStore(tmp_path / "s.db") as store:
        store.save_journal_cursor("j", "kept")
        with pytest.raises(RuntimeError), store.transaction() as conn:
            conn.execute("UPDATE journal_cursor SET cursor = 'lost' WHERE source = 'j'")
            raise RuntimeError("crash in the middle")
        assert store.journal_cursor("j") == "kept"


def test_threads_share_one_store(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    with StateStore(tmp_path / "s.db") as store:

        def work(n: int) -> None:
            try:
                for i in range(100):
                    store.save_journal_cursor(f"journal:{n}", f"i={i}")
                    store.save_file_positions(f"files:{n}", [position(f"/l/{n}", n, i)])
                    assert store.journal_cursor(f"journal:{n}") == f"i={i}"
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert [store.journal_cursor(f"journal:{n}") for n in range(8)] == ["i=99"] * 8
        assert [store.file_positions(f"files:{n}")[0].offset for n in range(8)] == [99] * 8


CRASHER = """
import os, sys
from agent.state import StateStore
store = StateStore(sys.argv[1])
store.save_journal_cursor("j", "committed")
with store.transaction() as conn:
    conn.execute("UPDATE journal_cursor SET cursor = 'half done' WHERE source = 'j'")
    os._exit(3)  # killed mid-transaction: no rollback, no close, no atexit
"""


def test_a_process_killed_mid_transaction_keeps_the_last_commit(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    done = subprocess.run(
        [sys.executable, "-c", CRASHER, str(db)], cwd=PROJECT_ROOT, capture_output=True
    )
    assert done.returncode == 3, done.stderr.decode()
    assert os.path.exists(f"{db}-wal")  # the crash left the write-ahead log behind
    with StateStore(db) as store:
        assert store.journal_cursor("j") == "committed"

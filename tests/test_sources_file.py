"""FileSource on real files: rotation in its three forms, restarts, partial lines, globs.

The threaded tests append 20,000 numbered lines while a rotation happens in the middle and
assert that the exact sequence 0..19999 comes out: every line once, in order.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from contract_sources import SourceContract, data, read_all

from agent.sources import LINE_CAP, FileSource, LogLine, SourceError, cap_line
from agent.state import StateStore

TOTAL = 20_000
ROTATE_AT = 10_000
OLD_FD_LINES = 100  # lines written to the old inode after a rename/delete, as Apache does


class FileHarness:
    settle = 0.0  # appended lines are readable at once

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, payloads: Sequence[bytes]) -> None:
        with open(self.path, "ab") as f:
            f.write(b"".join(p + b"\n" for p in payloads))

    def open(self, state: StateStore) -> FileSource:
        # A poll this slow never fires during a test: waking up relies on inotify.
        return FileSource(str(self.path), state, start_at="start", poll_interval=3600)


class TestFileSourceContract(SourceContract):
    @pytest.fixture
    def harness(self, tmp_path: Path) -> FileHarness:
        return FileHarness(tmp_path / "auth.log")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def state(tmp_path: Path):
    store = StateStore(tmp_path / "state.db")
    yield store
    store.close()


def numbers(lines: Sequence[LogLine]) -> list[int]:
    return [int(line.data) for line in lines]


def write_numbers(fd: int, start: int, stop: int) -> None:
    os.write(fd, b"".join(b"%06d\n" % i for i in range(start, stop)))


def open_append(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)


class Writer(threading.Thread):
    """Appends numbered lines one write at a time, rotating the file the way it is told.

    ``pause_at``: stop before that line until ``resume`` is set (the reader is down then).
    """

    def __init__(self, path: Path, rotation: str | None, pause_at: int | None = None) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.rotation = rotation
        self.pause_at = pause_at
        self.paused = threading.Event()
        self.resume = threading.Event()
        self.rotated = threading.Event()  # set once lines go to the file now at the path
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._write()
        except BaseException as exc:
            self.error = exc

    def _write(self) -> None:
        fd, old = open_append(self.path), None
        for i in range(TOTAL):
            if i == self.pause_at:
                self.paused.set()
                self.resume.wait()
            if i == ROTATE_AT:
                fd, old = self._rotate(fd)
            if old is not None and i == ROTATE_AT + OLD_FD_LINES:  # "reloaded": new file now
                os.close(old)
                fd, old = open_append(self.path), None
            if i >= ROTATE_AT and old is None:
                self.rotated.set()
            os.write(old if old is not None else fd, b"%06d\n" % i)
            if i % 64 == 0:
                time.sleep(0.0002)
        os.close(fd)

    def _rotate(self, fd: int) -> tuple[int, int | None]:
        if self.rotation == "rename":
            os.rename(self.path, f"{self.path}.1")
            return -1, fd
        if self.rotation == "delete":
            os.unlink(self.path)
            return -1, fd
        if self.rotation == "copytruncate":
            shutil.copyfile(self.path, f"{self.path}.1")
            os.truncate(self.path, 0)
        return fd, None


def follow(source: FileSource, writer: Writer, until: int | None = None) -> list[LogLine]:
    """Read (and commit) until the writer is done and nothing is left, or ``until`` lines."""
    seen: list[LogLine] = []
    while until is None or len(seen) < until:
        done = not writer.is_alive()  # then everything is written: read until nothing is left
        batch = source.read_new(1000) if done else source.wait(timeout=5, max_lines=1000)
        seen += batch
        source.commit()
        if done and not batch:
            break
    assert writer.error is None
    return seen


@pytest.mark.parametrize("rotation", ["rename", "copytruncate", "delete", None])
def test_every_line_once_while_a_writer_rotates(
    tmp_path: Path, state: StateStore, rotation: str | None
) -> None:
    log = tmp_path / "access.log"
    log.touch()
    with FileSource(str(log), state, start_at="start", poll_interval=3600) as source:
        writer = Writer(log, rotation)
        writer.start()
        seen = follow(source, writer)
        writer.join()
    assert numbers(seen) == list(range(TOTAL))
    assert {line.source for line in seen} == {str(log)}


def test_restart_mid_file_while_a_writer_appends(tmp_path: Path, state: StateStore) -> None:
    log = tmp_path / "access.log"
    log.touch()
    writer = Writer(log, None)
    with FileSource(str(log), state, start_at="start", poll_interval=3600) as source:
        writer.start()
        seen = follow(source, writer, until=7000)
    with FileSource(str(log), state, start_at="end", poll_interval=3600) as source:
        seen += follow(source, writer)
    writer.join()
    assert numbers(seen) == list(range(TOTAL))
    assert [line.line_no for line in seen] == list(range(1, TOTAL + 1))


@pytest.mark.parametrize("rotation", ["rename", "copytruncate"])
def test_rotation_while_stopped_is_drained_from_the_saved_offset(
    tmp_path: Path, state: StateStore, rotation: str
) -> None:
    log = tmp_path / "access.log"
    log.touch()
    writer = Writer(log, rotation, pause_at=ROTATE_AT)
    with FileSource(str(log), state, start_at="start", poll_interval=3600) as source:
        writer.start()
        writer.paused.wait()
        seen = follow(source, writer, until=6000)  # lines 6000.. stay unread in the old inode
    writer.resume.set()
    writer.rotated.wait()  # rotated while no source is running; it keeps appending
    with FileSource(str(log), state, poll_interval=3600) as source:
        seen += follow(source, writer)
    writer.join()
    assert numbers(seen) == list(range(TOTAL))


def test_delete_while_stopped_loses_only_the_deleted_rest(
    tmp_path: Path, state: StateStore
) -> None:
    """What the delete took is gone; the new file at the path is read from its start."""
    log = tmp_path / "app.log"
    with open(log, "wb") as f:
        f.write(b"".join(b"%06d\n" % i for i in range(10)))
    with FileSource(str(log), state, start_at="start") as source:
        assert numbers(source.read_new(max_lines=4)) == [0, 1, 2, 3]
        source.commit()
    log.unlink()
    log.write_bytes(b"000100\n000101\n")
    with FileSource(str(log), state) as source:
        assert numbers(read_all(source, 0)) == [100, 101]


def test_lines_written_to_the_renamed_file_after_the_new_one_appeared(
    tmp_path: Path, state: StateStore
) -> None:
    """Apache writes to access.log.1 until reloaded: those lines come first, none lost."""
    log, clock = tmp_path / "access.log", FakeClock()
    old = open_append(log)
    write_numbers(old, 0, 10)
    source = FileSource(str(log), state, start_at="start", rotate_grace=30, clock=clock)
    with source:
        assert numbers(source.read_new(max_lines=5)) == [0, 1, 2, 3, 4]
        os.rename(log, f"{log}.1")
        new = open_append(log)
        write_numbers(new, 100, 103)
        write_numbers(old, 10, 12)
        assert numbers(source.read_new()) == [5, 6, 7, 8, 9, 10, 11, 100, 101, 102]
        source.commit()
        assert [p.retired for p in source.positions()] == [True, False]
        clock.now += 29
        assert source.read_new() == []  # quiet, but not for the whole grace period yet
        write_numbers(old, 12, 13)
        clock.now += 29
        assert numbers(source.read_new()) == [12]
        clock.now += 30  # quiet for as long as the grace: the old inode is let go
        assert source.read_new() == []
        assert [p.retired for p in source.positions()] == [False]
        write_numbers(old, 13, 14)
        assert source.read_new() == []
        os.close(old)
        os.close(new)


def test_a_retired_file_is_found_again_after_restart(tmp_path: Path, state: StateStore) -> None:
    log = tmp_path / "access.log"
    old = open_append(log)
    write_numbers(old, 0, 10)
    with FileSource(str(log), state, start_at="start") as source:
        assert numbers(source.read_new(max_lines=1)) == [0]
        os.rename(log, f"{log}.1")
        new = open_append(log)
        write_numbers(new, 100, 102)
        assert numbers(source.read_new(max_lines=2)) == [1, 2]
        source.commit()  # saved: the retired inode at byte 21, the new file at 0
    write_numbers(old, 10, 11)
    with FileSource(str(log), state) as source:
        assert numbers(read_all(source, 0)) == [3, 4, 5, 6, 7, 8, 9, 10, 100, 101]
    os.close(old)
    os.close(new)


def test_truncate_and_regrow_past_the_offset_is_noticed(tmp_path: Path, state: StateStore) -> None:
    """The size never shrank between two looks: only the head fingerprint tells."""
    log = tmp_path / "app.log"
    log.write_bytes(b"first 1\nfirst 2\n")
    with FileSource(str(log), state, start_at="start") as source:
        assert data(source.read_new()) == [b"first 1", b"first 2"]
        with open(log, "r+b") as f:
            f.truncate(0)
            f.write(b"second 1\nsecond 2\nsecond 3\n")
        assert data(source.read_new()) == [b"second 1", b"second 2", b"second 3"]
        source.commit()
    with open(log, "r+b") as f:  # again while stopped, longer than the saved offset
        f.truncate(0)
        f.write(b"third 1\nthird 2\nthird 3 is a longer line\n")
    with FileSource(str(log), state) as source:
        assert [(ln.line_no, ln.data) for ln in source.read_new()] == [
            (1, b"third 1"), (2, b"third 2"), (3, b"third 3 is a longer line"),
        ]  # fmt: skip


def test_a_short_file_grows_its_fingerprint(tmp_path: Path, state: StateStore) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"a\n")
    with FileSource(str(log), state, start_at="start") as source:
        assert data(source.read_new()) == [b"a"]
        assert source.positions()[0].head_len == 2
        with open(log, "ab") as f:
            f.write(b"x" * 300 + b"\n")
        assert data(source.read_new()) == [b"x" * 300]
        assert source.positions()[0].head_len == 256
        with open(log, "r+b") as f:  # copytruncate-like rewrite, first 2 bytes unchanged
            f.truncate(0)
            f.write(b"a\n" + b"y" * 400 + b"\n")
        assert data(source.read_new()) == [b"a", b"y" * 400]


def test_copytruncate_copy_drained_before_the_file_restarts(
    tmp_path: Path, state: StateStore
) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"".join(b"%06d\n" % i for i in range(10)))
    with FileSource(str(log), state, start_at="start") as source:
        assert numbers(source.read_new(max_lines=4)) == [0, 1, 2, 3]
        shutil.copyfile(log, f"{log}.1")
        os.truncate(log, 0)
        with open(log, "ab") as f:
            f.write(b"000010\n")
        lines = source.read_new()
    assert numbers(lines) == [4, 5, 6, 7, 8, 9, 10]
    assert [line.line_no for line in lines] == [5, 6, 7, 8, 9, 10, 1]


def test_a_partial_last_line_waits_for_its_newline(tmp_path: Path, state: StateStore) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"one\ntw")
    with FileSource(str(log), state, start_at="start") as source:
        assert data(source.read_new()) == [b"one"]
        with open(log, "ab") as f:
            f.write(b"o\nthr")
        assert data(source.read_new()) == [b"two"]
        source.commit()  # the saved position is before "thr"
    with open(log, "ab") as f:
        f.write(b"ee\n")
    with FileSource(str(log), state) as source:
        assert [(ln.line_no, ln.data) for ln in source.read_new()] == [(3, b"three")]


def test_an_endless_line_is_held_capped_until_its_newline(
    tmp_path: Path, state: StateStore
) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    with FileSource(str(log), state, start_at="start") as source:
        with open(log, "ab") as f:
            for _ in range(40):  # 2.5 MB without a newline, arriving in pieces
                f.write(b"B" * 65536)
                f.flush()
                assert source.read_new() == []
            f.write(b"\nnext\n")
        assert data(source.read_new()) == [b"B" * LINE_CAP, b"next"]


def test_start_at_end_skips_old_lines_but_keeps_counting(tmp_path: Path, state: StateStore) -> None:
    log = tmp_path / "auth.log"
    log.write_bytes(b"old 1\nold 2\nold partial")
    with FileSource(str(log), state) as source:
        assert source.read_new() == []
        with open(log, "ab") as f:
            f.write(b" done\nnew\n")
        assert [(ln.line_no, ln.data) for ln in source.read_new()] == [
            (3, b"old partial done"), (4, b"new"),
        ]  # fmt: skip


def test_a_first_run_starts_where_the_files_ended_when_the_source_was_built(
    tmp_path: Path, state: StateStore
) -> None:
    """The daemon says READY once its sources are built: lines written after that and
    before the reader's first look are read, and so is a file that appeared meanwhile."""
    log, later = tmp_path / "auth.log", tmp_path / "later.log"
    log.write_bytes(b"old\n")
    with FileSource(str(tmp_path / "*.log"), state, poll_interval=0.1) as source:
        with open(log, "ab") as f:
            f.write(b"new\n")
        later.write_bytes(b"first\n")
        seen: list[bytes] = []
        for _ in range(100):  # until the glob has been looked at again
            seen += [line.data for line in source.wait(0.1)]
            if len(seen) >= 2:
                break
        assert sorted(seen) == [b"first", b"new"]


def test_a_glob_picks_up_new_files_and_skips_rotated_ones(
    tmp_path: Path, state: StateStore
) -> None:
    logs = tmp_path / "apache2"
    logs.mkdir()
    (logs / "access.log").write_bytes(b"a1\n")
    (logs / "access.log.1").write_bytes(b"rotated\n")
    (logs / "access.log.2.gz").write_bytes(b"\x1f\x8b")
    pattern = str(logs / "*access.log*")
    with FileSource(pattern, state, start_at="start", poll_interval=3600) as source:
        assert data(read_all(source, 0)) == [b"a1"]
        (logs / "ssl_access.log").write_bytes(b"s1\ns2\n")
        got = source.wait(timeout=30)  # inotify: the poll would take an hour
        got += read_all(source, 0)
        assert [(ln.source, ln.data) for ln in got] == [
            (str(logs / "ssl_access.log"), b"s1"), (str(logs / "ssl_access.log"), b"s2"),
        ]  # fmt: skip
        source.commit()
    (logs / "vhost_access.log").write_bytes(b"v1\n")
    with FileSource(pattern, state, poll_interval=3600) as source:  # new since: from 0
        assert data(read_all(source, 0)) == [b"v1"]


def test_the_poll_finds_what_inotify_would(tmp_path: Path, state: StateStore) -> None:
    clock = FakeClock()
    pattern = str(tmp_path / "*.log")
    source = FileSource(pattern, state, use_inotify=False, poll_interval=2, clock=clock)
    with source:
        assert source.read_new() == []
        (tmp_path / "late.log").write_bytes(b"l1\n")
        assert source.read_new() == []
        clock.now += 2
        assert data(source.read_new()) == [b"l1"]


def test_a_file_renamed_within_the_glob_is_not_read_again(
    tmp_path: Path, state: StateStore
) -> None:
    (tmp_path / "a.log").write_bytes(b"a1\na2\n")
    pattern = str(tmp_path / "*.log")
    with FileSource(pattern, state, start_at="start", poll_interval=3600) as source:
        assert data(source.read_new()) == [b"a1", b"a2"]
        os.rename(tmp_path / "a.log", tmp_path / "b.log")
        with open(tmp_path / "b.log", "ab") as f:
            f.write(b"a3\n")
        got = source.wait(timeout=30)
        assert [(ln.source, ln.line_no, ln.data) for ln in got] == [
            (str(tmp_path / "b.log"), 3, b"a3")
        ]


def test_compressed_files_are_refused(tmp_path: Path, state: StateStore) -> None:
    with pytest.raises(SourceError, match="compressed"):
        FileSource(str(tmp_path / "auth.log.2.gz"), state)


def test_a_path_that_is_a_directory_or_missing_yields_nothing(
    tmp_path: Path, state: StateStore
) -> None:
    (tmp_path / "dir.log").mkdir()
    with FileSource(str(tmp_path / "dir.log"), state, start_at="start") as source:
        assert source.read_new() == []
    with FileSource(str(tmp_path / "later.log"), state, start_at="start") as source:
        assert source.read_new() == []
        (tmp_path / "later.log").write_bytes(b"x\n")
        assert data(source.wait(timeout=30)) == [b"x"]


@pytest.mark.parametrize(
    ("tail_bytes", "kept"),
    [
        (b"", b""),  # exactly LINE_CAP ASCII bytes: nothing to cut back
        (b"\xc3", b""),  # a 2-byte lead as the last byte
        (b"\xe2\x82", b""),  # 2 of 3 bytes
        (b"\xf0\x9d\x84", b""),  # 3 of 4 bytes
        (b"\xc3\xa9", b"\xc3\xa9"),  # a whole character ends exactly at the cap
        (b"\xff\xfe", b"\xff\xfe"),  # not UTF-8 at all: cut at the cap as it is
    ],
)
def test_cap_line_cuts_on_a_character_boundary(tail_bytes: bytes, kept: bytes) -> None:
    head = b"x" * (LINE_CAP - len(tail_bytes))
    assert cap_line(head + tail_bytes + b"overflow") == head + kept
    assert cap_line(b"short \xc3") == b"short \xc3"  # under the cap nothing is touched

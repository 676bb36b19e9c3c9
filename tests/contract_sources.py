"""The behaviour every LogSource keeps, run against each of them.

A test module subclasses ``SourceContract`` and provides a ``harness`` fixture: something
that logs payloads the way the real producer would (a line appended to a file, an entry
written to a journal file) and opens a new source object on a state store, the way a
(re)started daemon does. Payloads come back as ``LogLine.data``, exactly.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import pytest

from agent.sources import LINE_CAP, MAX_LINE_CHARS, LogLine, LogSource
from agent.state import StateStore


class Harness(Protocol):
    #: How long a source may take to show what was logged (a journalctl process must run).
    settle: float

    def append(self, payloads: Sequence[bytes]) -> None:
        """Log these payloads, in order, as the producer of this kind of log does."""

    def open(self, state: StateStore) -> LogSource:
        """A new source (a daemon start) reading everything logged since the first open."""


def payloads(prefix: str, count: int) -> list[bytes]:
    return [f"{prefix} {i:05d} Failed password for root from 203.0.113.{i % 250}".encode()
            for i in range(count)]  # fmt: skip


def data(lines: Sequence[LogLine]) -> list[bytes]:
    return [line.data for line in lines]


def read_all(source: LogSource, settle: float, max_lines: int = 10_000) -> list[LogLine]:
    """Everything available now, in batches, until nothing more comes within ``settle``."""
    out: list[LogLine] = []
    while batch := source.wait(settle, max_lines):
        out += batch
    return out


class SourceContract:
    """Subclass with a ``harness`` fixture; every test here then runs against that source."""

    @pytest.fixture
    def state(self, tmp_path: Path):
        store = StateStore(tmp_path / "state" / "state.db")
        yield store
        store.close()

    def test_delivers_logged_lines_in_order(self, harness: Harness, state: StateStore) -> None:
        first = payloads("a", 5)
        harness.append(first)
        with harness.open(state) as source:
            assert data(read_all(source, harness.settle)) == first
            assert source.read_new() == []

    def test_wait_wakes_when_a_line_is_logged(self, harness: Harness, state: StateStore) -> None:
        harness.append(payloads("a", 1))
        with harness.open(state) as source:
            read_all(source, harness.settle)
            later = payloads("b", 3)
            timer = threading.Timer(0.2, harness.append, (later,))
            timer.start()
            try:
                got = source.wait(timeout=30)  # the poll is slower: only a wake-up is in time
                got += read_all(source, harness.settle)
            finally:
                timer.join()
            assert data(got) == later

    def test_wait_times_out_with_nothing(self, harness: Harness, state: StateStore) -> None:
        harness.append(payloads("a", 1))
        with harness.open(state) as source:
            read_all(source, harness.settle)
            assert source.wait(timeout=0.2) == []

    def test_wake_ends_a_blocked_wait(self, harness: Harness, state: StateStore) -> None:
        harness.append(payloads("a", 1))
        with harness.open(state) as source:
            read_all(source, harness.settle)
            result: list[list[LogLine]] = []
            waiter = threading.Thread(target=lambda: result.append(source.wait(timeout=120)))
            waiter.start()
            source.wake()
            waiter.join(timeout=30)
            assert not waiter.is_alive()
            assert result == [[]]

    def test_commit_and_restart_resume_after_the_last_line(
        self, harness: Harness, state: StateStore
    ) -> None:
        first, second = payloads("a", 4), payloads("b", 3)
        harness.append(first)
        with harness.open(state) as source:
            assert data(read_all(source, harness.settle)) == first
            source.commit()
        harness.append(second)
        with harness.open(state) as source:
            assert data(read_all(source, harness.settle)) == second
            source.commit()
        with harness.open(state) as source:
            assert read_all(source, harness.settle) == []

    def test_lines_not_committed_are_delivered_again(
        self, harness: Harness, state: StateStore
    ) -> None:
        first, second = payloads("a", 3), payloads("b", 4)
        harness.append(first)
        with harness.open(state) as source:
            read_all(source, harness.settle)
            source.commit()
            harness.append(second)
            assert (
                data(read_all(source, harness.settle)) == second
            )  # handed out, never acknowledged: a crash
        with harness.open(state) as source:
            assert data(read_all(source, harness.settle)) == second

    def test_batches_respect_max_lines_and_commit_between(
        self, harness: Harness, state: StateStore
    ) -> None:
        logged = payloads("a", 25)
        harness.append(logged)
        with harness.open(state) as source:
            got = source.wait(5, max_lines=10)
            assert len(got) == 10
            source.commit()
        with harness.open(state) as source:
            rest = source.wait(5, max_lines=10)
            assert len(rest) == 10
            rest += read_all(source, harness.settle, max_lines=10)
        assert data(got + rest) == logged

    def test_bytes_are_delivered_untouched(self, harness: Harness, state: StateStore) -> None:
        odd = [b"bad utf-8 \xff\xfe\xc3( here", b"nul \x00 inside", b"", b"tab\tand \x1b[31m"]
        harness.append(odd)
        with harness.open(state) as source:
            assert data(read_all(source, harness.settle)) == odd

    def test_an_overlong_line_is_capped_on_a_character_boundary(
        self, harness: Harness, state: StateStore
    ) -> None:
        ascii_ = b"GET /" + b"A" * 100_000
        euro = "\u20ac".encode() * 30_000  # 3-byte characters: LINE_CAP falls inside one
        clef = "\U0001d11e".encode() * 20_000  # 4-byte characters: the worst case
        harness.append([ascii_, euro, clef, b"after"])
        with harness.open(state) as source:
            got = data(read_all(source, harness.settle))
        assert got == [ascii_[:LINE_CAP], "\u20ac".encode() * (LINE_CAP // 3),
                       clef[:LINE_CAP], b"after"]  # fmt: skip
        # Still valid UTF-8, and still longer than what the detector reads: it counts a cut.
        assert all(len(line.decode()) > MAX_LINE_CHARS for line in got[:3])

    def test_many_lines_arrive_in_order(self, harness: Harness, state: StateStore) -> None:
        logged = payloads("m", 3000)
        harness.append(logged)
        with harness.open(state) as source:
            assert data(read_all(source, harness.settle, max_lines=700)) == logged

    def test_close_is_final_and_idempotent(self, harness: Harness, state: StateStore) -> None:
        logged = payloads("a", 2)
        harness.append(logged)
        source = harness.open(state)
        assert data(read_all(source, harness.settle)) == logged
        source.close()
        source.close()
        assert source.read_new() == []
        assert source.wait(0.1) == []
        source.commit()  # too late: nothing is saved after close()
        with harness.open(state) as again:
            assert data(read_all(again, harness.settle)) == logged

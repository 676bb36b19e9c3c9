"""One big log file scanned in ranges by worker processes, with exactly the result of one
pass over it.

A line may need what an earlier line said about its process (sshd's ``Connection from``,
PostgreSQL's ``connection received``: :mod:`agent.detect.memory`), and that line can lie
in any earlier range, however far back. So each worker scans its range as if nothing came
before it and reports, besides its hits, every look-up that found nothing (the lines
before the range might have answered it), the memory it ended with, and where each of
its blocks ended. This process then takes the ranges in file order, carrying the memory
the ranges before left, exactly as one pass would have left it:

* a range none of whose failed look-ups the carried memory could answer is exact as it
  is: its memory is laid over the carried one;
* otherwise its blocks up to the last one with such a look-up are scanned again here,
  with the carried memory, and replace the worker's; the worker's hits, counters and
  memory changes after those blocks stand (nothing after them depended on the lines
  before the range). Processes straddle a range's start for seconds of log, so this is
  usually the range's first block.

A worker judges the PostgreSQL connection records still held at its range's end with the
line that follows (:meth:`agent.detect.detector.Detector.settle`): one pass would judge
them when a later line of their process first needs them, which gives the same verdict
unless the line after a record is a clientless record of a process whose connection
is known at one moment and not the other.
"""

from __future__ import annotations

import copy
import gc
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from agent.detect.detector import Counters, Detector
from agent.detect.memory import Key, ProcessMemory
from agent.scan import BLOCK_SIZE, Settings, add_counters, detector_for, iter_blocks
from agent.scan_progress import ScanProgress

#: Regular files at least this big are split into ranges scanned by worker processes.
PARALLEL_MIN_BYTES = 16 << 20  # measured: two workers win from about 8 MB on 2 cores
RANGE_BYTES = 16 << 20
RANGES_PER_WORKER = 4
#: The lines in the last bytes before a range are looked at (not scanned) for the range's
#: first lines: a PostgreSQL line may continue a user name broken just before it.
LEAD_IN_BYTES = 1 << 16
MAX_WORKERS = 4

#: (path, start, end) of a range of whole lines.
Task = tuple[str, int, int]


@dataclass
class _Mark:
    """Where a worker was after one block of its range (the last mark: after settling)."""

    records: int  # records found so far
    changes: int  # changes its memory had made so far
    counters: Counters  # a copy of its counters then


@dataclass
class _RangeResult:
    records: list[tuple]
    counters: Counters
    memory: ProcessMemory
    #: look-ups that found nothing: (source, pid) -> index of the last mark they came before
    misses: dict[Key, int] = field(default_factory=dict)
    marks: list[_Mark] = field(default_factory=list)


def workers_for(path: str) -> int:
    """Worker processes for a file: one per core for a big regular file, else 1."""
    cores = os.cpu_count() or 1
    if path == "-" or path.endswith(".gz") or cores < 2:
        return 1
    try:
        if not stat.S_ISREG(os.stat(path).st_mode) or os.path.getsize(path) < PARALLEL_MIN_BYTES:
            return 1
    except OSError:
        return 1
    return min(cores, MAX_WORKERS)


def parallel_hits(
    path: str,
    settings: Settings,
    total: Counters,
    workers: int,
    progress: ScanProgress | None = None,
) -> Iterator[tuple]:
    """Records of a big file in file order (see the module docstring). Workers number
    lines from the start of their range; events get their line in the file here.
    ``progress`` hears of each range as it is replayed."""
    import multiprocessing  # only for big files: keeps start-up short

    keep_events = settings[0].keep_events
    tasks = list(_ranges(path, workers))
    carried = ProcessMemory()  # what the ranges before said, as one pass would have left it
    context = multiprocessing.get_context("fork")
    with context.Pool(workers, _worker_init, (settings,)) as pool:
        before = 0  # lines in the ranges already replayed
        for task, result in zip(tasks, pool.imap(_scan_range, tasks), strict=True):
            records, counters, carried = _resolve(task, settings, result, carried)
            add_counters(total, counters)
            if progress is not None:
                progress.advance(task[2] - task[1], counters.lines)
            if keep_events:
                for *head, line, text in records:
                    yield *head, line + before, text
            else:
                yield from records
            before += counters.lines


def _resolve(
    task: Task, settings: Settings, result: _RangeResult, carried: ProcessMemory
) -> tuple[list[tuple], Counters, ProcessMemory]:
    """A range's records and counters as one pass would have found them, and the memory
    after it, given the memory ``carried`` from the ranges before."""
    answered = [mark for key, mark in result.misses.items() if carried.knows(key)]
    if not answered:
        carried.extend(result.memory)
        return result.records, result.counters, carried
    last = max(answered)
    again = detector_for(settings, carried)
    records = _scan(again, task, settings, stop=last)
    mark = result.marks[last]
    counters = copy.deepcopy(result.counters)
    add_counters(counters, mark.counters, -1)
    add_counters(counters, again.counters)
    again.memory.extend(result.memory, after=mark.changes)
    return records + result.records[mark.records :], counters, again.memory


def _ranges(path: str, workers: int) -> Iterator[Task]:
    """Consecutive ranges of whole lines, a few per worker so that none waits long for the
    last one, at most RANGE_BYTES each."""
    size = os.path.getsize(path)
    step = max(1, min(RANGE_BYTES, -(-size // (workers * RANGES_PER_WORKER))))
    with open(path, "rb") as handle:
        start = 0
        while start < size:
            end = _line_end(handle, start + step - 1, size)
            yield path, start, end
            start = end


def _line_end(handle: BinaryIO, position: int, size: int) -> int:
    """The offset just past the first newline at or after ``position`` (or the file size)."""
    while position < size:
        handle.seek(position)
        chunk = handle.read(BLOCK_SIZE)
        newline = chunk.find(b"\n")
        if newline != -1:
            return position + newline + 1
        if not chunk:
            break
        position += len(chunk)
    return size


_SETTINGS: Settings | None = None


def _worker_init(settings: Settings) -> None:
    global _SETTINGS
    _SETTINGS = settings
    gc.disable()  # a worker lives for one scan, and builds no cycles (see agent.scan)


def _scan_range(task: Task) -> _RangeResult:
    """Scan one range in a worker process as if nothing came before it, numbering lines
    from 1, noting the look-ups that found nothing and where each block ended."""
    assert _SETTINGS is not None
    detector = detector_for(_SETTINGS)
    result = _RangeResult([], detector.counters, detector.memory)

    def missed(source: str, pid: str | None) -> None:
        result.misses[(source, pid)] = len(result.marks)

    def mark(records: int) -> None:
        counters = copy.deepcopy(detector.counters)
        result.marks.append(_Mark(records, detector.memory.changes, counters))

    detector.memory.missed = missed
    result.records = _scan(detector, task, _SETTINGS, mark=mark)
    detector.memory.missed = None  # the result goes back pickled
    return result


def _scan(
    detector: Detector,
    task: Task,
    settings: Settings,
    *,
    mark: Callable[[int], None] | None = None,
    stop: int | None = None,
) -> list[tuple]:
    """What a worker does with a range: its records, ``mark`` called after each block and
    after settling; with ``stop``, only up to that mark. Records travel back as plain
    tuples, only (time, rule, ip, confidence) unless events are kept: pickling costs per
    field.
    ``mark`` is given the number of records found so far."""
    path, start, end = task
    options, kind, _ = settings
    keep = options.keep_events
    records: list[tuple] = []
    with open(path, "rb") as handle:
        if start > 0:  # the range's first lines may continue the lines just before it
            handle.seek(max(0, start - LEAD_IN_BYTES))
            before = handle.read(start - handle.tell())
            cut = before.find(b"\n") + 1 if start > LEAD_IN_BYTES else 0
            detector.lead_in(kind, path, before[cut:])
        handle.seek(start)
        line = 1
        for index, block in enumerate(iter_blocks(_Bounded(handle, end - start), BLOCK_SIZE)):
            found, count = detector.hits_block(block, kind, path, line, numbered=keep)
            records += found if keep else [hit[:4] for hit in found]
            line += count
            if mark is not None:
                mark(len(records))
            if index == stop:
                return records
        following = handle.readline()
        if following:  # a held connection record is judged with it (see the docstring)
            detector.settle(kind, path, following.rstrip(b"\n"))
    if mark is not None:
        mark(len(records))
    return records


class _Bounded:
    """A reader that stops after ``size`` bytes (one worker's range)."""

    def __init__(self, handle: BinaryIO, size: int):
        self._handle = handle
        self._left = size

    def readinto(self, target: memoryview) -> int:
        count = self._handle.readinto(target[: self._left])  # type: ignore[attr-defined]
        self._left -= count
        return count

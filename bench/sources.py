"""Throughput of the log sources: lines/s and MB/s through FileSource and JournalSource.

    .venv/bin/python bench/sources.py [--lines 1000000] [--journal-entries 100000]

The file is a synthetic combined-format access log written to a temporary directory (on
the disk /tmp is on); JournalSource reads a real journal file made by
systemd-journal-remote from entries with the fields journald gives an sshd line (skipped
when that program is missing). Each source reads from the
first byte/entry with commit() after every batch, as the daemon does.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.sources import FileSource, JournalSource, LogSource
from agent.state import StateStore

REMOTE = "/lib/systemd/systemd-journal-remote"
LINE = (
    '203.0.113.{a} - - [05/Jan/2025:10:00:{s:02d} +0000] "GET /index.php?id={n} HTTP/1.1"'
    ' 200 {size} "https://example.org/" "Mozilla/5.0 (X11; Linux x86_64) Firefox/121.0"\n'
)


def drain(source: LogSource) -> tuple[int, int, float]:
    """Read everything there is; (lines, bytes, seconds)."""
    lines = size = 0
    start = time.perf_counter()
    while batch := source.wait(1.0):
        lines += len(batch)
        size += sum(len(line.data) + 1 for line in batch)
        source.commit()
    return lines, size, time.perf_counter() - start - 1.0  # minus the final empty wait


def report(what: str, lines: int, size: int, seconds: float) -> None:
    print(
        f"{what}: {lines} lines, {size / 1e6:.1f} MB in {seconds:.2f} s:"
        f" {lines / seconds:,.0f} lines/s, {size / 1e6 / seconds:.1f} MB/s"
    )


def bench_file(work: Path, count: int) -> None:
    log = work / "access.log"
    with open(log, "w") as f:
        for n in range(count):
            f.write(LINE.format(a=n % 250, s=n % 60, n=n, size=1000 + n % 9000))
    with (
        StateStore(work / "file.db") as state,
        FileSource(str(log), state, start_at="start") as src,
    ):
        report("FileSource", *drain(src))


def bench_journal(work: Path, count: int) -> None:
    if not os.path.exists(REMOTE) or shutil.which("journalctl") is None:
        print("JournalSource: skipped (needs systemd-journal-remote and journalctl)")
        return
    directory = work / "journal"
    directory.mkdir()
    stream = bytearray()
    for n in range(count):
        stream += (
            f"__REALTIME_TIMESTAMP={1736071200000000 + n}\n__MONOTONIC_TIMESTAMP={1000 + n}\n"
            f"_BOOT_ID=0c1b2a3f4e5d4c6b8a0f4e1d7a2b3c9f\n_SYSTEMD_UNIT=ssh.service\n"
            f"_HOSTNAME=web1\n_PID={n}\n_UID=0\n_GID=0\n_COMM=sshd\n_EXE=/usr/sbin/sshd\n"
            f"_CMDLINE=sshd: root [priv]\nSYSLOG_IDENTIFIER=sshd\nSYSLOG_FACILITY=4\nPRIORITY=6\n"
            f"MESSAGE=Failed password for root from 203.0.113.{n % 250} port {n % 65536} ssh2\n\n"
        ).encode()
    out = directory / "remote.journal"
    subprocess.run([REMOTE, f"--output={out}", "-"], input=bytes(stream), check=True,
                   capture_output=True)  # fmt: skip
    with (
        StateStore(work / "journal.db") as state,
        JournalSource(["ssh.service"], state, str(directory), start_at="start") as src,
    ):
        report("JournalSource", *drain(src))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--journal-entries", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lappguard-bench-") as tmp:
        bench_file(Path(tmp), args.lines)
        bench_journal(Path(tmp), args.journal_entries)


if __name__ == "__main__":
    main()

"""Real journal files for tests: entries in journal export format, turned into a genuine
journal file by systemd-journal-remote, which journalctl (and so JournalSource) follows."""

from __future__ import annotations

import struct
import subprocess
from collections.abc import Iterable
from pathlib import Path

BOOT_ID = b"0c1b2a3f4e5d4c6b8a0f4e1d7a2b3c9f"


def export_field(name: bytes, value: bytes) -> bytes:
    """One field: text form when printable, else the binary-safe length-prefixed form."""
    if all(32 <= c < 127 for c in value):
        return name + b"=" + value + b"\n"
    return name + b"\n" + struct.pack("<Q", len(value)) + value + b"\n"


class Journal:
    """A journal directory that entries are appended to through systemd-journal-remote."""

    def __init__(self, directory: Path, remote: str, start_us: int = 1_736_100_000_000_000):
        """``start_us``: the realtime clock of the first entry (default: after the
        fixture's entries; the daemon tests pass now, so jails count the entries)."""
        self.directory = directory
        self.remote = remote
        self.clock_us = start_us
        directory.mkdir()

    def write(self, export: bytes) -> None:
        out = self.directory / "remote.journal"
        done = subprocess.run(
            [self.remote, f"--output={out}", "-"], input=export, capture_output=True, timeout=60
        )
        assert done.returncode == 0, done.stderr.decode()

    def append(self, messages: Iterable[bytes], unit: str = "ssh.service") -> None:
        stream = b""
        for message in messages:
            self.clock_us += 1000
            stream += b"".join(
                export_field(name, value)
                for name, value in (
                    (b"__CURSOR", b"s=0;i=%d" % self.clock_us),
                    (b"__REALTIME_TIMESTAMP", b"%d" % self.clock_us),
                    (b"__MONOTONIC_TIMESTAMP", b"%d" % (self.clock_us - 1_736_000_000_000_000)),
                    (b"_BOOT_ID", BOOT_ID),
                    (b"_SYSTEMD_UNIT", unit.encode()),
                    (b"SYSLOG_IDENTIFIER", b"sshd"),
                    (b"MESSAGE", message),
                )
            )
            stream += b"\n"
        self.write(stream)

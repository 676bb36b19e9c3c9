"""JournalSource on real journal files written by systemd-journal-remote from export format.

The export stream is what ``journalctl -o export`` produces; systemd-journal-remote turns
it into a genuine journal file that journalctl (and so JournalSource) follows.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import psutil
import pytest
from conftest import FIXTURES, require_program
from contract_sources import SourceContract, data, read_all
from journal_files import Journal

from agent.sources import JournalSource, SourceError
from agent.sources.journal import parse_entry
from agent.state import StateStore

SSHD_EXPORT = FIXTURES / "journal" / "sshd.export"
SETTLE = 0.5  # journalctl prints a new entry within milliseconds; this is a wide margin


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    require_program("journalctl")
    return Journal(tmp_path / "journal", require_program("systemd-journal-remote"))


@pytest.fixture
def state(tmp_path: Path):
    store = StateStore(tmp_path / "state.db")
    yield store
    store.close()


class JournalHarness:
    settle = SETTLE

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def append(self, payloads: Sequence[bytes]) -> None:
        self.journal.append(payloads)

    def open(self, state: StateStore) -> JournalSource:
        return JournalSource(["ssh.service"], state, str(self.journal.directory), start_at="start")


class TestJournalSourceContract(SourceContract):
    @pytest.fixture
    def harness(self, journal: Journal) -> JournalHarness:
        return JournalHarness(journal)


def test_only_the_trusted_unit_is_followed(journal: Journal, state: StateStore) -> None:
    """The forged line (SYSLOG_IDENTIFIER=sshd from a user's unit, 6.6.6.6) never comes."""
    journal.write(SSHD_EXPORT.read_bytes())
    with JournalSource(["ssh.service"], state, str(journal.directory), start_at="start") as src:
        lines = read_all(src, SETTLE)
    assert data(lines) == [
        b"Failed password for root from 203.0.113.5 port 4242 ssh2",
        b"Invalid user admin from 198.51.100.7 port 50000",
        b"Accepted publickey for alice from 192.0.2.10 port 51000 ssh2: ED25519"
        b" SHA256:k1bHq3F0bV6Cj1tq0aJ6C7m3oQ9v2bXh8Qq3rN0yFzs",
        b"Invalid user \xff\xfeadmin from 203.0.113.9 port 1234",
        b"Bad protocol version identification 'GET / HTTP/1.1\r\nHost: x'"
        b" from 203.0.113.11 port 5555",
    ]
    assert [line.time for line in lines] == [1736071201.0, 1736071202.0, 1736071204.0,
                                             1736071206.0, 1736071207.0]  # fmt: skip
    assert {(line.source, line.line_no) for line in lines} == {("journal:ssh.service", 0)}


def test_several_units_name_their_source(journal: Journal, state: StateStore) -> None:
    journal.write(SSHD_EXPORT.read_bytes())
    units = ["ssh.service", "cron.service"]
    with JournalSource(units, state, str(journal.directory), start_at="start") as src:
        lines = read_all(src, SETTLE)
    assert [line.source for line in lines] == ["journal:ssh.service"] * 3 + [
        "journal:cron.service"
    ] + ["journal:ssh.service"] * 2


def test_cursor_survives_a_restart_and_a_reboot(journal: Journal, state: StateStore) -> None:
    """Resume inside the fixture's boot, then read on into entries of a later boot."""
    journal.write(SSHD_EXPORT.read_bytes())
    directory = str(journal.directory)
    with JournalSource(["ssh.service"], state, directory, start_at="start") as src:
        assert len(src.wait(10, max_lines=2)) == 2
        src.commit()
        saved = src.cursor()
    assert state.journal_cursor("journal:ssh.service") == saved
    journal.append([b"Failed password for invalid user x from 203.0.113.77 port 1 ssh2"])
    journal.append([b"forged again"], unit="user@1000.service")
    with JournalSource(["ssh.service"], state, directory) as src:  # start_at "end" is moot
        lines = read_all(src, SETTLE)
        src.commit()
    assert [line.time for line in lines] == [1736071204.0, 1736071206.0, 1736071207.0,
                                             1736100000.001]  # fmt: skip
    assert data(lines)[-1] == b"Failed password for invalid user x from 203.0.113.77 port 1 ssh2"
    with JournalSource(["ssh.service"], state, directory) as src:
        assert read_all(src, SETTLE) == []


def test_first_start_at_the_end_then_nothing_is_missed_while_stopped(
    journal: Journal, state: StateStore
) -> None:
    journal.write(SSHD_EXPORT.read_bytes())
    directory = str(journal.directory)
    with JournalSource(["ssh.service"], state, directory) as src:
        assert read_all(src, SETTLE) == []
        src.commit()  # nothing read yet, but where "the end" was is now saved
    journal.append([b"while stopped"])
    with JournalSource(["ssh.service"], state, directory) as src:
        assert data(read_all(src, SETTLE)) == [b"while stopped"]


def test_a_killed_journalctl_is_restarted_where_it_was(journal: Journal, state: StateStore) -> None:
    journal.append([b"one", b"two"])
    directory = str(journal.directory)
    with JournalSource(["ssh.service"], state, directory, start_at="start", restart_delay=0) as src:
        assert data(read_all(src, SETTLE)) == [b"one", b"two"]
        (child,) = [p for p in psutil.Process().children() if p.name() == "journalctl"]
        child.kill()
        while child.status() != psutil.STATUS_ZOMBIE:  # dead, not reaped: that is the source's
            time.sleep(0.01)
        assert src.read_new() == []  # sees it exit
        assert src.errors["journalctl"].startswith("exited with -9")
        journal.append([b"three"])
        assert data(read_all(src, SETTLE)) == [b"three"]
        assert src.errors == {}


@pytest.mark.parametrize(
    "units", [[], ["ssh.service --all"], ["+"], ["../ssh.service"], ["-ssh"], ["ssh"]]
)
def test_unit_names_are_checked(state: StateStore, units: list[str]) -> None:
    with pytest.raises(SourceError, match="unit"):
        JournalSource(units, state, "/nonexistent")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"not json", (None, None)),
        (b"[1, 2]", (None, None)),
        (b'{"__CURSOR": 5, "_SYSTEMD_UNIT": "ssh.service", "MESSAGE": "x"}', (None, b"x")),
        (b'{"__CURSOR": "c", "_SYSTEMD_UNIT": "ssh.service", "MESSAGE": null}', ("c", None)),
        (b'{"__CURSOR": "c", "_SYSTEMD_UNIT": "ssh.service"}', ("c", None)),
        (b'{"__CURSOR": "c", "_SYSTEMD_UNIT": "ssh.service", "MESSAGE": [104, 255]}',
         ("c", b"h\xff")),
        (b'{"__CURSOR": "c", "_SYSTEMD_UNIT": "ssh.service", "MESSAGE": ["a", [98]]}',
         ("c", b"a")),
        (b'{"__CURSOR": "c", "_SYSTEMD_UNIT": "ssh.service", "MESSAGE": [256, 1]}', ("c", None)),
        (b'{"__CURSOR": "c", "_SYSTEMD_UNIT": "ssh.service", "MESSAGE": [true]}', ("c", None)),
        (b'{"__CURSOR": "c", "_SYSTEMD_UNIT": "ssh.service", "MESSAGE": "\\ud800"}',
         ("c", b"\xed\xa0\x80")),
        # Two unit values: journald never writes that, so it is not trusted either way.
        (b'{"__CURSOR": "c", "_SYSTEMD_UNIT": ["user@1000.service", "ssh.service"],'
         b' "MESSAGE": "forged"}', ("c", None)),
        (b'{"__CURSOR": "c", "_SYSTEMD_UNIT": "cron.service", "MESSAGE": "x"}', ("c", None)),
    ],
)  # fmt: skip
def test_parse_entry_never_raises(raw: bytes, expected: tuple) -> None:
    cursor, line = parse_entry(raw, frozenset({"ssh.service"}))
    assert (cursor, line.data if line else None) == expected

"""Log injection through PostgreSQL user and database names, against a real PostgreSQL 15.

PostgreSQL writes the names a client sends in its startup packet raw in log_line_prefix,
newlines included: a name ``x"\\n<time> [999] 6.6.6.6 z`` makes the server write a physical
line that reads as a whole failed login of 6.6.6.6. Each test sends such names from
loopback (the real client), reads the log the server really wrote, proves the forged line
is in it, and asserts that no event names the forged address while ordinary failed logins
from 127.0.0.1 and ::1 still name them, read line by line (the daemon) and by blocks
(``lappguard scan``).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections import Counter
from datetime import UTC
from pathlib import Path

import pytest
from conftest import require_program
from servers import RunningServer, run_postgres
from test_detect_live import summary, wait_for

from agent.bans.jails import load_jails
from agent.detect.detector import Counters, Detector
from agent.detect.events import Event
from agent.detect.logformats import DEBIAN_PG_PREFIX, PostgresPrefix
from agent.detect.rules import load_rules
from agent.scan import ScanOptions, scan

RULES = load_rules()
FORGED = "6.6.6.6"
HOST_PREFIX = "%m [%p] %h %q%u@%d "
STAMP = "2024-01-05 10:00:00.000 UTC"
PASSWORDS = "host all all 127.0.0.1/32 scram-sha-256\nhost all all ::1/128 scram-sha-256\n"


class Postgres:
    """A started cluster with one role, ``app``, whose password is not ``wrong``."""

    def __init__(self, server: RunningServer):
        self.server = server
        self.psql = require_program("psql")
        self.log = server.workdir / "server.log"  # type: ignore[operator]

    def admin(self, sql: str) -> str:
        sockets = str(self.server.workdir / "sockets")  # type: ignore[operator]
        argv = ["runuser", "-u", "postgres", "--", self.psql, "-h", sockets]
        argv += ["-p", str(self.server.port), "-X", "-q", "-A", "-t", "-c", sql]
        return subprocess.run(argv, check=True, capture_output=True, text=True).stdout

    def setup(self) -> None:
        self.admin("CREATE ROLE app LOGIN PASSWORD 'secret'")
        hba = self.server.workdir / "data" / "pg_hba.conf"  # type: ignore[operator]
        hba.write_text("local all postgres peer\n" + PASSWORDS)
        self.admin("SELECT pg_reload_conf()")
        wait_for(self.log.read_text, 1, "reloading configuration files")

    def login(self, host: str, user: str, database: str = "postgres") -> None:
        """A failed password login; names go through a conninfo string, newlines and all."""
        conninfo = f"host={host} port={self.server.port} user='{user}' dbname='{database}'"
        env = {**os.environ, "PGPASSWORD": "wrong", "PGCONNECT_TIMEOUT": "10"}
        argv = [self.psql, "-X", "-w", "-d", conninfo, "-c", "select 1"]
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        assert done.returncode != 0 and "failed" in done.stderr, done.stderr


def names(pid: str, prefix: str) -> list[tuple[str, str]]:
    """(user, database) pairs that make the server write lines claiming process ``pid``
    and 6.6.6.6, each within PostgreSQL's 63 bytes."""
    host = f"{FORGED} " if "%h" in prefix else ""
    head = f"{STAMP} [{pid}] {host}"
    pairs = [
        # a failed login of 6.6.6.6, the broken line before it plainly unfinished
        (f'x"\n{head}z', "postgres"),
        # the line before it made to look whole, the forged user made to match
        (f'LOG:  x"\n{head}LOG:  x', "postgres"),
        (f'aaaaa@b LOG:  x"\n{head}z', "postgres"),
        # a "connection received" record for the process, through both names
        (
            f'LOG:  "\n{head}[unknown]',
            f"[unknown] LOG:  connection received: host={FORGED} port=1\n",
        ),
        (
            f'@ LOG:  "\n{head}[unknown]',
            f"[unknown] LOG:  connection received: host={FORGED} port=1\n",
        ),
        # the rest of the database name starting a line
        ("z", f"d\n{head}z@postgres"),
    ]
    for user, database in pairs:
        assert len(user.encode()) <= 63 and len(database.encode()) <= 63, (user, database)
    return pairs


def attack(pg: Postgres, prefix: str) -> None:
    """Ordinary failures from both loopbacks around forgeries naming a fake process and a
    live one (a backend of ::1 kept busy meanwhile)."""
    pg.login("127.0.0.1", "app")
    pg.login("::1", "app")
    conninfo = f"host=::1 port={pg.server.port} user=app dbname=postgres"
    sleeper = subprocess.Popen(
        [pg.psql, "-X", "-w", "-d", conninfo, "-c", "select pg_sleep(30)"],
        env={**os.environ, "PGPASSWORD": "secret"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        live = ""
        deadline = time.monotonic() + 10
        while not live and time.monotonic() < deadline:
            live = pg.admin(
                "SELECT pid FROM pg_stat_activity WHERE query LIKE 'select pg_sleep%'"
            ).strip()
        assert live, "the sleeping backend never showed up"
        for pid in ("999", live):
            for user, database in names(pid, prefix):
                pg.login("127.0.0.1", user, database)
        pg.login("127.0.0.1", "app")
    finally:
        sleeper.kill()
        sleeper.wait()


def events_both_ways(
    text: str, prefix: str, tmp_path: Path, fmt: str = "stderr"
) -> tuple[list[Event], Counters]:
    """Events of a log fed line by line, checked equal to those of ``lappguard scan``
    (format told from content), and the scan's counters."""
    detector = Detector(RULES, postgres_prefix=prefix, postgres_format=fmt, tz=UTC)
    by_line = [
        event
        for number, line in enumerate(text.split("\n"), 1)
        if line
        for event in detector.feed(line, "postgresql", "postgresql.log", number)
    ]
    log = tmp_path / f"scanned-{fmt}.log"
    log.write_text(text)
    options = ScanOptions(
        rules=RULES,
        jails=load_jails(rule_ids=[r.id for r in RULES]),
        postgres_prefix=prefix,
        keep_events=True,
    )
    result = scan([str(log)], options)
    assert result.files[0].kind == "postgresql" and result.files[0].log_format == fmt
    assert summary([event for _, event in result.events]) == summary(by_line)
    return by_line, result.counters


def forged_lines(text: str, prefix: str) -> list[str]:
    """Physical lines that, read alone, are whole records of the made-up process 999."""
    parser = PostgresPrefix(prefix, UTC)
    return [
        line
        for line in text.split("\n")
        if (header := parser.parse(line)) is not None and header.pid == "999"
    ]


@pytest.mark.parametrize(
    ("prefix", "log_connections"),
    [(HOST_PREFIX, "on"), (HOST_PREFIX, "off"), (DEBIAN_PG_PREFIX, "on")],
    ids=["host-prefix", "host-prefix-no-log-connections", "debian-prefix"],
)
def test_names_with_newlines_frame_no_one_in_the_stderr_log(tmp_path, prefix, log_connections):
    settings = f"log_connections = {log_connections}\nlog_line_prefix = '{prefix}'\n"
    with run_postgres(tmp_path, "127.0.0.1,::1", settings) as server:
        pg = Postgres(server)
        pg.setup()
        attack(pg, prefix)
        text = wait_for(pg.log.read_text, 3 + 2 * len(names("1", prefix)), "FATAL:  ")
    text = text[text.index("\n", text.index("reloading configuration files")) + 1 :]
    # read alone, the log holds a connection of 6.6.6.6 and its failed login
    forged = forged_lines(text, prefix)
    assert any(f"connection received: host={FORGED} port=1" in line for line in forged), text
    assert any("FATAL:  password authentication failed" in line for line in forged), text
    events, counters = events_both_ways(text, prefix, tmp_path)
    assert counters.untied > 0  # the forgeries were seen, and counted
    assert FORGED not in {event.ip for event in events}
    counts = summary(events)
    assert counts[("pg-password-failed", "127.0.0.1", "app")] == 2
    assert counts[("pg-password-failed", "::1", "app")] == 1
    assert {event.ip for event in events} == {"127.0.0.1", "::1"}
    # every event of ::1 is one of its own failures, none forged for its live backend
    assert sum(n for (_, ip, _), n in counts.items() if ip == "::1") == 1


def test_a_prefix_without_names_leaves_nothing_to_forge_and_counts_every_attempt(tmp_path):
    """'%m [%p] %h ': the names only appear in messages, whose lines PostgreSQL indents."""
    prefix = "%m [%p] %h "
    settings = f"log_connections = on\nlog_line_prefix = '{prefix}'\n"
    with run_postgres(tmp_path, "127.0.0.1,::1", settings) as server:
        pg = Postgres(server)
        pg.setup()
        attack(pg, prefix)
        text = wait_for(pg.log.read_text, 3 + 2 * len(names("1", prefix)), "FATAL:  ")
    text = text[text.index("\n", text.index("reloading configuration files")) + 1 :]
    assert f"\n\t{STAMP} [999] {FORGED} z" in text  # the name, indented in a message
    assert forged_lines(text, prefix) == []
    events, counters = events_both_ways(text, prefix, tmp_path)
    assert counters.untied == 0
    # every attempt is an ordinary failed login of the client that made it
    counts = Counter(event.ip for event in events)
    assert counts == Counter({"127.0.0.1": 2 + 2 * len(names("1", prefix)), "::1": 1})


def test_jsonlog_escapes_the_names_and_still_names_the_real_client(tmp_path):
    settings = (
        "logging_collector = on\nlog_destination = 'jsonlog'\nlog_directory = 'log'\n"
        "log_filename = 'server'\nlog_connections = on\n"
    )
    with run_postgres(tmp_path, "127.0.0.1,::1", settings) as server:
        pg = Postgres(server)
        pg.log = server.workdir / "data" / "log" / "server.json"  # type: ignore[operator]
        pg.setup()
        attack(pg, HOST_PREFIX)
        text = wait_for(pg.log.read_text, 3 + 2 * len(names("1", HOST_PREFIX)), '"FATAL"')
    assert f"\\n{STAMP} [999] {FORGED} z" in text  # the forged text, escaped on one line
    assert all(line.startswith('{"timestamp":"') for line in text.splitlines())
    events, counters = events_both_ways(text, HOST_PREFIX, tmp_path, "jsonlog")
    counts = summary(events)
    assert FORGED not in {event.ip for event in events}
    # in jsonlog every forgery is also an ordinary failed login of the real client
    assert counts[("pg-password-failed", "127.0.0.1", "app")] == 2
    assert counts[("pg-password-failed", "::1", "app")] == 1
    assert sum(counts.values()) == 3 + 2 * len(names("1", HOST_PREFIX))
    assert {event.ip for event in events} == {"127.0.0.1", "::1"}
    assert counters.untied == 0

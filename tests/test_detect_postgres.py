"""The PostgreSQL tie (agent.detect.postgres) on logs written as PostgreSQL 15 writes them:
names raw in the prefix, message lines indented with a tab (as the live tests show).

Beyond what the live tests cover: every way of reading a log (line by line, blocks cut
anywhere, ranges scanned by worker processes) names the same addresses; reused process
ids; jsonlog's own checks; and the numbers the tie relies on.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import UTC

import pytest

import agent.scan as scan_module
from agent import scan_ranges
from agent.bans.jails import load_jails
from agent.detect.detector import Detector
from agent.detect.logformats import DEBIAN_PG_PREFIX, PostgresPrefix
from agent.detect.postgres import PostgresJson, sniff_postgres_format
from agent.detect.rules import load_rules

ALL_RULES = load_rules()
RULES = [rule for rule in ALL_RULES if rule.kind == "postgresql"]
HOST_PREFIX = "%m [%p] %h %q%u@%d "
FORGED = "6.6.6.6"
STAMP = "2025-03-01 10:00:00.000 UTC"


def record(prefix: str, pid: int, host: str, user: str, db: str, severity: str, text: str) -> str:
    """One record as PostgreSQL writes it: names raw, message lines after a tab."""
    head = f"{STAMP} [{pid}] " + (f"{host} " if "%h" in prefix else "")
    return f"{head}{user}@{db} {severity}:  " + text.replace("\n", "\n\t") + "\n"


def connection(prefix: str, pid: int, host: str, user: str = "app", db: str = "shop") -> str:
    """A failed password login of ``host``, logged with log_connections = on."""
    failed = f'password authentication failed for user "{user}"'
    detail = 'Connection matched pg_hba.conf line 2: "host all all 0.0.0.0/0 scram-sha-256"'
    return (
        record(
            prefix, pid, host, "[unknown]", "[unknown]", "LOG",
            f"connection received: host={host} port={40000 + pid % 20000}",
        )
        + record(prefix, pid, host, user, db, "FATAL", failed)
        + record(prefix, pid, host, user, db, "DETAIL", detail)
    )  # fmt: skip


def forgeries(prefix: str, pid: int) -> list[tuple[str, str]]:
    """Names that forge records of process 999 naming 6.6.6.6 (see the live tests)."""
    head = f"{STAMP} [999] " + (f"{FORGED} " if "%h" in prefix else "")
    received = f"[unknown] LOG:  connection received: host={FORGED} port=1\n"
    return [
        (f'x"\n{head}z', "postgres"),
        (f'LOG:  x"\n{head}LOG:  x', "postgres"),
        (f'aaaaa@b LOG:  x"\n{head}z', "postgres"),
        (f'LOG:  "\n{head}[unknown]', received),
        (f'@ LOG:  "\n{head}[unknown]', received),
        ("z", f"d\n{head}z@postgres"),
    ]


def hostile_log(prefix: str, connections: int = 300, seed: int = 1) -> str:
    """Ordinary failed logins from 20 hosts, among them forgeries from 192.0.2.66."""
    rng = random.Random(seed)
    parts = []
    for pid in range(5000, 5000 + connections):
        if rng.random() < 0.3:
            user, db = rng.choice(forgeries(prefix, pid))
            parts.append(connection(prefix, pid, "192.0.2.66", user, db))
        else:
            parts.append(connection(prefix, pid, f"198.51.100.{pid % 20 + 1}"))
    return "".join(parts)


def by_line(text: str, prefix: str) -> Counter[str]:
    detector = Detector(RULES, postgres_prefix=prefix, tz=UTC)
    return Counter(
        event.ip
        for number, line in enumerate(text.split("\n")[:-1], 1)
        for event in detector.feed(line, "postgresql", "pg.log", number)
    )


def by_blocks(text: str, prefix: str, cuts: list[int]) -> Counter[str]:
    """``lappguard scan``'s reading: blocks of whole lines, cut after the given lines."""
    detector = Detector(RULES, postgres_prefix=prefix, tz=UTC)
    lines = text.split("\n")[:-1]
    found: Counter[str] = Counter()
    for start, end in zip([0, *cuts], [*cuts, len(lines)], strict=True):
        block = "".join(line + "\n" for line in lines[start:end]).encode()
        hits, _ = detector.hits_block(block, "postgresql", "pg.log", start + 1)
        found.update(hit[2] for hit in hits)
    return found


@pytest.mark.parametrize("prefix", [HOST_PREFIX, DEBIAN_PG_PREFIX])
def test_every_reading_of_a_hostile_log_names_the_same_hosts_and_never_the_forged_one(prefix):
    text = hostile_log(prefix)
    expected = by_line(text, prefix)
    assert FORGED not in expected
    assert sum(expected.values()) > 150 and len(expected) == 20  # the ordinary failures
    lines = text.count("\n")
    rng = random.Random(2)
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, lines), 8))
        assert by_blocks(text, prefix, cuts) == expected, cuts


def test_ranges_scanned_in_parallel_name_the_same_hosts(tmp_path, monkeypatch):
    log = tmp_path / "postgresql.log"
    log.write_text(hostile_log(HOST_PREFIX, 2000))
    options = scan_module.ScanOptions(
        rules=RULES, jails=load_jails(rule_ids=[r.id for r in ALL_RULES]), kind="postgresql",
        postgres_prefix=HOST_PREFIX,
    )  # fmt: skip
    serial = scan_module.scan([str(log)], options)
    monkeypatch.setattr(scan_ranges, "PARALLEL_MIN_BYTES", 1024)
    monkeypatch.setattr(scan_ranges, "RANGE_BYTES", 7_919)  # boundaries anywhere
    monkeypatch.setattr(scan_ranges, "LEAD_IN_BYTES", 1_009)
    parallel = scan_module.scan([str(log)], options)
    assert FORGED not in serial.by_ip and serial.counters.untied > 0
    assert parallel.by_ip == serial.by_ip
    assert parallel.counters == serial.counters


def test_a_disbelieved_connection_of_a_reused_pid_does_not_name_the_older_one():
    older = connection(HOST_PREFIX, 7000, "198.51.100.1").split("\n")[0] + "\n"
    # pid 7000 again, its record right after a line broken inside a user name
    broken = f"{STAMP} [7001] 192.0.2.66 x\n"
    newer = connection(HOST_PREFIX, 7000, "192.0.2.66")
    text = older + broken + newer
    assert by_line(text, HOST_PREFIX) == Counter()
    assert by_blocks(text, HOST_PREFIX, []) == Counter()


def test_forged_records_do_not_make_a_log_without_connection_records_demand_them():
    """%h alone (log_connections = off): forged 'connection received' lines, never
    believed, must not make the ordinary failures after them count for nothing."""
    user, db = forgeries(HOST_PREFIX, 0)[3]
    received, forged = connection(HOST_PREFIX, 8000, "192.0.2.66", user, db).split("\n", 1)
    assert "connection received" in received  # not written with log_connections = off
    failed = 'password authentication failed for user "app"'
    ordinary = record(HOST_PREFIX, 8001, "198.51.100.5", "app", "shop", "FATAL", failed)
    checkpoints = f"{STAMP} [40]  LOG:  checkpoint starting: time\n" * 3  # past the window
    text = forged + checkpoints + ordinary
    assert by_line(text, HOST_PREFIX) == Counter({"198.51.100.5": 1})
    assert by_blocks(text, HOST_PREFIX, []) == Counter({"198.51.100.5": 1})


@pytest.mark.parametrize(
    ("prefix", "window", "head"),
    [
        (DEBIAN_PG_PREFIX, 129, "[7] "),  # 63-byte names, 64 each with the rounding, '@'
        (HOST_PREFIX, 129, "[7] 192.0.2.1 "),
        ("%m [%p] %h ", 0, "[7] 192.0.2.1 "),  # no names: no line starts inside one
        ("%m [%p] %q%u %a %d ", 64 + 1 + 64 + 1 + 64, "[7] "),
    ],
)
def test_window_and_head_of_a_prefix(prefix, window, head):
    parser = PostgresPrefix(prefix, UTC)
    assert parser.window == window
    assert parser.head_pid(f"{STAMP} {head}x") == "7"
    assert parser.head_pid("x [7] ") is None


def jsonlog(**fields) -> str:
    record = {
        "timestamp": STAMP, "user": "app", "dbname": "shop", "pid": 42,
        "remote_host": "198.51.100.7", "remote_port": 50000, "session_id": "1.2",
        "line_num": 2, "error_severity": "FATAL", "state_code": "28P01",
        "message": 'password authentication failed for user "app"',
        "backend_type": "client backend",
    }  # fmt: skip
    record.update(fields)
    return json.dumps({k: v for k, v in record.items() if v is not None}, separators=(",", ":"))


def test_jsonlog_records_name_their_remote_host_and_user():
    header = PostgresJson(UTC).parse(jsonlog())
    assert header is not None
    assert (header.pid, header.address, header.user, header.session) == (
        "42", "198.51.100.7", "app", True,
    )  # fmt: skip
    assert header.message == 'FATAL:  password authentication failed for user "app"'
    assert header.time == 1740823200.0


@pytest.mark.parametrize(
    "line",
    [
        jsonlog(session_id=None),  # a key every PostgreSQL 15 record has is missing
        jsonlog(message=None),
        jsonlog(message=7),
        '["not", "a", "record"]',
        "[" * 10000 + "]" * 10000,  # deeper than the JSON decoder goes
        jsonlog(pid="42"),
        '{"timestamp": "2025-03-01',
        f"{STAMP} [42] 198.51.100.7 app@shop FATAL:  x",
    ],
)
def test_lines_that_are_no_jsonlog_record_are_not_read(line):
    assert PostgresJson(UTC).parse(line) is None


def test_jsonlog_names_the_client_even_when_its_user_name_spells_a_record():
    user = f'x"\n{STAMP} [999] {FORGED} z'
    line = jsonlog(user=user, message=f'password authentication failed for user "{user}"')
    detector = Detector(RULES, postgres_format="jsonlog", tz=UTC)
    events = detector.feed(line, "postgresql", "pg.json", 1)
    assert [(e.ip, e.user) for e in events] == [("198.51.100.7", user)]


def test_the_format_of_a_postgresql_log_is_told_from_its_first_lines():
    assert sniff_postgres_format([jsonlog().encode()] * 3) == "jsonlog"
    assert sniff_postgres_format([record(HOST_PREFIX, 1, "h", "u", "d", "LOG", "x")]) == "stderr"
    assert sniff_postgres_format([]) == "stderr"

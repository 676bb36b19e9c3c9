"""``lappguard scan`` through the real command line: outputs, inputs and exit codes."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIXTURES, PROJECT_ROOT, lappguard_command

from agent.cli import main
from agent.scan import iter_blocks

DETECT = FIXTURES / "detect"
AUTH = str(DETECT / "auth.log")
ACCESS = str(DETECT / "access.log")
POSTGRES = str(DETECT / "postgresql.log")


def scan(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["scan", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_counts_every_file_and_the_bans_the_default_jails_would_make(capsys):
    code, out, _ = scan(capsys, "--format", "json", AUTH, ACCESS, POSTGRES)
    report = json.loads(out)
    assert code == 0
    assert {key: report[key] for key in ("lines", "events", "skipped", "by_rule", "by_ip")} == {
        "lines": 47,
        "events": 28,
        # a line of invalid UTF-8, a line of no format, a PostgreSQL failure of a process
        # without a connection record in a log that records connections
        "skipped": 3,
        "by_rule": {
            "http-404": 1,
            "http-scanner": 1,
            "http-sensitive-file": 1,
            "http-sqli": 3,
            "php-cms-login-failed": 1,
            "pg-no-hba-entry": 1,
            "pg-password-failed": 5,
            "sshd-failed-auth": 6,
            "sshd-invalid-user": 2,
            "sshd-pam-auth-failure": 6,
            "sshd-preauth-disconnect-user": 1,
        },
        "by_ip": {
            "203.0.113.5": 12,
            "192.0.2.44": 5,
            "198.51.100.7": 3,
            "198.51.100.9": 3,
            "2001:db8::66": 2,
            "192.0.2.77": 1,
            "198.51.100.10": 1,
            "2001:db8::99": 1,
        },
    }
    # in the order the jails would have decided, across files: a certain SQL injection
    # and a scanner naming itself ban on their first request
    assert [(b["ip"], b["jail"], b["time"], b["count"]) for b in report["bans"]] == [
        ("198.51.100.7", "web-attacks", "2025-03-01T10:00:00Z", 1),
        ("192.0.2.44", "postgresql", "2025-03-01T10:00:04.200000Z", 5),
        ("198.51.100.9", "web-scanners", "2025-03-01T10:00:05Z", 1),
        ("203.0.113.5", "sshd", "2025-03-01T10:00:11Z", 5),
    ]
    assert [b["reason"] for b in report["bans"]] == [
        "http-sqli: one event of jail web-attacks is enough to ban",
        "5 events of jail postgresql within 10m (last: pg-password-failed)",
        "http-scanner: one event of jail web-scanners is enough to ban",
        "5 events of jail sshd within 10m (last: sshd-failed-auth)",
    ]
    assert [(f["kind"], f["lines"]) for f in report["files"]] == [
        ("sshd", 23),
        ("apache_access", 9),
        ("postgresql", 15),
    ]
    assert (report["garbage"], report["unparsed"], report["untied"]) == (1, 1, 1)


def test_events_are_one_json_object_per_line(capsys):
    code, out, _ = scan(capsys, "--format", "events", "--rules", "sshd", AUTH)
    records = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(records) == 15
    assert records[0] == {
        "file": AUTH,
        "line": 4,
        "rule": "sshd-failed-auth",
        "ip": "203.0.113.5",
        "user": "root",
        "time": "2025-03-01T10:00:03Z",
        "severity": "medium",
        "confidence": "weak",  # a signal that counts in bursts, no verdict on the line
        "family": None,
        "excerpt": "2025-03-01T10:00:03.000000+00:00 web1 sshd[1100]: Failed password "
        "for root from 203.0.113.5 port 40000 ssh2",
    }
    assert records[-1] == {
        "file": AUTH,
        "line": 19,
        "rule": "sshd-invalid-user",
        "ip": "192.0.2.77",
        "user": "root from 6.6.6.6 port 22",
        "time": "2025-03-01T10:00:23Z",
        "severity": "medium",
        "confidence": "weak",
        "family": None,
        "excerpt": "2025-03-01T10:00:23.000000+00:00 web1 sshd[1202]: Invalid user "
        "root from 6.6.6.6 port 22 from 192.0.2.77 port 51001",
    }
    assert "6.6.6.6" not in {record["ip"] for record in records}


def test_events_say_what_they_are_without_rule_names(capsys):
    """A burst signal (a 404) is told apart from a verdict on the line (an injection) by
    its confidence and family; a rule's severity comes along."""
    code, out, _ = scan(capsys, "--format", "events", ACCESS)
    records = {(r["line"], r["rule"]): r for r in map(json.loads, out.splitlines())}
    assert code == 0
    shown = {key: (r["severity"], r["confidence"], r["family"]) for key, r in records.items()}
    assert shown == {
        (1, "http-sqli"): ("high", "certain", "sqli"),  # 1' UNION SELECT ... --
        (2, "http-sqli"): ("high", "certain", "sqli"),
        (3, "http-sqli"): ("high", "certain", "sqli"),
        (6, "http-scanner"): ("medium", "certain", "scanner"),  # Nmap Scripting Engine
        (6, "http-sensitive-file"): ("medium", "likely", "sensitive_file"),  # /.env
        (6, "http-404"): ("low", "weak", None),
        (7, "php-cms-login-failed"): ("medium", "weak", None),
    }


def test_text_report_for_people(capsys):
    code, out, _ = scan(capsys, AUTH)
    assert code == 0
    assert out == (
        "Lines read: 23   matched: 15   events: 15   skipped: 1   (level normal)\n"
        f"  {AUTH}: sshd, 23 lines\n"
        "\n"
        "Events by rule:\n"
        "         6  sshd-failed-auth\n"
        "         6  sshd-pam-auth-failure\n"
        "         2  sshd-invalid-user\n"
        "         1  sshd-preauth-disconnect-user\n"
        "\n"
        "Top addresses (3 in all):\n"
        "        12  203.0.113.5\n"
        "         2  2001:db8::66\n"
        "         1  192.0.2.77\n"
        "\n"
        "Would be banned by the jails (1):\n"
        "  203.0.113.5                              sshd          at 2025-03-01T10:00:11Z"
        "  (5 events of jail sshd within 10m (last: sshd-failed-auth))\n"
        "\n"
        "Not banned (2 with events):\n"
        "         2  below every threshold\n"
        "Nearest to a ban:\n"
        "  2001:db8::66                               2 events  at most 2 of 5 in 10m (sshd);"
        " weighed at most 0.20 of 1 in 1d\n"
        "  192.0.2.77                                  1 event  at most 1 of 5 in 10m (sshd);"
        " weighed at most 0.10 of 1 in 1d\n"
        "\n"
        "Notes:\n"
        f"  - {AUTH}: 1 line skipped (invalid UTF-8 or NUL bytes)\n"
    )


def test_aggressive_level_adds_the_opt_in_rules(capsys):
    _, out, _ = scan(capsys, "--format", "json", "--level", "aggressive", AUTH)
    report = json.loads(out)
    assert report["events"] == 16 and report["by_rule"]["sshd-preauth-disconnect"] == 1
    assert report["by_ip"]["192.0.2.78"] == 1


def test_gzip_and_stdin_read_like_plain_files(capsys, tmp_path: Path, monkeypatch):
    packed = tmp_path / "auth.log.1.gz"
    with gzip.open(packed, "wb") as out:
        out.write(Path(AUTH).read_bytes())
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(Path(AUTH).read_bytes())))
    _, from_gzip, _ = scan(capsys, "--format", "json", str(packed))
    _, from_stdin, _ = scan(capsys, "--format", "json", "-")
    _, from_file, _ = scan(capsys, "--format", "json", AUTH)
    strip = lambda text: {k: v for k, v in json.loads(text).items() if k not in ("files", "notes")}  # noqa: E731
    assert strip(from_gzip) == strip(from_stdin) == strip(from_file)


def test_files_are_merged_by_time_before_the_jails_count(capsys, tmp_path: Path):
    """Two rotated halves of one attack, given newest first, still add up to a ban."""
    lines = Path(AUTH).read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
    (tmp_path / "auth.log.1").write_text("".join(lines[:8]))  # three failures of 203.0.113.5
    (tmp_path / "auth.log").write_text("".join(lines[8:]))  # three more
    _, out, _ = scan(
        capsys, "--format", "json", str(tmp_path / "auth.log"), str(tmp_path / "auth.log.1")
    )
    assert [(b["ip"], b["time"]) for b in json.loads(out)["bans"]] == [
        ("203.0.113.5", "2025-03-01T10:00:11Z")
    ]


def test_the_kind_can_be_forced(capsys):
    _, out, _ = scan(capsys, "--format", "json", "--kind", "apache_error", AUTH)
    assert json.loads(out)["events"] == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["/nonexistent/auth.log"], "lappguard scan: cannot read /nonexistent/auth.log: No such"),
        (["--kind", "sshd", str(DETECT)], "lappguard scan: cannot read"),
        ([str(DETECT / "SOURCE.txt")], "lappguard scan: cannot tell what log"),
        (["--pg-prefix", "%u %h ", POSTGRES], "lappguard: --pg-prefix: log_line_prefix '%u %h '"),
        (["--timezone", "Mars/Olympus", AUTH], "lappguard: --timezone: unknown zone"),
        (
            ["--rules", "/nonexistent/rules.yaml", AUTH],
            "lappguard: /nonexistent/rules.yaml: cannot",
        ),
    ],
)
def test_unusable_input_exits_2_with_a_reason(capsys, argv, message):
    code, out, err = scan(capsys, *argv)
    assert (code, out) == (2, "") and err.startswith(message)


def test_a_corrupt_gzip_file_exits_2(capsys, tmp_path: Path):
    broken = tmp_path / "auth.log.2.gz"
    broken.write_bytes(gzip.compress(Path(AUTH).read_bytes())[:200])
    code, out, err = scan(capsys, str(broken))
    assert (code, out) == (2, "") and "cannot read" in err


def test_a_broken_rule_file_exits_2_naming_file_line_and_field(capsys, tmp_path: Path):
    rules = tmp_path / "local.yaml"
    rules.write_text("rules:\n  - id: x\n    title: t\n    kind: sshd\n    severity: huge\n")
    code, out, err = scan(capsys, "--rules", str(rules), AUTH)
    assert (code, out) == (2, "")
    assert f"lappguard: {rules}:5: rules[0](x).severity: 'huge' is not one of" in err


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("^a{4294967296}(?P<ip>x)", "the repetition number is too large"),  # OverflowError
        ("^" + "(" * 10_000 + "(?P<ip>x)" + ")" * 10_000, "groups nested too deep"),  # Recursion
    ],
)
def test_a_pattern_re_cannot_build_exits_2_at_its_line_without_a_traceback(
    tmp_path: Path, pattern: str, reason: str
):
    rules = tmp_path / "local.yaml"
    rules.write_text(
        "rules:\n  - id: x\n    title: t\n    kind: sshd\n    severity: low\n"
        f"    prefilter: ['x']\n    patterns: ['{pattern}']\n"
        "    samples: {match: [{line: 'x', ip: 192.0.2.1}]}\n"
    )
    done = subprocess.run(
        [lappguard_command(), "scan", "--rules", str(rules), AUTH],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith(f"lappguard: {rules}:7: rules[0](x).patterns[0]: invalid regex")
    assert reason in done.stderr and "Traceback" not in done.stderr


def test_overlong_lines_are_cut_at_a_character_boundary_in_one_pass():
    line = ("é" * 700_000).encode() + b"\nnext\n"
    blocks = list(iter_blocks(io.BytesIO(line), block_size=65536))
    first, second = b"".join(blocks).split(b"\n")[:2]
    assert second == b"next" and len(first) == 4 * 16384 + 6  # 4 * MAX_LINE + 8, whole chars
    first.decode("utf-8")


def test_the_installed_command(tmp_path: Path):
    """The console script, as a sysadmin runs it."""
    result = subprocess.run(
        [lappguard_command(), "scan", "--format", "json", AUTH],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and json.loads(result.stdout)["events"] == 15


def test_big_files_scanned_in_parallel_give_exactly_the_serial_result(tmp_path, monkeypatch):
    """Ranges of whole lines, line numbers carried over, and the megabyte before a range
    replayed so an address named by a process in the previous range is still known."""
    from agent import scan_ranges
    from agent.bans.jails import load_jails
    from agent.detect.rules import load_rules
    from agent.scan import ScanOptions
    from agent.scan import scan as run

    lines = []
    for n in range(3000):
        stamp, pid, host = f"2025-03-01 10:{n // 60 % 60:02d}:{n % 60:02d}", 5000 + n, n % 20 + 1
        received = f"LOG:  connection received: host=192.0.2.{host} port={50000 + n}"
        user = f"app{n % 7}"
        failed = f'{user}@shop FATAL:  password authentication failed for user "{user}"'
        received = f"[unknown]@[unknown] {received}"
        lines += [f"{stamp}.000 UTC [{pid}] {received}", f"{stamp}.500 UTC [{pid}] {failed}"]
    log = tmp_path / "postgresql.log"
    log.write_text("\n".join(lines) + "\n")
    rules = load_rules()
    options = ScanOptions(
        rules=rules, jails=load_jails(rule_ids=[r.id for r in rules]), kind="postgresql",
        keep_events=True,
    )  # fmt: skip
    serial = run([str(log)], options)
    monkeypatch.setattr(scan_ranges, "PARALLEL_MIN_BYTES", 1024)
    monkeypatch.setattr(scan_ranges, "RANGE_BYTES", 20_123)  # ~30 ranges, odd boundaries
    assert scan_ranges.workers_for(str(log)) == min(os.cpu_count() or 1, 4) > 1
    parallel = run([str(log)], options)
    assert serial.counters.events == 3000 and serial.counters.no_address == 0
    assert parallel.counters == serial.counters
    assert [e for _, e in parallel.events] == [e for _, e in serial.events]
    assert parallel.bans == serial.bans and len(serial.bans) == 20


def test_the_scan_command_does_not_load_the_audit_side():
    """`lappguard scan` builds only its own parser: no check types, reports, SSH or psutil
    (they would take longer to import than a small log takes to scan)."""
    code = (
        "import sys\n"
        "from agent.cli import main\n"
        f"main(['scan', '--format', 'json', {AUTH!r}])\n"
        "heavy = ('checks.engine', 'checks.report', 'checks.hosts', 'checks.types', "
        "'paramiko', 'psutil', 'cryptography', 'multiprocessing', 'gzip')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m in heavy), "
        "file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT
    )
    assert json.loads(done.stdout)["events"] == 15
    assert done.stderr.strip() == "[]"


def test_a_scan_pauses_the_cycle_collector_and_restores_it(capsys):
    import gc

    assert gc.isenabled()
    scan(capsys, "--format", "json", AUTH)
    assert gc.isenabled()
    gc.disable()
    try:
        scan(capsys, "--format", "json", AUTH)
        assert not gc.isenabled()
    finally:
        gc.enable()


def _scan_both_ways(log: Path, monkeypatch, **settings) -> tuple:
    """One pass, then ranges of about 200 KB on worker processes (blocks of 16 KiB)."""
    from agent import scan_ranges
    from agent.bans.jails import load_jails
    from agent.detect.rules import load_rules
    from agent.scan import ScanOptions
    from agent.scan import scan as run

    rules = load_rules()
    options = ScanOptions(
        rules=rules, jails=load_jails(rule_ids=[r.id for r in rules]), keep_events=True, **settings
    )
    serial = run([str(log)], options)
    monkeypatch.setattr(scan_ranges, "PARALLEL_MIN_BYTES", 1024)
    monkeypatch.setattr(scan_ranges, "RANGE_BYTES", 200_003)
    monkeypatch.setattr(scan_ranges, "BLOCK_SIZE", 16_384)
    parallel = run([str(log)], options)
    return serial, parallel


def test_a_process_named_any_number_of_ranges_before_is_still_known(tmp_path, monkeypatch):
    """sshd names a client once (Connection from); a line of the same process 1.5 MB later
    (seven ranges later here) still gets its address, in parallel as in one pass."""
    lines = []
    for n in range(25_000):
        head = f"Oct  7 10:{n // 600:02d}:{n // 10 % 60:02d} web1"
        if n % 2500 == 0:
            lines.append(
                f"{head} sshd[{n}]: Connection from 192.0.2.{n // 2500} port 4 on x port 22"
            )
        if n % 2500 == 2499 and n > 15_000:
            pid = n - 14_999
            lines.append(f"{head} sshd[{pid}]: Disconnecting: Too many authentication failures")
        lines.append(
            f"{head} CRON[{n}]: pam_unix(cron:session): session closed for user root (uid=0)"
        )
    log = tmp_path / "auth.log"
    log.write_text("\n".join(lines) + "\n")
    serial, parallel = _scan_both_ways(log, monkeypatch, kind="sshd")
    assert [e.ip for _, e in serial.events] == [f"192.0.2.{n}" for n in (1, 2, 3, 4)]
    assert serial.counters.no_address == 0
    assert [e for _, e in parallel.events] == [e for _, e in serial.events]
    assert parallel.counters == serial.counters


def _command(*argv: str, **io) -> subprocess.CompletedProcess:
    """``lappguard scan`` as a sysadmin runs it; stdout captured unless ``io`` says."""
    io.setdefault("stdout", subprocess.PIPE)
    return subprocess.run(
        [lappguard_command(), "scan", *argv], stderr=subprocess.PIPE, check=False, **io
    )


def _one_line_exit_2(done: subprocess.CompletedProcess, reason: str) -> None:
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err and reason in err, err


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda data: data[:200], "Compressed file ended before the end-of-stream marker"),
        (lambda data: data[:40] + b"x" * 20 + data[60:], "Error -3 while decompressing"),
    ],
    ids=["truncated", "corrupt"],
)
def test_a_damaged_gzip_file_is_one_line_and_exit_2(tmp_path: Path, damage, reason: str):
    packed = tmp_path / "auth.log.2.gz"
    packed.write_bytes(damage(gzip.compress(Path(AUTH).read_bytes())))
    _one_line_exit_2(_command(str(packed)), f"cannot read {packed}: {reason}")


def test_closed_stdin_is_one_line_and_exit_2():
    done = _command("-", preexec_fn=lambda: os.close(0))
    _one_line_exit_2(done, "lappguard scan: cannot read standard input: it is closed")


def test_closed_stdout_is_one_line_and_exit_2():
    done = _command(AUTH, stdout=None, preexec_fn=lambda: os.close(1))
    _one_line_exit_2(done, "lappguard scan: cannot write the report: standard output is closed")


def test_a_full_disk_under_stdout_is_one_line_and_exit_2():
    with open("/dev/full", "wb") as full:
        done = _command("--format", "json", AUTH, stdout=full)
    _one_line_exit_2(done, "lappguard scan: cannot write the report: No space left on device")


def test_a_reader_that_stops_reading_ends_the_report_quietly(tmp_path: Path):
    """``lappguard scan ... | head -1``: the reader chose to stop, which is no error."""
    log = tmp_path / "auth.log"
    log.write_bytes(Path(AUTH).read_bytes() * 2000)
    reader = subprocess.Popen(["head", "-n", "1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    done = _command("--format", "events", str(log), stdout=reader.stdin)
    reader.stdin.close()
    first = reader.stdout.read()
    reader.wait()
    assert json.loads(first)["line"] == 4
    assert (done.returncode, done.stderr) == (0, b"")


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["--trusted-proxy", "abc"], "--trusted-proxy: 'abc' is not an address or CIDR"),
        (["--trusted-proxy", "10.0.0.0/33"], "--trusted-proxy: '10.0.0.0/33' is not an"),
        (["--access-log-format", '%u %t "%r"'], "logs no client address (%h or %a)"),
    ],
)
def test_unusable_options_are_one_line_and_exit_2(argv: list[str], reason: str):
    _one_line_exit_2(_command(*argv, ACCESS), reason)


def test_an_attack_heavy_log_gives_the_same_events_and_bans_serially_and_in_parallel(
    tmp_path, monkeypatch
):
    """bench/detect.py's attack-heavy profile (~65% failures, IPv4 and IPv6) on a small
    file: the same events and bans with one worker and one per core, and the bans of the
    jails before the long window (pinned from that code) when the weights are all 0."""
    import hashlib
    from dataclasses import replace

    from agent import scan_ranges
    from agent.bans.jails import Evidence, JailConfig, load_jails
    from agent.detect.rules import load_rules
    from agent.scan import ScanOptions
    from agent.scan import scan as run

    sys.path.insert(0, str(PROJECT_ROOT / "bench"))
    try:
        from detect import generate_attack_heavy_log
    finally:
        sys.path.pop(0)
    log = tmp_path / "auth.log"
    generate_attack_heavy_log(log, 20_000)
    rules = load_rules()
    shipped = load_jails(rule_ids=[r.id for r in rules])
    options = ScanOptions(rules=rules, jails=shipped, kind="sshd", keep_events=True)
    serial = run([str(log)], options)
    monkeypatch.setattr(scan_ranges, "PARALLEL_MIN_BYTES", 1024)
    monkeypatch.setattr(scan_ranges, "RANGE_BYTES", 300_007)  # ~7 ranges, odd boundaries
    assert scan_ranges.workers_for(str(log)) > 1
    parallel = run([str(log)], options)

    def seen(result) -> tuple[list, list]:
        start = result.events[0][1].time  # the log's year is inferred from today
        events = [(e.time - start, e.rule, e.ip, e.line, e.confidence) for _, e in result.events]
        bans = [(d.ip, d.jail, d.time - start, d.count, d.rule) for d in result.bans]
        return events, bans

    events, bans = seen(serial)
    assert seen(parallel) == (events, bans)
    assert parallel.counters == serial.counters
    assert len(events) == 12_974 and sum(":" in ip for _, _, ip, _, _ in events) > 2000
    assert len(bans) == 285  # 257 bursts, and slower guessers over the long window
    unweighted = JailConfig(
        tuple(replace(jail, weights={}) for jail in shipped.jails),
        shipped.allowlist,
        Evidence(weights=dict.fromkeys(("certain", "likely", "weak"), 0.0)),
    )
    before = seen(run([str(log)], replace(options, jails=unweighted)))[1]
    digest = hashlib.sha256(repr(before).encode()).hexdigest()[:16]
    assert (len(before), digest) == (257, "a5d4c4d222de4c57")

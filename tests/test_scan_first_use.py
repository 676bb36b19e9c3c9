"""``lappguard scan`` as a new user first runs it: on a whole log directory, on logs holding
our own audit's probes, and reading events with ``jq`` (issue 8)."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import psutil
import pytest
from conftest import lappguard_command

SQLI = (
    '203.0.113.9 - - [03/Dec/2026:10:00:00 +0000] "GET /index.php?id=1%27 HTTP/1.1" 200 10 '
    '"-" "curl"\n'
)


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [lappguard_command(), "scan", *argv], capture_output=True, text=True, check=False
    )


def test_an_empty_log_is_0_lines_not_an_error(tmp_path: Path):
    """Debian's stock other_vhosts_access.log is empty until a vhost is used."""
    empty = tmp_path / "other_vhosts_access.log"
    empty.write_text("")
    done = run("--format", "json", str(empty))
    assert (done.returncode, done.stderr) == (0, "")
    report = json.loads(done.stdout)
    assert report["files"] == [{"path": str(empty), "kind": None, "format": None, "lines": 0}]
    assert report["lines"] == 0 and report["unread"] == []


def test_a_log_directory_glob_scans_every_file_it_can_and_exits_2_for_the_rest(tmp_path: Path):
    (tmp_path / "other_vhosts_access.log").write_text("")
    (tmp_path / "access.log").write_text(SQLI)
    (tmp_path / "notes.log").write_text("hello\nworld\n")  # no kind can be told
    missing = tmp_path / "missing.log"
    files = [*sorted(str(path) for path in tmp_path.glob("*.log")), str(missing)]
    done = run("--format", "json", *files)
    warnings = done.stderr.splitlines()
    assert done.returncode == 2, done.stderr
    assert warnings == [
        f"lappguard scan: cannot tell what log {tmp_path / 'notes.log'} is; pass --kind "
        "(sshd, apache_access, apache_error, postgresql)",
        f"lappguard scan: cannot read {missing}: No such file or directory",
    ]
    report = json.loads(done.stdout)
    assert report["by_rule"] == {"http-sqli-probe": 1}
    assert [(f["path"], f["lines"]) for f in report["files"]] == [
        (str(tmp_path / "access.log"), 1),
        (str(tmp_path / "other_vhosts_access.log"), 0),
    ]
    assert report["unread"] == [line.removeprefix("lappguard scan: ") for line in warnings]


def test_the_text_report_lists_what_was_not_read(tmp_path: Path):
    (tmp_path / "access.log").write_text(SQLI)
    missing = tmp_path / "missing.log"
    done = run(str(tmp_path / "access.log"), str(missing))
    assert done.returncode == 2
    assert "1  http-sqli-probe" in done.stdout
    assert f"Not read (1):\n  - cannot read {missing}: No such file or directory" in done.stdout


def test_nothing_readable_is_no_report_and_exit_2(tmp_path: Path):
    done = run(str(tmp_path / "missing.log"), str(tmp_path / "gone.log"))
    assert (done.returncode, done.stdout) == (2, "")
    assert len(done.stderr.splitlines()) == 2


# --------------------------------------------------------------------------- own probes

SSH_PROBE = "Dec  3 10:00:{s:02d} web sshd[{pid}]: Invalid user lappguard-probe from {ip} port 22\n"
TLS_PROBE = (
    '{ip} - - [03/Dec/2026:10:00:00 +0000] "\\x16\\x03\\x01\\x02\\x00\\x01\\x00\\x01\\xfc\\x03'
    '\\x03" 400 483 "-" "-"\n'
)


def this_hosts_address() -> str | None:
    """An address of this machine's that is not loopback, if it has one."""
    for entries in psutil.net_if_addrs().values():
        for entry in entries:
            if entry.family == socket.AF_INET and not entry.address.startswith("127."):
                return entry.address
    return None


def test_our_ssh_probe_from_this_host_is_not_counted_but_an_attacker_using_its_name_is(
    tmp_path: Path,
):
    log = tmp_path / "auth.log"
    log.write_text(
        SSH_PROBE.format(s=1, pid=100, ip="127.0.0.1")
        + SSH_PROBE.format(s=2, pid=101, ip="::1")
        + SSH_PROBE.format(s=3, pid=102, ip="203.0.113.5")
    )
    done = run("--format", "json", str(log))
    report = json.loads(done.stdout)
    assert done.returncode == 0
    assert report["own_probes"] == 2
    assert report["by_ip"] == {"203.0.113.5": 1}
    assert report["by_rule"] == {"sshd-invalid-user": 1}
    text = run(str(log)).stdout
    assert "Own probes: 2, not counted" in text


def test_an_address_of_this_host_is_ours_too(tmp_path: Path):
    address = this_hosts_address()
    if address is None:
        pytest.skip("this host has no address besides loopback")
    log = tmp_path / "auth.log"
    log.write_text(SSH_PROBE.format(s=1, pid=100, ip=address))
    report = json.loads(run("--format", "json", str(log)).stdout)
    assert (report["own_probes"], report["events"]) == (1, 0)


def test_another_user_from_this_host_still_counts(tmp_path: Path):
    """Only the probe's traces are ours: a failed login from loopback is still an event."""
    log = tmp_path / "auth.log"
    log.write_text("Dec  3 10:00:01 web sshd[100]: Invalid user admin from 127.0.0.1 port 5000\n")
    report = json.loads(run("--format", "json", str(log)).stdout)
    assert (report["own_probes"], report["events"]) == (0, 1)


def test_our_tls_probe_on_a_plain_http_port_is_not_counted_but_the_same_bytes_from_outside_are(
    tmp_path: Path,
):
    log = tmp_path / "access.log"
    log.write_text(TLS_PROBE.format(ip="127.0.0.1") + TLS_PROBE.format(ip="198.51.100.4"))
    report = json.loads(run("--format", "json", "--level", "aggressive", str(log)).stdout)
    assert report["own_probes"] == 1
    assert report["by_ip"] == {"198.51.100.4": 1}
    assert report["by_rule"] == {"http-not-http": 1}


# --------------------------------------------------------------------------- events


def test_an_event_carries_an_excerpt_of_its_line_with_controls_written_out(tmp_path: Path):
    log = tmp_path / "access.log"
    hostile = SQLI.replace('"curl"', '"curl\x1b]0;owned\x07"')
    long = SQLI.replace('"curl"', '"curl' + "a" * 400 + '"')
    log.write_text(hostile + long)
    done = run("--format", "events", str(log))
    first, second = (json.loads(line) for line in done.stdout.splitlines())
    assert first["excerpt"] == hostile.rstrip("\n").replace("\x1b", "\\x1b").replace(
        "\x07", "\\x07"
    )
    assert len(second["excerpt"]) == 200 and second["excerpt"].endswith("…")
    assert second["excerpt"][:199] == long[:199]
    # the existing fields are a contract: all still there, in their order
    assert list(first)[:9] == [
        "file", "line", "rule", "ip", "user", "time", "severity", "confidence", "family",
    ]  # fmt: skip

"""``lappguard scan`` says why each address with events was not banned, and how near a ban
it came (issue 8): the real command on real files."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import drain_terminal, lappguard_command

JAILS = Path(__file__).resolve().parent.parent / "policies" / "jails.yaml"


def failed(second: int, ip: str) -> str:
    return (
        f"2025-03-01T10:{second // 60:02d}:{second % 60:02d}.000000+00:00 web1 "
        f"sshd[{1000 + second}]: "
        f"Failed password for root from {ip} port 40000 ssh2\n"
    )


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [lappguard_command(), "scan", *argv], capture_output=True, text=True, check=False
    )


def test_an_address_below_threshold_shows_the_most_it_had_in_one_window(tmp_path: Path):
    """Three failures, then two more 15 minutes later: five in all, but never more than
    three inside sshd's 10 minutes, so no ban, and the report says how near it came."""
    log = tmp_path / "auth.log"
    log.write_text("".join(failed(second, "203.0.113.7") for second in (0, 10, 20, 900, 910)))
    text = run(str(log))
    assert text.returncode == 0, text.stderr
    assert "Would be banned by the jails (0):" in text.stdout
    assert "Not banned (1 with events):\n         1  below every threshold\n" in text.stdout
    assert "203.0.113.7" in text.stdout and "at most 3 of 5 in 10m (sshd)" in text.stdout
    report = json.loads(run("--format", "json", str(log)).stdout)
    (entry,) = report["not_banned"]
    assert entry["ip"] == "203.0.113.7" and entry["events"] == 5
    assert entry["reason"] == "below_threshold"
    assert entry["jails"] == [{"jail": "sshd", "most": 3, "maxretry": 5, "findtime": 600.0}]


def test_loopback_is_never_banned_and_said_so(tmp_path: Path):
    log = tmp_path / "auth.log"
    log.write_text("".join(failed(second, "127.0.0.1") for second in range(8)))
    text = run(str(log))
    assert "Would be banned by the jails (0):" in text.stdout
    assert "         1  never banned: loopback: 127.0.0.1\n" in text.stdout
    report = json.loads(run("--format", "json", str(log)).stdout)
    assert [(e["ip"], e["reason"]) for e in report["not_banned"]] == [("127.0.0.1", "loopback")]


def test_an_allowlisted_address_is_never_banned_and_said_so(tmp_path: Path):
    jails = tmp_path / "jails.yaml"
    jails.write_text(JAILS.read_text().replace("allowlist: []", "allowlist: [192.0.2.0/24]"))
    log = tmp_path / "auth.log"
    lines = [failed(second, "192.0.2.9") for second in range(8)]
    log.write_text("".join([*lines, failed(9, "198.51.100.4")]))
    text = run("--jails", str(jails), str(log))
    assert text.returncode == 0, text.stderr
    assert "Would be banned by the jails (0):" in text.stdout
    assert "         1  never banned: allowlisted: 192.0.2.9\n" in text.stdout
    report = json.loads(run("--format", "json", "--jails", str(jails), str(log)).stdout)
    reasons = {e["ip"]: (e["reason"], e["why"]) for e in report["not_banned"]}
    assert reasons["192.0.2.9"] == ("allowlisted", "never banned: in the jails file's allowlist")
    assert reasons["198.51.100.4"][0] == "below_threshold"


def test_a_rule_no_jail_counts_is_said_so(tmp_path: Path):
    """pam_unix's duplicate of sshd's failure is counted by no jail."""
    log = tmp_path / "auth.log"
    log.write_text(
        "2025-03-01T10:00:04.000000+00:00 web1 sshd[1100]: pam_unix(sshd:auth): authentication"
        " failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.5  user=root\n"
    )
    report = json.loads(run("--format", "json", str(log)).stdout)
    assert [(e["ip"], e["reason"]) for e in report["not_banned"]] == [("203.0.113.5", "no_jail")]
    assert "1  no jail counts their rules: 203.0.113.5" in run(str(log)).stdout


def test_this_hosts_own_address_is_never_banned_and_said_so(tmp_path: Path):
    """The daemon never bans it. (The replay itself does not know the logs came from this
    host, so its bans do not depend on where the scan runs.)"""
    from agent.scan_why import host_addresses

    own = sorted(address for address in host_addresses() if not address.startswith(("127.", "::1")))
    if not own:
        pytest.skip("this host has no address but loopback")
    log = tmp_path / "auth.log"
    log.write_text("".join(failed(second, own[0]) for second in range(3)))
    report = json.loads(run("--format", "json", str(log)).stdout)
    assert [(e["ip"], e["reason"]) for e in report["not_banned"]] == [(own[0], "this_host")]


QUIET = "2025-03-01T10:00:00.000000+00:00 web1 CRON[9]: (root) CMD (run-parts /etc/cron.hourly)\n"


def test_verbose_shows_missed_lines_per_kind_and_only_then(tmp_path: Path):
    log = tmp_path / "auth.log"
    log.write_text(failed(0, "203.0.113.7") + QUIET * 7)
    text = run("--verbose", str(log)).stdout
    assert "Missed lines (gave no event; at most 5 of each kind):\n  sshd:\n" in text
    assert text.count(f"    {log}:") == 5 and f"{log}:2: {QUIET}" in text
    assert f"{log}:1:" not in text  # the failed password gave an event
    report = json.loads(run("--format", "json", "-v", str(log)).stdout)
    assert [(s["file"], s["line"]) for s in report["missed_samples"]["sshd"]] == [
        (str(log), line) for line in range(2, 7)
    ]
    assert "Missed lines" not in run(str(log)).stdout
    assert "missed_samples" not in json.loads(run("--format", "json", str(log)).stdout)


def test_verbose_samples_a_big_file_scanned_in_parallel(tmp_path: Path):
    from agent import scan_ranges

    log = tmp_path / "auth.log"
    log.write_text(
        failed(0, "203.0.113.7") + QUIET * (scan_ranges.PARALLEL_MIN_BYTES // len(QUIET))
    )
    if scan_ranges.workers_for(str(log)) < 2:
        pytest.skip("one core: big files are scanned serially")
    report = json.loads(run("--format", "json", "--verbose", str(log)).stdout)
    assert [s["line"] for s in report["missed_samples"]["sshd"]] == [2, 3, 4, 5, 6]
    assert report["events"] == 1


def _big_logs(tmp_path: Path, files: int) -> list[Path]:
    """Logs adding up to PROGRESS_MIN_BYTES: one file is scanned in parallel ranges (on
    two cores or more), four quarters each serially."""
    from agent.scan_progress import PROGRESS_MIN_BYTES

    chunk = QUIET * 10_000
    logs = [tmp_path / f"auth.log.{number}" for number in range(files)]
    for log in logs:
        with log.open("w") as out:
            out.write(failed(0, "203.0.113.7"))
            for _ in range(PROGRESS_MIN_BYTES // files // len(chunk) + 1):
                out.write(chunk)
    return logs


@pytest.mark.parametrize("files", [1, 4])
def test_progress_is_shown_on_a_terminal_for_a_big_input_and_nothing_on_a_pipe(
    tmp_path: Path, files: int
):
    logs = [str(log) for log in _big_logs(tmp_path, files)]
    size = sum(Path(log).stat().st_size for log in logs) >> 20
    leader, follower = os.openpty()
    try:
        done = subprocess.run(
            [lappguard_command(), "scan", "--format", "json", *logs],
            stdout=subprocess.PIPE,
            stderr=follower,
            text=True,
            check=False,
        )
    finally:
        os.close(follower)
    shown = drain_terminal(leader)
    assert done.returncode == 0 and json.loads(done.stdout)["events"] == files
    assert f"\r\x1b[Kread 0/{size} MB, 0 lines".encode() in shown, shown[:200]
    assert shown.endswith(b"\r\x1b[K")  # erased: nothing left on the terminal
    piped = run("--format", "json", *logs)
    assert (piped.returncode, piped.stderr) == (0, "")


def test_many_addresses_give_a_line_per_reason_and_the_ten_nearest_a_ban(tmp_path: Path):
    log = tmp_path / "auth.log"
    lines = [failed(n, f"198.51.100.{n % 30}") for n in range(30 * 4 - 20)]  # 10 with 4
    log.write_text("".join(sorted(lines)))
    text = run(str(log)).stdout
    assert "Not banned (30 with events):\n        30  below every threshold\n" in text
    nearest = text.split("Nearest to a ban:\n")[1].split("\n\n")[0].splitlines()
    assert len(nearest) == 10 and all("at most 4 of 5 in 10m (sshd)" in n for n in nearest)
    report = json.loads(run("--format", "json", str(log)).stdout)
    most = [entry["jails"][0]["most"] for entry in report["not_banned"]]
    assert most == [4] * 10 + [3] * 20

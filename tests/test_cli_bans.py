"""`lappguard bans` and `lappguard trail` as a sysadmin runs them: the installed command,
the dry-run backend, a state directory of the test's own."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import lappguard_command


def lappguard(state_dir: Path, *argv: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    command = [lappguard_command(), *argv, "--state-dir", str(state_dir)]
    if argv[0] == "bans":
        command += ["--backend", "dry-run"]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=60)


def listed(state_dir: Path, *flags: str) -> list[dict]:
    done = lappguard(state_dir, "bans", "list", "--format", "json", *flags)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["bans"]


def test_add_list_show_and_del(tmp_path):
    done = lappguard(tmp_path, "bans", "add", "203.0.113.5", "2001:db8::/48", "--for", "10m",
                     "--reason", "credential stuffing")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "banned 203.0.113.5/32 until" in done.stdout
    bans = listed(tmp_path)
    assert {b["network"] for b in bans} == {"203.0.113.5/32", "2001:db8::/48"}
    ban = bans[0]
    assert {"network", "jail", "since", "until", "count", "reason"} <= set(ban)
    assert ban["jail"] == "manual" and ban["reason"] == "credential stuffing"
    assert ban["until"] == pytest.approx(ban["since"] + 600)
    assert ban["pending"] is False

    shown = lappguard(tmp_path, "bans", "show", "2001:db8::1")
    assert shown.returncode == 0
    assert "BANNED as 2001:db8::/48 by manual" in shown.stdout
    assert "why: credential stuffing" in shown.stdout

    done = lappguard(tmp_path, "bans", "del", "203.0.113.5")
    assert done.returncode == 0 and "unbanned 203.0.113.5/32" in done.stdout
    assert {b["network"] for b in listed(tmp_path)} == {"2001:db8::/48"}
    ended = [b for b in listed(tmp_path, "--all") if b["ended"]]
    assert [(b["network"], b["end_reason"]) for b in ended] == [("203.0.113.5/32", "unbanned")]


def test_text_list_shows_every_column(tmp_path):
    lappguard(tmp_path, "bans", "add", "198.51.100.7", "--reason", "probe")
    done = lappguard(tmp_path, "bans", "list")
    header, row = done.stdout.splitlines()[:2]
    assert header.split() == ["ADDRESS", "JAIL", "SINCE", "UNTIL", "COUNT", "REASON"]
    assert row.startswith("198.51.100.7/32") and "manual" in row and "permanent" in row


def test_refused_addresses_are_reported_and_the_rest_banned(tmp_path):
    done = lappguard(tmp_path, "bans", "add", "127.0.0.1", "203.0.113.9", "::1")
    assert done.returncode == 1
    assert "refused 127.0.0.1/32: 127.0.0.1/32 is within loopback 127.0.0.0/8" in done.stderr
    assert "refused ::1/128" in done.stderr
    assert [b["network"] for b in listed(tmp_path)] == ["203.0.113.9/32"]


def test_the_configured_allowlist_is_never_banned(tmp_path):
    config = tmp_path / "agent.yaml"
    config.write_text('allowlist: ["192.0.2.0/24"]\n')
    done = lappguard(tmp_path, "bans", "add", "192.0.2.44", "--config", str(config))
    assert done.returncode == 1 and "the allowlist's 192.0.2.0/24" in done.stderr
    assert listed(tmp_path) == []


def test_a_bad_address_in_a_file_names_file_and_line_and_bans_nothing(tmp_path):
    targets = tmp_path / "attackers.txt"
    targets.write_text("# from the WAF\n203.0.113.1\n\n203.0.113.300\n198.51.100.0/24\n")
    done = lappguard(tmp_path, "bans", "add", "--from-file", str(targets))
    assert done.returncode == 2
    assert f"lappguard: {targets}:4: " in done.stderr and "203.0.113.300" in done.stderr
    assert listed(tmp_path) == []


def test_addresses_from_stdin(tmp_path):
    done = lappguard(tmp_path, "bans", "add", "--from-file", "-",
                     stdin="203.0.113.1\n203.0.113.2  # scanner\n")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert {b["network"] for b in listed(tmp_path)} == {"203.0.113.1/32", "203.0.113.2/32"}


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("10.1.2.3/24", "has host bits set; did you mean 10.1.2.0/24?"),
        ("example.org", "is not an IP address or CIDR network"),
        ("1.2.3.4/33", "1.2.3.4/33"),
    ],
)
def test_unparsable_targets_are_usage_errors(tmp_path, target, message):
    done = lappguard(tmp_path, "bans", "add", target)
    assert done.returncode == 2 and message in done.stderr
    assert "Traceback" not in done.stderr


def test_a_bad_duration_is_a_usage_error(tmp_path):
    done = lappguard(tmp_path, "bans", "add", "203.0.113.1", "--for", "soon")
    assert done.returncode == 2 and "--for" in done.stderr


def test_trail_lists_every_action_with_its_actor(tmp_path):
    lappguard(tmp_path, "bans", "add", "203.0.113.1", "127.0.0.2")
    lappguard(tmp_path, "bans", "del", "203.0.113.1")
    done = lappguard(tmp_path, "trail", "--format", "json")
    records = json.loads(done.stdout)["trail"]
    assert [(r["action"], r["network"]) for r in records] == [
        ("ban", "203.0.113.1/32"),
        ("refuse", "127.0.0.2/32"),
        ("unban", "203.0.113.1/32"),
    ]
    assert all(r["actor"] for r in records)
    text = lappguard(tmp_path, "trail", "--since", "1h").stdout.splitlines()
    assert len(text) == 3 and " ban " in text[0]


def _tamper(state_dir: Path, *statements: str) -> None:
    conn = sqlite3.connect(state_dir / "state.db")
    with conn:
        for statement in statements:
            conn.execute(statement)
    conn.close()


@pytest.fixture(scope="module")
def trail_of_four(tmp_path_factory) -> Path:
    """A state directory whose trail holds four bans and verifies: made once (eight runs
    of the command), copied by each test that tampers with it."""
    state_dir = tmp_path_factory.mktemp("trail-of-four")
    for address in ("203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4"):
        assert lappguard(state_dir, "bans", "add", address).returncode == 0
    ok = lappguard(state_dir, "trail", "verify")
    assert ok.returncode == 0 and ok.stdout.startswith("trail OK: 4 records"), ok.stdout
    return state_dir


def _copy_of(state_dir: Path, target: Path) -> Path:
    shutil.copytree(state_dir, target, dirs_exist_ok=True)
    return target


@pytest.mark.parametrize(
    ("statements", "bad", "problem"),
    [
        (["UPDATE trail SET detail = replace(detail, 'by hand', 'by ghost') WHERE seq = 2"],
         2, "edited"),
        (["UPDATE trail SET time = time + 1 WHERE seq = 3"], 3, "edited"),
        (["UPDATE trail SET network = '198.51.100.1/32' WHERE seq = 1"], 1, "edited"),
        (["DELETE FROM trail WHERE seq = 2"], 2, "missing"),
        (["DELETE FROM trail WHERE seq = 1"], 1, "missing"),
        (["UPDATE trail SET seq = seq + 10 WHERE seq = 2",
          "UPDATE trail SET seq = 2 WHERE seq = 3",
          "UPDATE trail SET seq = 3 WHERE seq = 12"], 2, "deleted or reordered"),
        (["DELETE FROM trail WHERE seq = 4"], 4, "cut off the end"),
    ],
)  # fmt: skip
def test_trail_verify_names_the_first_tampered_record(
    tmp_path, trail_of_four, statements, bad, problem
):
    _tamper(_copy_of(trail_of_four, tmp_path), *statements)
    done = lappguard(tmp_path, "trail", "verify")
    assert done.returncode == 1, done.stdout
    assert f"trail BROKEN at record {bad}:" in done.stdout and problem in done.stdout


def test_a_consistently_rewritten_chain_fails_against_an_anchor(tmp_path, trail_of_four):
    from agent.bans import trail

    _copy_of(trail_of_four, tmp_path)
    head = lappguard(tmp_path, "trail", "verify").stdout.split("head ")[1].strip()
    conn = sqlite3.connect(tmp_path / "state.db")
    with conn:  # an attacker who knows the scheme re-hashes everything after his edit
        conn.execute("UPDATE trail SET actor = 'nobody'")
        previous = trail.GENESIS
        for seq, time_, action, network, jail, actor, detail in conn.execute(
            "SELECT seq, time, action, network, jail, actor, detail FROM trail ORDER BY seq"
        ).fetchall():
            digest = trail.record_hash(previous, seq, time_, action, network, jail, actor, detail)
            conn.execute("UPDATE trail SET prev_hash = ?, hash = ? WHERE seq = ?",
                         (previous, digest, seq))  # fmt: skip
            previous = digest
        conn.execute("UPDATE trail_head SET hash = ?", (previous,))
    conn.close()
    assert lappguard(tmp_path, "trail", "verify").returncode == 0  # undetectable alone
    done = lappguard(tmp_path, "trail", "verify", "--anchor", head)
    assert done.returncode == 1 and "differs from the anchor" in done.stdout


def test_two_adders_at_once_beside_a_writer_holding_the_store(tmp_path):
    """Two `bans add` of 300 addresses each while a third process holds a write
    transaction for two seconds: every ban lands, nothing errors, one chain."""
    lappguard(tmp_path, "bans", "list")  # create the database
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3, sys, time\n"
        f"c = sqlite3.connect({str(tmp_path / 'state.db')!r}, isolation_level=None)\n"
        "c.execute('BEGIN IMMEDIATE'); print('held', flush=True); time.sleep(2)\n"
        "c.execute('COMMIT')\n")], stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert holder.stdout.readline().strip() == "held"
    files = []
    for part in range(2):
        path = tmp_path / f"list{part}.txt"
        path.write_text("".join(f"100.{part}.{i >> 8}.{i & 255}\n" for i in range(300)))
        files.append(path)
    command = [lappguard_command(), "bans", "add", "--backend", "dry-run", "--state-dir",
               str(tmp_path), "--from-file"]  # fmt: skip
    adders = [subprocess.Popen([*command, str(f)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True) for f in files]  # fmt: skip
    results = [adder.communicate(timeout=120) for adder in adders]
    holder.wait(timeout=30)
    assert [adder.returncode for adder in adders] == [0, 0], results
    assert len(listed(tmp_path)) == 600
    verified = lappguard(tmp_path, "trail", "verify")
    assert verified.returncode == 0 and "600 records" in verified.stdout
    dry_run = json.loads((tmp_path / "dry-run-firewall.json").read_text())
    assert len(dry_run) == 600


def test_sync_reports_the_active_count(tmp_path):
    lappguard(tmp_path, "bans", "add", "203.0.113.1", "--for", "1s")
    lappguard(tmp_path, "bans", "add", "203.0.113.2")
    time.sleep(1.2)
    done = lappguard(tmp_path, "bans", "sync")
    assert done.returncode == 0 and "holds the 1 active bans" in done.stdout
    assert [b["network"] for b in listed(tmp_path)] == ["203.0.113.2/32"]

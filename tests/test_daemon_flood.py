"""A flood of distinct attacking addresses through a real ``lappguard run``.

A botnet can try each of its addresses once: no address ever crosses a threshold, yet every
one of them opens a jail window. The design bounds that memory (at most ``MAX_TRACKED``
windows, the least recently seen dropped first), so the daemon's peak RSS must stay under
its idle RSS plus a budget per window times the cap plus a fixed allowance, whatever the
number of addresses; meanwhile it must keep answering scrapes, and the few addresses that
do fail ``maxretry`` times in the middle of the flood must still be banned.

Backend dry-run: what is measured is the reading half (sources, detection, jails, the
store), the same with any firewall.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_process import AgentProcess, wait_until
from attack_lines import AttackLog, attacker, failed_login, flood_lines
from conftest import lappguard_command
from test_daemon import config

from agent.bans.jails import MAX_TRACKED, Jails, load_jails
from agent.pipeline import MAX_KEPT_EVENTS
from agent.sources.base import DEFAULT_BATCH

#: Four times the windows kept and more than the events kept for replay: enough to show both
#: bounds hold (bench/latency.py floods a million, and prints the memory it took).
FLOOD = 400_000
#: Addresses that fail MAXRETRY times among the flood, each within a few hundred lines
#: (far fewer than MAX_TRACKED other addresses, so their windows are never evicted).
REPEATERS = 100
MAXRETRY = 5  # the shipped sshd jail's
SPACING = 100  # flood lines between two failures of one repeater
CHUNK = 50_000
#: Bytes a jail window may cost, with its key, its address text and the allowlist-cache
#: entry of that address: about 500 measured (tracemalloc, CPython 3.11); twice that here.
WINDOW_BUDGET = 1024
#: What the daemon holds besides its windows, however many addresses it has seen: a batch
#: of DEFAULT_BATCH lines in flight (bytes, decoded text, events, their stored copies: about
#: 2 KiB a line), the address-normalising memo (65,536 entries, ~10 MiB), SQLite's page
#: cache and the allocator's slack.
FIXED_ALLOWANCE = DEFAULT_BATCH * 2048 + 32 * 2**20
#: A kept event being replayed at start: its (time, rule, address) row, read all at once.
REPLAYED_EVENT_BUDGET = 256
RULE = "sshd-failed-auth"
TOTAL_LINES = FLOOD + REPEATERS * MAXRETRY


def repeater(number: int) -> str:
    """Repeat offenders come from 198.18.0.0/15, apart from the flood's 100.64.0.0/10."""
    return f"198.18.{number >> 8}.{number & 255}"


def flood_chunks() -> Iterator[list[str]]:
    """The flood in chunks: one failed login from each of FLOOD distinct addresses, and
    MAXRETRY from each repeater, spread through it SPACING lines apart."""
    due: dict[int, list[str]] = {}  # flood line index -> repeater lines written after it
    for number in range(REPEATERS):
        start = (number + 1) * FLOOD // (REPEATERS + 1)
        for attempt in range(MAXRETRY):
            due.setdefault(start + attempt * SPACING, []).append(
                failed_login(repeater(number), attempt)
            )
    for first in range(0, FLOOD, CHUNK):
        chunk: list[str] = []
        for index, line in enumerate(flood_lines(first, min(CHUNK, FLOOD - first)), first):
            chunk.append(line)
            chunk += due.get(index, ())
        yield chunk


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[AgentProcess]:
    process = AgentProcess(tmp_path, config(tmp_path))  # the daemon tests' small audit
    yield process
    process.close()


def banned(state_dir: Path) -> set[str]:
    done = subprocess.run([lappguard_command(), "bans", "list", "--format", "json",
                           "--state-dir", str(state_dir)],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return {ban["network"] for ban in json.loads(done.stdout)["bans"]}


def test_a_jail_window_costs_less_than_its_budget() -> None:
    """The per-window budget the daemon's bound is built on, measured in-process: more
    distinct addresses than the cap leave the cap of windows, within budget (what was
    evicted is freed)."""
    jails = Jails(load_jails().jails, clock=time.time)
    now = time.time()
    extra = MAX_TRACKED // 10
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for number in range(MAX_TRACKED + extra):  # each address text made here, as a line's is
            jails.count(RULE, attacker(number), now, now)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert (jails.tracked, jails.evicted) == (MAX_TRACKED, extra)
    assert held <= MAX_TRACKED * WINDOW_BUDGET, f"{held / MAX_TRACKED:.0f} B a window"


def read_while_scraping(agent: AgentProcess) -> float:
    """Scrape until the agent has counted the whole flood: every scrape must be answered
    (within AgentProcess.scrape's 10 s) and show at most MAX_TRACKED windows, and several
    must come while it reads. The most windows seen."""
    mid_flood = 0
    most_windows = 0.0
    deadline = time.monotonic() + 600  # a hang guard, not a measure (1,700 lines/s would do)
    while True:
        metrics = agent.scrape()
        most_windows = max(most_windows, metrics[("lappguard_jail_windows", ())])
        assert most_windows <= MAX_TRACKED
        events = metrics[("lappguard_events_total", (("jail", "sshd"), ("rule", RULE)))]
        if events >= TOTAL_LINES:
            break
        mid_flood += events > 0
        assert time.monotonic() < deadline, f"hung: {events:,.0f} of {TOTAL_LINES:,} events"
        time.sleep(0.2)
    assert mid_flood >= 3, f"only {mid_flood} scrapes while the flood was read"
    return most_windows


def test_a_flood_of_distinct_attackers_leaves_memory_bounded_and_bans_working(agent, tmp_path):
    agent.start()
    agent.ready()
    with agent.notifications_read():
        wait_until(lambda: agent.value("lappguard_audit_runs_total", trigger="start") >= 1,
                   what="the first audit")  # fmt: skip
        idle = agent.memory()["VmRSS"]
        with AttackLog(tmp_path / "auth.log") as log:
            for chunk in flood_chunks():
                log.write(chunk)
        most_windows = read_while_scraping(agent)

        wait_until(lambda: agent.value("lappguard_source_lines_total") == TOTAL_LINES,
                   what="every line counted")  # fmt: skip
        assert most_windows == MAX_TRACKED
        evicted = FLOOD + REPEATERS - MAX_TRACKED  # every distinct address made one window
        wait_until(lambda: agent.value("lappguard_jail_windows_evicted_total") == evicted,
                   what=f"{evicted:,} windows evicted")  # fmt: skip
        repeaters = {f"{repeater(number)}/32" for number in range(REPEATERS)}
        wait_until(lambda: banned(tmp_path / "state") == repeaters, what="the repeaters")
        assert agent.value("lappguard_bans_total", jail="sshd") == REPEATERS
        dry_run = json.loads((tmp_path / "state" / "dry-run-firewall.json").read_text())
        assert set(dry_run) == repeaters
        peak = agent.memory()["VmHWM"]
    bound = idle + MAX_TRACKED * WINDOW_BUDGET + FIXED_ALLOWANCE
    assert peak <= bound, (
        f"VmHWM {peak / 2**20:.0f} MiB above {bound / 2**20:.0f} MiB"
        f" (idle {idle / 2**20:.0f} MiB + {MAX_TRACKED:,} windows + allowance)"
    )

    # Restarted at once, before the firewall worker's next prune of the kept events: the
    # replay refills the windows from at most MAX_KEPT_EVENTS of them, not the whole flood.
    assert agent.stop() == 0
    agent.start()
    agent.ready()
    replayed = int(re.findall(r"\((\d+) kept events replayed\)", agent.logs())[-1])
    assert replayed == MAX_KEPT_EVENTS
    restarted = agent.memory()["VmHWM"]
    bound += MAX_KEPT_EVENTS * REPLAYED_EVENT_BUDGET
    assert restarted <= bound, f"VmHWM {restarted / 2**20:.0f} MiB after the restart"

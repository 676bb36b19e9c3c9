"""Ban latency against fail2ban, memory under a flood and the sustained line rate of the agent.

    sudo .venv/bin/python bench/latency.py [--addresses 50] [--flood 1000000] [--no-install]

A real ``lappguard run`` (nftables backend) and a real fail2ban-server (Debian's ``sshd``
filter, ``nftables-allports`` action, ``pyinotify`` backend) each run in a network
namespace made for this run, so neither touches this machine's firewall; each follows its
own auth.log, and both logs are appended to the same way (tests/attack_lines.py: whole
lines in one write(2), as a syslog daemon does). Figures, in the order they are measured:

1. How "in the set" is seen: ``nft monitor`` in the namespace (the kernel's event, read from
   a pipe and stamped when it arrives) against polling ``nft -j list set`` in a tight loop,
   calibrated on elements added in-process at known times. The more precise one is used.
2. RSS of the idle agent, after its start and its first audit (the shipped baseline).
3. Ban latency, both tools interleaved address by address (so a busy moment of this shared
   machine hits both): 4 failed logins from a new address, a pause (0.3 s and a random part,
   see JITTER), then the 5th (the one crossing maxretry 5) with the time taken just before
   its write; latency is until the address is in the tool's nft set. The first addresses of
   each tool are a warm-up (fail2ban creates its table on its first ban), not counted.
4. A flood of ``--flood`` distinct attacking addresses, one failed login each, appended as
   fast as this process can: the drain rate (lines/s, and per CPU second of the agent),
   jail windows and evictions, then RSS (VmRSS, VmHWM, process_resident_memory_bytes).
5. The sustained rate: failed logins (new addresses) appended at fixed rates, rising
   fractions of the flood's rate, for some seconds each, watching
   ``lappguard_source_lag_bytes``, until a step ends with more than a second of input
   unread.

fail2ban-server runs on /usr/bin/python3, so its pyinotify is Debian's python3-pyinotify;
when it is missing the bench installs it with apt-get (says so), or with ``--no-install``
falls back to fail2ban's polling backend (says so). Times are printed, never asserted; the
goals are printed as met or MISSED. The machine may be shared: compare within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from agent_process import AgentProcess, process_memory  # noqa: E402
from attack_lines import AttackLog, attacker, failed_login, flood_lines  # noqa: E402
from fail2ban_server import running_fail2ban  # noqa: E402
from namespaces import entered, in_namespace, network_namespace  # noqa: E402

from agent.bans.jails import MAX_TRACKED  # noqa: E402
from agent.firewall.libnftables import Libnftables  # noqa: E402
from agent.pipeline import MAX_KEPT_EVENTS  # noqa: E402

#: The shipped sshd jail's, and fail2ban's here.
MAXRETRY = 5
#: Pause between the first 4 failures and the 5th: both tools have counted the 4 by then,
#: so the figure is the handling of the line that crosses the threshold. Plus a random part:
#: fail2ban's actions thread looks for new tickets after sleeps of 0.2, 0.4, 0.6 and 0.8 s
#: (Utils.wait_for, a 2 s cycle), and a fixed rhythm would lock onto one phase of it.
SETTLE = 0.3
JITTER = 2.0
WARM_UP = 3
#: Longest wait for a ban before the address counts as missed.
BAN_TIMEOUT = 10.0
GOAL_MEDIAN_MS = 20.0
GOAL_RATIO = 10.0
GOAL_IDLE_MB = 60.0
GOAL_FLOOD_MB = 250.0
#: Sustained-rate steps, as fractions of the flood's rate (see flood_phase), and their length.
#: The steps stop at the first one the agent fell behind in.
RATE_STEPS = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
STEP_SECONDS = 10.0
#: Attacker numbers (tests/attack_lines.py): the timed bans and the calibration use the top
#: of 100.64.0.0/10; the flood and the rate steps count up from 0 below them, wrapping round
#: (an address met again millions of lines later has long left the jail windows).
LATENCY_FIRST, CALIBRATION_FIRST, BULK = 4_190_000, 4_192_000, 4_190_000

FAIL2BAN_JAIL = """
[sshd]
enabled = true
filter = sshd
logpath = {log}
backend = {backend}
maxretry = {maxretry}
findtime = 10m
bantime = 1h
action = nftables-allports
"""
AGENT_CONFIG = """\
state_dir: {work}/state
metrics: {{listen: "127.0.0.1:PORT"}}
firewall: {{backend: nftables}}
sources:
  - {{kind: sshd, path: {log}}}
"""

# --------------------------------------------------------------------------- seeing bans

_ADDED = re.compile(r"^add element ")
_IPV4 = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")


class SetWatch(ABC):
    """When each address first showed up in an nft set of one namespace (monotonic time)."""

    def __init__(self) -> None:
        self.seen: dict[str, float] = {}
        self._changed = threading.Condition()

    def saw(self, addresses: list[str], when: float) -> None:
        with self._changed:
            for address in addresses:
                self.seen.setdefault(address, when)
            self._changed.notify_all()

    def wait(self, address: str, timeout: float = BAN_TIMEOUT) -> float | None:
        with self._changed:
            self._changed.wait_for(lambda: address in self.seen, timeout)
            return self.seen.get(address)

    @abstractmethod
    def close(self) -> None:
        """Stop watching."""


class Monitor(SetWatch):
    """``nft monitor``: the kernel reports each added element; nft prints (and flushes)
    one line per event, stamped here as it is read. Costs nothing between events."""

    def __init__(self, namespace: str) -> None:
        super().__init__()
        self._process = subprocess.Popen(
            ["ip", "netns", "exec", namespace, "nft", "monitor"],
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        time.sleep(0.2)  # the netlink subscription is made before any ban we time

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            now = time.monotonic()
            if _ADDED.match(line):
                self.saw(_IPV4.findall(line), now)

    def close(self) -> None:
        self._process.terminate()
        self._process.wait()


class Poller(SetWatch):
    """``nft -j list set`` in a tight loop: an address counts as seen when the listing that
    holds it has returned. Its resolution is one listing (a process start each)."""

    def __init__(self, namespace: str, family: str, table: str, name: str) -> None:
        super().__init__()
        where = (family, table, name)
        self._argv = ["ip", "netns", "exec", namespace, "nft", "-j", "list", "set", *where]
        self._stop = threading.Event()
        self.polls = 0
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            done = subprocess.run(self._argv, capture_output=True, text=True, check=False)
            now = time.monotonic()
            self.polls += 1
            if done.returncode == 0:
                listing = json.loads(done.stdout)["nftables"]
                elements = next(i["set"] for i in listing if "set" in i).get("elem", [])
                self.saw([_element_address(e) for e in elements], now)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def _element_address(element: object) -> str:
    """An address from nft's JSON listing: bare, or ``{"elem": {"val": ...}}`` with a timeout."""
    if isinstance(element, dict):
        return str(element["elem"]["val"])
    return str(element)


@dataclass
class Calibration:
    """How late each way of watching saw elements added at known times, ms."""

    delays: dict[str, list[float]] = field(default_factory=dict)
    call_ms: list[float] = field(default_factory=list)  # the adding call itself
    polls_per_second: float = 0.0


def calibrate(samples: int = 30) -> Calibration:
    """Add elements in-process (libnftables) to a set in a fresh namespace and time how long
    after the call returned each watcher reports them."""
    result = Calibration()
    with network_namespace() as namespace:
        in_namespace(
            namespace,
            "nft",
            "-f",
            "-",
            stdin="add table inet probe\nadd set inet probe s { type ipv4_addr; flags timeout; }\n",
        )
        library = Libnftables()
        number = CALIBRATION_FIRST
        for method in ("monitor", "poll"):
            watch: SetWatch = (
                Monitor(namespace)
                if method == "monitor"
                else Poller(namespace, "inet", "probe", "s")
            )
            started = time.monotonic()
            delays = result.delays.setdefault(method, [])
            for _ in range(samples):
                address = attacker(number)
                number += 1
                command = f"add element inet probe s {{ {address} timeout 1h }}"
                with entered(namespace):
                    before = time.monotonic()
                    library.run(command)
                    after = time.monotonic()
                seen = watch.wait(address, 5.0)
                if seen is not None:
                    delays.append((seen - after) * 1000)
                if method == "monitor":
                    result.call_ms.append((after - before) * 1000)
                time.sleep(0.02)  # unrelated to any poll's phase
            if isinstance(watch, Poller):
                result.polls_per_second = watch.polls / (time.monotonic() - started)
            watch.close()
        library.close()
    return result


# --------------------------------------------------------------------------- figures


def quantile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by linear interpolation between closest ranks."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def spread(values: list[float]) -> str:
    if not values:
        return "no samples"
    return (
        f"median {statistics.median(values):7.1f}  p99 {quantile(values, 0.99):7.1f}"
        f"  max {max(values):7.1f}  (n={len(values)})"
    )


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def mb(size: float) -> str:
    """Bytes in MB (10^6, the goals' unit)."""
    return f"{size / 1e6:.1f} MB"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (every thread), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Scrape:
    """One scrape of the agent's metrics, read by name and labels."""

    def __init__(self, agent: AgentProcess) -> None:
        self.samples = agent.scrape()

    def value(self, name: str, **labels: str) -> float:
        return sum(
            value
            for (sample, sample_labels), value in self.samples.items()
            if sample == name and set(labels.items()) <= set(sample_labels)
        )


def agent_memory(agent: AgentProcess) -> str:
    status = agent.memory()
    metric = Scrape(agent).value("process_resident_memory_bytes")
    return (
        f"VmRSS {mb(status['VmRSS'])}, VmHWM {mb(status['VmHWM'])}, "
        f"process_resident_memory_bytes {mb(metric)}"
    )


# --------------------------------------------------------------------------- the tools


class Tool:
    """One tool under test: the log it follows and how its bans are seen."""

    def __init__(self, name: str, log: Path, watch: SetWatch) -> None:
        self.name = name
        self.log = AttackLog(log)
        self.watch = watch
        self.latencies: list[float] = []
        self.missed = 0

    def ban_latency(self, number: int, pause: float, count: bool) -> None:
        """4 failed logins, ``pause``, then the 5th; record how long until the ban is seen."""
        address = attacker(number)
        self.log.write(failed_login(address, number * 10 + n) for n in range(MAXRETRY - 1))
        time.sleep(pause)
        last = failed_login(address, number * 10 + MAXRETRY)
        start = time.monotonic()
        self.log.write([last])
        seen = self.watch.wait(address)
        if not count:
            return
        if seen is None:
            self.missed += 1
        else:
            self.latencies.append((seen - start) * 1000)

    def close(self) -> None:
        self.watch.close()
        self.log.close()


def fail2ban_backend(install: bool) -> str:
    """pyinotify when fail2ban's interpreter has it (installed now if allowed), else polling."""
    server = shutil.which("fail2ban-server") or "/usr/bin/fail2ban-server"
    interpreter = Path(server).read_text().splitlines()[0].removeprefix("#!").split()[0]

    def has_pyinotify() -> bool:
        done = subprocess.run([interpreter, "-c", "import pyinotify"], capture_output=True)
        return done.returncode == 0

    if has_pyinotify():
        return "pyinotify"
    if install:
        print(f"{interpreter} lacks pyinotify: apt-get install -y python3-pyinotify", flush=True)
        done = subprocess.run(
            ["apt-get", "install", "-y", "-q", "python3-pyinotify"],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode == 0 and has_pyinotify():
            print("installed python3-pyinotify")
            return "pyinotify"
        print(f"apt-get failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    print("fail2ban falls back to its polling backend")
    return "polling"


# --------------------------------------------------------------------------- flood and rate


@dataclass
class Drain:
    """What a flood took: lines, wall and agent CPU seconds, and what scrapes saw meanwhile."""

    lines: int
    seconds: float
    cpu: float
    windows_max: float
    evicted: float
    scrapes: int
    slowest_scrape: float  # seconds


def bulk_lines(first: int, count: int) -> list[str]:
    """Failed logins of ``count`` attackers from the flood's range, numbered from ``first``."""
    lines: list[str] = []
    while count > 0:
        first %= BULK
        size = min(count, BULK - first)
        lines += flood_lines(first, size)
        first, count = first + size, count - size
    return lines


def flood(agent: AgentProcess, log: AttackLog, first: int, count: int) -> Drain:
    """Append ``count`` distinct attackers' failed logins as fast as possible; time until the
    agent has counted them all in its jails, scraping as it drains."""
    pid = agent.process.pid
    before = Scrape(agent)
    events0 = before.value("lappguard_events_total")
    evicted0 = before.value("lappguard_jail_windows_evicted_total")
    cpu0 = cpu_seconds(pid)
    start = time.monotonic()
    chunk = 50_000
    for offset in range(0, count, chunk):
        log.write(bulk_lines(first + offset, min(chunk, count - offset)))
    windows_max, scrapes, slowest = 0.0, 0, 0.0
    while True:
        asked = time.monotonic()
        scrape = Scrape(agent)
        slowest = max(slowest, time.monotonic() - asked)
        scrapes += 1
        windows_max = max(windows_max, scrape.value("lappguard_jail_windows"))
        if scrape.value("lappguard_events_total") - events0 >= count:
            break
        time.sleep(0.1)
    seconds = time.monotonic() - start
    cpu = cpu_seconds(pid) - cpu0
    time.sleep(0.1)  # the last event's window is made just after it is counted
    evicted = Scrape(agent).value("lappguard_jail_windows_evicted_total") - evicted0
    return Drain(count, seconds, cpu, windows_max, evicted, scrapes, slowest)


@dataclass
class Step:
    """One fixed-rate step of the sustained-rate search."""

    offered: float  # lines/s written
    read: float  # lines/s the agent read during the step
    lag_max: float  # bytes
    lag_end: float  # bytes, at the end of the step
    catch_up: float  # seconds after the step until lag 0
    line_bytes: float

    @property
    def kept_up(self) -> bool:
        """Less than a second of input unread when the step ended."""
        return self.lag_end < self.offered * self.line_bytes


def rate_step(agent: AgentProcess, log: AttackLog, first: int, rate: float) -> Step:
    """Append failed logins of new attackers at ``rate`` lines/s for STEP_SECONDS (in 20 ms
    ticks, from a schedule so a late tick catches up); a sampler thread scrapes the lag."""
    lags: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.5):
            lags.append(Scrape(agent).value("lappguard_source_lag_bytes"))

    sampler = threading.Thread(target=sample, daemon=True)
    lines0 = Scrape(agent).value("lappguard_source_lines_total")
    bytes0 = log.written
    sampler.start()
    start = time.monotonic()
    written = 0
    while (elapsed := time.monotonic() - start) < STEP_SECONDS:
        due = int(rate * elapsed) - written
        if due > 0:
            log.write(bulk_lines(first + written, due))
            written += due
        time.sleep(0.02)
    end = time.monotonic()
    scrape = Scrape(agent)
    stop.set()
    sampler.join()
    lag_end = scrape.value("lappguard_source_lag_bytes")
    read = scrape.value("lappguard_source_lines_total") - lines0
    while Scrape(agent).value("lappguard_source_lag_bytes") > 0:
        time.sleep(0.1)
    catch_up = time.monotonic() - end
    line_bytes = (log.written - bytes0) / max(written, 1)
    return Step(
        written / (end - start),
        read / (end - start),
        max([*lags, lag_end]),
        lag_end,
        catch_up,
        line_bytes,
    )


# --------------------------------------------------------------------------- phases


def detectors() -> bool:
    """Print the calibration; whether ``nft monitor`` is the more precise (else polling)."""
    print("1. seeing an element in an nft set (30 elements added in-process at known times)")
    calibration = calibrate()
    print(f"   {'the adding call itself':<24} {spread(calibration.call_ms)} ms")
    for way, label in (("monitor", "nft monitor"), ("poll", "nft -j list set loop")):
        print(f"   {label:<24} {spread(calibration.delays[way])} ms after the call returned")
    print(f"   polling ran {calibration.polls_per_second:.0f} listings/s, a process each")
    monitor = statistics.median(calibration.delays["monitor"]) <= statistics.median(
        calibration.delays["poll"]
    )
    print(f"   -> {'nft monitor' if monitor else 'polling'} is the more precise; the bench uses it")
    return monitor


def ban_latencies(tools: list[Tool], addresses: int, goals: list[str]) -> None:
    """Time ``addresses`` bans per tool, interleaved; print the figures and the goals."""
    pauses = random.Random(7)
    for index in range(WARM_UP + addresses):
        for tool in tools:
            pause = SETTLE + pauses.uniform(0, JITTER)
            tool.ban_latency(LATENCY_FIRST + index, pause, count=index >= WARM_UP)
    for tool in tools:
        missed = f"; {tool.missed} not banned within {BAN_TIMEOUT:.0f} s" if tool.missed else ""
        print(f"   {tool.name:<22} {spread(tool.latencies)}{missed}")
    ours, theirs = tools
    median = statistics.median(ours.latencies)
    ratio = statistics.median(theirs.latencies) / median
    p99 = quantile(theirs.latencies, 0.99) / quantile(ours.latencies, 0.99)
    print(f"   {theirs.name} / lappguard: median {ratio:.0f}x, p99 {p99:.0f}x")
    goals.append(
        f"median ban latency {median:.1f} ms <= {GOAL_MEDIAN_MS:.0f} ms: "
        f"{verdict(median <= GOAL_MEDIAN_MS)}"
    )
    goals.append(
        f"median {ratio:.0f}x faster than {theirs.name}, goal >= {GOAL_RATIO:.0f}x: "
        f"{verdict(ratio >= GOAL_RATIO)}"
    )


def flood_phase(agent: AgentProcess, log: AttackLog, count: int, goals: list[str]) -> float:
    """Flood the agent; print the drain, the memory and the store's size after it. Returns
    the rate the rate steps start from: the drain rate, or the rate per CPU second when
    this shared machine gave the agent less than a core."""
    drained = flood(agent, log, 0, count)
    after = agent.memory()
    rate = drained.lines / drained.seconds
    print(
        f"   read in {drained.seconds:.1f} s: {rate:,.0f} lines/s; agent CPU {drained.cpu:.1f} s"
        f" = {drained.lines / drained.cpu:,.0f} lines per CPU second"
        f" ({drained.cpu / drained.seconds:.2f} cores busy)"
    )
    print(
        f"   jail windows at most {drained.windows_max:,.0f} (cap {MAX_TRACKED:,}),"
        f" {drained.evicted:,.0f} evicted; {drained.scrapes} scrapes meanwhile, all answered,"
        f" the slowest in {drained.slowest_scrape * 1000:.0f} ms"
    )
    print(f"   after the flood: {agent_memory(agent)}")
    database = sum(path.stat().st_size for path in agent.directory.glob("state/state.db*"))
    print(
        f"   state.db and its WAL on disk: {mb(database)} (kept events: pruned every minute to"
        f" {MAX_KEPT_EVENTS:,}; SQLite reuses the space, never gives it back)"
    )
    goals.append(
        f"RSS after the flood {mb(after['VmRSS'])}, peak {mb(after['VmHWM'])} <= "
        f"{GOAL_FLOOD_MB:.0f} MB: {verdict(after['VmHWM'] <= GOAL_FLOOD_MB * 1e6)}"
    )
    return max(rate, drained.lines / drained.cpu)


def rate_phase(agent: AgentProcess, log: AttackLog, first: int, base: float) -> None:
    """Rising fixed rates (fractions of ``base``) until the agent falls behind; print each
    step and the result."""
    sustained = 0.0
    for fraction in RATE_STEPS:
        step = rate_step(agent, log, first, fraction * base)
        first += int(step.offered * STEP_SECONDS) + 1
        print(
            f"   offered {step.offered:>9,.0f}/s  read {step.read:>9,.0f}/s  lag max"
            f" {step.lag_max / 1e6:5.2f} MB, at the end {step.lag_end / 1e6:5.2f} MB,"
            f" 0 again {step.catch_up:4.1f} s later:"
            f" {'kept up' if step.kept_up else 'fell behind'}",
            flush=True,
        )
        if not step.kept_up:
            break
        sustained = step.offered
    print(
        f"   sustained: {sustained:,.0f} lines/s (the fastest step that ended with less than"
        f" 1 s of input unread)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--addresses", type=int, default=50, help="timed bans per tool")
    parser.add_argument("--flood", type=int, default=1_000_000, help="distinct attackers")
    parser.add_argument(
        "--no-install",
        action="store_true",
        help="never apt-get python3-pyinotify (fail2ban then polls)",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root: network namespaces and nftables")
    print(f"load average at the start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores\n")
    goals: list[str] = []
    monitor = detectors()
    backend = fail2ban_backend(install=not args.no_install)
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lappguard-latency-")))
        ours, theirs = (stack.enter_context(network_namespace()) for _ in range(2))
        for namespace, tool in ((ours, "lappguard"), (theirs, "fail2ban")):
            in_namespace(namespace, "ip", "link", "set", "lo", "up")
            (work / tool).mkdir()
            (work / tool / "auth.log").touch()

        agent_log = work / "lappguard" / "auth.log"
        agent = AgentProcess(
            work / "lappguard", AGENT_CONFIG.format(work=work / "lappguard", log=agent_log), ours
        )
        stack.callback(agent.close)
        agent.start()
        agent.ready()
        stack.enter_context(agent.notifications_read())
        while Scrape(agent).value("lappguard_audit_runs_total", trigger="start") < 1:
            time.sleep(0.1)
        time.sleep(1.0)
        idle = agent.memory()["VmRSS"]
        print("\n2. lappguard idle (after start and its first audit of the shipped baseline)")
        print(f"   {agent_memory(agent)}")
        goals.append(
            f"idle RSS {mb(idle)} <= {GOAL_IDLE_MB:.0f} MB: {verdict(idle <= GOAL_IDLE_MB * 1e6)}"
        )

        fail2ban_log = work / "fail2ban" / "auth.log"
        jail = FAIL2BAN_JAIL.format(log=fail2ban_log, backend=backend, maxretry=MAXRETRY)
        server = stack.enter_context(running_fail2ban(theirs, work / "fail2ban", jail))
        print(
            f"   fail2ban-server idle, for comparison: VmRSS "
            f"{mb(process_memory(server.pid)['VmRSS'])}"
        )
        tools = [
            Tool(
                "lappguard",
                agent_log,
                Monitor(ours) if monitor else Poller(ours, "inet", "lappguard", "banned4"),
            ),
            Tool(
                f"fail2ban ({backend})",
                fail2ban_log,
                Monitor(theirs)
                if monitor
                else Poller(theirs, "inet", "f2b-table", "addr-set-sshd"),
            ),
        ]
        for tool in tools:
            stack.callback(tool.close)
        print(
            f"\n3. ban latency, ms: the 5th failed login's write -> the address in the nft set;"
            f" {args.addresses} addresses per tool after {WARM_UP} warm-up, interleaved,"
            f" {SETTLE}-{SETTLE + JITTER} s between the 4th and 5th line",
            flush=True,
        )
        ban_latencies(tools, args.addresses, goals)

        print(
            f"\n4. flood: {args.flood:,} distinct attackers, one failed login each, appended"
            " as fast as this process writes",
            flush=True,
        )
        base = flood_phase(agent, tools[0].log, args.flood, goals)
        print(
            f"\n5. sustained rate: new attackers' failed logins at rising fixed rates,"
            f" {STEP_SECONDS:.0f} s each",
            flush=True,
        )
        rate_phase(agent, tools[0].log, args.flood, base)

    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
    print("goals")
    for goal in goals:
        print(f"   {goal}")


if __name__ == "__main__":
    main()

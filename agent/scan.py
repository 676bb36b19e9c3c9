"""``lappguard scan``: run detection offline over log files, as fail2ban-regex does.

Files are read in large blocks (gzip and stdin too), each with its own Detector; the events
of all files are merged by time and replayed through the jails with the lines' own
timestamps as the clock, so the report says which addresses the jails *would* have banned.
"""

from __future__ import annotations

import argparse
import gzip
import heapq
import json
import multiprocessing
import os
import stat
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, tzinfo
from typing import BinaryIO, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agent.detect import MAX_LINE, Counters, Detector
from agent.events import Event
from agent.jails import DEFAULT_JAILS_FILE, Decision, JailConfig, Jails, load_jails
from agent.kinds import KINDS, access_log_format, sniff_access_format, sniff_kind
from agent.logformats import DEBIAN_PG_PREFIX, PostgresPrefix
from agent.rules import Rule, load_rules, rule_source
from checks.yamlsource import InputError, Problem

BLOCK_SIZE = 1 << 22
#: Regular files at least this big are split into ranges scanned by worker processes; each
#: range first replays the megabyte before it only to learn which address each process
#: named (``address: context`` rules), then counts its own lines.
PARALLEL_MIN_BYTES = 32 << 20
RANGE_BYTES = 16 << 20
WARMUP_BYTES = 1 << 20
#: An overlong line keeps this many bytes (enough for MAX_LINE characters of any UTF-8).
_LONG_LINE_KEEP = 4 * MAX_LINE + 8
_TOP = 10


class ScanError(Exception):
    """An input that cannot be scanned (unreadable, unknown kind): exit code 2."""


@dataclass
class FileReport:
    path: str
    kind: str
    counters: Counters
    access_log_format: str | None = None


@dataclass
class ScanResult:
    """Everything a renderer needs. ``events`` is kept only when asked for."""

    files: list[FileReport]
    counters: Counters
    by_ip: Counter[str]
    bans: list[Decision]
    level: str
    events: list[tuple[str, Event]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ScanOptions:
    rules: Sequence[Rule]
    jails: JailConfig
    kind: str | None = None
    level: str = "normal"
    access_log_format: str | None = None
    trusted_proxies: Sequence[str] = ()
    postgres_prefix: str = DEBIAN_PG_PREFIX
    tz: tzinfo | None = None
    keep_events: bool = False


# --------------------------------------------------------------------------- reading


def open_log(path: str) -> BinaryIO:
    """A binary stream for a path: ``-`` is stdin, ``*.gz`` is decompressed."""
    if path == "-":
        return sys.stdin.buffer
    if path.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def iter_blocks(stream: BinaryIO, block_size: int = BLOCK_SIZE) -> Iterator[bytes]:
    """Blocks of whole lines. A line longer than a block is cut to its first
    ``_LONG_LINE_KEEP`` bytes (at a character boundary) and the rest skipped, so one
    endless line costs one pass and bounded memory."""
    carry = b""
    dropping = False
    while True:
        chunk = stream.read(block_size)
        if not chunk:
            if carry:
                yield carry
            return
        if dropping:
            newline = chunk.find(b"\n")
            if newline == -1:
                continue
            chunk = chunk[newline:]
            dropping = False
        data = carry + chunk if carry else chunk
        cut = data.rfind(b"\n")
        if cut == -1:
            carry, dropping = _keep_head(data)
            continue
        yield data[: cut + 1]
        carry, dropping = _keep_head(data[cut + 1 :])


def _keep_head(partial: bytes) -> tuple[bytes, bool]:
    """The start of an unfinished line, and whether the rest of it must be skipped."""
    if len(partial) <= _LONG_LINE_KEEP:
        return partial, False
    head = partial[:_LONG_LINE_KEEP]
    start = len(head) - 1
    while start > 0 and head[start] & 0xC0 == 0x80:
        start -= 1  # back to the first byte of the last (maybe incomplete) character
    return head[:start], True


def _first_lines(block: bytes) -> list[bytes]:
    return block.split(b"\n", 64)[:64]


# --------------------------------------------------------------------------- scanning


def scan(paths: Sequence[str], options: ScanOptions) -> ScanResult:
    """Scan files; raise ScanError for one that cannot be read or classified."""
    streams: list[Iterator[tuple[str, Event]]] = []
    reports: list[FileReport] = []
    handles: list[BinaryIO] = []
    try:
        for path in paths:
            handle = _open(path)
            handles.append(handle)
            report, events = _scan_file(path, handle, options)
            reports.append(report)
            streams.append(events)
        return _replay(heapq.merge(*streams, key=lambda item: item[1].time), reports, options)
    finally:
        for handle in handles:
            if handle is not sys.stdin.buffer:
                handle.close()


def _open(path: str) -> BinaryIO:
    try:
        return open_log(path)
    except OSError as exc:
        raise ScanError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _scan_file(
    path: str, handle: BinaryIO, options: ScanOptions
) -> tuple[FileReport, Iterator[tuple[str, Event]]]:
    blocks = _guarded(path, iter_blocks(handle))
    first = next(blocks, b"")
    kind = options.kind or sniff_kind(_first_lines(first))
    if kind is None:
        raise ScanError(f"cannot tell what log {path} is; pass --kind ({', '.join(KINDS)})")
    log_format = None
    if kind == "apache_access":
        log_format = options.access_log_format or sniff_access_format(_first_lines(first))
    detector = _detector(options, log_format)
    report = FileReport(path, kind, detector.counters, log_format)
    workers = _workers(path)
    if workers > 1:
        blocks.close()
        return report, _parallel_events(path, (options, kind, log_format), report.counters, workers)
    return report, _file_events(path, kind, detector, first, blocks)


def _detector(options: ScanOptions, log_format: str | None) -> Detector:
    return Detector(
        options.rules,
        level=options.level,
        access_log_format=access_log_format(log_format or "combined"),
        trusted_proxies=options.trusted_proxies,
        postgres_prefix=options.postgres_prefix,
        tz=options.tz,
    )


def _workers(path: str) -> int:
    """Worker processes for a file: several for a big regular file, else 1."""
    if path == "-" or path.endswith(".gz") or (os.cpu_count() or 1) < 2:
        return 1
    try:
        if not stat.S_ISREG(os.stat(path).st_mode) or os.path.getsize(path) < PARALLEL_MIN_BYTES:
            return 1
    except OSError:
        return 1
    return min(os.cpu_count() or 1, 4)


def _parallel_events(
    path: str, settings: tuple, total: Counters, workers: int
) -> Iterator[tuple[str, Event]]:
    """Events of a big file in file order; ranges are scanned by worker processes while
    this process replays the results of the ranges before."""
    context = multiprocessing.get_context("fork")
    kind = settings[1]
    with context.Pool(workers, _worker_init, (settings,)) as pool:
        for records, counters in pool.imap(_scan_range, _ranges(path)):
            _add(total, counters)
            for when, rule, ip, user, line, evidence in records:
                yield path, Event(when, rule, kind, ip, user, path, line, evidence)


def _ranges(path: str) -> Iterator[tuple[str, int, int, int]]:
    """(path, start, end, first line) of consecutive ranges of whole lines."""
    with open(path, "rb") as handle:
        offset, line = 0, 1
        while data := handle.read(RANGE_BYTES):
            end = data.rfind(b"\n") + 1
            if not end:  # one line longer than a range: it goes whole to one worker
                data += _rest_of_line(handle)
                end = len(data)
            yield path, offset, offset + end, line
            line += data.count(b"\n", 0, end)
            offset += end
            handle.seek(offset)


def _rest_of_line(handle: BinaryIO) -> bytes:
    """The bytes up to and including the next newline (or the end of the file)."""
    parts = []
    while chunk := handle.read(BLOCK_SIZE):
        newline = chunk.find(b"\n")
        if newline != -1:
            parts.append(chunk[: newline + 1])
            break
        parts.append(chunk)
    return b"".join(parts)


_SETTINGS: tuple | None = None


def _worker_init(settings: tuple) -> None:
    global _SETTINGS
    _SETTINGS = settings


def _scan_range(task: tuple[str, int, int, int]) -> tuple[list[tuple], Counters]:
    """Scan bytes [start, end) of a file (in a worker process). Events travel back as
    plain tuples: pickling a frozen dataclass costs ten times more."""
    path, start, end, first_line = task
    assert _SETTINGS is not None
    options, kind, log_format = _SETTINGS
    detector = _detector(options, log_format)
    with open(path, "rb") as handle:
        if start > 0:
            handle.seek(max(0, start - WARMUP_BYTES))
            warmup = handle.read(start - handle.tell())
            newline = warmup.find(b"\n") + 1 if start > WARMUP_BYTES else 0
            detector.feed_block(warmup[newline:], kind, path, 0)
            detector.counters = Counters()
        handle.seek(start)
        records = []
        line = first_line
        for block in iter_blocks(_Bounded(handle, end - start)):
            found, count = detector.feed_block(block, kind, path, line)
            records += [(e.time, e.rule, e.ip, e.user, e.line, e.evidence) for e in found]
            line += count
    return records, detector.counters


class _Bounded:
    """A reader that stops after ``size`` bytes (one worker's range)."""

    def __init__(self, handle: BinaryIO, size: int):
        self._handle = handle
        self._left = size

    def read(self, size: int) -> bytes:
        data = self._handle.read(min(size, self._left))
        self._left -= len(data)
        return data


def _guarded(path: str, blocks: Iterator[bytes]) -> Iterator[bytes]:
    try:
        yield from blocks
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise ScanError(f"cannot read {path}: {exc}") from exc


def _file_events(
    path: str, kind: str, detector: Detector, first: bytes, rest: Iterator[bytes]
) -> Iterator[tuple[str, Event]]:
    line = 1
    for block in _chain(first, rest):
        events, count = detector.feed_block(block, kind, path, line)
        line += count
        for event in events:
            yield path, event


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


def _replay(
    events: Iterable[tuple[str, Event]], reports: list[FileReport], options: ScanOptions
) -> ScanResult:
    """Count, and run the jails with the events' own times as the clock."""
    now = [0.0]  # the jails' clock: the time of the event being replayed
    jails = Jails(options.jails.jails, clock=lambda: now[0], allowlist=options.jails.allowlist)
    by_ip: Counter[str] = Counter()
    bans: list[Decision] = []
    kept: list[tuple[str, Event]] = []
    for path, event in events:
        by_ip[event.ip] += 1
        now[0] = event.time
        decision = jails.observe(event)
        if decision is not None:
            bans.append(decision)
        if options.keep_events:
            kept.append((path, event))
    total = Counters()
    for report in reports:
        _add(total, report.counters)
    result = ScanResult(reports, total, by_ip, bans, options.level, kept)
    result.notes = _notes(result, options)
    return result


def _add(total: Counters, part: Counters) -> None:
    for item in fields(Counters):
        if item.name == "by_rule":
            total.by_rule.update(part.by_rule)
        else:
            setattr(total, item.name, getattr(total, item.name) + getattr(part, item.name))


def _notes(result: ScanResult, options: ScanOptions) -> list[str]:
    """Plain-language explanations for everything that was read but not trusted."""
    notes = []
    for report in result.files:
        c = report.counters
        if c.garbage:
            notes.append(f"{report.path}: {_lines(c.garbage)} skipped (invalid UTF-8 or NUL bytes)")
        if c.truncated:
            notes.append(f"{report.path}: {_lines(c.truncated)} longer than {MAX_LINE} were cut")
        if c.unparsed:
            notes.append(
                f"{report.path}: {_lines(c.unparsed)} not in the {report.kind} format"
                + (f" ({report.access_log_format})" if report.access_log_format else "")
            )
        if c.ambiguous:
            notes.append(
                f"{report.path}: {_lines(c.ambiguous)} could be read as coming from two different"
                " addresses (attacker-chosen text spelling an address); no event for them"
            )
        if c.no_address and report.kind == "postgresql":
            notes.append(
                f"{report.path}: {_lines(c.no_address)} without a client address: with "
                f"log_line_prefix {options.postgres_prefix!r} the host is not in the line; set "
                "log_line_prefix = '%m [%p] %h %q%u@%d ' (and pass --pg-prefix) or "
                "log_connections = on"
            )
        elif c.no_address:
            notes.append(
                f"{report.path}: {_lines(c.no_address)} matched but named no usable address "
                "(a host name, or no earlier line of the same process named one)"
            )
    return notes


def _lines(count: int) -> str:
    return f"{count} line" if count == 1 else f"{count} lines"


# --------------------------------------------------------------------------- rendering


def render_json(result: ScanResult, out: TextIO) -> None:
    c = result.counters
    document = {
        "lines": c.lines,
        "events": c.events,
        "skipped": c.skipped,
        "by_rule": dict(sorted(c.by_rule.items())),
        "by_ip": dict(result.by_ip.most_common()),
        "bans": [
            {"ip": d.ip, "jail": d.jail, "time": _iso(d.time), "count": d.count}
            for d in result.bans
        ],
        "matched": c.matched,
        "garbage": c.garbage,
        "truncated": c.truncated,
        "unparsed": c.unparsed,
        "ambiguous": c.ambiguous,
        "no_address": c.no_address,
        "level": result.level,
        "files": [
            {"path": r.path, "kind": r.kind, "lines": r.counters.lines} for r in result.files
        ],
        "notes": result.notes,
    }
    json.dump(document, out, indent=2)
    out.write("\n")


def render_events(result: ScanResult, out: TextIO) -> None:
    for path, event in result.events:
        record = {
            "file": path,
            "line": event.line,
            "rule": event.rule,
            "ip": event.ip,
            "user": event.user,
            "time": _iso(event.time),
        }
        out.write(json.dumps(record) + "\n")


def render_text(result: ScanResult, out: TextIO) -> None:
    c = result.counters
    write = out.write
    write(
        f"Lines read: {c.lines}   matched: {c.matched}   events: {c.events}   "
        f"skipped: {c.skipped}   (level {result.level})\n"
    )
    for report in result.files:
        write(f"  {report.path}: {report.kind}, {report.counters.lines} lines\n")
    write("\nEvents by rule:\n")
    if not c.by_rule:
        write("  (none)\n")
    for rule, count in sorted(c.by_rule.items(), key=lambda item: (-item[1], item[0])):
        write(f"  {count:>8}  {rule}\n")
    write(f"\nTop addresses ({len(result.by_ip)} in all):\n")
    if not result.by_ip:
        write("  (none)\n")
    for ip, count in result.by_ip.most_common(_TOP):
        write(f"  {count:>8}  {ip}\n")
    write(f"\nWould be banned by the jails ({len(result.bans)}):\n")
    if not result.bans:
        write("  (none)\n")
    for decision in result.bans:
        write(
            f"  {decision.ip:<39}  {decision.jail:<12}  at {_iso(decision.time)}"
            f"  ({decision.count} events, {decision.rule})\n"
        )
    if result.notes:
        write("\nNotes:\n")
        for note in result.notes:
            write(f"  - {note}\n")


RENDERERS = {"text": render_text, "json": render_json, "events": render_events}


def _iso(epoch: float) -> str:
    stamp = datetime.fromtimestamp(epoch, UTC)
    text = stamp.isoformat(timespec="microseconds" if stamp.microsecond else "seconds")
    return text.replace("+00:00", "Z")


# --------------------------------------------------------------------------- command line


def add_scan_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``lappguard scan``."""
    parser.add_argument(
        "files", nargs="+", metavar="FILE", help="log files; '-' reads stdin, *.gz is unpacked"
    )
    parser.add_argument(
        "--rules",
        action="append",
        metavar="FILE|NAME",
        help="rule file, or a shipped one by name (sshd, apache-access, apache-error, "
        "postgresql, php-app); repeatable; default: all shipped rules",
    )
    kinds = "; ".join(f"{name}: {kind.description}" for name, kind in KINDS.items())
    parser.add_argument(
        "--kind", choices=sorted(KINDS), help=f"log kind (default: from content). {kinds}"
    )
    parser.add_argument("--format", choices=sorted(RENDERERS), default="text")
    parser.add_argument(
        "--level",
        choices=("normal", "aggressive"),
        default="normal",
        help="aggressive also runs the opt-in rules (default: normal)",
    )
    parser.add_argument(
        "--jails", metavar="FILE", default=str(DEFAULT_JAILS_FILE), help="jails to simulate"
    )
    parser.add_argument(
        "--access-log-format",
        metavar="LOGFORMAT",
        help="Apache LogFormat of access logs, or combined|vhost_combined|common "
        "(default: guessed from the first lines)",
    )
    parser.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="CIDR",
        help="believe X-Forwarded-For from these peers (repeatable)",
    )
    parser.add_argument(
        "--pg-prefix",
        default=DEBIAN_PG_PREFIX,
        metavar="PREFIX",
        help=f"PostgreSQL log_line_prefix (default: Debian's {DEBIAN_PG_PREFIX!r})".replace(
            "%", "%%"
        ),
    )
    parser.add_argument(
        "--timezone",
        metavar="ZONE",
        help="zone of timestamps that carry none, e.g. Europe/Paris (default: this host's)",
    )


def run_scan(args: argparse.Namespace) -> int:
    """Run ``lappguard scan``; 0 when the files were scanned, 2 on usage or input errors.

    Rule and jail file problems are raised as InputError (the CLI prints them, exit 2).
    """
    try:
        options = _options(args)
        result = scan(args.files, options)
    except ScanError as exc:
        print(f"lappguard scan: {exc}", file=sys.stderr)
        return 2
    RENDERERS[args.format](result, sys.stdout)
    return 0


def _options(args: argparse.Namespace) -> ScanOptions:
    sources = [rule_source(name) for name in args.rules] if args.rules else None
    rules = load_rules(sources)
    # jails may name any shipped rule, loaded for this scan or not
    known = {rule.id for rule in rules} | ({r.id for r in load_rules()} if sources else set())
    jails = load_jails(args.jails, known)
    tz = None
    if args.timezone:
        try:
            tz = ZoneInfo(args.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            problem = Problem("--timezone", 0, "", f"unknown zone {args.timezone!r}")
            raise InputError([problem]) from exc
    try:
        PostgresPrefix(args.pg_prefix)
    except ValueError as exc:
        raise InputError([Problem("--pg-prefix", 0, "", str(exc))]) from exc
    return ScanOptions(
        rules=rules,
        jails=jails,
        kind=args.kind,
        level=args.level,
        access_log_format=args.access_log_format,
        trusted_proxies=tuple(args.trusted_proxy),
        postgres_prefix=args.pg_prefix,
        tz=tz,
        keep_events=args.format == "events",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point (``python -m agent.scan``), same as ``lappguard scan``."""
    parser = argparse.ArgumentParser(prog="lappguard scan", description=__doc__)
    add_scan_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_scan(args)
    except BrokenPipeError:
        return 0
    except InputError as exc:
        for problem in exc.problems:
            print(f"lappguard scan: {problem}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["ScanOptions", "ScanResult", "add_scan_arguments", "run_scan", "scan"]

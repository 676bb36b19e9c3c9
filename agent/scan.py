"""``lappguard scan``: run detection offline over log files, as fail2ban-regex does.

Files are read in large blocks (gzip and stdin too), each with its own Detector; the events
of all files are merged by time and replayed through the jails with the lines' own
timestamps as the clock, so the report says which addresses the jails *would* have banned.

Events travel as plain records, ``(time, rule, ip, confidence)`` first: the counts and the
jails need nothing more, and only ``--format events`` builds Event objects. A big regular file is
split into ranges scanned by worker processes (:mod:`agent.scan_ranges`).
"""

from __future__ import annotations

import argparse
import errno
import gc
import heapq
import ipaddress
import json
import os
import sys
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, tzinfo
from operator import itemgetter
from typing import BinaryIO, Protocol, TextIO

from agent.bans.jails import DEFAULT_JAILS_FILE, Decision, JailConfig, Jails, load_jails
from agent.detect.detector import MAX_LINE, Counters, Detector, Hit, event_of
from agent.detect.events import Event
from agent.detect.http import AccessLogParser
from agent.detect.kinds import KINDS, access_log_format, sniff_access_format, sniff_kind
from agent.detect.logformats import DEBIAN_PG_PREFIX, PostgresPrefix
from agent.detect.memory import ProcessMemory
from agent.detect.postgres import JSONLOG, STDERR, sniff_postgres_format
from agent.detect.rules import Rule, load_rules, rule_source
from agent.scan_progress import ScanProgress, progress_for
from agent.scan_why import REASONS, NotBanned, Peaks, host_addresses, not_banned
from checks.visible import visible
from checks.yamlsource import InputError, Problem

BLOCK_SIZE = 1 << 20
#: An overlong line keeps this many bytes (enough for MAX_LINE characters of any UTF-8).
_LONG_LINE_KEEP = 4 * MAX_LINE + 8
_TOP = 10
#: Characters of the matched line an event of ``--format events`` carries at most.
EXCERPT = 200
#: Lines that gave no event ``--verbose`` shows per log kind (fail2ban-regex's "missed lines").
MISSED_SAMPLES = 5


class ScanError(Exception):
    """An input that cannot be scanned (unreadable, unknown kind): it is left out, the
    others are scanned, and the exit code says some input was not read (2)."""


@dataclass
class FileReport:
    """One file: its kind and, within it, its format (an Apache LogFormat, or PostgreSQL's
    ``stderr`` or ``jsonlog``). The kind of an empty file is None unless ``--kind`` said."""

    path: str
    kind: str | None
    counters: Counters
    log_format: str | None = None
    missed: list[tuple[int, str]] = field(default_factory=list)  # (line, excerpt), --verbose


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
    severity: dict[str, str] = field(default_factory=dict)  # of each rule
    reasons: list[str] = field(default_factory=list)  # why each ban, as bans show says
    unread: list[str] = field(default_factory=list)  # why each file left out was not read
    not_banned: list[NotBanned] = field(default_factory=list)  # why not, nearest a ban first
    #: with --verbose: by log kind, (file, line, excerpt) of lines that gave no event
    missed: dict[str, list[tuple[str, int, str]]] | None = None


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
    verbose: bool = False  # sample the lines that gave no event


# --------------------------------------------------------------------------- reading


def open_log(path: str) -> BinaryIO:
    """A binary stream for a path: ``-`` is stdin, ``*.gz`` is decompressed."""
    if path == "-":
        if sys.stdin is None:  # started with fd 0 closed (``<&-``)
            raise OSError(errno.EBADF, "it is closed")
        return sys.stdin.buffer
    if path.endswith(".gz"):
        import gzip  # only for compressed input: keeps start-up short

        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def iter_blocks(stream: BinaryIO, block_size: int = BLOCK_SIZE) -> Iterator[bytes]:
    """Blocks of whole lines. A line still unfinished after ``_LONG_LINE_KEEP`` bytes at the
    end of a read is cut to them (at a character boundary) and the rest skipped, so one
    endless line costs one pass and bounded memory (the detector cuts any line to MAX_LINE
    characters anyway).

    Reads go into one reused buffer and each block is copied out once: allocating a fresh
    block-sized string per read costs more than scanning it.
    """
    buffer = bytearray(max(block_size, _LONG_LINE_KEEP) + block_size)
    view = memoryview(buffer)
    kept = 0  # bytes of an unfinished line at the start of the buffer
    dropping = False  # skipping the rest of an overlong line
    try:
        while True:
            read = stream.readinto(view[kept : kept + block_size])
            if not read:
                if kept:
                    yield bytes(view[:kept])
                return
            filled = kept + read
            if dropping:
                newline = buffer.find(b"\n", kept, filled)
                if newline == -1:
                    continue
                buffer[kept : kept + filled - newline] = buffer[newline:filled]
                filled = kept + filled - newline
                dropping = False
            cut = buffer.rfind(b"\n", 0, filled)
            if cut == -1:
                kept, dropping = _keep_head(buffer, 0, filled)
                continue
            yield bytes(view[: cut + 1])
            kept, dropping = _keep_head(buffer, cut + 1, filled)
    finally:
        view.release()


def _keep_head(buffer: bytearray, start: int, end: int) -> tuple[int, bool]:
    """Move the unfinished line ``buffer[start:end]`` to the start of the buffer, cut to
    ``_LONG_LINE_KEEP`` bytes; its kept length, and whether the rest must be skipped."""
    length = end - start
    dropping = length > _LONG_LINE_KEEP
    if dropping:
        length = _LONG_LINE_KEEP - 1
        while length > 0 and buffer[start + length] & 0xC0 == 0x80:
            length -= 1  # back to the first byte of the last (maybe incomplete) character
    if start:
        buffer[:length] = buffer[start : start + length]
    return length, dropping


def _first_lines(block: bytes) -> list[bytes]:
    return block.split(b"\n", 64)[:64]


# --------------------------------------------------------------------------- scanning


class EventSink(Protocol):
    """Receives each event as it is replayed (``--format events`` streams them)."""

    def event(self, path: str, event: Event) -> None: ...

    def flush(self) -> None:
        """Called when a file's next block is about to be read: what was received so far
        is all there is until that block is scanned."""


def scan(
    paths: Sequence[str],
    options: ScanOptions,
    on_event: EventSink | None = None,
    on_unread: Callable[[str], None] | None = None,
    progress: ScanProgress | None = None,
) -> ScanResult:
    """Scan files. One that cannot be read, or is not empty and of no kind we can tell, is
    left out and the others scanned: a log glob (``/var/log/apache2/*.log``) holds files
    of every sort, and one bad file must not hide what the others show. Why each was left
    out is in ``ScanResult.unread``, and goes to ``on_unread`` as soon as it is known.

    With ``options.keep_events``, events go to ``on_event`` as they are replayed (kept in
    the result when there is none). ``progress`` hears of every block read."""
    streams: list[Iterator[tuple]] = []
    reports: list[FileReport] = []
    handles: list[BinaryIO] = []
    unread: list[str] = []

    def left_out(reason: str) -> None:
        unread.append(reason)
        if on_unread is not None:
            on_unread(reason)

    with _no_cycle_collection():
        try:
            for path in paths:
                try:
                    handle = _open(path)
                    handles.append(handle)
                    report, records = _scan_file(
                        path, handle, options, left_out, on_event, progress
                    )
                except ScanError as exc:
                    left_out(str(exc))
                    continue
                reports.append(report)
                streams.append(records)
            merged = streams[0] if len(streams) == 1 else heapq.merge(*streams, key=_TIME)
            result = _replay(merged, reports, options, on_event)
        finally:
            for handle in handles:
                if handle is not sys.stdin.buffer:
                    handle.close()
    result.unread = unread
    return result


_TIME = itemgetter(0)


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Pause the cyclic garbage collector: a scan builds hundreds of thousands of tuples,
    none in a cycle, and the collector would re-walk all of them again and again."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _open(path: str) -> BinaryIO:
    try:
        return open_log(path)
    except OSError as exc:
        raise ScanError(f"cannot read {_name(path)}: {exc.strerror or exc}") from exc


def _scan_file(
    path: str,
    handle: BinaryIO,
    options: ScanOptions,
    left_out: Callable[[str], None],
    sink: EventSink | None = None,
    progress: ScanProgress | None = None,
) -> tuple[FileReport, Iterator[tuple]]:
    """The report of a file (filled as its records are consumed) and its records: (time,
    rule, ip, confidence) for the counts, with the Event appended when events are kept.
    Raises ScanError when its first block cannot be read or its kind told; a reading error
    later ends its records, and goes to ``left_out``."""
    read = _guarded(path, iter_blocks(handle))
    first = next(read, b"")
    if not first:  # an empty log (a vhost's that never had a request) is 0 lines, not a riddle
        return FileReport(path, options.kind, Counters()), iter(())
    kind = options.kind or sniff_kind(_first_lines(first))
    if kind is None:
        raise ScanError(f"cannot tell what log {path} is; pass --kind ({', '.join(KINDS)})")
    blocks = _ended_by_errors(read, left_out)
    if sink is not None:
        blocks = _flushing(blocks, sink)
    log_format = None
    if kind == "apache_access":
        log_format = options.access_log_format or sniff_access_format(_first_lines(first))
    elif kind == "postgresql":
        log_format = sniff_postgres_format(_first_lines(first))
    settings = (options, kind, log_format)
    detector = detector_for(settings)
    report = FileReport(path, kind, detector.counters, log_format)
    if options.verbose:
        report.missed = missed_lines(settings, path, first)
    from agent import scan_ranges  # here: it imports this module

    workers = scan_ranges.workers_for(path)
    if workers > 1:
        blocks.close()
        hits = scan_ranges.parallel_hits(path, settings, report.counters, workers, progress)
    else:
        if progress is not None:
            blocks = _progressing(first, blocks, handle, progress)
        hits = _file_hits(path, kind, detector, first, blocks, options.keep_events)
    if options.keep_events:
        return report, ((*hit[:4], event_of(hit, kind, path)) for hit in hits)
    return report, hits


#: How one file is scanned: the options, its kind and its format.
Settings = tuple[ScanOptions, str, "str | None"]


def missed_lines(settings: Settings, path: str, first: bytes) -> list[tuple[int, str]]:
    """Up to MISSED_SAMPLES non-blank lines of a file's first block that gave no event,
    (line number, excerpt) each: what the rules do not see, as fail2ban-regex's missed
    lines show. A detector of their own reads the block again, so the scan's detector
    (maybe in worker processes, for a big file) counts each line once; only ``--verbose``
    pays for it."""
    kind = settings[1]
    hits, _ = detector_for(settings).hits_block(first, kind, path, 1, numbered=True)
    matched = {hit[6] for hit in hits}
    samples: list[tuple[int, str]] = []
    for number, raw in enumerate(first.split(b"\n"), 1):
        if number not in matched and raw.strip():
            samples.append((number, excerpt(raw.decode("utf-8", "replace"))))
            if len(samples) == MISSED_SAMPLES:
                break
    return samples


def detector_for(settings: Settings, memory: ProcessMemory | None = None) -> Detector:
    """A detector holding only the rules of the file's kind (the others would never run,
    and building them would import what they need), starting from ``memory``."""
    options, kind, log_format = settings
    return Detector(
        [rule for rule in options.rules if rule.kind == kind],
        level=options.level,
        access_log_format=access_log_format(
            log_format if kind == "apache_access" and log_format else "combined"
        ),
        trusted_proxies=options.trusted_proxies,
        postgres_prefix=options.postgres_prefix,
        postgres_format=log_format if kind == "postgresql" and log_format else STDERR,
        tz=options.tz,
        memory=memory,
    )


def _guarded(path: str, blocks: Iterator[bytes]) -> Iterator[bytes]:
    """Reading errors as ScanError: a bad gzip header is an OSError, corrupt compressed
    data a zlib.error, a truncated file an EOFError."""
    try:
        yield from blocks
    except (OSError, EOFError, zlib.error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ScanError(f"cannot read {_name(path)}: {reason}") from exc


def _ended_by_errors(blocks: Iterator[bytes], left_out: Callable[[str], None]) -> Iterator[bytes]:
    """The blocks up to a reading error, which goes to ``left_out``: the lines read so far
    count, and the other files are still scanned."""
    try:
        yield from blocks
    except ScanError as exc:
        left_out(f"{exc} (the lines before were scanned)")


def _flushing(blocks: Iterator[bytes], sink: EventSink) -> Iterator[bytes]:
    """The blocks, flushing ``sink`` before each is read: the events of a block are out
    before the next one is scanned, so a long file's first events show at once."""
    for block in blocks:
        yield block
        sink.flush()


def _progressing(
    first: bytes, blocks: Iterator[bytes], handle: BinaryIO, progress: ScanProgress
) -> Iterator[bytes]:
    """The blocks after ``first`` (read already), telling ``progress`` of each, ``first``
    at once: the bytes read on disk (of the compressed file, for a .gz, as its size counts
    in the total) and the lines."""
    seen = _on_disk(handle)
    progress.advance(seen, first.count(b"\n"))
    for block in blocks:
        position = _on_disk(handle)
        progress.advance(position - seen, block.count(b"\n"))
        seen = position
        yield block


def _on_disk(handle: BinaryIO) -> int:
    """How far into the file on disk ``handle`` has read (0 for a pipe)."""
    raw = getattr(handle, "fileobj", handle)  # a GzipFile reads its compressed file
    try:
        return raw.tell()
    except (OSError, ValueError):
        return 0


def _name(path: str) -> str:
    return "standard input" if path == "-" else path


def _file_hits(
    path: str,
    kind: str,
    detector: Detector,
    first: bytes,
    rest: Iterator[bytes],
    numbered: bool,
) -> Iterator[Hit]:
    line = 1
    for block in _chain(first, rest):
        hits, count = detector.hits_block(block, kind, path, line, numbered)
        line += count
        yield from hits


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


def _replay(
    records: Iterable[tuple],
    reports: list[FileReport],
    options: ScanOptions,
    on_event: EventSink | None = None,
) -> ScanResult:
    """Count, and run the jails with the events' own times as the clock."""
    config = options.jails
    jails = Jails(config.jails, clock=_no_clock, allowlist=config.allowlist,
                  evidence=config.evidence)  # fmt: skip
    count = jails.count
    addresses: list[str] = []  # counted at the end, at C speed
    bans: list[Decision] = []
    kept: list[tuple[str, Event]] = []
    keep = options.keep_events
    # how near a ban each address came: for the reports, not for --format events
    peaks = None if keep else Peaks(jails)
    seen = None if peaks is None else peaks.seen
    # an address once banned is no longer asked how near a ban it came: the report lists
    # only the addresses never banned (under attack, most events are of banned ones)
    banned: set[str] = set()
    for record in records:
        when, rule, ip, confidence = record[0], record[1], record[2], record[3]
        addresses.append(ip)
        # the jails' clock: the event being replayed
        decision = count(rule, ip, when, when, confidence)
        if decision is not None:
            bans.append(decision)
            banned.add(ip)
        elif seen is not None and ip not in banned:
            seen(rule, ip)
        if keep:
            if on_event is not None:
                on_event.event(record[4].source, record[4])
            else:
                kept.append((record[4].source, record[4]))
    by_ip = Counter(addresses)
    total = Counters()
    for report in reports:
        add_counters(total, report.counters)
    result = ScanResult(reports, total, by_ip, bans, options.level, kept)
    result.severity = {rule.id: rule.severity for rule in options.rules}
    by_name = {jail.name: jail for jail in config.jails}
    result.reasons = [decision.why(by_name[decision.jail]) for decision in bans]
    result.notes = _notes(result, options)
    if options.verbose:
        result.missed = _missed_by_kind(reports)
    if peaks is not None:
        result.not_banned = not_banned(by_ip, bans, config, peaks, host_addresses())
    return result


def _missed_by_kind(reports: list[FileReport]) -> dict[str, list[tuple[str, int, str]]]:
    """The files' missed lines by kind, the first MISSED_SAMPLES of each, in file order."""
    by_kind: dict[str, list[tuple[str, int, str]]] = {}
    for report in reports:
        if report.kind is None:
            continue
        samples = by_kind.setdefault(report.kind, [])
        for number, text in report.missed[: MISSED_SAMPLES - len(samples)]:
            samples.append((report.path, number, text))
    return {kind: samples for kind, samples in by_kind.items() if samples}


def _no_clock() -> float:
    raise AssertionError("a replay passes the time of each event")


def add_counters(total: Counters, part: Counters, sign: int = 1) -> None:
    """Add ``part`` to ``total`` (``sign`` -1: take it away)."""
    for item in fields(Counters):
        if item.name == "by_rule":
            total.by_rule.update({rule: sign * count for rule, count in part.by_rule.items()})
            total.by_rule = +total.by_rule  # no rule left at 0
        else:
            setattr(total, item.name, getattr(total, item.name) + sign * getattr(part, item.name))


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
                + (f" ({report.log_format})" if report.log_format else "")
            )
        if c.ambiguous:
            notes.append(
                f"{report.path}: {_lines(c.ambiguous)} could be read as coming from two different"
                " addresses (attacker-chosen text spelling an address); no event for them"
            )
        if c.untied:
            notes.append(
                f"{report.path}: {_lines(c.untied)} not tied to a connection PostgreSQL logged "
                "(a line that could continue a user or database name holding a newline, a "
                "process without a 'connection received' line, or an address or user that "
                "contradicts it); no event for them. log_destination = 'jsonlog' rules out "
                "such forged lines"
            )
        if c.no_address and report.kind == "postgresql" and report.log_format == JSONLOG:
            notes.append(
                f"{report.path}: {_lines(c.no_address)} without a client address "
                "(a local connection, or no remote_host)"
            )
        elif c.no_address and report.kind == "postgresql":
            notes.append(
                f"{report.path}: {_lines(c.no_address)} without a client address: with "
                f"log_line_prefix {options.postgres_prefix!r} the host is not in the line; set "
                "log_connections = on (and log_line_prefix = '%m [%p] %h %q%u@%d ', passed "
                "as --pg-prefix), or log_destination = 'jsonlog'"
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
            {"ip": d.ip, "jail": d.jail, "time": _iso(d.time), "count": d.count, "reason": why}
            for d, why in zip(result.bans, result.reasons, strict=True)
        ],
        "matched": c.matched,
        "garbage": c.garbage,
        "truncated": c.truncated,
        "unparsed": c.unparsed,
        "ambiguous": c.ambiguous,
        "no_address": c.no_address,
        "untied": c.untied,
        "own_probes": c.own_probes,
        "level": result.level,
        "files": [
            {"path": r.path, "kind": r.kind, "format": r.log_format, "lines": r.counters.lines}
            for r in result.files
        ],
        "notes": result.notes,
        "unread": result.unread,
        "not_banned": [_not_banned_json(entry) for entry in result.not_banned],
    }
    if result.missed is not None:
        document["missed_samples"] = {
            kind: [{"file": path, "line": number, "text": text} for path, number, text in samples]
            for kind, samples in result.missed.items()
        }
    # one write: json.dump writes each fragment, a million calls for a scan under attack
    out.write(json.dumps(document, indent=2) + "\n")


def _not_banned_json(entry: NotBanned) -> dict:
    return {
        "ip": entry.ip,
        "events": entry.events,
        "reason": entry.reason,
        "why": entry.why,
        "jails": [
            {"jail": p.jail, "most": p.most, "maxretry": p.maxretry, "findtime": p.findtime}
            for p in entry.peaks
        ],
        "weight": round(entry.weight, 6),
    }


def render_events(result: ScanResult, out: TextIO) -> None:
    for path, event in result.events:
        out.write(event_line(path, event, result.severity))


def event_line(path: str, event: Event, severity: dict[str, str]) -> str:
    """One event as a line of JSON (``--format events``). Its fields are a contract for
    the scripts that read them: add fields, never rename one."""
    record = {
        "file": path,
        "line": event.line,
        "rule": event.rule,
        "ip": event.ip,
        "user": event.user,
        "time": _iso(event.time),
        "severity": severity.get(event.rule),
        "confidence": event.confidence,
        "family": event.family,
        "excerpt": excerpt(event.evidence),
    }
    return json.dumps(record) + "\n"


def excerpt(line: str) -> str:
    """The start of a matched line, at most EXCERPT characters (the last one ``…`` when it
    was cut), with control and invisible characters written out as reports show them: the
    line is the attacker's text, and it must not drive the terminal of whoever reads it."""
    shown = visible(line[:EXCERPT])
    if len(shown) > EXCERPT or len(line) > EXCERPT:
        shown = shown[: EXCERPT - 1] + "…"
    return shown


class EventStream:
    """``--format events`` written as the scan finds them (an :class:`EventSink`), so the
    first events of a long file show at once. A failed write raises ReportNotWritten."""

    def __init__(self, out: TextIO, severity: dict[str, str]) -> None:
        self._out = out
        self._severity = severity

    def event(self, path: str, event: Event) -> None:
        try:
            self._out.write(event_line(path, event, self._severity))
        except OSError as exc:
            raise ReportNotWritten(exc) from exc

    def flush(self) -> None:
        try:
            self._out.flush()
        except OSError as exc:
            raise ReportNotWritten(exc) from exc


class ReportNotWritten(Exception):
    """Writing the report failed (the reader left, a full disk); ``error`` says how. Not an
    OSError, so it cannot be mistaken for a log that could not be read."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def render_text(result: ScanResult, out: TextIO) -> None:
    c = result.counters
    write = out.write
    write(
        f"Lines read: {c.lines}   matched: {c.matched}   events: {c.events}   "
        f"skipped: {c.skipped}   (level {result.level})\n"
    )
    if c.own_probes:
        write(f"Own probes: {c.own_probes}, not counted (lappguard's audit, from this host)\n")
    for report in result.files:
        kind = report.kind or "empty"
        if kind == "postgresql":
            kind += f" ({report.log_format})"
        write(f"  {report.path}: {kind}, {_lines(report.counters.lines)}\n")
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
    for decision, why in zip(result.bans, result.reasons, strict=True):
        write(f"  {decision.ip:<39}  {decision.jail:<12}  at {_iso(decision.time)}  ({why})\n")
    if result.not_banned:
        _write_not_banned(result.not_banned, write)
    if result.missed is not None:
        write(f"\nMissed lines (gave no event; at most {MISSED_SAMPLES} of each kind):\n")
        if not result.missed:
            write("  (none)\n")
        for kind, samples in result.missed.items():
            write(f"  {kind}:\n")
            for path, number, text in samples:
                write(f"    {path}:{number}: {text}\n")
    if result.notes:
        write("\nNotes:\n")
        for note in result.notes:
            write(f"  - {note}\n")
    if result.unread:
        write(f"\nNot read ({len(result.unread)}):\n")
        for reason in result.unread:
            write(f"  - {reason}\n")


def _write_not_banned(entries: list[NotBanned], write: Callable[[str], object]) -> None:
    """A line per reason, then the addresses nearest a ban: thousands of addresses must
    not bury the report (``--format json`` lists them all)."""
    write(f"\nNot banned ({len(entries)} with events):\n")
    by_reason: dict[str, list[NotBanned]] = {}
    for entry in entries:
        by_reason.setdefault(entry.reason, []).append(entry)
    for reason, label in REASONS.items():
        listed = by_reason.get(reason)
        if not listed:
            continue
        if reason == "below_threshold":
            write(f"  {len(listed):>8}  {label}\n")
            continue
        shown = ", ".join(entry.ip for entry in listed[:3]) + (", ..." if len(listed) > 3 else "")
        write(f"  {len(listed):>8}  {label}: {shown}\n")
    nearest = by_reason.get("below_threshold", [])[:_TOP]
    if nearest:
        write("Nearest to a ban:\n")
    for entry in nearest:
        write(f"  {entry.ip:<39}  {_events(entry.events):>10}  {entry.why}\n")


def _events(count: int) -> str:
    return f"{count} event" if count == 1 else f"{count} events"


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
    parser.add_argument(
        "--format",
        choices=sorted(RENDERERS),
        default="text",
        help="text: a report for people (default); json: the counts, for scripts; events: "
        "one JSON object per event, as found",
    )
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
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help=f"also show up to {MISSED_SAMPLES} lines of each log kind that gave no event "
        "(missed lines, as fail2ban-regex prints), from the start of each file",
    )


def run_scan(args: argparse.Namespace) -> int:
    """Run ``lappguard scan``: 0 when every file was scanned; 2 on usage or rule errors,
    when the report cannot be written, or when some file could not be read (each one line
    on stderr as soon as known; the others are scanned and reported, and when none could
    be read there is no report).

    Rule and jail file problems are raised as InputError (the CLI prints them, exit 2).
    """
    if sys.stdout is None:  # started with fd 1 closed (``>&-``): fail before scanning
        print("lappguard scan: cannot write the report: standard output is closed", file=sys.stderr)
        return 2
    options = _options(args)
    stream = None
    if args.format == "events":
        stream = EventStream(sys.stdout, {rule.id: rule.severity for rule in options.rules})
    try:
        progress = progress_for(args.files, sys.stderr)
        warn = _warn if progress is None else _warning_over(progress)
        try:
            result = scan(args.files, options, stream, warn, progress)
        finally:
            if progress is not None:
                progress.erase()
        if stream is not None:
            stream.flush()
        elif result.files:
            _render(RENDERERS[args.format], result)
    except ReportNotWritten as exc:
        return _not_written(exc.error)
    return 2 if result.unread else 0


def _render(render: Callable[[ScanResult, TextIO], None], result: ScanResult) -> None:
    try:
        render(result, sys.stdout)
        sys.stdout.flush()
    except OSError as exc:
        raise ReportNotWritten(exc) from exc


def _warn(reason: str) -> None:
    print(f"lappguard scan: {reason}", file=sys.stderr, flush=True)


def _warning_over(progress: ScanProgress) -> Callable[[str], None]:
    """:func:`_warn`, on a line of its own: the progress line is erased first."""

    def warn(reason: str) -> None:
        progress.erase()
        _warn(reason)

    return warn


def _not_written(error: OSError) -> int:
    """0 when the reader stopped reading (``| head``: its choice, not an error, so nothing
    is said); 2 with one line for any other failure (a full disk, ENOSPC). Either way
    stdout then points at /dev/null, so the interpreter's last flush of what is left in
    its buffer fails no more."""
    _drop_stdout()
    if isinstance(error, BrokenPipeError):
        return 0
    print(f"lappguard scan: cannot write the report: {error.strerror or error}", file=sys.stderr)
    return 2


def _drop_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _options(args: argparse.Namespace) -> ScanOptions:
    sources = [rule_source(name) for name in args.rules] if args.rules else None
    rules = load_rules(sources)
    # jails may name any shipped rule, loaded for this scan or not
    known = {rule.id for rule in rules} | ({r.id for r in load_rules()} if sources else set())
    jails = load_jails(args.jails, known)
    tz = None
    if args.timezone:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            tz = ZoneInfo(args.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            problem = Problem("--timezone", 0, "", f"unknown zone {args.timezone!r}")
            raise InputError([problem]) from exc
    try:
        PostgresPrefix(args.pg_prefix)
    except ValueError as exc:
        raise InputError([Problem("--pg-prefix", 0, "", str(exc))]) from exc
    for proxy in args.trusted_proxy:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError as exc:
            problem = Problem("--trusted-proxy", 0, "", f"{proxy!r} is not an address or CIDR")
            raise InputError([problem]) from exc
    if args.access_log_format:
        try:
            AccessLogParser(access_log_format(args.access_log_format))
        except ValueError as exc:  # no %h or %a: no client to name
            raise InputError([Problem("--access-log-format", 0, "", str(exc))]) from exc
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
        verbose=args.verbose,
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

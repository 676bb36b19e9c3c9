"""The Detector: log lines in, Events out.

A line goes through, in order: decoding (invalid UTF-8 or NUL bytes: skipped, counted), the
rules' literal prefilters (most lines stop here), the kind's structural header parser, then
at most one compiled alternation per candidate rule. The first rule that matches decides.

Where the address comes from, and why it can be trusted:

* ``address: pattern`` rules capture it with an anchored ``ip`` group. The rule's lazy twin
  (every free-text ``.*`` made lazy) is matched too; if the two readings find the address
  at different places the line is *ambiguous* (a user name that spells
  ``from 6.6.6.6 port 22``, repeated elsewhere in the line) and gives no event.
* ``address: context`` rules use the format's own client field (Apache's ``[client ...]``,
  PostgreSQL's ``%h``) or, failing that, the address an earlier line of the same process
  named (``track`` rules such as PostgreSQL's ``connection received: host=...``).
* ``apache_access`` lines are parsed once by :class:`agent.http.AccessLogParser` (address
  from ``%h``/``%a`` only) and checked against every ``http:`` rule.
"""

from __future__ import annotations

import time as _time
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import tzinfo

from agent.events import Event, evidence_of, normalise_ip
from agent.http import COMBINED, AccessLogParser, HttpRequest
from agent.kinds import KINDS, Kind, access_log_format
from agent.logformats import (
    DEBIAN_PG_PREFIX,
    ApacheErrorParser,
    Header,
    PostgresPrefix,
    SyslogParser,
)
from agent.rules import Rule

#: Longer lines are cut to this many characters before they are inspected.
MAX_LINE = 16384
#: How long, and for how many processes, an address seen in a process is remembered.
PROCESS_MEMORY_SECONDS = 3600.0
PROCESS_MEMORY_SIZE = 8192


@dataclass
class Counters:
    """What the detector did with the lines it was fed (for scan reports and metrics)."""

    lines: int = 0
    matched: int = 0  # lines that gave at least one event
    events: int = 0
    garbage: int = 0  # invalid UTF-8 or NUL bytes: skipped
    truncated: int = 0  # inspected lines cut to MAX_LINE characters
    unparsed: int = 0  # candidate lines whose header is not of the kind
    ambiguous: int = 0  # matched, but two readings disagree on the address
    no_address: int = 0  # matched, but no trustworthy address (host name, no %h...)
    by_rule: Counter[str] = field(default_factory=Counter)

    @property
    def skipped(self) -> int:
        """Lines read but not inspected or not trusted."""
        return self.garbage + self.unparsed + self.ambiguous + self.no_address


class _ProcessMemory:
    """Bounded map (source, pid) -> last address that process talked to."""

    def __init__(self, size: int = PROCESS_MEMORY_SIZE, ttl: float = PROCESS_MEMORY_SECONDS):
        self._size = size
        self._ttl = ttl
        self._entries: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()

    def remember(self, source: str, pid: str, ip: str, when: float) -> None:
        key = (source, pid)
        self._entries[key] = (ip, when)
        self._entries.move_to_end(key)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def recall(self, source: str, pid: str, when: float) -> str | None:
        entry = self._entries.get((source, pid))
        if entry is None or abs(when - entry[1]) > self._ttl:
            return None
        return entry[0]


class _PatternKind:
    """Rules of one syslog-like kind, indexed by their prefilter literals.

    Each literal carries a bit mask of the rules that list it; a line's mask (the OR over
    the literals it contains) selects its candidate rules, cached per mask.
    """

    def __init__(self, kind: Kind, rules: list[Rule], parse: Callable[[str], Header | None]):
        self.kind = kind
        self.rules = rules
        self.parse = parse
        owners: dict[str, int] = {}
        for index, rule in enumerate(rules):
            for literal in rule.prefilter:
                owners[literal] = owners.get(literal, 0) | 1 << index
        self.literals = list(owners.items())
        self.byte_literals = [(literal.encode(), mask) for literal, mask in owners.items()]
        self._by_mask: dict[int, list[Rule]] = {}

    def mask(self, text: str) -> int:
        found = 0
        for literal, mask in self.literals:
            if literal in text:
                found |= mask
        return found

    def rules_for(self, mask: int) -> list[Rule]:
        """Candidate rules of a mask, in file order."""
        try:
            return self._by_mask[mask]
        except KeyError:
            rules = [rule for index, rule in enumerate(self.rules) if mask >> index & 1]
            self._by_mask[mask] = rules
            return rules

    def candidate_lines(self, block: bytes) -> list[tuple[int, int]]:
        """(start offset, mask) of the lines of ``block`` holding any literal, in order;
        the literals are searched in the whole block at C speed."""
        starts: dict[int, int] = {}
        find, rfind = block.find, block.rfind
        for literal, mask in self.byte_literals:
            position = find(literal)
            while position != -1:
                start = rfind(b"\n", 0, position) + 1
                starts[start] = starts.get(start, 0) | mask
                end = find(b"\n", position)
                position = find(literal, end + 1) if end != -1 else -1
        return sorted(starts.items())


class _HttpKind:
    """``http:`` rules over requests parsed once with the site's LogFormat."""

    def __init__(self, rules: list[Rule], log_format: str, trusted_proxies: Sequence[str]):
        from agent.injection import inspect

        self.rules = rules
        self.parser = AccessLogParser(access_log_format(log_format), trusted_proxies)
        self.inspect = inspect
        self.families = tuple(
            sorted({family for rule in rules if rule.http for family in rule.http.families})
        )

    def matching(self, request: HttpRequest) -> list[Rule]:
        found: set[str] | None = None
        matched = []
        for rule in self.rules:
            http = rule.http
            assert http is not None
            if http.methods and request.method not in http.methods:
                continue
            if http.status and request.status not in http.status:
                continue
            if http.path and not http.path.match(request.target):
                continue
            if http.location and not (request.location and http.location.search(request.location)):
                continue
            if http.families:
                if found is None:
                    found = {f.family for f in self.inspect(request, self.families)}
                if found.isdisjoint(http.families):
                    continue
            matched.append(rule)
        return matched


class Detector:
    """Turns log lines into Events with the given rules (see the module docstring).

    ``level``: ``normal`` skips rules marked ``aggressive``. ``access_log_format`` and
    ``trusted_proxies`` configure the Apache access-log parser, ``postgres_prefix`` is the
    server's ``log_line_prefix``. ``tz`` is the zone of zone-less timestamps (None: local);
    ``clock`` gives the time of lines that carry none and the reference for syslog years.
    """

    def __init__(
        self,
        rules: Sequence[Rule],
        *,
        level: str = "normal",
        access_log_format: str = COMBINED,
        trusted_proxies: Sequence[str] = (),
        postgres_prefix: str = DEBIAN_PG_PREFIX,
        tz: tzinfo | None = None,
        clock: Callable[[], float] = _time.time,
    ):
        if level not in ("normal", "aggressive"):
            raise ValueError(f"level must be normal or aggressive, not {level!r}")
        self.level = level
        self.counters = Counters()
        self._clock = clock
        self._memory = _ProcessMemory()
        active = [r for r in rules if level == "aggressive" or r.level == "normal"]
        by_kind: dict[str, list[Rule]] = {}
        for rule in active:
            by_kind.setdefault(rule.kind, []).append(rule)
        self.rules = active
        self._patterns: dict[str, _PatternKind] = {}
        self._http: _HttpKind | None = None
        syslog = SyslogParser(clock, tz)
        parsers: dict[str, Callable[[str], Header | None]] = {
            "sshd": syslog.parse,
            "apache_error": ApacheErrorParser(clock, tz).parse,
            "postgresql": PostgresPrefix(postgres_prefix, tz).parse,
        }
        for name, kind_rules in by_kind.items():
            if KINDS[name].http:
                self._http = _HttpKind(kind_rules, access_log_format, trusted_proxies)
            else:
                self._patterns[name] = _PatternKind(KINDS[name], kind_rules, parsers[name])

    def header(self, text: str, kind: str) -> Header | None:
        """How a line of a pattern kind splits into header and message (diagnostics, tests)."""
        return self._patterns[kind].parse(text)

    # -- feeding

    def feed(
        self,
        data: str | bytes,
        kind: str,
        source: str,
        line_no: int | None,
        time: float | None = None,
    ) -> list[Event]:
        """Events for one line (without its newline). ``source`` ``journal:<unit>`` means
        ``data`` is the journal MESSAGE (no header to parse; the unit is trusted)."""
        self.counters.lines += 1
        if isinstance(data, bytes):
            if b"\0" in data:
                self.counters.garbage += 1
                return []
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                self.counters.garbage += 1
                return []
        else:
            if "\0" in data:
                self.counters.garbage += 1
                return []
            text = data
        return self._inspect(text, kind, source, line_no, time)

    def feed_block(
        self, block: bytes, kind: str, source: str, first_line: int = 1
    ) -> tuple[list[Event], int]:
        """Events for a block of whole lines (offline scans); returns (events, lines read).

        Equivalent to feeding each line, but when the block is clean UTF-8 without NUL
        bytes, lines without any prefilter literal are never split out or decoded: the
        literals are searched in the whole block at C speed.
        """
        if block.endswith(b"\n"):
            block = block[:-1]
        if not block:
            return [], 0
        matcher = self._patterns.get(kind)
        if matcher is None or not _clean(block) or source.startswith("journal:"):
            events: list[Event] = []
            lines = block.split(b"\n")
            for offset, raw in enumerate(lines):
                events.extend(self.feed(raw, kind, source, first_line + offset))
            return events, len(lines)
        count = block.count(b"\n") + 1
        self.counters.lines += count
        events = []
        line_no, previous = first_line, 0
        for start, mask in matcher.candidate_lines(block):
            line_no += block.count(b"\n", previous, start)
            previous = start
            end = block.find(b"\n", start)
            raw = block[start:] if end == -1 else block[start:end]
            # a literal past the first MAX_LINE characters does not count: recompute then
            hits = mask if len(raw) <= MAX_LINE else None
            events.extend(self._inspect(raw.decode("utf-8"), kind, source, line_no, None, hits))
        return events, count

    # -- one decoded line

    def _inspect(
        self,
        text: str,
        kind: str,
        source: str,
        line_no: int | None,
        time: float | None,
        mask: int | None = None,
    ) -> list[Event]:
        if text.endswith("\r"):
            text = text[:-1]
        if kind == "apache_access":
            return self._inspect_http(text, source, line_no, time)
        matcher = self._patterns.get(kind)
        if matcher is None:
            if kind not in KINDS:
                raise ValueError(f"unknown log kind {kind!r}")
            return []
        if len(text) > MAX_LINE:
            text = text[:MAX_LINE]
            mask = matcher.mask(text)
            if not mask:
                return []
            self.counters.truncated += 1
        elif mask is None:
            mask = matcher.mask(text)
            if not mask:
                return []
        candidates = matcher.rules_for(mask)
        journal = source.startswith("journal:")
        header = Header(time, None, None, text) if journal else matcher.parse(text)
        if header is None:
            self.counters.unparsed += 1
            return []
        if not journal and matcher.kind.programs and header.program not in matcher.kind.programs:
            return []
        if header.ambiguous:
            self.counters.ambiguous += 1
            return []
        message = header.message
        for rule in candidates:
            assert rule.regex is not None
            match = rule.regex.match(message)
            if match is None:
                continue
            return self._decide(rule, match, header, text, source, line_no, time)
        return []

    def _decide(
        self,
        rule: Rule,
        match,
        header: Header,
        text: str,
        source: str,
        line_no: int | None,
        time: float | None,
    ) -> list[Event]:
        when = header.time if header.time is not None else time
        if when is None:
            when = self._clock()
        _, offset, ip_text, user = rule.captured(match)
        if rule.address == "pattern":
            ip = self._pattern_address(rule, offset, ip_text, header)
            if ip is None:
                return []
        else:
            ip = header.address
            if ip is None and header.pid is not None:
                ip = self._memory.recall(source, header.pid, when)
            if ip is None:
                self.counters.no_address += 1
                return []
        if header.pid is not None:
            self._memory.remember(source, header.pid, ip, when)
        if rule.track:
            return []
        event = Event(when, rule.id, rule.kind, ip, user, source, line_no, evidence_of(text))
        return self._emit(rule, [event] * header.repeat)

    def _pattern_address(
        self, rule: Rule, offset: int, text: str | None, header: Header
    ) -> str | None:
        ip = normalise_ip(text) if text else None
        if ip is None:
            self.counters.no_address += 1
            return None
        if rule.lazy_twin is not None:
            # the shortest reading of the free text must find the address at the same place
            # as the longest one: then exactly one reading of the line exists
            twin = rule.lazy_twin.match(header.message)
            if twin is None or rule.captured(twin)[1] != offset:
                self.counters.ambiguous += 1
                return None
        if header.address is not None and header.address != ip:
            self.counters.ambiguous += 1
            return None
        return ip

    def _inspect_http(
        self, text: str, source: str, line_no: int | None, time: float | None
    ) -> list[Event]:
        if self._http is None:
            return []
        if len(text) > MAX_LINE:
            self.counters.truncated += 1
            text = text[:MAX_LINE]
        request = self._http.parser.parse(text)
        if request is None:
            self.counters.unparsed += 1
            return []
        matched = self._http.matching(request)
        if not matched:
            return []
        when = request.time if request.time is not None else time
        if when is None:
            when = self._clock()
        evidence = evidence_of(text)
        events = [
            Event(when, rule.id, rule.kind, request.client_ip, None, source, line_no, evidence)
            for rule in matched
        ]
        self.counters.matched += 1
        self.counters.events += len(events)
        for rule in matched:
            self.counters.by_rule[rule.id] += 1
        return events

    def _emit(self, rule: Rule, events: list[Event]) -> list[Event]:
        self.counters.matched += 1
        self.counters.events += len(events)
        self.counters.by_rule[rule.id] += len(events)
        return events


def _clean(block: bytes) -> bool:
    """True when every line of the block is valid UTF-8 without NUL bytes."""
    if b"\0" in block:
        return False
    if block.isascii():
        return True
    try:
        block.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True

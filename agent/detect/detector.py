"""The Detector: log lines in, Events out.

A line goes through, in order: decoding (invalid UTF-8 or NUL bytes: skipped, counted), the
rules' literal prefilters (most lines stop here), the kind's structural header parser, then
at most one compiled alternation per candidate rule. The first rule that matches decides.
(sshd lines in the common syslog header take one regex call for the header and all their
candidate rules, which reads them exactly as those steps do; see ``_PatternKind.fast_for``.)

Where the address comes from, and why it can be trusted:

* ``address: pattern`` rules capture it with an anchored ``ip`` group. The rule's lazy twin
  (every free-text ``.*`` made lazy) is matched too; if the two readings find the address
  at different places the line is *ambiguous* (a user name that spells
  ``from 6.6.6.6 port 22``, repeated elsewhere in the line) and gives no event. The twin is
  skipped only when the pattern's syntax proves a single reading (the literal before the
  address occurs once: :func:`agent.detect.rules.ip_anchor`).
* ``address: context`` rules use the format's own client field (Apache's ``[client ...]``,
  PostgreSQL's ``%h``) or, failing that, the address an earlier line of the same process
  named (``track`` rules such as PostgreSQL's ``connection received: host=...``).
* ``apache_access`` lines are parsed once by :class:`agent.detect.http.AccessLogParser` (address
  from ``%h``/``%a`` only) and checked against every ``http:`` rule.
* ``postgresql`` lines are also tied to their connection by
  :class:`agent.detect.postgres.PostgresTie`: a client's user or database name can start a
  line of its own there, so a line counts only if the server could have written it for
  the connection of its process.

What a line gives is first a :data:`Hit`, a plain tuple; :meth:`Detector.feed` dresses hits
as Events, while offline scans count hits directly (an Event costs ten times a tuple). A
hit's confidence is its rule's, or for an ``http`` rule with families its surest finding's
(:mod:`agent.detect.families`).
"""

from __future__ import annotations

import re
import time as _time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from agent.detect.events import CONFIDENCES, Event, evidence_of, normalise_ip
from agent.detect.http import COMBINED, AccessLogParser, HttpRequest
from agent.detect.kinds import KINDS, Kind, access_log_format
from agent.detect.literals import Candidate, literal_index
from agent.detect.logformats import (
    COMMON_SYSLOG_HEADER,
    DEBIAN_PG_PREFIX,
    ApacheErrorParser,
    Header,
    PostgresPrefix,
    SyslogParser,
)
from agent.detect.memory import ProcessMemory
from agent.detect.own_probes import OwnProbes
from agent.detect.postgres import JSONLOG, POSTGRES_FORMATS, STDERR, PostgresJson, PostgresTie
from agent.detect.rules import Alternative, Rule, embeddable

if TYPE_CHECKING:  # imported when an access log is read: it loads libinjection
    from agent.detect.injection import Finding

#: Longer lines are cut to this many characters before they are inspected.
MAX_LINE = 16384
#: The times an event can have (0001-01-01 to 9999-12-31 UTC, what a date can show): a
#: line stamped outside them (year 1 at +14:00, a PostgreSQL %n of 1e20) is unparsed.
EARLIEST, LATEST = -62135596800.0, 253402300799.0

#: One line's verdict: (time, rule id, address, confidence, family, user, line number, line
#: text); the jails need only the first four.
Hit = tuple[float, str, str, str, "str | None", "str | None", "int | None", str]
#: Confidences from the surest (agent.detect.events.CONFIDENCES).
_RANK = {confidence: rank for rank, confidence in enumerate(CONFIDENCES)}


def event_of(hit: Hit, kind: str, source: str) -> Event:
    """The Event of a hit of ``kind`` read from ``source``."""
    when, rule, ip, confidence, family, user, line, text = hit
    return Event(when, rule, kind, ip, user, source, line, evidence_of(text), confidence, family)


@dataclass
class Counters:
    """What the detector did with the lines it was fed (for scan reports and metrics)."""

    lines: int = 0
    matched: int = 0  # lines that gave at least one event
    events: int = 0
    garbage: int = 0  # invalid UTF-8 or NUL bytes: skipped
    truncated: int = 0  # inspected lines cut to MAX_LINE characters
    unparsed: int = 0  # candidate lines whose header is not of the kind, or time no date holds
    ambiguous: int = 0  # matched, but two readings disagree on the address
    no_address: int = 0  # matched, but no trustworthy address (host name, no %h...)
    untied: int = 0  # PostgreSQL: matched, but not tied to its connection (agent.detect.postgres)
    own_probes: int = 0  # matched, but our own audit probe from this host: not counted
    by_rule: Counter[str] = field(default_factory=Counter)

    @property
    def skipped(self) -> int:
        """Lines read but not inspected or not trusted."""
        return self.garbage + self.unparsed + self.ambiguous + self.no_address + self.untied


#: A rule and one of its patterns, by the group number of that pattern in a regex.
Plan = dict[int, tuple[Rule, Alternative]]
_INDEX = attrgetter("index")


class _PatternKind:
    """Rules of one syslog-like kind, indexed by their prefilter literals.

    Each literal carries a bit mask of the rules that list it; a line's mask (the OR over
    the literals it contains) selects its candidate rules, cached per mask.

    With a ``header`` (the common syslog header, whose stamp ``stamp_time`` reads), each
    mask also gets one regex: the header followed by every candidate pattern in order, so
    a line in that header reads in one call (see :meth:`fast_for`).
    """

    def __init__(
        self,
        kind: Kind,
        rules: list[Rule],
        parse: Callable[[str], Header | None],
        header: str | None = None,
        stamp_time: Callable[[str], float | None] | None = None,
    ):
        self.kind = kind
        self.programs = kind.programs
        self.rules = rules
        self.parse = parse
        self.header = header
        self.stamp_time = stamp_time
        owners: dict[str, int] = {}
        for index, rule in enumerate(rules):
            for literal in rule.prefilter:
                owners[literal] = owners.get(literal, 0) | 1 << index
        self.literals = literal_index(tuple(owners.items()))
        self.mask = self.literals.mask
        self.by_mask: dict[int, list[Rule]] = {}
        self.fast_by_mask: dict[int, tuple[re.Pattern[str], Plan] | None] = {}
        #: PostgreSQL: ties lines to their connections (agent.detect.postgres)
        self.tie: PostgresTie | None = None

    def rules_for(self, mask: int) -> list[Rule]:
        """Candidate rules of a mask, in file order."""
        try:
            return self.by_mask[mask]
        except KeyError:
            rules = [rule for index, rule in enumerate(self.rules) if mask >> index & 1]
            self.by_mask[mask] = rules
            return rules

    def fast_for(self, mask: int) -> tuple[re.Pattern[str], Plan] | None:
        """The header and the candidate patterns of a mask as one regex, and what each
        pattern's group stands for; None without a header or when a pattern cannot be
        embedded (see :func:`agent.detect.rules.embeddable`).

        Equivalent to parse() then each rule in turn: the header is parse()'s own, the
        alternation tries the rules and their patterns in order, and the first match wins.
        """
        try:
            return self.fast_by_mask[mask]
        except KeyError:
            pass
        fast = self._combine(self.rules_for(mask)) if self.header is not None else None
        self.fast_by_mask[mask] = fast
        return fast

    def _combine(self, rules: list[Rule]) -> tuple[re.Pattern[str], Plan] | None:
        parts: list[str] = []
        owners: list[tuple[Rule, Alternative]] = []
        for rule in rules:
            assert rule.alternatives is not None
            for alternative in sorted(rule.alternatives.values(), key=_INDEX):
                source = embeddable(rule.patterns[alternative.index], len(parts))
                if source is None:
                    return None
                parts.append(f"(?P<_{len(parts)}>{source})")
                owners.append((rule, alternative))
        try:
            regex = re.compile(f"{self.header}(?:{'|'.join(parts)})", re.DOTALL)
        except re.error:  # never seen; the long way is always right
            return None
        groups = regex.groupindex
        plan = {
            groups[f"_{n}"]: (
                rule,
                alternative._replace(ip=groups.get(f"ip__{n}"), user=groups.get(f"user__{n}")),
            )
            for n, (rule, alternative) in enumerate(owners)
        }
        return regex, plan

    def candidate_lines(self, block: bytes) -> list[Candidate]:
        """(start, end, mask) of the lines of ``block`` holding any literal, in order."""
        return self.literals.lines(block)


class _HttpKind:
    """``http:`` rules over requests parsed once with the site's LogFormat."""

    def __init__(self, rules: list[Rule], log_format: str, trusted_proxies: Sequence[str]):
        from agent.detect.injection import inspect

        self.rules = rules
        self.parser = AccessLogParser(access_log_format(log_format), trusted_proxies)
        self.inspect = inspect
        self.families = tuple(
            sorted({family for rule in rules if rule.http for family in rule.http.families})
        )

    def matching(self, request: HttpRequest) -> list[tuple[Rule, str | None, str]]:
        """(rule, family, confidence) of every rule the request matches: the family and
        confidence of a rule's surest finding, or its own without families."""
        found: dict[str, Finding] | None = None
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
            if not http.families:
                matched.append((rule, None, rule.confidence))
                continue
            if found is None:
                found = _surest(self.inspect(request, self.families))
            findings = [found[family] for family in http.families if family in found]
            if findings:
                surest = min(findings, key=lambda finding: _RANK[finding.confidence])
                matched.append((rule, surest.family, surest.confidence))
        return matched


class Detector:
    """Turns log lines into Events with the given rules (see the module docstring).

    ``level``: ``normal`` skips rules marked ``aggressive``. ``access_log_format`` and
    ``trusted_proxies`` configure the Apache access-log parser, ``postgres_prefix`` is the
    server's ``log_line_prefix`` for its ``stderr`` log (``postgres_format``; or
    ``jsonlog``). ``tz`` is the zone of zone-less timestamps (None: local);
    ``clock`` gives the time of lines that carry none and the reference for syslog years.
    ``memory`` is what the lines read before said about their processes (default: nothing
    yet; see :mod:`agent.detect.memory`). ``own_probes`` tells the lines of our own audit
    probes, which give no event (counted in ``counters.own_probes``).
    """

    def __init__(
        self,
        rules: Sequence[Rule],
        *,
        level: str = "normal",
        access_log_format: str = COMBINED,
        trusted_proxies: Sequence[str] = (),
        postgres_prefix: str = DEBIAN_PG_PREFIX,
        postgres_format: str = STDERR,
        tz: tzinfo | None = None,
        clock: Callable[[], float] = _time.time,
        memory: ProcessMemory | None = None,
        own_probes: OwnProbes | None = None,
    ):
        if level not in ("normal", "aggressive"):
            raise ValueError(f"level must be normal or aggressive, not {level!r}")
        if postgres_format not in POSTGRES_FORMATS:
            raise ValueError(f"postgres_format must be one of {POSTGRES_FORMATS}")
        self.level = level
        self.counters = Counters()
        self._clock = clock
        self.memory = memory if memory is not None else ProcessMemory()
        self._own = own_probes if own_probes is not None else OwnProbes()
        active = [r for r in rules if level == "aggressive" or r.level == "normal"]
        by_kind: dict[str, list[Rule]] = {}
        for rule in active:
            by_kind.setdefault(rule.kind, []).append(rule)
        self.rules = active
        self._patterns: dict[str, _PatternKind] = {}
        self._http: _HttpKind | None = None
        syslog = SyslogParser(clock, tz)
        postgres = (
            PostgresJson(tz) if postgres_format == JSONLOG else PostgresPrefix(postgres_prefix, tz)
        )
        parsers: dict[str, Callable[[str], Header | None]] = {
            "sshd": syslog.parse,
            "apache_error": ApacheErrorParser(clock, tz).parse,
            "postgresql": postgres.parse,
        }
        for name, kind_rules in by_kind.items():
            if KINDS[name].http:
                self._http = _HttpKind(kind_rules, access_log_format, trusted_proxies)
            elif name == "sshd":
                self._patterns[name] = _PatternKind(
                    KINDS[name], kind_rules, syslog.parse, COMMON_SYSLOG_HEADER, syslog.bsd_time
                )
            else:
                self._patterns[name] = _PatternKind(KINDS[name], kind_rules, parsers[name])
        if "postgresql" in self._patterns:
            self._patterns["postgresql"].tie = PostgresTie(postgres, self.memory)

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
        return [event_of(hit, kind, source) for hit in self.hits(data, kind, source, line_no, time)]

    def feed_block(
        self, block: bytes, kind: str, source: str, first_line: int = 1
    ) -> tuple[list[Event], int]:
        """Events for a block of whole lines (offline scans); returns (events, lines read)."""
        hits, count = self.hits_block(block, kind, source, first_line)
        return [event_of(hit, kind, source) for hit in hits], count

    def hits(
        self,
        data: str | bytes,
        kind: str,
        source: str,
        line_no: int | None,
        time: float | None = None,
    ) -> list[Hit]:
        """:meth:`feed`, giving hits rather than Events."""
        self.counters.lines += 1
        matcher = self._patterns.get(kind)
        suspect = False
        if matcher is not None and matcher.tie is not None:
            text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
            size = len(data) if isinstance(data, bytes) or data.isascii() else len(data.encode())
            suspect = matcher.tie.observe(source, text.removesuffix("\r"), size)
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
        if matcher is not None and matcher.tie is not None:
            return self._inspect_postgres(matcher, text, source, line_no, time, 0, suspect)
        return self._inspect(text, kind, source, line_no, time)

    def hits_block(
        self, block: bytes, kind: str, source: str, first_line: int = 1, numbered: bool = True
    ) -> tuple[list[Hit], int]:
        """:meth:`feed_block`, giving hits rather than Events. ``numbered`` False leaves
        their line numbers None (counting lines up to each hit costs more than a third of a
        block's scan; a report of counts needs none).

        Equivalent to feeding each line, but when the block is clean UTF-8 without NUL
        bytes, lines without any prefilter literal are never split out or decoded: the
        literals are searched in the whole block at C speed (see :mod:`agent.detect.literals`).
        """
        if not block:
            return [], 0
        matcher = self._patterns.get(kind)
        if matcher is None or not _clean(block) or source.startswith("journal:"):
            hits: list[Hit] = []
            lines = block.split(b"\n")
            if block.endswith(b"\n"):
                lines.pop()
            for offset, raw in enumerate(lines):
                hits += self.hits(raw, kind, source, first_line + offset if numbered else None)
            return hits, len(lines)
        if matcher.tie is not None:
            hits = self._postgres_block(matcher, block, source, first_line, numbered)
        else:
            hits = []
            fast, inspect, newlines = self._fast_line, self._inspect_pattern, block.count
            line_no, previous = first_line, 0
            for start, end, mask in matcher.candidate_lines(block):
                if numbered:
                    line_no += newlines(b"\n", previous, start)
                    previous = start
                text = block[start:end].decode()
                # a literal past the first MAX_LINE characters does not count: recompute then
                if (
                    end - start > MAX_LINE
                    or text[-1:] == "\r"
                    or not fast(
                        matcher, text, mask, source, line_no if numbered else None, None, hits
                    )
                ):
                    hits += inspect(
                        matcher,
                        text,
                        source,
                        line_no if numbered else None,
                        None,
                        mask if end - start <= MAX_LINE else 0,
                    )
        # the block's last line ends at its end, with or without a newline
        count = len(block) - len(block.replace(b"\n", b"")) + (not block.endswith(b"\n"))
        self.counters.lines += count
        return hits, count

    def _postgres_block(
        self, matcher: _PatternKind, block: bytes, source: str, first_line: int, numbered: bool
    ) -> list[Hit]:
        """The candidate lines of a clean block of a PostgreSQL log; the tie looks at the
        lines around one only once it matched a rule (see agent.detect.postgres)."""
        tie = matcher.tie
        assert tie is not None
        tie.block_start(source, block)
        hits: list[Hit] = []
        newlines = block.count
        line_no, previous = first_line, 0
        for start, end, mask in matcher.candidate_lines(block):
            if numbered:
                line_no += newlines(b"\n", previous, start)
                previous = start
            found = self._inspect_postgres(
                matcher,
                block[start:end].decode(),
                source,
                line_no if numbered else None,
                None,
                mask if end - start <= MAX_LINE else 0,
                (block, start, end),
            )
            if found:
                hits += found
        tie.block_done(source, block)
        return hits

    def lead_in(self, kind: str, source: str, before: bytes) -> None:
        """Start ``source`` as if ``before`` (whole lines, not scanned) had just been read:
        a range of a bigger file whose first lines may continue the lines before it."""
        matcher = self._patterns.get(kind)
        if matcher is not None and matcher.tie is not None:
            matcher.tie.lead_in(source, before)

    def settle(self, kind: str, source: str, following: bytes) -> None:
        """Show the line that follows what ``source`` was fed, without scanning it, and
        judge what was held back until a line needed it (agent.detect.postgres): another
        detector is about to take this one's memory over."""
        matcher = self._patterns.get(kind)
        if matcher is not None and matcher.tie is not None:
            matcher.tie.settle(source, following.decode("utf-8", "replace"))

    # -- one decoded line

    def _inspect(
        self, text: str, kind: str, source: str, line_no: int | None, time: float | None
    ) -> list[Hit]:
        if kind == "apache_access":
            return self._inspect_http(text, source, line_no, time)
        matcher = self._patterns.get(kind)
        if matcher is None:
            if kind not in KINDS:
                raise ValueError(f"unknown log kind {kind!r}")
            return []
        return self._inspect_pattern(matcher, text, source, line_no, time, 0)

    def _prepared(self, matcher: _PatternKind, text: str, mask: int) -> tuple[str, int]:
        """A candidate line as the rules see it: without its CR, cut to MAX_LINE (counted
        when a rule may still match the cut line), and its literal mask, 0 when no rule can
        match. ``mask`` 0 means not computed yet; a cut line is masked again."""
        if text.endswith("\r"):
            text = text[:-1]
        if len(text) > MAX_LINE:
            text = text[:MAX_LINE]
            mask = matcher.mask(text)
            if mask:
                self.counters.truncated += 1
        elif not mask:
            mask = matcher.mask(text)
        return text, mask

    def _inspect_postgres(
        self,
        matcher: _PatternKind,
        text: str,
        source: str,
        line_no: int | None,
        time: float | None,
        mask: int,
        where: tuple[bytes, int, int] | bool,
    ) -> list[Hit]:
        """A PostgreSQL line. ``where``: its block and line (a scan: the lines around it
        are looked at only if it matches), or whether it could start inside a user or
        database name (fed line by line, every line was looked at)."""
        text, mask = self._prepared(matcher, text, mask)
        if not mask:
            return []
        header = matcher.parse(text)
        if header is None:
            self.counters.unparsed += 1
            return []
        tie = matcher.tie
        assert tie is not None
        if header.ambiguous:
            self.counters.ambiguous += 1
            return []
        for rule in matcher.by_mask.get(mask) or matcher.rules_for(mask):
            match = rule.regex.match(header.message)  # type: ignore[union-attr]
            if match is not None:
                alternative = rule.alternatives[match.lastindex]  # type: ignore[index]
                return self._decide_postgres(
                    tie, rule, alternative, match, header, time, text, source, line_no, where
                )
        return []

    def _decide_postgres(
        self,
        tie: PostgresTie,
        rule: Rule,
        alternative: Alternative,
        match: re.Match[str],
        header: Header,
        time: float | None,
        text: str,
        source: str,
        line_no: int | None,
        where: tuple[bytes, int, int] | bool,
    ) -> list[Hit]:
        """The hit of a matched PostgreSQL line, once tied to its connection."""
        counters = self.counters
        when = header.time if header.time is not None else time
        if when is None:
            when = self._clock()
        elif not EARLIEST <= when <= LATEST:
            counters.unparsed += 1
            return []
        _, ip_group, user_group, _ = alternative
        stated = None
        if ip_group is not None:  # address: pattern
            found = match.group(ip_group)
            stated = normalise_ip(found) if found else None
            if stated is None:
                counters.no_address += 1
                return []
            if rule.twin_source is not None and not self._one_reading(rule, alternative, match, 0):
                counters.ambiguous += 1
                return []
        if not header.session and tie.clientless_lie(source, header):
            counters.untied += 1
            return []
        if rule.track:  # a connection record, judged when a line of its process needs it
            ip, problem = tie.connection(header, stated)
            if ip is None:
                setattr(counters, problem, getattr(counters, problem) + 1)
            else:
                tie.hold(source, header.pid, ip, when, where)  # type: ignore[arg-type]
            return []
        suspect = where if isinstance(where, bool) else tie.block_suspect(source, *where[:2])
        if suspect:
            counters.untied += 1
            return []
        user = match.group(user_group) if user_group is not None else None
        ip, problem = tie.address(source, header, stated, user, when)
        if ip is None:
            setattr(counters, problem, getattr(counters, problem) + 1)
            return []
        if self._own.is_own(rule.id, ip, user):
            counters.own_probes += 1
            return []
        counters.matched += 1
        counters.events += 1
        counters.by_rule[rule.id] += 1
        return [(when, rule.id, ip, rule.confidence, None, user, line_no, text)]

    def _inspect_pattern(
        self,
        matcher: _PatternKind,
        text: str,
        source: str,
        line_no: int | None,
        time: float | None,
        mask: int,
    ) -> list[Hit]:
        """A line of a pattern kind; ``mask`` 0 means not computed yet."""
        text, mask = self._prepared(matcher, text, mask)
        if not mask:
            return []
        hits: list[Hit] = []
        if source.startswith("journal:"):
            header: Header | None = Header(time, None, None, text)
        else:
            if self._fast_line(matcher, text, mask, source, line_no, time, hits):
                return hits
            header = matcher.parse(text)
            if header is None:
                self.counters.unparsed += 1
                return hits
            if matcher.programs and header.program not in matcher.programs:
                return hits
        if header.ambiguous:
            self.counters.ambiguous += 1
            return hits
        message = header.message
        candidates = matcher.by_mask.get(mask) or matcher.rules_for(mask)
        for rule in candidates:
            match = rule.regex.match(message)  # type: ignore[union-attr]
            if match is not None:
                when, _, pid, _, address, repeat = header[:6]
                self._decide(
                    rule,
                    rule.alternatives[match.lastindex],  # type: ignore[index]
                    match,
                    0,
                    time if when is None else when,
                    pid,
                    address,
                    repeat,
                    text,
                    source,
                    line_no,
                    hits,
                )
                break
        return hits

    def _fast_line(
        self,
        matcher: _PatternKind,
        text: str,
        mask: int,
        source: str,
        line_no: int | None,
        time: float | None,
        hits: list[Hit],
    ) -> bool:
        """A prepared line with a non-zero ``mask`` read by its mask's one regex (the
        header and the candidate patterns, see :meth:`_PatternKind.fast_for`), its hit
        added to ``hits``; False when that regex does not read it (another header, no
        rule), and the long way must. (This and :meth:`_decide` run once per candidate
        line of an attack: written for speed, as straight code.)"""
        fast = matcher.fast_by_mask.get(mask, _UNBUILT)
        if fast is _UNBUILT:
            fast = matcher.fast_for(mask)
        if fast is None:
            return False
        found = fast[0].match(text)
        if found is None:
            return False
        stamp, program, pid = found.group(1, 2, 3)
        if matcher.programs and program not in matcher.programs:
            return True
        rule, alternative = fast[1][found.lastindex]  # type: ignore[index]
        when = matcher.stamp_time(stamp)  # type: ignore[misc]
        base = found.end(3) + 3  # past "]: "
        self._decide(
            rule,
            alternative,
            found,
            base,
            time if when is None else when,
            pid,
            None,
            1,
            text,
            source,
            line_no,
            hits,
        )
        return True

    def _decide(
        self,
        rule: Rule,
        alternative: Alternative,
        match: re.Match[str],
        base: int,
        when: float | None,
        pid: str | None,
        address: str | None,
        repeat: int,
        text: str,
        source: str,
        line_no: int | None,
        hits: list[Hit],
    ) -> None:
        """The hit of a matched line, once its address is trusted, added to ``hits``.
        ``match`` ran on the message, or on the whole line with the message from offset
        ``base``."""
        counters = self.counters
        if when is None:
            when = self._clock()
        elif not EARLIEST <= when <= LATEST:
            counters.unparsed += 1
            return
        _, ip_group, user_group, _ = alternative
        if ip_group is not None:  # address: pattern
            found = match.group(ip_group)
            ip = normalise_ip(found) if found else None
            if ip is None:
                counters.no_address += 1
                return
            if rule.twin_source is not None and not self._one_reading(
                rule, alternative, match, base
            ):
                counters.ambiguous += 1
                return
            if address is not None and address != ip:
                counters.ambiguous += 1
                return
        else:
            ip = address
            if ip is None and pid is not None:
                ip = self.memory.recall(source, pid, when)
            if ip is None:
                counters.no_address += 1
                return
        if pid is not None:
            self.memory.remember(source, pid, ip, when)
        if rule.track:
            return
        user = match.group(user_group) if user_group is not None else None
        rule_id = rule.id
        if self._own.is_own(rule_id, ip, user):
            counters.own_probes += 1
            return
        counters.matched += 1
        counters.events += repeat
        counters.by_rule[rule_id] += repeat
        hit = (when, rule_id, ip, rule.confidence, None, user, line_no, text)
        if repeat == 1:
            hits.append(hit)
        else:
            hits += [hit] * repeat

    @staticmethod
    def _one_reading(rule: Rule, alternative: Alternative, match: re.Match[str], base: int) -> bool:
        """For a rule with a twin: whether the shortest reading of the free text finds the
        address at the same place as the longest one: then exactly one reading of the line
        exists. An anchor found once proves it without the twin (see rules.Alternative)."""
        _, ip_group, _, anchor = alternative
        subject = match.string
        first = subject.find(anchor, base) if anchor is not None else -1
        if first != -1 and first == subject.rfind(anchor, base):  # type: ignore[arg-type]
            return True
        message = subject[base:] if base else subject
        twin = rule.lazy_twin.match(message)  # type: ignore[union-attr]
        return twin is not None and rule.captured(twin)[1] == match.start(ip_group) - base

    def _inspect_http(
        self, text: str, source: str, line_no: int | None, time: float | None
    ) -> list[Hit]:
        if self._http is None:
            return []
        if text.endswith("\r"):
            text = text[:-1]
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
        counters = self.counters
        ip = request.client_ip
        if ip is None:  # behind a trusted proxy that did not name the client
            counters.no_address += 1
            return []
        when = request.time if request.time is not None else time
        if when is None:
            when = self._clock()
        elif not EARLIEST <= when <= LATEST:
            counters.unparsed += 1
            return []
        if any(self._own.is_own(rule.id, ip, None) for rule, _, _ in matched):
            counters.own_probes += 1
            return []
        counters.matched += 1
        counters.events += len(matched)
        for rule, _, _ in matched:
            counters.by_rule[rule.id] += 1
        return [
            (when, rule.id, ip, confidence, family, None, line_no, text)
            for rule, family, confidence in matched
        ]


_UNBUILT: Any = object()  # not in fast_by_mask yet: fast_for() builds it


def _surest(findings: Sequence[Finding]) -> dict[str, Finding]:
    """The surest finding of each family (a family can be found in several fields)."""
    surest: dict[str, Finding] = {}
    for finding in findings:
        known = surest.get(finding.family)
        if known is None or _RANK[finding.confidence] < _RANK[known.confidence]:
            surest[finding.family] = finding
    return surest


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

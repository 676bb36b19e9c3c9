"""Log line headers and timestamps, parsed structurally so rules only ever see the message.

Detection rules are anchored at the start of the *message*; everything before it (time,
host, program, pid, the client field of Apache's error log, PostgreSQL's log_line_prefix)
is taken apart here by position. That is what keeps attacker text out of the fields the
detector trusts: a user name can contain ``from 6.6.6.6``, but it can never become the
program name or the ``[client ...]`` field.

Times: syslog and Apache error logs carry local wall-clock time without a zone, so callers
pass the zone (``tz=None`` means this host's local zone, as the daemon that wrote the log).
Syslog lines carry no year: it is inferred from a reference clock (the newest year that does
not put the line in the future).
"""

from __future__ import annotations

import re
import time as _time
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import NamedTuple

from agent.detect.events import normalise_ip

MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
#: A syslog line may be this far ahead of the reference clock (skew) before it is read as
#: belonging to the previous year.
FUTURE_SLACK = 2 * 86400.0
#: rsyslog's "message repeated N times" is expanded into at most this many events.
MAX_REPEAT = 100
_CACHE_MAX = 4096


# --------------------------------------------------------------------------- timestamps


def wall_clock_epoch(
    year: int, month: int, day: int, hour: int, minute: int, second: float, tz: tzinfo | None
) -> float:
    """Epoch seconds of a wall-clock time in ``tz`` (None: this host's local zone, DST-aware)."""
    whole = int(second)
    fraction = second - whole
    stamp = datetime(year, month, day, hour, minute, whole)  # ValueError for Feb 30, 25:00...
    if tz is None:
        return _time.mktime((*stamp.timetuple()[:8], -1)) + fraction
    return stamp.replace(tzinfo=tz).timestamp() + fraction


def _zone_offset(zone: str) -> float | None:
    """Seconds east of UTC for ``Z``, ``UTC``, ``GMT``, ``+01``, ``-0330``, ``+05:30``;
    None for a named abbreviation (CET, EST...) that cannot be resolved without a zone."""
    if zone in ("Z", "UTC", "GMT", "z"):
        return 0.0
    match = re.fullmatch(r"([+-])(\d\d):?(\d\d)?", zone)
    if not match:
        return None
    offset = int(match.group(2)) * 3600 + int(match.group(3) or 0) * 60
    return float(-offset if match.group(1) == "-" else offset)


class SyslogClock:
    """Turns yearless syslog stamps (``Jan  5 10:00:00``) into epoch seconds.

    The year is the reference clock's, or the one before when that would put the line more
    than :data:`FUTURE_SLACK` ahead (a December line read in January). The start of each
    hour is computed once (zone offsets change on hour boundaries) and cached.
    """

    def __init__(self, clock: Callable[[], float] = _time.time, tz: tzinfo | None = None):
        self._clock = clock
        self._tz = tz
        self._hours: dict[str, float | None] = {}
        self._last: tuple[str, float | None] = ("", None)

    def parse(self, stamp: str) -> float | None:
        last = self._last
        if stamp == last[0]:
            return last[1]
        # "Jan  5 10:00:00" in an hour already seen: the usual case, computed right here
        start = self._hours.get(stamp[:9]) if len(stamp) == 15 and stamp[9] == ":" else None
        minute, second = stamp[10:12], stamp[13:]
        if start is not None and stamp[12] == ":" and minute.isdecimal() and second.isdecimal():
            value = start + int(minute) * 60 + int(second)
        else:
            value = self._parse(stamp)
        self._last = (stamp, value)
        return value

    def _parse(self, stamp: str) -> float | None:
        # "Jan  5 10:00:00[.123]": the hour key is everything before the minutes
        cut = stamp.rfind(":", 0, len(stamp) - 3)
        if cut < 0:
            return None
        hour_key = stamp[:cut]
        try:
            start = self._hours[hour_key]
        except KeyError:
            start = self._hour_start(hour_key)
            if len(self._hours) >= _CACHE_MAX:
                self._hours.clear()
            self._hours[hour_key] = start
        if start is None:
            return None
        try:
            minute, second = stamp[cut + 1 :].split(":")
            return start + int(minute) * 60 + float(second)
        except ValueError:
            return None

    def _hour_start(self, hour_key: str) -> float | None:
        parts = hour_key.split()
        if len(parts) != 3 or parts[0] not in MONTHS:
            return None
        try:
            fields = (MONTHS[parts[0]], int(parts[1]), int(parts[2]), 0, 0.0)
            reference = self._clock()
            year = datetime.fromtimestamp(reference, self._tz).year
            value = wall_clock_epoch(year, *fields, self._tz)
            if value > reference + FUTURE_SLACK:
                value = wall_clock_epoch(year - 1, *fields, self._tz)
        except (ValueError, OverflowError):
            return None
        return value


_ISO = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d(?:[.,]\d+)?)"
    r"\s*(Z|z|[+-]\d\d(?::?\d\d)?|[A-Za-z]{1,6})?"
)


def iso_time(stamp: str, tz: tzinfo | None = None) -> float | None:
    """RFC 3339 / ISO 8601 (``2024-01-05T10:00:00.123456+00:00``, ``2018-12-20
    10:09:05.180218+0000``) and PostgreSQL's ``2024-01-05 10:00:00.123 UTC``.

    A named zone other than UTC/GMT, or no zone at all, is read in ``tz``.
    """
    match = _ISO.fullmatch(stamp.strip())
    if not match:
        return None
    year, month, day, hour, minute = (int(match.group(i)) for i in range(1, 6))
    second = float(match.group(6).replace(",", "."))
    zone = match.group(7)
    offset = _zone_offset(zone) if zone else None
    try:
        if offset is None:
            return wall_clock_epoch(year, month, day, hour, minute, second, tz)
        return wall_clock_epoch(year, month, day, hour, minute, second, UTC) - offset
    except (ValueError, OverflowError):
        return None


def clf_time(stamp: str) -> float | None:
    """Apache access-log time ``05/Jan/2024:10:00:00 +0000`` (brackets optional)."""
    match = re.fullmatch(
        r"\[?(\d\d)/([A-Z][a-z]{2})/(\d{4}):(\d\d):(\d\d):(\d\d)(?:\.\d+)? ([+-]\d{4})\]?", stamp
    )
    if not match or match.group(2) not in MONTHS:
        return None
    day, year, hour, minute, second = (int(match.group(i)) for i in (1, 3, 4, 5, 6))
    try:
        epoch = wall_clock_epoch(year, MONTHS[match.group(2)], day, hour, minute, second, UTC)
    except ValueError:
        return None
    return epoch - (_zone_offset(match.group(7)) or 0.0)


def apache_error_time(stamp: str, tz: tzinfo | None = None) -> float | None:
    """Apache error-log time ``Fri Jan 05 10:00:00.123456 2024`` (local wall clock)."""
    parts = stamp.split()
    if len(parts) != 5 or parts[1] not in MONTHS:
        return None
    try:
        hour, minute, second = parts[3].split(":")
        return wall_clock_epoch(
            int(parts[4]),
            MONTHS[parts[1]],
            int(parts[2]),
            int(hour),
            int(minute),
            float(second),
            tz,
        )
    except (ValueError, OverflowError):
        return None


class _StampCache:
    """Consecutive log lines share their timestamp: parse each distinct stamp once."""

    def __init__(self, parse: Callable[[str], float | None]):
        self._parse = parse
        self._cache: dict[str, float | None] = {}

    def __call__(self, stamp: str) -> float | None:
        try:
            return self._cache[stamp]
        except KeyError:
            pass
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        value = self._cache[stamp] = self._parse(stamp)
        return value


class _SecondCache(_StampCache):
    """Stamps with fractions (``10:00:00.123 UTC``) are seldom the same twice, but their
    seconds are: parse each second once and add the fraction."""

    def __call__(self, stamp: str) -> float | None:
        dot = stamp.find(".", 19)
        if dot != 19:
            return super().__call__(stamp)
        end = stamp.find(" ", dot)
        fraction = stamp[dot:end] if end != -1 else stamp[dot:]
        whole = super().__call__(stamp[:dot] + (stamp[end:] if end != -1 else ""))
        if whole is None or not fraction[1:].isdigit():
            return None
        return whole + float(fraction)


def postgres_time(tz: tzinfo | None = None) -> Callable[[str], float | None]:
    """Epoch seconds of PostgreSQL stamps (``%m``, ``%t``, jsonlog's ``timestamp``), read in
    ``tz`` when they name no zone; each second is parsed once."""
    return _SecondCache(lambda stamp: iso_time(stamp, tz))


# --------------------------------------------------------------------------- syslog


class Header(NamedTuple):
    """The structural part of a line: who wrote it, when, and the message that follows.

    ``address`` is set only when the log format itself has a client field (Apache's
    ``[client ...]``, PostgreSQL's ``%h``/``%r``), never from message text.
    ``ambiguous`` marks a PostgreSQL prefix whose attacker-controlled fields (user, database)
    could be read two ways, so the message start is not trustworthy. ``user`` is the user
    name a PostgreSQL line names in its prefix or record; ``session`` is False for a
    PostgreSQL line that stops at ``%q`` (written by a process without a client).
    (A NamedTuple: one is built per candidate line.)
    """

    time: float | None
    program: str | None
    pid: str | None
    message: str
    address: str | None = None
    repeat: int = 1
    ambiguous: bool = False
    user: str | None = None
    session: bool = True


_new_header = tuple.__new__

_BSD_STAMP = r"[A-Z][a-z]{2} {1,2}\d{1,2} \d\d:\d\d:\d\d(?:\.\d+)?"
_ISO_STAMP = r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?"
# Host and facility tokens never contain '[', ']' or ':'; the program token is the first one
# that carries a pid, a trailing colon or brackets, which is how syslog marks the tag.
_SYSLOG = re.compile(
    rf"(?:<\d{{1,3}}>)?(?P<ts>{_BSD_STAMP}|{_ISO_STAMP}) +"
    r"(?:<\d+\.\d+> +)?"
    r"(?:[^\s\[\]:]+ +){0,2}?"
    r"(?:(?P<prog>[^\s\[\]:]+)\[(?P<pid>\d+)\]:?|(?P<prog2>[^\s\[\]:]+):|\[(?P<prog3>[^\s\[\]:]+)\]:?)"
    r"(?: +|$)(?P<msg>.*)",
    re.DOTALL,
)
# Debian's rsyslog default, by far the most common: "Jan  5 10:00:00 host prog[pid]: msg".
# Groups: 1 stamp, 2 program, 3 pid; the message follows. (The detector also compiles it
# in front of rule patterns: see COMMON_SYSLOG_HEADER.)
_COMMON_HEADER = r"([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) [^\s\[\]:]+ ([^\s\[\]:]+)\[(\d+)\]: "
_SYSLOG_COMMON = re.compile(_COMMON_HEADER + "(.*)", re.DOTALL)
#: The common header of a message that :meth:`SyslogParser.parse` passes through as is
#: (not an rsyslog repeat nor a Solaris message id): matched in front of a rule's patterns,
#: it reads a line in one regex call exactly as parse() and then the rule would.
COMMON_SYSLOG_HEADER = _COMMON_HEADER + r"(?!message repeated |\[ID )"
_RFC5424 = re.compile(
    r"<\d{1,3}>1 (?P<ts>\S+) (?P<host>\S+) (?P<prog>\S+) (?P<pid>\S+) (?P<msgid>\S+) ", re.DOTALL
)
_REPEATED = re.compile(r"message repeated (\d+) times: \[ ?(.*)\]", re.DOTALL)
_SOLARIS_ID = re.compile(r"\[ID \d+ [\w.]+\] ")


class SyslogParser:
    """BSD syslog (``Jan  5 10:00:00 host prog[pid]: msg``, with or without host, with a
    busybox facility, FreeBSD ``<pri.fac>``), RFC 3339 stamped lines (rsyslog, macOS) and
    RFC 5424 (``<38>1 2019-07-08T17:40:16-04:00 host prog pid msgid [sd] msg``)."""

    def __init__(self, clock: Callable[[], float] = _time.time, tz: tzinfo | None = None):
        self._bsd = SyslogClock(clock, tz)
        self._iso = _StampCache(lambda stamp: iso_time(stamp, tz))
        #: epoch seconds of a ``Jan  5 10:00:00`` stamp (the common header's group 1)
        self.bsd_time = self._bsd.parse

    def parse(self, line: str) -> Header | None:
        fast = _SYSLOG_COMMON.match(line)
        if fast is not None:
            stamp, program, pid, message = fast.groups()
            if message.startswith(("message repeated ", "[ID ")):
                return _header(self._bsd.parse(stamp), program, pid, message)
            # tuple.__new__ skips the generated __new__: this runs once per candidate line
            return _new_header(
                Header,
                (self._bsd.parse(stamp), program, pid, message, None, 1, False, None, True),
            )
        if line.startswith("<") and ">1 " in line[:6]:
            return self._rfc5424(line)
        match = _SYSLOG.match(line)
        if match is None:
            return None
        stamp = match.group("ts")
        when = self._iso(stamp) if stamp[0].isdigit() else self._bsd.parse(stamp)
        program = match.group("prog") or match.group("prog2") or match.group("prog3")
        return _header(when, program, match.group("pid"), match.group("msg"))

    def _rfc5424(self, line: str) -> Header | None:
        match = _RFC5424.match(line)
        if match is None:
            return None
        rest = _skip_structured_data(line, match.end())
        if rest is None:
            return None
        pid = match.group("pid")
        return _header(
            self._iso(match.group("ts")),
            match.group("prog"),
            pid if pid.isdigit() else None,
            line[rest:],
        )


def _header(when: float | None, program: str | None, pid: str | None, message: str) -> Header:
    """Finish a syslog header: unwrap rsyslog repeats and Solaris message ids."""
    repeat = 1
    if message.startswith("message repeated "):
        repeated = _REPEATED.fullmatch(message)
        if repeated:
            repeat = min(int(repeated.group(1)), MAX_REPEAT)
            message = repeated.group(2)
    if message.startswith("[ID "):
        solaris = _SOLARIS_ID.match(message)
        if solaris:
            message = message[solaris.end() :]
    return Header(when, program, pid, message, repeat=repeat)


def _skip_structured_data(line: str, position: int) -> int | None:
    """Index after RFC 5424 STRUCTURED-DATA (``-`` or ``[id k="v"]...``) and one space.

    Values are quoted and may contain ``]`` and escaped quotes; one linear scan.
    """
    if line.startswith("- ", position):
        return position + 2
    if line.endswith("-") and position == len(line) - 1:
        return len(line)
    index = position
    length = len(line)
    while index < length and line[index] == "[":
        index += 1
        quoted = False
        while index < length:
            char = line[index]
            if char == "\\" and quoted:
                index += 2
                continue
            if char == '"':
                quoted = not quoted
            elif char == "]" and not quoted:
                break
            index += 1
        else:
            return None
        index += 1
    if index == position:
        return None
    return index + 1 if line.startswith(" ", index) else index


# --------------------------------------------------------------------------- Apache error log

_APACHE_ERROR = re.compile(
    r"\[(?P<ts>[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d(?:\.\d+)? \d{4})\] (?P<rest>.*)",
    re.DOTALL,
)
# After the time: [module:level] or [level], [pid P:tid T], the APR status of the error if
# any, then Apache's own client field
# ([client a:p] for a request, [remote a:p] for a connection-level error). Modules such as
# ModSecurity add a second [client ...] of their own: skipped, the first one is Apache's.
_APACHE_FIELDS = re.compile(
    r"(?:\[(?P<ml>[\w.-]*(?::[\w.-]*)?)\] +)?"
    r"(?:\[pid [^\]]*\] +)?"
    r"(?:\(-?\d+\)[^\[\]]{0,200}?: )?"  # APR status, e.g. "(70014)End of file found: "
    r"(?:\[(?:client|remote) (?P<addr>\[[0-9A-Fa-f:.]+\](?::\d+)?|[0-9A-Fa-f:.]+)\] +)?"
    r"(?:\[client [^\]]*\] +)*"
    r"(?P<msg>.*)",
    re.DOTALL,
)
APACHE_PROGRAMS = re.compile(r"(?:httpd|apache2?)(?:/\S+)?")


class ApacheErrorParser:
    """Apache 2.2 and 2.4 error-log lines, written to a file or through ``ErrorLog syslog``."""

    def __init__(self, clock: Callable[[], float] = _time.time, tz: tzinfo | None = None):
        self._time = _StampCache(lambda stamp: apache_error_time(stamp, tz))
        self._syslog = SyslogParser(clock, tz)

    def parse(self, line: str) -> Header | None:
        if line.startswith("["):
            match = _APACHE_ERROR.match(line)
            if match is None:
                return None
            stamp = match.group("ts")
            # only Apache 2.4 writes microseconds (its default ErrorLogFormat's %{u}t)
            return self._fields(self._time(stamp), "httpd", match.group("rest"), "." in stamp)
        outer = self._syslog.parse(line)
        if outer is None or outer.program is None:
            return None
        if not APACHE_PROGRAMS.fullmatch(outer.program):
            return None
        return self._fields(outer.time, outer.program, outer.message, False)

    @staticmethod
    def _fields(when: float | None, program: str, rest: str, modern: bool) -> Header:
        match = _APACHE_FIELDS.match(rest)
        assert match is not None  # every part is optional
        modern = modern or ":" in (match.group("ml") or "") or "[pid " in rest[: match.start("msg")]
        address = _client_address(match.group("addr"), modern)
        return Header(when, program, None, match.group("msg"), address=address)


def _client_address(text: str | None, apache24: bool) -> str | None:
    """The host of Apache's client field: ``[v6]:port``, ``v4:port``, ``v6:port`` (Apache
    2.4's ``%a`` always ends in the port, an IPv6 address unbracketed) or a bare address
    (Apache 2.2).

    On a line that shows no sign of Apache 2.4 (module, pid, microseconds), ``2001:db8::5:4000``
    reads both as an address with port 4000 and as a bare address: it names no one. (A
    client's source port is usually five digits, which no IPv6 group has.)
    """
    if not text:
        return None
    if text.startswith("["):
        return normalise_ip(text[1 : text.index("]")])
    host, sep, port = text.rpartition(":")
    with_port = normalise_ip(host) if sep and port.isdigit() else None
    if apache24 and with_port:
        return with_port
    bare = normalise_ip(text)
    if bare and with_port:
        return None
    return bare or with_port


# --------------------------------------------------------------------------- PostgreSQL

#: Debian's default ``log_line_prefix``: no client host (see PostgresPrefix).
DEBIAN_PG_PREFIX = "%m [%p] %q%u@%d "
_PG_LEVELS = (
    r"(?:LOG|FATAL|ERROR|WARNING|NOTICE|INFO|DEBUG\d?|PANIC"
    r"|DETAIL|HINT|STATEMENT|CONTEXT|LOCATION|QUERY)"
)
_PG_ESCAPE = re.compile(r"%(-?\d+)?(.)")
_PG_TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
_PG_ZONE = r"[A-Za-z0-9+:-]+"
_PG_HOST = r"[0-9A-Fa-f:.]+|\[local\]|[\w.-]+"
#: escape -> (regex, is the text attacker-controlled)
_PG_FIELDS: dict[str, tuple[str, bool]] = {
    "a": (r"{free}", True),  # application_name: chosen by the client
    "u": (r"{free}", True),  # user name: chosen by the client
    "d": (r"{free}", True),  # database name: chosen by the client
    "r": (rf"(?P<host>{_PG_HOST})?(?:\(\d+\))?", False),
    "h": (rf"(?P<host>{_PG_HOST})?", False),
    "b": (r"[\w ]*?", False),
    "p": (r"(?P<pid>\d+)", False),
    "P": (r"\d*", False),
    "t": (rf"(?P<ts>{_PG_TIME} {_PG_ZONE})", False),
    "m": (rf"(?P<ts>{_PG_TIME}\.\d+ {_PG_ZONE})", False),
    "n": (r"(?P<epoch>\d+(?:\.\d+)?)", False),
    "i": (r"[\w ]*?", False),
    "e": (r"[0-9A-Z]{5}", False),
    "c": (r"[0-9a-f]+\.[0-9a-f]+", False),
    "l": (r"\d+", False),
    "s": (rf"{_PG_TIME} {_PG_ZONE}", False),
    "v": (r"[\d/]*", False),
    "x": (r"\d*", False),
    "Q": (r"-?\d*", False),
}
#: Escapes PostgreSQL prints raw, newlines included: the user and database names of the
#: startup packet (application_name is cleaned to printable ASCII).
PG_RAW_FIELDS = "ud"
#: Longest text of a host field (a host name, with log_hostname), and of any other escape:
#: a name is at most NAMEDATALEN - 1 = 63 bytes (PostgreSQL cuts longer names).
_PG_HOST_BYTES, _PG_FIELD_BYTES = 256, 64


class PostgresPrefix:
    """A ``log_line_prefix`` compiled into a parser for PostgreSQL's stderr log lines.

    The client address is taken from ``%h`` or ``%r`` when the prefix has one. The user,
    database and application name are chosen by the (unauthenticated) client, so a prefix
    that prints any of them *before* ``%h``/``%r``/``%p`` is refused: the client could forge
    what follows. Each line is read twice, with those fields as short and as long as
    possible; if the two readings disagree on where the message starts, the line is marked
    ambiguous and the detector will not trust it.

    User and database names may hold newlines, which PostgreSQL writes raw: the text after
    one starts a physical line. ``window`` is how many bytes after such a newline can still
    be client-chosen (the rest of the names and what lies between them; 0 when the prefix
    prints neither): :mod:`agent.detect.postgres` distrusts lines starting that close to a
    line broken inside a name.

    Debian's default prefix (:data:`DEBIAN_PG_PREFIX`) logs no host: the address then comes
    from ``log_connections = on`` lines of the same process (see the detector).
    """

    def __init__(self, prefix: str = DEBIAN_PG_PREFIX, tz: tzinfo | None = None):
        self.prefix = prefix
        self.has_host = False
        self.has_user = False
        self.window = 0
        lazy, greedy, head = self._compile(prefix)
        self._lazy = re.compile(lazy, re.DOTALL)
        self._greedy = re.compile(greedy, re.DOTALL)
        self._head = re.compile(head, re.DOTALL)
        self._time = postgres_time(tz)

    def _compile(self, prefix: str) -> tuple[str, str, str]:
        parts: list[str] = []
        sizes: list[tuple[int, bool]] = []  # (longest text, printed raw) of each part
        optional_from: int | None = None
        first_raw: int | None = None  # the part of the first escape printed raw
        order: list[str] = []  # escapes in the order printed
        position = 0
        for escape in _PG_ESCAPE.finditer(prefix):
            literal = prefix[position : escape.start()]
            parts.append(re.escape(literal))
            sizes.append((len(literal.encode()), False))
            position = escape.end()
            letter, width = escape.group(2), escape.group(1)
            if letter == "%":
                parts.append("%")
                sizes.append((1, False))
                continue
            if letter == "q":
                optional_from = len(parts)
                continue
            if letter not in _PG_FIELDS:
                raise ValueError(f"log_line_prefix escape %{letter} is not supported")
            regex = _PG_FIELDS[letter][0]
            if letter in "rh" and self.has_host:
                raise ValueError(f"log_line_prefix {prefix!r} names the client host twice")
            self.has_host = self.has_host or letter in "rh"
            if letter == "u" and not self.has_user:
                regex, self.has_user = "(?P<user>{free})", True
            order.append(letter)
            if letter in PG_RAW_FIELDS and first_raw is None:
                first_raw = len(parts)
            parts.append(f" *{regex} *" if width else regex)
            longest = _PG_HOST_BYTES if letter in "rh" else _PG_FIELD_BYTES
            sizes.append((max(longest, abs(int(width or 0))), letter in PG_RAW_FIELDS))
        parts.append(re.escape(prefix[position:]))
        _check_order(prefix, order, "rh" if self.has_host else "p")
        raw = [index for index, (_, is_raw) in enumerate(sizes) if is_raw]
        if raw:
            self.window = sum(size for size, _ in sizes[raw[0] : raw[-1] + 1])
        head = "".join(parts[: first_raw if first_raw is not None else len(parts)])
        if optional_from is not None:
            parts[optional_from:] = ["(?P<session>" + "".join(parts[optional_from:]) + ")?"]
        body = "".join(parts)
        tail = rf"(?P<msg>{_PG_LEVELS}:  .*)"
        # names are at most NAMEDATALEN-1 (63) bytes: bounded, so both readings stay linear
        return (
            body.replace("{free}", ".{0,64}?") + tail,
            body.replace("{free}", ".{0,64}") + tail,
            head.replace("{free}", ".{0,64}?"),
        )

    def shape(self, line: str) -> tuple[str | None, bool, bool] | None:
        """(pid, session, names a host) of a line that reads as a whole record, else None:
        :meth:`parse` without the second reading, the time and the address."""
        match = self._lazy.match(line)
        if match is None:
            return None
        groups = match.groupdict()
        return groups.get("pid"), groups.get("session", "") is not None, bool(groups.get("host"))

    def head_pid(self, line: str) -> str | None:
        """The process of a line that starts as this prefix does up to its first user or
        database name (a record whose name holds a newline starts so), else None."""
        match = self._head.match(line)
        return match.groupdict().get("pid") if match else None

    def parse(self, line: str) -> Header | None:
        match = self._lazy.match(line)
        if match is None:
            return None
        greedy = self._greedy.match(line)
        ambiguous = greedy is None or greedy.start("msg") != match.start("msg")
        groups = match.groupdict()
        when = None
        if groups.get("ts"):
            when = self._time(groups["ts"])
        elif groups.get("epoch"):
            when = float(groups["epoch"])
        host = groups.get("host")
        address = normalise_ip(host) if host else None
        return Header(
            when,
            "postgres",
            groups.get("pid"),
            match.group("msg"),
            address,
            ambiguous=ambiguous,
            user=groups.get("user"),
            session="session" not in groups or groups["session"] is not None,
        )


def _check_order(prefix: str, order: list[str], trusted: str) -> None:
    """Refuse a prefix that prints client-chosen text before the field we key on (the host,
    or without one the pid used to find the host): the client could forge that field."""
    tainted = [letter for letter in order if _PG_FIELDS[letter][1]]
    keys = [letter for letter in order if letter in trusted]
    if tainted and keys and order.index(tainted[0]) < order.index(keys[0]):
        raise ValueError(
            f"log_line_prefix {prefix!r} prints %{tainted[0]} (chosen by the client) before "
            f"%{keys[0]}: the client could forge it; put %{keys[0]} first"
        )

"""PostgreSQL server logs: which lines the server really wrote, and for which connection.

PostgreSQL prints the user and database names of the startup packet raw in
``log_line_prefix`` (``%u``, ``%d``), newlines included, and does not indent the physical
line that follows (message text is indented with a tab after each newline; names in the
prefix are not). A client that connects as the user ``x"\\n<time> [999] 6.6.6.6 z`` makes
the server write a second physical line that reads as a whole record of process 999 from
6.6.6.6. No single line can tell such a forgery from the real thing, so lines are tied to
the connection the server logged for their process (see :class:`PostgresTie`):

1. **Continuation.** A physical line starting less than ``window`` bytes after a *broken*
   line (one that neither starts with a tab nor reads as a whole record, or a record of a
   process with a client that stops at ``%q``) could be the rest of a name: it counts for
   nothing. ``window`` is what the names can still hold after a newline (63 bytes each).
2. **Connection records.** With ``log_connections = on``, each backend first writes
   ``connection received: host=H port=P``, before the client has sent any name. That
   record is believed only when the next physical line is not broken (forging one takes a
   newline inside the database name, whose rest then starts a broken line). Once a log has
   such records, a line counts only for a process that has one, and names H: a line whose
   ``%h`` or message address says otherwise, or whose process has none, counts for nothing.
3. **One user.** A message naming a user must name the one its prefix (``%u``) names.

In ``jsonlog`` (:class:`PostgresJson`) every string is escaped and a record is one line:
nobody but the server can start a line, and the rules above hold trivially.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import tzinfo
from typing import Protocol

from agent.detect.events import normalise_ip
from agent.detect.logformats import Header, PostgresPrefix, iso_time

#: Keys every PostgreSQL 15 jsonlog record carries. Requiring them all makes a record too
#: long to be forged through 2 x 63 bytes of names, should a stderr log be read as jsonlog.
JSON_KEYS = ("timestamp", "pid", "session_id", "line_num", "error_severity", "message")
JSONLOG, STDERR = "jsonlog", "stderr"
POSTGRES_FORMATS = (STDERR, JSONLOG)

#: What a line that gave no event lacked (see :meth:`PostgresTie.address`).
UNTIED, NO_ADDRESS = "untied", "no_address"


class PostgresJson:
    """PostgreSQL's ``jsonlog`` (``log_destination = 'jsonlog'``, PostgreSQL 15+): the
    message as ``SEVERITY:  text`` for the rules, the client from ``remote_host``."""

    window = 0  # names are escaped: no physical line starts inside one
    has_user = True

    def __init__(self, tz: tzinfo | None = None):
        self._tz = tz

    @staticmethod
    def head_pid(line: str) -> str | None:
        return None  # a record is never broken

    def parse(self, line: str) -> Header | None:
        try:
            record = json.loads(line)
        except ValueError:
            return None
        if not isinstance(record, dict) or any(key not in record for key in JSON_KEYS):
            return None
        stamp, pid, severity, message = (
            record["timestamp"],
            record["pid"],
            record["error_severity"],
            record["message"],
        )
        if not (isinstance(stamp, str) and isinstance(severity, str) and isinstance(message, str)):
            return None
        host, user = record.get("remote_host"), record.get("user")
        return Header(
            iso_time(stamp, self._tz),
            "postgres",
            str(pid),
            f"{severity}:  {message}",
            normalise_ip(host) if isinstance(host, str) else None,
            user=user if isinstance(user, str) else None,
        )


def sniff_postgres_format(lines: Iterable[bytes | str]) -> str:
    """``jsonlog`` when most of the first non-empty lines are jsonlog records, else ``stderr``."""
    votes = [_looks_json(line) for line in lines if line.strip()][:64]
    return JSONLOG if votes and sum(votes) * 2 > len(votes) else STDERR


def _looks_json(line: bytes | str) -> bool:
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    return text.startswith('{"timestamp":"')


class Memory(Protocol):
    """What the tie needs of the detector's process memory (``_ProcessMemory``)."""

    sources: set[str]  # sources that have had an address remembered

    def remember(self, source: str, pid: str, ip: str, when: float) -> None: ...

    def recall(self, source: str, pid: str, when: float) -> str | None: ...


@dataclass
class _Stream:
    """Reading state of one source. Offsets count bytes from the first line read."""

    offset: int = 0  # where the next line or block starts
    broken_end: int = -(1 << 62)  # just past the newline of the last broken line
    pending: tuple[str, str, float] | None = None  # (pid, address, time) awaiting the next line


class PostgresTie:
    """The rules of the module docstring, for one log format, over any number of sources.

    Lines reach it two ways: :meth:`observe` sees every line fed one at a time; an offline
    scan of a block looks only at lines holding a rule's literal, and :meth:`block_suspect`
    classifies just the few lines before such a line that could matter.
    """

    def __init__(
        self, parser: PostgresPrefix | PostgresJson, memory: Memory, clock: Callable[[], float]
    ):
        self.parse = parser.parse
        self.head_pid = parser.head_pid
        self.window = parser.window
        self.has_user = parser.has_user
        self._memory = memory
        self._clock = clock
        self._streams: dict[str, _Stream] = {}

    def stream(self, source: str) -> _Stream:
        try:
            return self._streams[source]
        except KeyError:
            stream = self._streams[source] = _Stream()
            return stream

    # -- which lines could start inside a name

    def broken(self, source: str, line: str) -> bool:
        """True when ``line`` neither continues a message (tab) nor reads as a whole record,
        or reads as a record without client of a process that has one: the line before it
        then ended inside a name."""
        if line.startswith("\t"):
            return False
        header = self.parse(line)
        return header is None or self.clientless_lie(source, header)

    def clientless_lie(self, source: str, header: Header) -> bool:
        """A record that stops at ``%q`` (as lines of processes without a client do) but
        names a client address, or comes from a process with a connection record: the
        client wrote it, in a name."""
        if header.session:
            return False
        if header.address is not None:
            return True
        when = header.time if header.time is not None else self._clock()
        return header.pid is not None and self._memory.recall(source, header.pid, when) is not None

    def observe(self, source: str, line: str, size: int) -> bool:
        """Account for the next line of ``source`` (``size`` bytes without its newline);
        True when it could start inside a name (rule 1)."""
        stream = self.stream(source)
        start = stream.offset
        stream.offset = start + size + 1
        if not self.window:
            return False
        broken = self.broken(source, line)
        if stream.pending is not None:
            self._settle(source, stream, line, broken)
        if broken:
            stream.broken_end = stream.offset
        return start - stream.broken_end < self.window

    def block_suspect(self, source: str, block: bytes, start: int, seen: dict[int, bool]) -> bool:
        """Whether the line at ``start`` of ``block`` (the stream's next block) could start
        inside a name: a broken line ends less than ``window`` bytes before it. ``seen``
        caches the classification of line starts within this block."""
        if not self.window:
            return False
        if self._broken_before(source, block, start, seen):
            return True
        stream = self.stream(source)
        return stream.offset + start - stream.broken_end < self.window

    def block_done(self, source: str, block: bytes, seen: dict[int, bool]) -> None:
        """Carry to the next block the last broken line within ``window`` bytes of the end
        (a connection record awaiting its next line stays pending)."""
        stream = self.stream(source)
        size = len(block) + (not block.endswith(b"\n"))  # as if the last line had its newline
        if self.window:
            self._broken_before(source, block, size, seen)
        stream.offset += size

    def lead_in(self, source: str, before: bytes) -> None:
        """Start ``source`` after ``before`` (whole lines), without scanning them: as
        :meth:`block_done` would have left it (a range of a bigger file)."""
        stream = self.stream(source)
        stream.offset -= len(before)
        self.block_done(source, before, {})

    def _broken_before(self, source: str, block: bytes, start: int, seen: dict[int, bool]) -> bool:
        """Look back from offset ``start`` of ``block`` over the lines ending less than
        ``window`` bytes before it; note the last broken one, True if there is one."""
        stream = self.stream(source)
        end = start  # just past the newline of the line looked at
        while end > 0 and start - end < self.window:
            line_start = block.rfind(b"\n", 0, end - 1) + 1
            broken = seen.get(line_start)
            if broken is None:
                text = block[line_start : end - 1].decode("utf-8", "replace")
                broken = seen[line_start] = self.broken(source, text)
            if broken:
                stream.broken_end = max(stream.broken_end, stream.offset + end)
                return True
            end = line_start
        return False

    def settle_with(self, source: str, line: str) -> None:
        """Settle a held-back connection record with the line that follows it."""
        stream = self.stream(source)
        if stream.pending is not None:
            self._settle(source, stream, line, self.broken(source, line))

    def pending(self, source: str) -> bool:
        return self.stream(source).pending is not None

    def _settle(self, source: str, stream: _Stream, line: str, broken: bool) -> None:
        """Believe the held-back connection record unless ``line`` (the next) is broken
        and is not the start of a record of the same process (whose client chose a name
        with a newline): a forged record ends inside a database name, whose rest then
        starts the next line, too short to hold a prefix."""
        pid, address, when = stream.pending  # type: ignore[misc]
        stream.pending = None
        if not broken or self.head_pid(line) == pid:
            self._memory.remember(source, pid, address, when)

    # -- whom a matched line names

    def address(
        self,
        source: str,
        header: Header,
        stated: str | None,
        user: str | None,
        track: bool,
        when: float,
    ) -> tuple[str | None, str]:
        """The address a matched line names, or None and why not (``untied`` or
        ``no_address``). ``stated`` is the address its message names (``address: pattern``
        rules), ``user`` the user it names; ``track`` rules (connection records) are held
        back until the next line shows they were not forged (rule 2)."""
        claims = {ip for ip in (header.address, stated) if ip is not None}
        if len(claims) > 1:
            return None, UNTIED
        if self.has_user and user is not None and header.user is not None and header.user != user:
            return None, UNTIED  # rule 3
        claim = claims.pop() if claims else None
        pid = header.pid
        if track:
            if claim is None or pid is None:
                return None, NO_ADDRESS
            if self.window:
                self.stream(source).pending = (pid, claim, when)
            else:
                self._memory.remember(source, pid, claim, when)
            return claim, ""
        known = self._memory.recall(source, pid, when) if pid is not None else None
        if known is not None:
            return (known, "") if claim in (None, known) else (None, UNTIED)
        if source in self._memory.sources:
            return None, UNTIED  # the log records connections, but none for this process
        return (claim, "") if claim is not None else (None, NO_ADDRESS)

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
   record is believed only when it is no continuation and the next physical line is not
   broken (forging one takes a newline inside the database name, whose rest then starts a
   broken line); it is judged when a line of its process first needs it. Once a log has a
   believed record, a line counts only for a process that has one, and names H: a line
   whose ``%h`` or message address says otherwise, or whose process has none, counts for
   nothing.
3. **One user.** A message naming a user must name the one its prefix (``%u``) names.

In ``jsonlog`` (:class:`PostgresJson`) every string is escaped and a record is one line:
nobody but the server can start a line, and the rules above hold trivially. What the
rules leave possible in the stderr format, setting by setting, is in
``policies/detect/README.md``.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Protocol

from agent.detect.events import normalise_ip
from agent.detect.logformats import Header, PostgresPrefix, postgres_time

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
        self._time = postgres_time(tz)

    def shape(self, line: str) -> tuple[str | None, bool, bool] | None:
        header = self.parse(line)
        return None if header is None else (header.pid, True, header.address is not None)

    @staticmethod
    def head_pid(line: str) -> str | None:
        return None  # a record is never broken

    def parse(self, line: str) -> Header | None:
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):  # not JSON, or nested deeper than any record
            return None
        if not isinstance(record, dict) or any(key not in record for key in JSON_KEYS):
            return None
        stamp, pid, severity, message = (
            record["timestamp"],
            record["pid"],
            record["error_severity"],
            record["message"],
        )
        if not (
            isinstance(stamp, str)
            and isinstance(pid, int)
            and isinstance(severity, str)
            and isinstance(message, str)
        ):
            return None
        host, user = record.get("remote_host"), record.get("user")
        return Header(
            self._time(stamp),
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
    """What the tie needs of the detector's process memory (agent.detect.memory)."""

    def remember(self, source: str, pid: str, ip: str, when: float) -> None: ...

    def recall(self, source: str, pid: str, when: float | None) -> str | None: ...

    def has_addresses(self, source: str) -> bool: ...  # one not DISBELIEVED was remembered


#: What the memory holds for a process whose connection record was not believed.
DISBELIEVED = ""
#: Connection records held back at most, per source (as many as the memory keeps).
HELD_MAX = 8192


@dataclass(slots=True)
class _Held:
    """A ``connection received`` record not judged yet, and the lines around it that judge
    it. Most connections never fail, so most records are never judged: that keeps scans
    fast (keeping these few hundred bytes, not the block they were read in)."""

    address: str
    when: float
    near_break: bool  # a broken line ends less than ``window`` bytes before, out of ``before``
    before: bytes  # the lines ending less than ``window`` bytes before it
    after: bytes | str | None  # the next line, None until it is read


@dataclass
class _Stream:
    """Reading state of one source. Offsets count bytes from the first line read."""

    offset: int = 0  # where the next line or block starts
    broken_end: int = -(1 << 62)  # just past the newline of the last broken line found
    held: OrderedDict[str, _Held] = field(default_factory=OrderedDict)  # by pid, oldest first
    last: _Held | None = None  # a held record whose next line has not been read yet


class PostgresTie:
    """The rules of the module docstring, for one log format, over any number of sources.

    Lines reach it two ways: :meth:`observe` sees every line fed one at a time; an offline
    scan of a block looks only at lines holding a rule's literal, and at the few lines
    around such a line that could matter, only once it matched a rule.
    """

    def __init__(self, parser: PostgresPrefix | PostgresJson, memory: Memory):
        self.parse = parser.parse
        self.shape = parser.shape
        self.head_pid = parser.head_pid
        self.window = parser.window
        self.has_user = parser.has_user
        self._memory = memory
        self._streams: dict[str, _Stream] = {}
        #: lines already known to be whole records of a client (a line can be looked at
        #: from the lines before and after it)
        self._whole: set[str] = set()

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
        if line.startswith("\t") or line in self._whole:
            return False
        shape = self.shape(line)
        if shape is None:
            return True
        pid, session, has_host = shape
        if session:
            if len(self._whole) >= 256:
                self._whole.clear()
            self._whole.add(line)
            return False
        return has_host or self._has_connection(source, pid)

    def clientless_lie(self, source: str, header: Header) -> bool:
        """A record that stops at ``%q`` (as lines of processes without a client do) but
        names a client address, or comes from a process with a connection record: the
        client wrote it, in a name."""
        if header.session:
            return False
        return header.address is not None or self._has_connection(source, header.pid)

    def _has_connection(self, source: str, pid: str | None) -> bool:
        return pid is not None and self.known(source, pid, None) is not None

    def observe(self, source: str, line: str, size: int) -> bool:
        """Account for the next line of ``source`` (``size`` bytes without its newline);
        True when it could start inside a name (rule 1)."""
        stream = self.stream(source)
        start = stream.offset
        stream.offset = start + size + 1
        if not self.window:
            return False
        if stream.last is not None:
            stream.last.after, stream.last = line, None
        if self.broken(source, line):
            stream.broken_end = stream.offset
        return start - stream.broken_end < self.window

    def near_break(self, source: str, start: int) -> bool:
        """Whether a broken line of an earlier block ends less than ``window`` bytes before
        offset ``start`` of the current one."""
        stream = self.stream(source)
        return stream.offset + start - stream.broken_end < self.window

    def block_suspect(self, source: str, block: bytes, start: int) -> bool:
        """Whether the line at ``start`` of ``block`` (the stream's current block) could
        start inside a name: a broken line ends less than ``window`` bytes before it."""
        if not self.window:
            return False
        return self.near_break(source, start) or self._broken_before(source, block, start)

    def block_start(self, source: str, block: bytes) -> None:
        """A new block of ``source``: its first line follows the last one held back."""
        stream = self.stream(source)
        if stream.last is not None:
            stream.last.after, stream.last = _line_at(block, 0), None

    def block_done(self, source: str, block: bytes) -> None:
        """Carry to the next block the last broken line within ``window`` bytes of the end."""
        stream = self.stream(source)
        size = len(block) + (not block.endswith(b"\n"))  # as if the last line had its newline
        if self.window:
            end = self._broken_before(source, block, size)
            if end:
                stream.broken_end = max(stream.broken_end, stream.offset + end)
        stream.offset += size

    def lead_in(self, source: str, before: bytes) -> None:
        """Start ``source`` after ``before`` (whole lines), without scanning them: as
        :meth:`block_done` would have left it (a range of a bigger file)."""
        stream = self.stream(source)
        stream.offset -= len(before)
        self.block_done(source, before)

    def _broken_before(self, source: str, block: bytes, start: int) -> int:
        """The end (just past its newline) of the last broken line of ``block`` ending less
        than ``window`` bytes before offset ``start``; 0 when there is none."""
        end = start  # just past the newline of the line looked at
        while end > 0 and start - end < self.window:
            line_start = block.rfind(b"\n", 0, end - 1) + 1
            if self.broken(source, block[line_start : end - 1].decode("utf-8", "replace")):
                return end
            end = line_start
        return 0

    # -- connection records

    def hold(
        self, source: str, pid: str, address: str, when: float, where: tuple[bytes, int, int] | bool
    ) -> None:
        """Keep a ``connection received`` record (rule 2) until a line of its process needs
        it, with the lines around it. ``where``: its block and line (a scan), or whether it
        could start inside a name (fed line by line: the next line comes to :meth:`observe`)."""
        stream = self.stream(source)
        window = self.window
        if not window:  # no line starts inside a name: nothing to judge
            self._memory.remember(source, pid, address, when)
            return
        if isinstance(where, bool):
            held = _Held(address, when, where, b"", None)
        else:
            block, start, end = where
            near_break = stream.offset + start - stream.broken_end < window
            before = block[block.rfind(b"\n", 0, max(0, start - window)) + 1 : start]
            after = block[end + 1 : _line_end(block, end + 1)] if end + 1 < len(block) else None
            held = _Held(address, when, near_break, before, after)
        records = stream.held
        records.pop(pid, None)
        records[pid] = held
        if len(records) > HELD_MAX:
            records.popitem(last=False)
        if held.after is None:
            stream.last = held

    def known(self, source: str, pid: str, when: float | None) -> str | None:
        """The address of the connection of process ``pid`` (``DISBELIEVED``: it has one,
        not believed), judging its record now if it was held back."""
        stream = self.stream(source)
        held = stream.held.pop(pid, None)
        if held is not None:
            self._judge(source, pid, held)
        return self._memory.recall(source, pid, when)

    def _records_connections(self, source: str) -> bool:
        """Whether ``source`` has a believed connection record (log_connections is on),
        judging held ones until one is believed. Forged records, never believed, cannot
        switch this on to make ordinary lines of a log without them count for nothing."""
        stream = self.stream(source)
        while not self._memory.has_addresses(source):
            ready = next(
                (pid for pid, held in stream.held.items() if held is not stream.last), None
            )
            if ready is None:
                return False
            self._judge(source, ready, stream.held.pop(ready))
        return True

    def settle(self, source: str, following: str) -> None:
        """Judge every held record of ``source``, ``following`` being the line after the
        last one read (a detector whose memory another one takes over)."""
        stream = self.stream(source)
        if stream.last is not None:
            stream.last.after, stream.last = following, None
        while stream.held:
            pid, held = stream.held.popitem(last=False)
            self._judge(source, pid, held)

    def _judge(self, source: str, pid: str, held: _Held) -> None:
        """Believe a held record unless a broken line ends right before it, or its next
        line is broken and not the start of a record of the same process (whose client
        chose a name with a newline): a forged record ends inside a database name, whose
        rest then starts the next line, at most 10 bytes, too short to hold a prefix that
        starts with a time stamp."""
        after = held.after
        if isinstance(after, bytes):
            after = after.decode("utf-8", "replace")
        believed = (
            after is not None
            and not held.near_break
            and not self._broken_before(source, held.before, len(held.before))
            and (not self.broken(source, after) or self.head_pid(after) == pid)
        )
        address = held.address if believed else DISBELIEVED
        self._memory.remember(source, pid, address, held.when)

    # -- whom a matched line names

    def address(
        self, source: str, header: Header, stated: str | None, user: str | None, when: float
    ) -> tuple[str | None, str]:
        """The address a matched line names, or None and why not (``untied`` or
        ``no_address``). ``stated`` is the address its message names (``address: pattern``
        rules), ``user`` the user it names."""
        claims = {ip for ip in (header.address, stated) if ip is not None}
        if len(claims) > 1:
            return None, UNTIED
        if self.has_user and user is not None and header.user is not None and header.user != user:
            return None, UNTIED  # rule 3
        claim = claims.pop() if claims else None
        pid = header.pid
        known = self.known(source, pid, when) if pid is not None else None
        if known is not None:
            return (known, "") if known and claim in (None, known) else (None, UNTIED)
        if self._records_connections(source):
            return None, UNTIED  # the log records connections, but none for this process
        return (claim, "") if claim is not None else (None, NO_ADDRESS)

    def connection(self, header: Header, stated: str | None) -> tuple[str | None, str]:
        """The address a ``connection received`` record names: its ``host=``, which its
        prefix's ``%h`` must not contradict."""
        if stated is None or header.pid is None:
            return None, NO_ADDRESS
        if header.address not in (None, stated):
            return None, UNTIED
        return stated, ""


def _line_end(block: bytes, start: int) -> int:
    end = block.find(b"\n", start)
    return end if end != -1 else len(block)


def _line_at(block: bytes, start: int) -> str:
    """The line of ``block`` starting at ``start``, decoded leniently (for a look only)."""
    return block[start : _line_end(block, start)].decode("utf-8", "replace")

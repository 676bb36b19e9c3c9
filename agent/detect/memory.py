"""What the lines read so far said about each process: the address it talked to.

sshd names the client of a process once (``Connection from``) and PostgreSQL once
(``connection received``); later lines of the process are tied to that address through
this memory. It is bounded (the processes seen last, for an hour of log time) and each
change is numbered, so that an offline scan split into ranges can tell what a range
remembered after any point of it, and what it looked up without finding (see
:mod:`agent.scan_ranges`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

#: How long, and for how many processes, an address seen in a process is remembered.
PROCESS_MEMORY_SECONDS = 3600.0
PROCESS_MEMORY_SIZE = 8192

#: (source, pid) of a process; pid None stands for the whole source (see ``has_addresses``).
Key = tuple[str, "str | None"]


class ProcessMemory:
    """Bounded map (source, pid) -> (address, time, change number), least recently
    remembered first.

    ``missed``, when set, is told of every look-up that found nothing: a range of a big
    file scanned on its own reports them, since the lines before the range might have
    answered (see :mod:`agent.scan_ranges`).
    """

    def __init__(self, size: int = PROCESS_MEMORY_SIZE, ttl: float = PROCESS_MEMORY_SECONDS):
        self.size = size
        self.ttl = ttl
        self.entries: OrderedDict[tuple[str, str], tuple[str, float, int]] = OrderedDict()
        #: source -> number of the last change that remembered an address (not "") for it
        self.sources: dict[str, int] = {}
        #: number of changes so far
        self.changes = 0
        self.missed: Callable[[str, str | None], None] | None = None

    def remember(self, source: str, pid: str, ip: str, when: float) -> None:
        """Remember ``ip`` for a process; ``""`` marks one whose address is not to be
        believed (a newer connection of a reused pid, say), which no older entry outlives."""
        self.changes += 1
        if ip:
            self.sources[source] = self.changes
        key = (source, pid)
        self.entries[key] = (ip, when, self.changes)
        self.entries.move_to_end(key)
        if len(self.entries) > self.size:
            self.entries.popitem(last=False)

    def recall(self, source: str, pid: str, when: float | None) -> str | None:
        """The address, if remembered within the TTL of ``when`` (None: at any age)."""
        entry = self.entries.get((source, pid))
        if entry is None:
            if self.missed is not None:
                self.missed(source, pid)
            return None
        if when is not None and abs(when - entry[1]) > self.ttl:
            return None
        return entry[0]

    def has_addresses(self, source: str) -> bool:
        """Whether an address was ever remembered for ``source``."""
        if source in self.sources:
            return True
        if self.missed is not None:
            self.missed(source, None)
        return False

    def knows(self, key: Key) -> bool:
        """Whether a look-up of ``key`` (a process, or with pid None its source) could find
        something here."""
        source, pid = key
        return source in self.sources if pid is None else (source, pid) in self.entries

    def copy(self) -> ProcessMemory:
        twin = ProcessMemory(self.size, self.ttl)
        twin.entries = self.entries.copy()
        twin.sources = self.sources.copy()
        return twin

    def extend(self, newer: ProcessMemory, after: int = 0) -> None:
        """Take over what ``newer`` (a memory that started empty where this one ends)
        changed after its change number ``after``, as if it had been remembered here: the
        state one memory reading everything in order would be in. (Change numbers are
        only ever compared within one memory: taken-over entries keep theirs.)"""
        taken = [(key, entry) for key, entry in newer.entries.items() if entry[2] > after]
        entries = self.entries
        for key, _ in taken:
            entries.pop(key, None)
        entries.update(taken)  # newest last, in the order newer had them
        while len(entries) > self.size:
            entries.popitem(last=False)
        self.changes += len(taken)
        for source, number in newer.sources.items():
            if number > after:
                self.sources[source] = self.changes

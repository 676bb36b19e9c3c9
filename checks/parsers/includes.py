"""Following include directives without loops and without exponential fan-out.

Every daemon refuses an include cycle, in its own words (sshd: "Too many recursive
configuration includes", httpd: "Exceeded maximum include depth of 128, There appears to be
a recursion", PostgreSQL: "configuration file recursion"), but only after following it down
to a depth limit: a file that includes itself three times is 3^16 reads for sshd's limit.
So a parser never enters a file that is already on the current include chain, and reports
the loop once, at the line that closes it. A chain without a loop can still fan out
exponentially (each file including the next one twice), so one configuration also has a
budget of files and of text read; past it the rest is not read, and that is reported too.
"""

from __future__ import annotations

from collections.abc import Callable

from checks.parsers.origin import Origin
from checks.yamlsource import Problem

#: Far above any real configuration (Debian's Apache tree is about 100 files).
MAX_FILES = 2000
#: Twice the largest file a host serves: a huge file may be included twice, not forever.
MAX_TEXT = 64 * 1024 * 1024


class IncludeGuard:
    """One configuration's include bookkeeping, shared by every file of it.

    A chain is the tuple of files being read, outermost first (the main file included).
    Problems go to ``report``, each one once.
    """

    def __init__(self, report: Callable[[Problem], None], max_depth: int, refused_by: str):
        self.report = report
        self.max_depth = max_depth
        #: how the daemon itself answers a loop, added to the message ("sshd refuses this")
        self.refused_by = refused_by
        self.files = 0
        self.text = 0
        self.exhausted = False
        self._reported: set[tuple[Origin, str]] = set()

    def admit(self, chain: tuple[str, ...], path: str, origin: Origin) -> bool:
        """May ``path``, included at ``origin`` while reading ``chain``, be read? Counts it."""
        if path in chain:
            loop = " -> ".join((*chain[chain.index(path) :], path))
            return self._refuse(origin, path, f"include loop: {loop} ({self.refused_by})")
        if len(chain) > self.max_depth:
            message = f"includes nested deeper than {self.max_depth} ({self.refused_by})"
            return self._refuse(origin, path, message)
        if self.exhausted or self.files >= MAX_FILES:
            return self._exhaust(origin)
        self.files += 1
        return True

    def charge(self, text: str, origin: Origin) -> bool:
        """Count the text of a file just read through an include: may it be parsed?"""
        self.text += len(text)
        return self.text <= MAX_TEXT or self._exhaust(origin)

    def _exhaust(self, origin: Origin) -> bool:
        if not self.exhausted:
            self.exhausted = True
            self.report(
                origin.problem(
                    f"includes read more than {MAX_FILES} files or {MAX_TEXT // 2**20} MiB of "
                    "text: the rest of the configuration is not read"
                )
            )
        return False

    def _refuse(self, origin: Origin, path: str, message: str) -> bool:
        if (origin, path) not in self._reported:
            self._reported.add((origin, path))
            self.report(origin.problem(message))
        return False

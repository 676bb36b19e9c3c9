"""The log kinds lappguard understands, and telling a file's kind from its content.

A kind fixes how a line's header is parsed (see :mod:`agent.detect.logformats`) and which syslog
programs may have written it (a line tagged ``CRON`` is never read as sshd's).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from agent.detect.http import COMBINED, COMMON, VHOST_COMBINED, AccessLogParser


@dataclass(frozen=True)
class Kind:
    """One log kind.

    ``programs``: syslog tags trusted to have written the line (empty: not a syslog kind).
    ``http``: lines are access-log requests handled by ``http:`` rules, not patterns.
    """

    name: str
    description: str
    programs: frozenset[str] = frozenset()
    http: bool = False


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind(
            "sshd",
            "OpenSSH server (auth.log, syslog, or the journal of ssh.service)",
            programs=frozenset({"sshd", "sshd-session", "sshd-auth"}),
        ),
        Kind("apache_access", "Apache access log (any LogFormat)", http=True),
        Kind("apache_error", "Apache error log (2.2 or 2.4, file or syslog)"),
        Kind(
            "postgresql",
            "PostgreSQL server log (stderr with any log_line_prefix, or jsonlog)",
            programs=frozenset({"postgres"}),
        ),
    )
}

#: Apache's LogFormat nicknames, accepted wherever a LogFormat string is.
ACCESS_FORMATS = {"combined": COMBINED, "vhost_combined": VHOST_COMBINED, "common": COMMON}


def access_log_format(name_or_format: str) -> str:
    """A LogFormat string from a nickname (combined, vhost_combined, common) or as given."""
    return ACCESS_FORMATS.get(name_or_format.lower(), name_or_format)


_SNIFF_LINES = 64
_SIGNATURES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "sshd",
        re.compile(
            r"(?:<\d+>)?(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT\S+) "
            r"(?:\S+ ){0,2}?sshd(?:-session|-auth)?\[\d+\]:? "
        ),
    ),
    (
        "apache_error",
        re.compile(
            r"(?:\[[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d(?:\.\d+)? \d{4}\] "
            r"\[[\w:.-]*\]"
            r"|(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT\S+) \S+ "
            r"(?:httpd|apache2?)(?:/\S+)?\[\d+\]: \[)"
        ),
    ),
    (
        "apache_access",
        re.compile(
            r"(?:\S+:\d+ )?[0-9A-Fa-f:.]+ \S+ .*?\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d "
            r"[+-]\d{4}\] \""
        ),
    ),
    (
        "postgresql",
        re.compile(
            r'\{"timestamp":"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? [\w+:-]+",'  # jsonlog
            r"|.{0,80}?\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? [\w+:-]+\b.{0,200}?"
            r"\b(?:LOG|FATAL|ERROR|WARNING|DETAIL|HINT|STATEMENT):  "
        ),
    ),
)


def sniff_kind(lines: Iterable[bytes | str]) -> str | None:
    """The kind most of the first lines look like, or None when none is recognisable.

    A plain auth.log mixes sshd with cron, sudo and systemd lines: one sshd line among
    them is enough, since no other kind uses syslog program tags for sshd.
    """
    votes: Counter[str] = Counter()
    for count, raw in enumerate(lines):
        if count >= _SNIFF_LINES:
            break
        line = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        for name, signature in _SIGNATURES:
            if signature.match(line):
                votes[name] += 1
                break
    if not votes:
        return None
    return votes.most_common(1)[0][0]


def sniff_access_format(lines: Iterable[bytes | str]) -> str:
    """The Apache nickname format (combined, vhost_combined, common) that parses most of the
    first lines; ``combined`` when none does."""
    sample = [
        raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        for _, raw in zip(range(_SNIFF_LINES), lines, strict=False)
    ]
    best, best_count = "combined", 0
    for name, log_format in ACCESS_FORMATS.items():
        parser = AccessLogParser(log_format)
        count = sum(1 for line in sample if parser.parse(line) is not None)
        if count > best_count:
            best, best_count = name, count
    return best

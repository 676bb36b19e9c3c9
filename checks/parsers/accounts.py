"""The local account databases (/etc/passwd, /etc/shadow, /etc/group, /etc/gshadow) as
nss_files reads them: LF-ended lines, colon-separated fields, file:line kept for evidence."""

from __future__ import annotations

from dataclasses import dataclass

from checks.hosts import Host
from checks.parsers.lines import lf_lines

DATABASES = {"passwd": 7, "shadow": 9, "group": 4, "gshadow": 4}


@dataclass(frozen=True)
class Entry:
    """One line of an account database."""

    path: str
    line: int
    fields: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.fields[0]

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def legacy(self) -> bool:
        """A NIS compat entry (``+``, ``+name``, ``-name``, ``+@netgroup``)."""
        return self.name[:1] in ("+", "-")

    def __str__(self) -> str:
        return f"{self.where}: {self.name}"


def read_database(host: Host, name: str) -> list[Entry]:
    """Every non-blank, non-comment line of /etc/NAME. Raises HostError when unreadable."""
    path = f"/etc/{name}"
    entries = []
    for number, line in enumerate(lf_lines(host.read_text(path)), 1):
        if line.strip() and not line.startswith("#"):
            entries.append(Entry(path, number, tuple(line.split(":"))))
    return entries


def malformed(entry: Entry, database: str) -> str | None:
    """Why pwck or grpck would reject the line, or None."""
    expected = DATABASES[database]
    if entry.legacy:
        return None
    if len(entry.fields) != expected:
        return f"{entry}: {len(entry.fields)} fields, {expected} expected"
    if not entry.name:
        return f"{entry.where}: no name"
    if database in ("passwd", "group") and not entry.fields[2].isdigit():
        return f"{entry}: id {entry.fields[2]!r} is not a number"
    if database == "passwd" and not entry.fields[3].isdigit():
        return f"{entry}: group id {entry.fields[3]!r} is not a number"
    return None

"""APT's package sources, read the way apt reads them.

/etc/apt/sources.list and sources.list.d/*.list hold one-line entries
(``deb [options] URI SUITE COMPONENT...``, ``#`` starts a comment anywhere);
sources.list.d/*.sources hold deb822 stanzas (Types, URIs, Suites, Components, Enabled).
apt skips files of sources.list.d whose names are not ``[A-Za-z0-9_.-]`` ending in .list or
.sources, and refuses to run at all when an entry is malformed: such an entry is recorded as
a problem, since no update then reaches the host.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from checks.hosts import Host, HostError
from checks.parsers.deb822 import Deb822Error, stanzas
from checks.parsers.lines import C_SPACE, numbered
from checks.parsers.origin import Origin
from checks.yamlsource import Problem

SOURCES_LIST = "/etc/apt/sources.list"
SOURCE_PARTS = "/etc/apt/sources.list.d"
TYPES = ("deb", "deb-src")
_PART_NAME = re.compile(r"[A-Za-z0-9_.-]+\.(list|sources)")
#: apt's StringToBool words for Enabled
_YES = frozenset({"yes", "true", "with", "on", "enable"})
_NO = frozenset({"no", "false", "without", "off", "disable"})


@dataclass(frozen=True)
class SourceEntry:
    """One source: every combination of its types, URIs and suites is a repository."""

    types: tuple[str, ...]
    uris: tuple[str, ...]
    suites: tuple[str, ...]
    components: tuple[str, ...]
    enabled: bool
    origin: Origin

    def __str__(self) -> str:
        words = [*self.types, *self.uris, *self.suites, *self.components]
        return f"{self.origin}: {' '.join(words)}" + ("" if self.enabled else " (Enabled: no)")


@dataclass
class AptSources:
    entries: list[SourceEntry] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def parse_sources(host: Host) -> AptSources:
    """sources.list, then sources.list.d in name order. Raises HostError when a file that
    exists cannot be read (apt would stop there too)."""
    sources = AptSources()
    if host.lexists(SOURCES_LIST):
        _one_line_file(host, SOURCES_LIST, sources)
    try:
        names = host.listdir(SOURCE_PARTS)
    except HostError:
        names = []
    for name in sorted(n for n in names if _PART_NAME.fullmatch(n) and not n.startswith(".")):
        path = f"{SOURCE_PARTS}/{name}"
        try:
            if not host.stat(path).is_file:
                continue
        except HostError:
            continue  # a dangling link: apt skips it too
        if name.endswith(".list"):
            _one_line_file(host, path, sources)
        else:
            _deb822_file(host, path, sources)
    return sources


def _one_line_file(host: Host, path: str, sources: AptSources) -> None:
    sources.files.append(path)
    for number, line in numbered(host.read_text(path)):
        origin = Origin(path, number)
        words = line.partition("#")[0].split()
        if not words:
            continue
        entry = _one_line_entry(words, origin)
        if isinstance(entry, str):
            sources.problems.append(origin.problem(f"{entry} (apt refuses its sources)"))
        else:
            sources.entries.append(entry)


def _one_line_entry(words: list[str], origin: Origin) -> SourceEntry | str:
    """An entry, or why apt calls the line malformed."""
    kind, rest = words[0], words[1:]
    if kind not in TYPES:
        return f"type {kind!r} is not known"
    if rest and rest[0].startswith("["):
        closing = next((i for i, word in enumerate(rest) if word.endswith("]")), None)
        if closing is None:
            return "malformed entry (option)"
        rest = rest[closing + 1 :]
    if len(rest) < 2:
        return "malformed entry (URI)" if not rest else "malformed entry (dist)"
    uri, suite, components = rest[0], rest[1], tuple(rest[2:])
    if suite.endswith("/") and components:
        return "malformed entry (absolute dist)"
    if not suite.endswith("/") and not components:
        return "malformed entry (component)"
    return SourceEntry((kind,), (uri,), (suite,), components, True, origin)


def _deb822_file(host: Host, path: str, sources: AptSources) -> None:
    sources.files.append(path)
    try:
        parsed = list(stanzas(host.read_text(path), path, comments=True))
    except Deb822Error as exc:
        sources.problems.append(Problem(path, 0, "", f"{exc} (apt refuses its sources)"))
        return
    for line, fields in parsed:
        origin = Origin(path, line)
        entry = _deb822_entry(fields, origin)
        if isinstance(entry, str):
            sources.problems.append(origin.problem(f"{entry} (apt refuses its sources)"))
        else:
            sources.entries.append(entry)


def _deb822_entry(fields: dict[str, str], origin: Origin) -> SourceEntry | str:
    types, uris, suites, components = (
        tuple(fields.get(name, "").split()) for name in ("types", "uris", "suites", "components")
    )
    for name, values in (("Types", types), ("URIs", uris), ("Suites", suites)):
        if not values:
            return f"malformed stanza: no {name}"
    unknown = [kind for kind in types if kind not in TYPES]
    if unknown:
        return f"type {unknown[0]!r} is not known"
    flat = all(suite.endswith("/") for suite in suites)
    if flat and components:
        return "malformed stanza: Components with an absolute suite"
    if not flat and not components:
        return "malformed stanza: no Components"
    enabled = fields.get("enabled", "yes").strip(C_SPACE).lower()
    if enabled not in _YES | _NO:
        return f"malformed stanza: Enabled {enabled!r} is not yes or no"
    return SourceEntry(types, uris, suites, components, enabled in _YES, origin)

"""deb822 stanzas: dpkg's status file, APT's Release and Packages indexes, ``.sources`` files.

One parser for the control-file syntax they share: blank lines separate stanzas, a line
starting with white space continues the field above it, field names are case-insensitive.
"""

from __future__ import annotations

import re
from collections.abc import Iterator


class Deb822Error(ValueError):
    """The text is not deb822: names the source and the line."""


#: A field line: a name of printable ASCII (no space, no colon), a colon, the value.
_FIELD = re.compile(r"([!-9;-~]+):(.*)")


def stanzas(text: str, source: str, comments: bool = False) -> Iterator[tuple[int, dict[str, str]]]:
    """(first line number, fields by lower-case name) of each stanza, as dpkg splits them.

    A continued field's lines are joined with newlines. ``comments``: lines starting with
    ``#`` are skipped, as APT does in ``.sources`` files (dpkg has no comments). What the
    syntax refuses (a line that is no field, a field given twice) raises Deb822Error naming
    ``source`` and the line.
    """
    fields: dict[str, str] = {}
    first = 0
    last = ""
    for number, line in enumerate(text.split("\n"), 1):
        if comments and line.startswith("#"):
            continue
        if not line:
            if fields:
                yield first, fields
                fields = {}
            continue
        if line[0] in " \t":
            if not fields:
                raise Deb822Error(f"{source}:{number}: a continuation line outside a stanza")
            fields[last] += "\n" + line.strip()
            continue
        match = _FIELD.match(line)
        if match is None:
            raise Deb822Error(f"{source}:{number}: not a 'Field: value' line")
        last = match.group(1).lower()
        if last in fields:
            raise Deb822Error(f"{source}:{number}: a second {match.group(1)} field in one stanza")
        if not fields:
            first = number
        fields[last] = match.group(2).strip()
    if fields:
        yield first, fields

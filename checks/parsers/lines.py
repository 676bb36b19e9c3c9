"""Lines of a configuration file as a C daemon reads them, not as ``str.splitlines()`` does.

``splitlines()`` also ends a line at VT, FF, FS, GS, RS, NEL (U+0085), U+2028, U+2029 and a
lone CR. sshd, httpd, PostgreSQL and apt end a line at LF only, so ``# comment<FF>Password
Authentication no`` is one comment line for sshd and must be one for us too, or a setting the
daemon never sees decides a check. Each parser says which of these rules its daemon follows;
the oracle tests feed the same bytes to the daemon and to the parser.

Line numbers are the physical lines where a logical line starts, as a person reads the file.
"""

from __future__ import annotations

#: ``isspace()`` in the C locale: what the C daemons strip and split words on.
C_SPACE = " \t\n\v\f\r"


def lf_lines(text: str) -> list[str]:
    """Lines ended by LF only, without the LF (a last line without one still counts)."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def numbered(text: str) -> list[tuple[int, str]]:
    """``lf_lines`` with 1-based line numbers."""
    return list(enumerate(lf_lines(text), 1))


def cut_at_nul(line: str) -> str:
    """A line read with fgets()/getline() and then measured with strlen(): a NUL ends it.

    httpd and apt read this way; the rest of the physical line is lost, the next line is not.
    """
    return line.partition("\0")[0]


def joined_at_nul(text: str) -> list[tuple[int, str]]:
    """Lines as sshd and pg_hba.conf read them: each fgets()/getline() result is appended to a
    buffer by its strlen(), so a NUL drops the rest of its line *and its LF*: the next line
    continues the same logical line (``# x<NUL>`` swallows the line after it)."""
    lines: list[tuple[int, str]] = []
    pending: list[str] | None = None  # pieces of a logical line joined by NULs so far
    start = 0
    for number, line in numbered(text):
        if pending is None:
            start, pending = number, []
        if "\0" in line:
            pending.append(cut_at_nul(line))
            continue
        lines.append((start, "".join(pending) + line))
        pending = None
    if pending is not None:
        lines.append((start, "".join(pending)))
    return lines

"""php.ini files as PHP's web SAPIs read them on Debian, through a Host.

For each ``/etc/php/VERSION/apache2`` (mod_php) and ``/etc/php/VERSION/fpm`` (PHP-FPM)
directory: ``php.ini`` first, then ``conf.d/*.ini`` in lexical order (PHP's scan directory
for that SAPI); a later value wins. The CLI's directory is not a web server's and is left
out. ``[HOST=...]`` and ``[PATH=...]`` sections only apply to the CGI/FastCGI SAPIs, so they
are left out here. The same reader serves PHP-FPM's own files (``checks.parsers.fpm``),
whose ``php_admin_value[name]`` keys are PHP's ``key[offset]`` syntax.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import accumulate

from checks.hosts import Host, HostError
from checks.parsers.origin import Origin
from checks.yamlsource import Problem

#: The web SAPIs' configuration directories (mod_php, PHP-FPM).
SAPI_DIRS = ("/etc/php/*/apache2", "/etc/php/*/fpm")
# PHP's own ini scanner (Zend/zend_ini_scanner.l): a line ends at LF, CR LF or a lone CR and
# at nothing else (but a quoted value goes on across lines); only space and tab are blanks; a
# key is any run of LABEL characters.
_NEWLINE = re.compile(r"(\r\n|\r|\n)")  # captured: a quoted value keeps its line breaks
#: Parsed files kept (``parse_ini``): a few php.ini per PHP version and SAPI.
PARSED_KEPT = 32
_BLANKS = " \t"
_LABEL = r'[^=\r\n\t;&|^$~(){}!"\[\]\0]'
_SECTION = re.compile(r"^\[([^\]]*)\][ \t]*(?:;.*)?$")
_KEY = re.compile(rf"{_LABEL}+(?:\[[^\]\r\n]*\])?")
#: What ends a value outside quotes, and a run of plain value characters.
_VALUE_END = ";\0\r\n"
_UNQUOTED = re.compile(r"[^'\";\0\r\n]+")
_BARE_LABEL = re.compile(rf"^{_LABEL}+$")  # a key without a value: PHP does nothing with it
_TRUE = {"1", "on", "yes", "true"}
_FALSE = {"", "0", "off", "no", "false", "none", "null"}


@dataclass(frozen=True)
class IniSetting:
    key: str  # case-sensitive, as PHP treats it
    value: str  # unquoted text as written ("Off", "E_ALL & ~E_NOTICE")
    origin: Origin
    section: str = ""

    def __str__(self) -> str:
        return f"{self.origin}: {self.key} = {self.value}"


@dataclass
class PhpConfig:
    """The effective php.ini settings of one PHP version's web SAPI."""

    directory: str  # /etc/php/8.2/apache2
    files: list[str] = field(default_factory=list)
    settings: dict[str, IniSetting] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def sapi(self) -> str:
        """``apache2`` or ``fpm``."""
        return self.directory.rstrip("/").rpartition("/")[2]

    @property
    def version_dir(self) -> str:
        """``/etc/php/8.2``."""
        return self.directory.rstrip("/").rpartition("/")[0]


def ini_bool(value: str) -> bool | None:
    """PHP's reading of an on/off value; None when it is neither (so it cannot be trusted off)."""
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    try:
        return float(text) != 0
    except ValueError:
        return None


class _OpenQuote(Exception):
    """A quote is still open where the text read so far ends."""

    def __init__(self, quote: str):
        super().__init__(quote)
        self.quote = quote


@lru_cache(maxsize=PARSED_KEPT)
def parse_ini(path: str, text: str) -> tuple[tuple[IniSetting, ...], tuple[Problem, ...]]:
    """Settings in file order; a line PHP would reject is reported and skipped.

    A value is read from the whole text (a quote may run across lines), by offsets, so a
    quote left open for thousands of lines is still read once. The answer is kept for the
    next file with the same path and text: a fleet's hosts, and an agent's next run, mostly
    have the php.ini files they had.
    """
    settings: list[IniSetting] = []
    problems: list[Problem] = []
    section = ""
    pieces = _NEWLINE.split(text)
    lines, breaks = pieces[0::2], pieces[1::2]
    starts = list(
        accumulate(
            (len(line) + len(end) for line, end in zip(lines, breaks, strict=False)), initial=0
        )
    )
    index = 0
    while index < len(lines):
        raw_line = lines[index]
        index += 1
        if raw_line.lstrip(_BLANKS)[:1] in ("", ";"):  # blank or comment: most of a php.ini
            continue
        origin = Origin(path, index)
        line = _cut_key_at_nul(raw_line).strip(_BLANKS)
        if not line or line.startswith(";") or _BARE_LABEL.match(line):
            continue
        header = _SECTION.match(line)
        if header:
            section = header.group(1).strip(_BLANKS)
            continue
        key, equals, raw = line.partition("=")
        key = key.rstrip(_BLANKS)
        if not equals or not _KEY.fullmatch(key):
            problems.append(origin.problem(f"not php.ini syntax: {line}"))
            continue
        try:
            value, end = _value(text, starts[index - 1] + raw_line.index("=") + 1)
        except _OpenQuote as exc:
            problems.append(
                origin.problem(f"unterminated {exc.quote} quote in value {raw.strip(_BLANKS)!r}")
            )
            break  # the quote swallowed the rest of the file
        index = max(index, bisect_right(starts, end))
        settings.append(IniSetting(key, value, origin, section))
    return tuple(settings), tuple(problems)


def _cut_key_at_nul(line: str) -> str:
    """PHP stops reading a line at a NUL before its ``=``; after it, a NUL ends the value
    unless quoted (``_value``)."""
    key = line.partition("=")[0]
    return line[: key.index("\0")] if "\0" in key else line


def _value(text: str, i: int) -> tuple[str, int]:
    """The value starting at ``text[i]``: quoted parts as PHP unquotes them (across lines),
    unquoted parts trimmed; ``;``, a NUL or a line break outside quotes ends it. Returns
    (value, where it ended); raises _OpenQuote when a quote is never closed."""
    parts: list[tuple[str, bool]] = []  # (text, quoted)
    n = len(text)
    while i < n and text[i] not in _VALUE_END:
        char = text[i]
        if char == "'":
            end = text.find("'", i + 1)
            if end < 0:
                raise _OpenQuote(char)
            parts.append((text[i + 1 : end], True))
            i = end + 1
        elif char == '"':
            quoted, i = _double_quoted(text, i + 1)
            parts.append((quoted, True))
        else:
            run = _UNQUOTED.match(text, i).end()
            parts.append((text[i:run], False))
            i = run
    if parts and not parts[0][1]:
        parts[0] = (parts[0][0].lstrip(_BLANKS), False)
    if parts and not parts[-1][1]:
        parts[-1] = (parts[-1][0].rstrip(_BLANKS), False)
    return "".join(part for part, _ in parts), i


def _double_quoted(raw: str, i: int) -> tuple[str, int]:
    """A "..." string from just after its quote: (text, index after the closing quote).

    Backslash escapes ``"``, ``\\`` and ``$`` and keeps any other character; ``\\"`` at the
    end of a line closes the string with the backslash kept (``"C:\\path\\"``).
    """
    chars: list[str] = []
    n = len(raw)
    while i < n and raw[i] != '"':
        if raw[i] == "\\" and i + 1 < n:
            escaped = raw[i + 1]
            if escaped == '"' and raw[i + 2 : i + 3] in ("", "\r", "\n"):
                chars.append("\\")
                i += 1
                break
            chars.append(escaped if escaped in '"\\$' else raw[i : i + 2])
            i += 2
            continue
        chars.append(raw[i])
        i += 1
    if i >= n:
        raise _OpenQuote('"')
    return "".join(chars), i + 1


def read_ini(host: Host, path: str, files: list[str], problems: list[Problem]) -> list[IniSetting]:
    """The settings of one ini-style file, its name added to ``files`` and what is wrong
    with it to ``problems``; an unreadable file is a problem and gives no settings."""
    try:
        text = host.read_text(path)
    except HostError as exc:
        problems.append(Problem(path, 0, "", f"unreadable ({exc})"))
        return []
    files.append(path)
    settings, found = parse_ini(path, text)
    problems.extend(found)
    return settings


def load_php_sapis(host: Host) -> list[PhpConfig]:
    """One PhpConfig per installed PHP version and web SAPI (mod_php, PHP-FPM)."""
    configs = []
    for directory in sorted(d for pattern in SAPI_DIRS for d in host.glob(pattern)):
        config = PhpConfig(directory)
        main = f"{directory}/php.ini"
        files = ([main] if host.lexists(main) else []) + host.glob(f"{directory}/conf.d/*.ini")
        for path in files:
            for setting in read_ini(host, path, config.files, config.problems):
                if not setting.section.upper().startswith(("HOST=", "PATH=")):
                    config.settings[setting.key] = setting
        configs.append(config)
    return configs

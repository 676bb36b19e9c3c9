"""php.ini files as PHP's Apache module reads them on Debian, through a Host.

For each ``/etc/php/VERSION/apache2`` directory: ``php.ini`` first, then ``conf.d/*.ini`` in
lexical order (PHP's scan directory for that SAPI); a later value wins. ``[HOST=...]`` and
``[PATH=...]`` sections only apply to the CGI/FastCGI SAPIs, so they are left out here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from checks.hosts import Host, HostError
from checks.parsers.origin import Origin
from checks.yamlsource import Problem

APACHE_SAPI_DIRS = "/etc/php/*/apache2"
_SECTION = re.compile(r"^\[([^\]]*)\]\s*(?:;.*)?$")
_ENTRY = re.compile(r"^([^=;\"'\s][^=;\"']*?)\s*=(.*)$")
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
    """The effective php.ini settings of one PHP version's Apache module."""

    directory: str  # /etc/php/8.2/apache2
    files: list[str] = field(default_factory=list)
    settings: dict[str, IniSetting] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


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


def parse_ini(path: str, text: str) -> tuple[list[IniSetting], list[Problem]]:
    """Settings in file order; a line PHP would reject is reported and skipped."""
    settings: list[IniSetting] = []
    problems: list[Problem] = []
    section = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        origin = Origin(path, number)
        if not line or line.startswith(";"):
            continue
        header = _SECTION.match(line)
        if header:
            section = header.group(1).strip()
            continue
        entry = _ENTRY.match(line)
        if not entry:
            problems.append(origin.problem(f"not php.ini syntax: {line}"))
            continue
        try:
            value = _value(entry.group(2))
        except ValueError as exc:
            problems.append(origin.problem(str(exc)))
            continue
        settings.append(IniSetting(entry.group(1), value, origin, section))
    return settings, problems


def _value(raw: str) -> str:
    """The text of a value: quoted parts kept verbatim, unquoted parts trimmed, ``;`` ends it."""
    parts: list[tuple[str, bool]] = []  # (text, quoted)
    i, n = 0, len(raw)
    while i < n:
        char = raw[i]
        if char == ";":
            break
        if char in "\"'":
            end, chars = i + 1, []
            while end < n and raw[end] != char:
                if char == '"' and raw[end] == "\\" and raw[end + 1 : end + 2] == '"':
                    end += 1
                chars.append(raw[end])
                end += 1
            if end >= n:
                raise ValueError(f"unterminated {char} quote in value {raw.strip()!r}")
            parts.append(("".join(chars), True))
            i = end + 1
            continue
        parts.append((char, False))
        i += 1
    while parts and not parts[0][1] and parts[0][0].isspace():
        parts.pop(0)
    while parts and not parts[-1][1] and parts[-1][0].isspace():
        parts.pop()
    return "".join(text for text, _ in parts)


def load_apache_php(host: Host) -> list[PhpConfig]:
    """One PhpConfig per installed PHP version that has an Apache module configuration."""
    configs = []
    for directory in host.glob(APACHE_SAPI_DIRS):
        config = PhpConfig(directory)
        main = f"{directory}/php.ini"
        files = ([main] if host.lexists(main) else []) + host.glob(f"{directory}/conf.d/*.ini")
        for path in files:
            try:
                text = host.read_text(path)
            except HostError as exc:
                config.problems.append(Problem(path, 0, "", f"unreadable ({exc})"))
                continue
            config.files.append(path)
            settings, problems = parse_ini(path, text)
            config.problems.extend(problems)
            for setting in settings:
                if not setting.section.upper().startswith(("HOST=", "PATH=")):
                    config.settings[setting.key] = setting
        configs.append(config)
    return configs

"""APT configuration (apt.conf syntax) read the way apt-pkg's ReadConfigFile reads it.

apt reads every file of /etc/apt/apt.conf.d it accepts (lexical order), then
/etc/apt/apt.conf. ``A::B "v";`` and ``A { B "v"; };`` set the same key, a later scalar
replaces an earlier one, list items (``X { "a"; "b"; };``) append, ``#clear X;`` drops a
subtree, keys are case-insensitive. Values are kept verbatim: apt itself does not unescape
``\\:`` (unattended-upgrades does, when it splits an origin pattern). A syntax error makes
apt refuse the rest of that file (and apt then fails): it is recorded as a problem.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from checks.hosts import Host, HostError
from checks.parsers.lines import C_SPACE, cut_at_nul, numbered
from checks.parsers.origin import Origin
from checks.yamlsource import Problem

PARTS_DIR = "/etc/apt/apt.conf.d"
MAIN_FILE = "/etc/apt/apt.conf"
MAX_DEPTH = 10
_MAGIC_COMMENTS = ("clear", "include", "x-apt-configure-index")
_NAME_CHARS = re.compile(r"[A-Za-z0-9_\-:.]+")
_HEX = "0123456789abcdefABCDEF"


@dataclass
class AptItem:
    """One node of apt's configuration tree."""

    tag: str
    value: str | None = None
    origin: Origin | None = None
    children: list[AptItem] = field(default_factory=list)

    def child(self, tag: str, create: bool) -> AptItem | None:
        """The child named ``tag``; an empty tag always makes a new one (a list item)."""
        if tag:
            for item in self.children:
                if item.tag.lower() == tag.lower():
                    return item
        if not create:
            return None
        item = AptItem(tag)
        self.children.append(item)
        return item


@dataclass(frozen=True)
class AptValue:
    key: str
    value: str
    origin: Origin

    def __str__(self) -> str:
        return f'{self.key} "{self.value}" ({self.origin})'


@dataclass
class AptConfig:
    root: AptItem = field(default_factory=lambda: AptItem(""))
    files: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def _lookup(self, key: str, create: bool = False) -> AptItem | None:
        item: AptItem | None = self.root
        for part in key.split("::"):
            item = item.child(part, create)
            if item is None:
                return None
        return item

    def set(self, key: str, value: str, origin: Origin) -> None:
        item = self._lookup(key, create=True)
        if item is not None:
            item.value, item.origin = value, origin

    def clear(self, key: str) -> None:
        """``#clear``: the key loses its value and everything below it (apt keeps the node)."""
        item = self._lookup(key)
        if item is not None:
            item.value, item.origin, item.children = None, None, []

    def get(self, key: str) -> AptValue | None:
        """A scalar value (None when unset or when the key only holds a list)."""
        item = self._lookup(key)
        if item is None or item.value is None or item.origin is None:
            return None
        return AptValue(key, item.value, item.origin)

    def items(self, key: str) -> list[AptValue]:
        """List entries of ``key`` (its children's values), and its own value if it has one."""
        item = self._lookup(key)
        if item is None:
            return []
        found = [AptValue(key, item.value, item.origin)] if item.value and item.origin else []
        for child in item.children:
            if child.value is not None and child.origin is not None:
                found.append(AptValue(f"{key}::{child.tag}", child.value, child.origin))
        return found


def accepted_parts(names: list[str]) -> list[str]:
    """File names apt reads from apt.conf.d: no dot-extension or ``.conf``, run-parts chars."""
    accepted = []
    for name in names:
        if name.startswith(".") or name.endswith("."):
            continue
        extension = name.rsplit(".", 1)[1] if "." in name else ""
        if extension not in ("", "conf"):
            continue
        if _NAME_CHARS.fullmatch(name):
            accepted.append(name)
    return sorted(accepted)


def parse_apt_config(host: Host, parts: str = PARTS_DIR, main: str = MAIN_FILE) -> AptConfig:
    """apt.conf.d/* then apt.conf. An unreadable existing file raises HostError."""
    config = AptConfig()
    _read_dir(host, config, parts, 0)
    if host.lexists(main):
        _read_file(host, config, main, 0)
    return config


def _read_dir(host: Host, config: AptConfig, directory: str, depth: int) -> None:
    try:
        names = host.listdir(directory)
    except HostError:
        return
    for name in accepted_parts(names):
        path = f"{directory.rstrip('/')}/{name}"
        try:
            if not host.stat(path).is_file:
                continue
        except HostError:
            continue  # a dangling link: apt skips it too
        _read_file(host, config, path, depth)


def _read_file(host: Host, config: AptConfig, path: str, depth: int) -> None:
    text = host.read_text(path)
    config.files.append(path)
    problem = _parse(host, config, path, text, depth)
    if problem:
        config.problems.append(problem)


def _strip_comments(line: str, in_comment: bool) -> tuple[str, bool]:
    """Remove //, # (except #clear/#include) and /* */ comments outside quotes."""
    if in_comment:
        end = line.find("*/")
        if end < 0:
            return "", True
        line = line[end + 2 :]
    start = 0
    while (start := line.find("//", start)) >= 0:
        if line.count('"', 0, start) % 2:
            start += 1
            continue
        line = line[:start]
        break
    start = 0
    while (start := line.find("#", start)) >= 0:
        if line.count('"', 0, start) % 2 or line.startswith(_MAGIC_COMMENTS, start + 1):
            start += 1
            continue
        line = line[:start]
        break
    fragment = []
    start = 0
    while (start := line.find("/*", start)) >= 0:
        if line.count('"', 0, start) % 2:
            start += 2
            continue
        fragment.append(line[:start])
        end = line.find("*/", start + 2)
        if end < 0:
            return "".join(fragment), True
        line = line[end + 2 :]
        start = 0
    fragment.append(line)
    return "".join(fragment), False


def _parse(host: Host, config: AptConfig, path: str, text: str, depth: int) -> Problem | None:
    """apt-pkg's ReadConfigFile; returns the syntax error that made apt stop, if any."""
    stack: list[str] = []
    parent = ""
    buffer = ""
    in_comment = False
    number = 0
    for number, raw in numbered(text):
        origin = Origin(path, number)
        line = cut_at_nul(raw).replace("\t", " " * 8).strip(C_SPACE)  # apt's ReadLine + Strip
        fragment, in_comment = _strip_comments(line, in_comment)
        if not fragment:
            continue
        in_quote = False
        start = 0
        for index, ch in enumerate(fragment):
            if ch == '"':
                in_quote = not in_quote
            if in_quote or ch not in "{;}":
                continue
            piece = fragment[start:index].strip(C_SPACE)
            if buffer and piece:
                buffer += " "
            buffer += piece
            start = index + 1
            if ch == "{" and not buffer:
                return origin.problem("syntax error: block starts with no name")
            if not buffer:
                if ch == "}":
                    parent = stack.pop() if stack else ""
                continue
            statement = _statement(buffer, ch)
            if isinstance(statement, str):
                return origin.problem(f"syntax error: {statement}")
            tag, word = statement
            buffer = ""
            if ch == "{":
                stack.append(parent)
                parent = f"{parent}::{tag}" if parent else tag
                tag = ""
            item = parent if ch == "{" and not tag else f"{parent}::{tag}" if parent else tag
            if tag.startswith("#"):
                if parent:
                    return origin.problem("syntax error: directives only at the top level")
                problem = _directive(host, config, tag[1:], word, path, origin, depth)
                if problem:
                    return problem
            elif word is not None:
                config.set(item, word, origin)
            if ch == "}":
                parent = stack.pop() if stack else ""
        rest = fragment[start:].strip(C_SPACE)
        if rest:
            buffer = f"{buffer} {rest}" if buffer else rest
    if buffer:
        return Origin(path, number).problem("syntax error: extra junk at end of file")
    return None


def _statement(buffer: str, terminator: str) -> tuple[str, str | None] | str:
    """(tag, word) of one statement; word None for ``Tag {`` with no value."""
    parsed = _quote_word(buffer)
    if parsed is None:
        return "malformed tag"
    tag, rest = parsed
    word_parse = _c_word(rest) or _quote_word(rest)
    if word_parse is None:
        if terminator != "{":
            return "", tag
        return tag, None
    word, rest = word_parse
    if rest:
        return "extra junk after value"
    return tag, word


def _directive(
    host: Host,
    config: AptConfig,
    name: str,
    word: str | None,
    path: str,
    origin: Origin,
    depth: int,
) -> Problem | None:
    if name == "clear":
        if word:
            config.clear(word)
        return None
    if name == "include":
        if depth >= MAX_DEPTH:
            return origin.problem("syntax error: too many nested includes")
        target = word or ""
        # apt takes a relative path from its working directory, which an audit cannot know:
        # the including file's directory is the only stable reading
        if not target.startswith("/"):
            target = f"{path.rsplit('/', 1)[0]}/{target}"
        try:
            if target.endswith("/"):
                _read_dir(host, config, target, depth + 1)
            else:
                _read_file(host, config, target, depth + 1)
        except HostError as exc:
            return origin.problem(f"#include {word}: {exc}")
        return None
    if name == "x-apt-configure-index":
        return None
    return origin.problem(f"syntax error: unsupported directive #{name}")


def _quote_word(text: str) -> tuple[str, str] | None:
    """apt's ParseQuoteWord: a word that may hold "quoted" parts and %xx escapes."""
    i, n = 0, len(text)
    while i < n and text[i] == " ":
        i += 1
    if i == n:
        return None
    start = i
    while i < n and text[i] not in C_SPACE:
        if text[i] in '"[':
            close = text.find('"' if text[i] == '"' else "]", i + 1)
            if close < 0:
                return None
            i = close
        i += 1
    raw, out, k = text[start:i], [], 0
    while k < len(raw):
        if raw[k] == "%" and k + 2 < len(raw) and raw[k + 1] in _HEX and raw[k + 2] in _HEX:
            out.append(chr(int(raw[k + 1 : k + 3], 16)))
            k += 3
            continue
        if raw[k] != '"':
            out.append(raw[k])
        k += 1
    return "".join(out), text[i:].lstrip(C_SPACE)


def _c_word(text: str) -> tuple[str, str] | None:
    """apt's ParseCWord: only "quoted" strings (joined by single spaces) make a value."""
    i, n = 0, len(text)
    while i < n and text[i] == " ":
        i += 1
    if i == n:
        return None
    out: list[str] = []
    while i < n:
        ch = text[i]
        if ch == '"':
            close = text.find('"', i + 1)
            if close < 0:
                return None
            out.append(text[i + 1 : close])
            i = close + 1
            continue
        if i > 0 and ch in C_SPACE and text[i - 1] in C_SPACE:
            i += 1
            continue
        if ch not in C_SPACE:
            return None
        out.append(" ")
        i += 1
    return "".join(out), ""

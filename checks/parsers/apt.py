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
from checks.parsers.includes import IncludeGuard
from checks.parsers.lines import C_SPACE, cut_at_nul, numbered
from checks.parsers.origin import Origin
from checks.yamlsource import Problem

PARTS_DIR = "/etc/apt/apt.conf.d"
MAIN_FILE = "/etc/apt/apt.conf"
MAX_DEPTH = 10
#: Blocks open at once (apt has no limit, and takes a minute on 40,000 of them).
MAX_BLOCK_DEPTH = 100
#: A quote, or the start of a comment to the end of the line / of a /* */ comment.
_LINE_COMMENT = re.compile(r'"|//|#')
_BLOCK_COMMENT = re.compile(r'"|/\*')
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
    #: the first child of each lower-cased tag, so a lookup is not a scan of thousands
    named: dict[str, AptItem] = field(default_factory=dict, repr=False, compare=False)

    def child(self, tag: str, create: bool) -> AptItem | None:
        """The child named ``tag``; an empty tag always makes a new one (a list item)."""
        if tag and tag.lower() in self.named:
            return self.named[tag.lower()]
        if not create:
            return None
        item = AptItem(tag)
        self.children.append(item)
        if tag:
            self.named[tag.lower()] = item
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
            item.value, item.origin, item.children, item.named = None, None, [], {}

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
    guard = IncludeGuard(config.problems.append, MAX_DEPTH, "apt refuses this")
    _read_dir(host, config, guard, parts, (), None)
    if host.lexists(main):
        _read_file(host, config, guard, (main,))
    return config


def _read_dir(
    host: Host,
    config: AptConfig,
    guard: IncludeGuard,
    directory: str,
    chain: tuple[str, ...],
    origin: Origin | None,
) -> None:
    """The accepted files of a directory, read from ``chain`` (included at ``origin``)."""
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
        if origin is None or guard.admit(chain, path, origin):
            _read_file(host, config, guard, (*chain, path))


def _read_file(host: Host, config: AptConfig, guard: IncludeGuard, chain: tuple[str, ...]) -> None:
    """The last file of the include ``chain``."""
    path = chain[-1]
    text = host.read_text(path)
    config.files.append(path)
    problem = _parse(host, config, guard, text, chain)
    if problem:
        config.problems.append(problem)


def _strip_comments(line: str, in_comment: bool) -> tuple[str, bool]:
    """Remove //, # (except #clear/#include) and /* */ comments outside quotes, as apt does:
    first cut the line at a // or # comment, then drop /* */ from what is left (counting
    quotes again after each). Each step is one scan."""
    if in_comment:
        end = line.find("*/")
        if end < 0:
            return "", True
        line = line[end + 2 :]
    in_quote = False
    for mark in _LINE_COMMENT.finditer(line):
        if mark.group() == '"':
            in_quote = not in_quote
        elif not in_quote and not (
            mark.group() == "#" and line.startswith(_MAGIC_COMMENTS, mark.end())
        ):
            line = line[: mark.start()]
            break
    kept: list[str] = []
    start = position = 0
    in_quote = False
    while (mark := _BLOCK_COMMENT.search(line, position)) is not None:
        position = mark.end()
        if mark.group() == '"':
            in_quote = not in_quote
            continue
        if in_quote:
            continue
        kept.append(line[start : mark.start()])
        end = line.find("*/", position)
        if end < 0:
            return "".join(kept), True
        start = position = end + 2
    kept.append(line[start:])
    return "".join(kept), False


def _parse(
    host: Host, config: AptConfig, guard: IncludeGuard, text: str, chain: tuple[str, ...]
) -> Problem | None:
    """apt-pkg's ReadConfigFile; returns the syntax error that made apt stop, if any."""
    path = chain[-1]
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
                if len(stack) >= MAX_BLOCK_DEPTH:
                    return origin.problem(f"blocks nested more than {MAX_BLOCK_DEPTH} deep")
                stack.append(parent)
                parent = f"{parent}::{tag}" if parent else tag
                tag = ""
            item = parent if ch == "{" and not tag else f"{parent}::{tag}" if parent else tag
            if tag.startswith("#"):
                if parent:
                    return origin.problem("syntax error: directives only at the top level")
                problem = _directive(host, config, guard, tag[1:], word, origin, chain)
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
    guard: IncludeGuard,
    name: str,
    word: str | None,
    origin: Origin,
    chain: tuple[str, ...],
) -> Problem | None:
    if name == "clear":
        if word:
            config.clear(word)
        return None
    if name == "include":
        path = chain[-1]
        target = word or ""
        # apt takes a relative path from its working directory, which an audit cannot know:
        # the including file's directory is the only stable reading
        if not target.startswith("/"):
            target = f"{path.rsplit('/', 1)[0]}/{target}"
        try:
            if target.endswith("/"):
                _read_dir(host, config, guard, target, chain, origin)
            elif guard.admit(chain, target, origin):
                _read_file(host, config, guard, (*chain, target))
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

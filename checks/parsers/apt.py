"""APT configuration (apt.conf syntax) read the way apt-pkg's ReadConfigFile reads it.

apt reads every file of /etc/apt/apt.conf.d it accepts (lexical order), then
/etc/apt/apt.conf. ``A::B "v";`` and ``A { B "v"; };`` set the same key, a later scalar
replaces an earlier one, list items (``X { "a"; "b"; };``) append, ``#clear X;`` drops a
subtree, keys are case-insensitive. Values are kept verbatim: apt itself does not unescape
``\\:`` (unattended-upgrades does, when it splits an origin pattern). A syntax error makes
apt refuse the rest of that file (and apt then fails): it is recorded as a problem.
"""

from __future__ import annotations

import posixpath
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

    def find(self, tags: list[str]) -> AptItem | None:
        """The node at ``tags`` (a key split at ``::``) below this one, if it exists."""
        item: AptItem | None = self
        for tag in tags:
            item = item.named.get(tag.lower()) if tag else None
            if item is None:
                return None
        return item

    def make(self, tags: list[str]) -> AptItem:
        """The node at ``tags``, created where missing. As in apt's Lookup, an empty tag always
        makes a new node (a list item), so nothing finds it by name."""
        item = self
        for tag in tags:
            found = item.named.get(tag.lower()) if tag else None
            if found is None:
                found = AptItem(tag)
                item.children.append(found)
                if tag:
                    item.named[tag.lower()] = found
            item = found
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

    def _lookup(self, key: str) -> AptItem | None:
        return self.root.find(key.split("::"))

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
    reader = _Reader(host, AptConfig())
    for path in reader.parts(parts):
        reader.read_file((path,))
    if host.lexists(main):
        reader.read_file((main,))
    return reader.config


Chain = tuple[str, ...]


@dataclass
class _Block:
    """An open ``Tag {`` block. apt names each key in it by its full path (``A::B::Key``) and
    looks that up from the root; we find the block's node once, when a key is first set in it
    (apt creates it only then), so a statement costs the length of its own tag, not of the
    path above it. ``tags`` is empty for a block named ``""`` outside any named block: apt
    adds nothing to the path for it. (An empty tag inside the path makes one unnamed node for
    the block where apt makes one per key; no key can name either.)"""

    outer: _Block | None
    tags: list[str]
    node: AptItem | None = None

    def base(self, root: AptItem) -> AptItem:
        """The node the keys of this block are set under."""
        if not self.tags:
            return root
        if self.node is None:
            outer = self.outer.base(root) if self.outer else root
            self.node = outer.make(self.tags)
        return self.node


class _Reader:
    """apt-pkg's ReadConfigFile over the files of one configuration, includes followed.

    apt reads a file again each time it is included, so N includes of one large file cost N
    times its size. We read a file once per include chain: reading it again changes nothing
    when no key was set or cleared since (its keys already hold its values; only list entries
    would repeat), and otherwise it is reported, since apt's values may then differ from ours.
    """

    def __init__(self, host: Host, config: AptConfig) -> None:
        self.host = host
        self.config = config
        self.guard = IncludeGuard(config.problems.append, MAX_DEPTH, "apt refuses this")
        #: keys set or cleared so far
        self.changes = 0
        #: (chain, file or directory/) of each include read -> ``changes`` after reading it
        self.included: dict[tuple[Chain, str], int] = {}
        self.reported: set[tuple[Chain, str]] = set()
        self.listings: dict[str, list[str]] = {}

    def parts(self, directory: str) -> list[str]:
        """The files apt reads from ``directory``, listed once per reading: a directory may be
        included thousands of times."""
        if directory not in self.listings:
            try:
                names = self.host.listdir(directory)
            except HostError:
                names = []
            self.listings[directory] = [
                path
                for path in (f"{directory.rstrip('/')}/{name}" for name in accepted_parts(names))
                if self._is_file(path)
            ]
        return self.listings[directory]

    def _is_file(self, path: str) -> bool:
        try:
            return self.host.stat(path).is_file
        except HostError:
            return False  # a dangling link: apt skips it too

    def include(self, chain: Chain, target: str, origin: Origin) -> None:
        """A file, or the files of a directory (``target`` ends in /), included at ``origin``
        by the last file of ``chain``."""
        key = (chain, posixpath.normpath(target) + ("/" if target.endswith("/") else ""))
        if key in self.included:
            if self.included[key] != self.changes and key not in self.reported:
                self.reported.add(key)
                self.config.problems.append(
                    origin.problem(
                        f"{target} is included again after keys changed: apt applies it again "
                        "here, lappguard reads it once per include chain (not audited)"
                    )
                )
            return
        for path in self.parts(target) if target.endswith("/") else [target]:
            if self.guard.admit(chain, path, origin):
                self.read_file((*chain, path))
        self.included[key] = self.changes

    def read_file(self, chain: Chain) -> None:
        """The last file of the include ``chain``."""
        path = chain[-1]
        text = self.host.read_text(path)
        self.config.files.append(path)
        problem = self.parse(text, chain)
        if problem:
            self.config.problems.append(problem)

    def parse(self, text: str, chain: Chain) -> Problem | None:
        """apt-pkg's ReadConfigFile; returns the syntax error that made apt stop, if any."""
        path = chain[-1]
        root = self.config.root
        blocks: list[_Block] = []
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
                    if ch == "}" and blocks:
                        blocks.pop()
                    continue
                statement = _statement(buffer, ch)
                if isinstance(statement, str):
                    return origin.problem(f"syntax error: {statement}")
                tag, word = statement
                buffer = ""
                block = blocks[-1] if blocks else None
                named = block is not None and bool(block.tags)  # apt's ParentTag is not empty
                if ch == "{":
                    if len(blocks) >= MAX_BLOCK_DEPTH:
                        return origin.problem(f"blocks nested more than {MAX_BLOCK_DEPTH} deep")
                    opened = _Block(block, tag.split("::") if named or tag else [])
                    blocks.append(opened)
                    if word is not None:  # ``Tag "value" {`` sets the block's own value
                        item = opened.base(root) if opened.tags else root.make([""])
                        self.set(item, word, origin)
                elif tag.startswith("#"):
                    if named:
                        return origin.problem("syntax error: directives only at the top level")
                    problem = self.directive(tag[1:], word, origin, chain)
                    if problem:
                        return problem
                elif word is not None:
                    base = block.base(root) if block is not None else root
                    self.set(base.make(tag.split("::")), word, origin)
                if ch == "}" and blocks:
                    blocks.pop()
            rest = fragment[start:].strip(C_SPACE)
            if rest:
                buffer = f"{buffer} {rest}" if buffer else rest
        if buffer:
            return Origin(path, number).problem("syntax error: extra junk at end of file")
        return None

    def set(self, item: AptItem, value: str, origin: Origin) -> None:
        item.value, item.origin = value, origin
        self.changes += 1

    def directive(
        self, name: str, word: str | None, origin: Origin, chain: Chain
    ) -> Problem | None:
        """``#clear``, ``#include`` and ``#x-apt-configure-index``; a problem for the rest."""
        if name == "clear":
            if word:
                self.config.clear(word)
                self.changes += 1
            return None
        if name == "include":
            target = word or ""
            # apt takes a relative path from its working directory, which an audit cannot
            # know: the including file's directory is the only stable reading
            if not target.startswith("/"):
                target = f"{chain[-1].rsplit('/', 1)[0]}/{target}"
            try:
                self.include(chain, target, origin)
            except HostError as exc:
                return origin.problem(f"#include {word}: {exc}")
            return None
        if name == "x-apt-configure-index":
            return None
        return origin.problem(f"syntax error: unsupported directive #{name}")


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

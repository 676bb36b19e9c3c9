"""/etc/nftables.conf: the part of the nft language host firewalls use, as a Ruleset."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from checks.hosts import Host
from checks.parsers.firewall_rules import (
    Chain,
    NamedSets,
    Rule,
    Ruleset,
    rule_from_exprs,
)
from checks.parsers.includes import IncludeGuard
from checks.parsers.origin import Origin


@dataclass(frozen=True)
class _Token:
    text: str
    line: int
    file: str
    quoted: bool = False


MAX_INCLUDE_DEPTH = 16
#: Tokens ``$name`` references may produce in one configuration (``define b = { $a, $a }``
#: thirty times over is 2^30 tokens).
MAX_EXPANDED = 1_000_000
_TOKEN = re.compile(r'"[^"]*"|[{};,]|\n|[^\s{};,"#]+|#[^\n]*|[ \t\r]+')
_STATEMENT_WORDS = {
    "ip",
    "ip6",
    "tcp",
    "udp",
    "th",
    "sctp",
    "icmp",
    "icmpv6",
    "meta",
    "ct",
    "iif",
    "iifname",
    "oif",
    "oifname",
    "l4proto",
    "nfproto",
    "counter",
    "log",
    "limit",
    "comment",
    "mark",
    "reject",
    "accept",
    "drop",
    "jump",
    "goto",
    "return",
    "continue",
    "queue",
    "notrack",
}
_META_SHORT = ("iif", "iifname", "oif", "oifname", "l4proto", "nfproto", "mark", "pkttype")
_OPS = {"==": "==", "eq": "==", "!=": "!=", "ne": "!="}


def parse_nftables_conf(host: Host, path: str) -> Ruleset:
    """The subset of the nft language host firewalls use: tables, chains, sets, rules,
    ``define``, ``include``, ``flush ruleset`` and ``add``/``insert``. Raises HostError when
    the main file is unreadable; other problems are recorded."""
    ruleset = Ruleset(f"{path} (not live)")
    parser = _NftTextParser(host, ruleset)
    parser.parse_file((path,))
    parser.place_inserted()
    return ruleset


class _NftTextParser:
    """Statements of one file (and its includes) into ``ruleset``, sets and defines kept."""

    def __init__(self, host: Host, ruleset: Ruleset):
        self.host = host
        self.ruleset = ruleset
        self.sets = NamedSets()
        self.defines: dict[str, list[_Token]] = {}  # each already expanded
        self.expanded = 0
        #: ``insert rule`` batches per chain, latest last: each goes before all the others
        #: (prepending to the list each time would be quadratic in the number of rules)
        self.inserted: dict[tuple[str, str, str], list[list[Rule]]] = {}
        self.guard = IncludeGuard(
            lambda p: ruleset.problems.append(str(p)), MAX_INCLUDE_DEPTH, "nft refuses this"
        )

    def problem(self, token: _Token | None, message: str) -> None:
        where = f"{token.file}:{token.line}" if token else self.ruleset.source
        self.ruleset.problems.append(f"{where}: {message}")

    def parse_file(self, chain: tuple[str, ...]) -> None:
        """The last file of the include ``chain``."""
        text = self.host.read_text(chain[-1])
        tokens = list(self._tokens(text, chain[-1]))
        for words in _split(tokens):
            self._top(words, chain)

    def _tokens(self, text: str, path: str) -> Iterator[_Token]:
        line = 1
        for match in _TOKEN.finditer(text):
            value = match.group()
            if value == "\n":
                yield _Token("\n", line, path)
                line += 1
            elif value.startswith('"'):
                yield _Token(value[1:-1], line, path, quoted=True)
            elif not value.isspace() and not value.startswith("#"):
                yield _Token(value, line, path)

    def _top(self, words: list[_Token], chain: tuple[str, ...]) -> None:
        head = words[0].text
        words = self._expand(words)
        if head == "flush" and len(words) > 1:
            self._flush(words[1:])
        elif head == "define" and len(words) >= 3:
            self.defines[words[1].text] = words[3:] if words[2].text == "=" else words[2:]
        elif head == "include" and len(words) == 2:
            self._include(words[1], chain)
        elif head == "table":
            self._table(words[1:])
        elif head in ("add", "create", "insert") and len(words) > 1:
            self._command(words[1].text, words[2:], head == "insert")
        else:
            self.problem(words[0], f"not understood: {' '.join(t.text for t in words)[:80]}")

    def _flush(self, words: list[_Token]) -> None:
        if words[0].text == "ruleset":
            self.ruleset.chains.clear()
            self.sets.elements.clear()
            self.inserted.clear()
            return
        family, rest = self._family_name(words[1:])
        names = [t.text for t in rest]
        for key, chain in self.ruleset.chains.items():
            if key[:2] == (family, names[0] if names else "") and (
                words[0].text == "table" or (len(names) > 1 and key[2] == names[1])
            ):
                chain.rules = []
                self.inserted.pop(key, None)

    def _include(self, token: _Token, chain: tuple[str, ...]) -> None:
        pattern = token.text
        if not pattern.startswith("/"):
            pattern = f"{token.file.rsplit('/', 1)[0]}/{pattern}"
        paths = self.host.glob(pattern)
        if not paths and not any(c in pattern for c in "*?["):
            self.problem(token, f"include {pattern}: no such file")
        origin = Origin(token.file, token.line)
        for path in paths:
            if self.guard.admit(chain, path, origin):
                self.parse_file((*chain, path))

    def place_inserted(self) -> None:
        """Put the ``insert rule`` batches in front of their chains, the latest first."""
        for key, batches in self.inserted.items():
            chain = self.ruleset.chains.get(key)
            if chain is not None:
                chain.rules = [rule for batch in reversed(batches) for rule in batch] + chain.rules

    def _family_name(self, words: list[_Token]) -> tuple[str, list[_Token]]:
        if words and words[0].text in ("ip", "ip6", "inet", "arp", "bridge", "netdev"):
            return words[0].text, words[1:]
        return "ip", words

    def _table(self, words: list[_Token]) -> None:
        family, words = self._family_name(words)
        if not words:
            return
        table = words[0].text
        body = _braced(words[1:])
        if body is None:
            return
        for part in _split(body):
            if len(part) < 2:
                continue
            kind, name, inner = part[0].text, part[1].text, _braced(part[2:])
            if kind == "chain":
                self._chain(family, table, name, inner or [], part[0])
            elif kind in ("set", "map"):
                self._set(family, table, name, inner or [])

    def _command(self, kind: str, words: list[_Token], insert: bool) -> None:
        family, words = self._family_name(words)
        if kind == "table" or len(words) < 2:
            return
        table, name = words[0].text, words[1].text
        if kind == "chain":
            self._chain(family, table, name, _braced(words[2:]) or [], words[0])
        elif kind in ("set", "map"):
            self._set(family, table, name, _braced(words[2:]) or [])
        elif kind == "element":
            values = self._value(words[2:], 0)[0]
            self.sets.elements.setdefault((family, table, name), []).extend(values)
        elif kind == "rule":
            chain = self.ruleset.chains.get((family, table, name))
            if chain is None:
                self.problem(words[0], f"rule for unknown chain {family} {table} {name}")
                return
            rules = self._rule(family, table, words[2:])
            if insert:
                self.inserted.setdefault((family, table, name), []).append(rules)
            else:
                chain.rules.extend(rules)

    def _chain(
        self, family: str, table: str, name: str, body: list[_Token], anchor: _Token
    ) -> None:
        key = (family, table, name)
        chain = self.ruleset.chains.setdefault(
            key, Chain(family, table, name, where=f"{anchor.file}:{anchor.line}")
        )
        for part in _split(body):
            texts = [t.text for t in part]
            if texts[0] == "type":
                chain.hook = texts[texts.index("hook") + 1] if "hook" in texts else None
                if texts[1] != "filter":
                    chain.hook = None
            elif texts[0] == "policy" and len(texts) > 1:
                chain.policy = texts[1]
            elif texts[0] != "comment":
                chain.rules.extend(self._rule(family, table, part))

    def _set(self, family: str, table: str, name: str, body: list[_Token]) -> None:
        texts = [t.text for t in body]
        if "elements" in texts:
            at = texts.index("elements") + 1
            at += 1 if at < len(texts) and texts[at] == "=" else 0
            values = self._value(body, at)[0]
        else:
            values = []
        self.sets.elements[(family, table, name)] = values

    def _expand(self, words: list[_Token]) -> list[_Token]:
        """``$name`` replaced by its define, which was expanded when it was defined (as nft
        does), so a define naming itself cannot recurse. Past MAX_EXPANDED tokens in all,
        references stay as written and that is reported once."""
        out: list[_Token] = []
        for token in words:
            value = self.defines.get(token.text[1:]) if token.text.startswith("$") else None
            if value is not None and self.expanded + len(value) <= MAX_EXPANDED:
                self.expanded += len(value)
                out.extend(value)
                continue
            if value is not None and self.expanded <= MAX_EXPANDED:
                self.expanded = MAX_EXPANDED + 1
                self.problem(token, f"defines expand to more than {MAX_EXPANDED} tokens")
            out.append(token)
        return out

    def _rule(self, family: str, table: str, words: list[_Token]) -> list[Rule]:
        words = self._expand(words)
        shown = " ".join(_show(t) for t in words if t.text != "\n")
        where = f"{words[0].file}:{words[0].line}: {shown}"
        exprs: list[Any] = []
        i = 0
        while i < len(words):
            i = self._statement(words, i, exprs)
        return rule_from_exprs(exprs, where, family, table, self.sets)

    def _statement(self, words: list[_Token], i: int, exprs: list[Any]) -> int:
        """Turn the statement at ``words[i]`` into a JSON-like expression; return next index."""
        word = words[i].text
        following = words[i + 1].text if i + 1 < len(words) else ""
        if word in ("accept", "drop", "return", "continue"):
            exprs.append({word: None})
            return i + 1
        if word in ("jump", "goto") and following:
            exprs.append({word: {"target": following}})
            return i + 2
        if word in ("reject", "queue"):
            exprs.append({word: None})
            return len(words)  # "with icmp type ...": nothing after a verdict matters
        if word in ("counter", "log", "comment", "notrack"):
            exprs.append({"counter" if word != "log" else "log": None})
            return _skip_to_statement(words, i + 1)
        if word == "limit":
            exprs.append({"limit": None})
            return _skip_to_statement(words, i + 1)
        left, i = self._left(words, i)
        if left is None:
            exprs.append({"unknown": word})
            return _skip_to_statement(words, i + 1)
        if i < len(words) and words[i].text == "vmap":
            entries, i = self._vmap(words, i + 1)
            exprs.append({"vmap": {"key": left, "data": {"set": entries}}})
            return i
        op = "=="
        if i < len(words) and words[i].text in _OPS:
            op = _OPS[words[i].text]
            i += 1
        elif i < len(words) and words[i].text in ("<", ">", "<=", ">=", "lt", "gt", "le", "ge"):
            op = words[i].text
            i += 1
        values, i = self._value(words, i)
        right: Any = values[0] if len(values) == 1 else {"set": values}
        exprs.append({"match": {"op": op, "left": left, "right": right}})
        return i

    def _left(self, words: list[_Token], i: int) -> tuple[Any, int]:
        word = words[i].text
        following = words[i + 1].text if i + 1 < len(words) else ""
        if word in ("ip", "ip6", "tcp", "udp", "th", "sctp", "icmp", "icmpv6", "udplite"):
            return {"payload": {"protocol": word, "field": following}}, i + 2
        if word == "meta":
            return {"meta": {"key": following}}, i + 2
        if word in _META_SHORT:
            return {"meta": {"key": word}}, i + 1
        if word == "ct":
            return {"ct": {"key": following}}, i + 2
        return None, i

    def _value(self, words: list[_Token], i: int) -> tuple[list[Any], int]:
        """A value, a comma list or a ``{ ... }`` set, as JSON-like elements."""
        values: list[Any] = []
        while i < len(words):
            token = words[i]
            if token.text == "{":
                close = _matching_brace(words, i)
                inner = [t for t in words[i + 1 : close] if t.text not in ("\n", ",", "{", "}")]
                for item in inner:
                    values.append(_element(item))
                i = close + 1
            else:
                values.append(_element(token))
                i += 1
            if i < len(words) and words[i].text == ",":
                i += 1
                continue
            break
        return values, i

    def _vmap(self, words: list[_Token], i: int) -> tuple[list[Any], int]:
        if i >= len(words) or words[i].text != "{":
            return [], i
        close = _matching_brace(words, i)
        entries: list[Any] = []
        inner = [t for t in words[i + 1 : close] if t.text != "\n"]
        j = 0
        while j < len(inner):
            # "key : verdict [target]" or "key: verdict" (the colon may stick to the key)
            key = inner[j].text.rstrip(":")
            j += 1
            if j < len(inner) and inner[j].text == ":":
                j += 1
            verdict = inner[j].text if j < len(inner) else ""
            target = None
            if verdict in ("jump", "goto") and j + 1 < len(inner):
                target = {"target": inner[j + 1].text}
                j += 1
            entries.append([_element(_Token(key, 0, "")), {verdict: target}])
            j += 1
            if j < len(inner) and inner[j].text == ",":
                j += 1
        return entries, close + 1


def _show(token: _Token) -> str:
    return f'"{token.text}"' if token.quoted else token.text


def _element(token: _Token) -> Any:
    text = token.text
    if text.startswith("@"):
        return text
    if "/" in text:
        address, _, length = text.partition("/")
        if length.isdigit():
            return {"prefix": {"addr": address, "len": int(length)}}
    if text.count("-") == 1 and not text.startswith("-"):
        low, high = text.split("-")
        if (low.isdigit() and high.isdigit()) or any(c in low and c in high for c in ".:"):
            return {"range": [_number_or_text(low), _number_or_text(high)]}
    return _number_or_text(text)


def _number_or_text(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def _split(tokens: list[_Token]) -> list[list[_Token]]:
    """Statements: split at newlines and ';' outside braces (inner newlines are kept)."""
    statements, i = [], 0
    while i < len(tokens):
        stop = _statement_end(tokens, i, len(tokens))
        if stop > i:
            statements.append(tokens[i:stop])
        i = stop + 1
    return statements


def _statement_end(tokens: list[_Token], i: int, end: int) -> int:
    """Index of the newline or ';' ending the statement at ``i`` (braces nest)."""
    depth = 0
    while i < end:
        text = tokens[i].text
        if text == "{":
            depth += 1
        elif text == "}":
            depth -= 1
        elif depth == 0 and text in ("\n", ";") and not tokens[i].quoted:
            return i
        i += 1
    return end


def _matching_brace(tokens: list[_Token], i: int) -> int:
    depth = 0
    for j in range(i, len(tokens)):
        if tokens[j].text == "{":
            depth += 1
        elif tokens[j].text == "}":
            depth -= 1
            if depth == 0:
                return j
    return len(tokens)


def _braced(tokens: list[_Token]) -> list[_Token] | None:
    """The tokens between the first ``{`` and its ``}``."""
    for i, token in enumerate(tokens):
        if token.text == "{":
            return tokens[i + 1 : _matching_brace(tokens, i)]
    return None


def _skip_to_statement(words: list[_Token], i: int) -> int:
    while i < len(words) and (words[i].quoted or words[i].text not in _STATEMENT_WORDS):
        i += 1
    return i

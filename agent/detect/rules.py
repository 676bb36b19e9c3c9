"""Detection rules: load ``policies/detect/*.yaml``, validate, compile.

Every problem names file:line:field. Nothing in a rule file is executed: patterns are
regular expressions (Python ``re``, anchored with ``^`` at the start of the message that
follows the header the detector parses off, see :mod:`agent.detect.logformats`).

A rule's patterns are joined into one compiled alternation (one match per rule and line).
Free text in a pattern is written ``.*``/``.+``; the detector also compiles a *lazy twin*
(every such quantifier made lazy) and distrusts a line whose two readings take the address
from different places, so a user name such as ``root from 6.6.6.6 port 22`` can never pick
the address.
See ``policies/detect/README.md`` for the file format.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from agent.detect.events import CONFIDENCES
from agent.detect.families import FAMILIES
from agent.detect.kinds import KINDS
from checks.result import Severity
from checks.yamlsource import InputError, LineDict, LineList, Problem, line_of, load_yaml
from policies import DETECT_DIR

SEVERITIES = tuple(severity.value for severity in Severity)
LEVELS = ("normal", "aggressive")
ADDRESS_SOURCES = ("pattern", "context")
_ID = re.compile(r"[a-z0-9][a-z0-9-]*")
_GROUP_NAME = re.compile(r"[A-Za-z_]\w*")
_HTTP_METHOD = re.compile(r"[A-Z]+")
_RULE_KEYS = {
    "id": "unique name, lowercase with dashes",
    "title": "one line for people",
    "kind": "log kind: " + ", ".join(KINDS),
    "severity": "low|medium|high|critical",
    "level": "normal|aggressive (aggressive rules are opt-in)",
    "confidence": "certain|likely|weak: how sure one matching line is an attack (default"
    " weak; http rules with families take their finding's)",
    "description": "why this line matters",
    "references": "list of references",
    "prefilter": "literals; a line containing none is not matched further",
    "patterns": "anchored regexes with an ip group",
    "address": "pattern (the ip group) or context (header field / earlier line of the process)",
    "track": "true: only remember the address for later lines of the process, no event",
    "http": "request matcher for apache_access: families, methods, path, status, location",
    "samples": "match: [{line, ip, user}], no_match: [line]",
}
_HTTP_KEYS = ("families", "methods", "path", "status", "location")
_SAMPLE_KEYS = ("format", "match", "no_match")
_MATCH_KEYS = ("line", "ip", "user", "before", "format")


@dataclass(frozen=True)
class HttpMatch:
    """Conditions on a parsed request; all given ones must hold."""

    families: tuple[str, ...] = ()
    methods: frozenset[str] = frozenset()
    path: re.Pattern[str] | None = None
    status: frozenset[int] = frozenset()
    location: re.Pattern[str] | None = None


@dataclass(frozen=True)
class Sample:
    """An annotated line: the event it must give (``ip``, ``user``) or none (``ip`` None).

    ``before`` lines are fed first (same source), for rules that take the address from an
    earlier line of the same process. ``format`` is the LogFormat (apache_access) or
    log_line_prefix (postgresql) the lines were written with; None: the kind's default.
    """

    line: str
    ip: str | None
    user: str | None
    before: tuple[str, ...]
    format: str | None
    file: str
    lineno: int


class Alternative(NamedTuple):
    """Where one pattern of a rule's alternation keeps its captures.

    ``anchor``: the literal text written right before the ``ip`` group at the top level of
    the pattern (e.g. `` from ``), when the pattern's syntax lets that prove the reading
    unique: every match puts the address right after an occurrence of the anchor, so a
    message holding the anchor once has its address at one place only, and the lazy twin
    could not disagree (see :func:`ip_anchor`).
    """

    index: int  # which pattern of the rule
    ip: int | None  # group number of the address
    user: int | None  # group number of the user name
    anchor: str | None


@dataclass(frozen=True)
class Rule:
    """One compiled detection rule (see the module docstring)."""

    id: str
    title: str
    kind: str
    severity: str
    level: str
    prefilter: tuple[str, ...]
    patterns: tuple[str, ...]
    address: str
    track: bool
    http: HttpMatch | None
    matches: tuple[Sample, ...]
    no_matches: tuple[Sample, ...]
    file: str
    line: int
    regex: re.Pattern[str] | None = None
    #: source of the lazy twin (None when no pattern has free text), compiled on first use
    twin_source: str | None = None
    #: group number of each pattern's wrapper -> where that pattern keeps its captures
    alternatives: dict[int, Alternative] | None = None
    #: how sure a matching line is an attack (agent.detect.events.CONFIDENCES); an http
    #: rule with families takes its finding's instead
    confidence: str = "weak"

    @cached_property
    def lazy_twin(self) -> re.Pattern[str] | None:
        """``regex`` with every free-text quantifier lazy: compiled only when a line needs it
        (most never do, see :class:`Alternative`), which keeps start-up short."""
        return re.compile(self.twin_source, re.DOTALL) if self.twin_source else None

    def captured(self, match: re.Match[str]) -> tuple[int, int, str | None, str | None]:
        """(pattern index, ip offset, ip text, user text) of a match of ``regex`` or
        ``lazy_twin``; the offset is -1 without an ip group."""
        assert self.alternatives is not None and match.lastindex is not None
        index, ip, user, _ = self.alternatives[match.lastindex]
        return (
            index,
            match.start(ip) if ip is not None else -1,
            match.group(ip) if ip is not None else None,
            match.group(user) if user is not None else None,
        )


def default_rule_files() -> list[Path]:
    """The shipped rule files, one per log kind."""
    return sorted(DETECT_DIR.glob("*.yaml"))


def rule_source(name: str) -> Path:
    """A rule file given as a path, or a shipped one by name (``sshd``, ``apache-access``)."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and (path.exists() or "/" in name):
        return path
    shipped = DETECT_DIR / f"{name.removesuffix('.yaml')}.yaml"
    return shipped if shipped.exists() else path


def load_rules(paths: Iterable[Path | str] | None = None) -> list[Rule]:
    """Load and validate rule files (default: the shipped ones); raise InputError listing
    every problem of every file, duplicate ids across files included."""
    rules: list[Rule] = []
    problems: list[Problem] = []
    for path in default_rule_files() if paths is None else paths:
        found, trouble = _load_file(path)
        rules.extend(found)
        problems.extend(trouble)
    seen: dict[str, Rule] = {}
    for rule in rules:
        first = seen.setdefault(rule.id, rule)
        if first is not rule:
            where = f"{first.file}:{first.line}"
            message = f"duplicate rule id {rule.id!r} (first defined at {where})"
            problems.append(Problem(rule.file, rule.line, "id", message))
    if problems:
        raise InputError(problems)
    return rules


def load_rule_file(path: Path | str, text: str | None = None) -> list[Rule]:
    """The rules of one file; InputError with every problem found."""
    rules, problems = _load_file(path, text)
    if problems:
        raise InputError(problems)
    return rules


def _load_file(path: Path | str, text: str | None = None) -> tuple[list[Rule], list[Problem]]:
    """The valid rules of a file and the problems of the others."""
    name = str(path)
    try:
        document = load_yaml(path, text)
    except InputError as exc:
        return [], exc.problems
    if not isinstance(document, LineDict) or set(document) != {"rules"}:
        return [], [Problem(name, 1, "", "a rule file is a mapping with one key, 'rules'")]
    entries = document["rules"]
    if not isinstance(entries, LineList):
        return [], [Problem(name, document.line_of("rules"), "rules", "must be a list")]
    problems: list[Problem] = []
    rules: list[Rule] = []
    for index, entry in enumerate(entries):
        where = f"rules[{index}]"
        if not isinstance(entry, LineDict):
            problems.append(Problem(name, entries.line_of(index), where, "must be a mapping"))
            continue
        builder = _RuleBuilder(name, entry, where)
        rule = builder.build()
        problems.extend(builder.problems)
        if rule is not None:
            rules.append(rule)
    return rules, problems


class _RuleBuilder:
    """Validates one rule mapping, collecting every problem rather than stopping at one."""

    def __init__(self, file: str, raw: LineDict, where: str):
        self.file = file
        self.raw = raw
        self.where = where
        self.problems: list[Problem] = []
        rule_id = raw.get("id")
        if isinstance(rule_id, str):
            self.where = f"{where}({rule_id})"

    def problem(self, container: Any, key: Any, field: str, message: str) -> None:
        self.problems.append(Problem(self.file, line_of(container, key), field, message))

    def build(self) -> Rule | None:
        raw = self.raw
        for key in raw:
            if key not in _RULE_KEYS:
                self.problem(
                    raw,
                    key,
                    f"{self.where}.{key}",
                    f"unknown key (known: {', '.join(_RULE_KEYS)})",
                )
        rule_id = self.text("id", required=True)
        if rule_id is not None and not _ID.fullmatch(rule_id):
            self.problem(raw, "id", f"{self.where}.id", "use lowercase letters, digits and '-'")
        title = self.text("title", required=True)
        kind = self.choice("kind", tuple(KINDS), required=True)
        severity = self.choice("severity", SEVERITIES, required=True)
        level = self.choice("level", LEVELS) or "normal"
        confidence = self.choice("confidence", CONFIDENCES) or "weak"
        address = self.choice("address", ADDRESS_SOURCES) or "pattern"
        self.text("description")
        self.text_list("references")
        track = self.flag("track")
        prefilter = tuple(self.text_list("prefilter"))
        patterns = tuple(self.text_list("patterns"))
        http = self.http_match(raw.get("http")) if "http" in raw else None
        matches, no_matches = self.samples(raw.get("samples"))
        if kind is not None:
            self.check_shape(kind, patterns, prefilter, http, address, track)
        regex, twin = self.compile(patterns, address)
        if self.problems or None in (rule_id, title, kind, severity):
            return None
        assert rule_id and title and kind and severity
        return Rule(
            id=rule_id,
            title=title,
            kind=kind,
            severity=severity,
            level=level,
            prefilter=prefilter,
            patterns=patterns,
            address=address,
            track=track,
            http=http,
            matches=matches,
            no_matches=no_matches,
            file=self.file,
            line=raw.line,
            regex=regex,
            twin_source=twin,
            alternatives=_alternatives(regex, patterns) if regex else None,
            confidence=confidence,
        )

    # -- field helpers

    def text(self, key: str, required: bool = False) -> str | None:
        raw = self.raw
        if key not in raw:
            if required:
                self.problem(raw, None, f"{self.where}.{key}", "is required")
            return None
        value = raw[key]
        if not isinstance(value, str) or not value:
            self.problem(raw, key, f"{self.where}.{key}", f"expected text, got {value!r}")
            return None
        return value

    def choice(self, key: str, choices: Sequence[str], required: bool = False) -> str | None:
        value = self.text(key, required)
        if value is not None and value not in choices:
            self.problem(
                self.raw,
                key,
                f"{self.where}.{key}",
                f"{value!r} is not one of {', '.join(choices)}",
            )
            return None
        return value

    def flag(self, key: str) -> bool:
        value = self.raw.get(key, False)
        if not isinstance(value, bool):
            self.problem(self.raw, key, f"{self.where}.{key}", f"expected true or false: {value!r}")
            return False
        return value

    def text_list(self, key: str, container: Any = None, field: str | None = None) -> list[str]:
        container = self.raw if container is None else container
        field = field or f"{self.where}.{key}"
        if key not in container:
            return []
        value = container[key]
        if not isinstance(value, list):
            self.problem(container, key, field, "expected a list")
            return []
        items = []
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item:
                self.problem(value, index, f"{field}[{index}]", f"expected text, got {item!r}")
            else:
                items.append(item)
        return items

    def regex(self, container: Any, key: Any, field: str) -> re.Pattern[str] | None:
        value = container[key]
        if not isinstance(value, str):
            self.problem(container, key, field, f"expected a regex, got {value!r}")
            return None
        try:
            return _compile(value)
        except re.error as exc:
            self.problem(container, key, field, f"invalid regex: {exc}")
            return None

    # -- structure

    def check_shape(
        self,
        kind: str,
        patterns: tuple[str, ...],
        prefilter: tuple[str, ...],
        http: HttpMatch | None,
        address: str,
        track: bool,
    ) -> None:
        raw, where, spec = self.raw, self.where, KINDS[kind]
        if spec.http:
            if "http" not in raw:
                self.problem(raw, "kind", f"{where}.http", f"{kind} rules need an http matcher")
            for key in ("patterns", "prefilter", "address", "track"):
                if key in raw:
                    self.problem(raw, key, f"{where}.{key}", f"not used by {kind} rules (http)")
            return
        if "http" in raw:
            self.problem(raw, "http", f"{where}.http", "only apache_access rules match requests")
        if not patterns:
            self.problem(raw, "patterns", f"{where}.patterns", "at least one pattern is required")
        if not prefilter:
            self.problem(
                raw,
                "prefilter",
                f"{where}.prefilter",
                "at least one literal is required (most lines must stop there)",
            )
        if track and address != "pattern":
            self.problem(raw, "track", f"{where}.track", "a track rule must capture the address")

    def compile(
        self, patterns: tuple[str, ...], address: str
    ) -> tuple[re.Pattern[str] | None, str | None]:
        """One alternation for all patterns, plus the source of its lazy twin when it has
        free text. A pattern is compiled on its own only when the alternation cannot be
        built (to name the culprit): loading stays fast when the rules are good."""
        field = f"{self.where}.patterns"
        container = self.raw.get("patterns")
        if not patterns:
            return None, None
        # balanced: a stray ")" could otherwise close the wrapper group and compile
        regex = _alternation(patterns) if all(map(_balanced, patterns)) else None
        broken = False
        for index, pattern in enumerate(patterns):
            where = f"{field}[{index}]"
            if regex is None:
                try:
                    _compile(pattern)
                except re.error as exc:
                    self.problem(container, index, where, f"invalid regex: {exc}")
                    broken = True
                    continue
            if not pattern.startswith("^"):
                self.problem(container, index, where, "must be anchored: start it with ^")
            names = _group_names(pattern)
            if address == "pattern" and "ip" not in names:
                self.problem(container, index, where, "has no (?P<ip>...) group")
            if address == "context" and "ip" in names:
                self.problem(
                    container,
                    index,
                    where,
                    "address: context takes the address from the header; drop the ip group",
                )
            bad = sorted(name for name in names if "__" in name or name.startswith("_"))
            if bad:
                self.problem(container, index, where, f"group names reserved: {', '.join(bad)}")
        if broken:
            return None, None
        if regex is None:
            try:
                regex = _alternation(patterns, strict=True)
            except re.error as exc:  # each compiles alone, not together: a global (?i)...
                self.problem(self.raw, "patterns", field, f"cannot be combined: {exc}")
                return None, None
        primary = regex.pattern
        twin = "|".join(f"(?P<_{i}>{rewrite(p, i, lazy=True)})" for i, p in enumerate(patterns))
        return regex, (twin if twin != primary else None)

    def http_match(self, raw: Any) -> HttpMatch | None:
        field = f"{self.where}.http"
        if not isinstance(raw, LineDict) or not raw:
            self.problem(self.raw, "http", field, "expected a mapping of request conditions")
            return None
        for key in raw:
            if key not in _HTTP_KEYS:
                self.problem(
                    raw, key, f"{field}.{key}", f"unknown key (known: {_keys(_HTTP_KEYS)})"
                )
        families = tuple(self.text_list("families", raw, f"{field}.families"))
        if families and "confidence" in self.raw:
            message = "a rule with families takes its finding's confidence (families.py)"
            self.problem(self.raw, "confidence", f"{self.where}.confidence", message)
        if families:
            for index, family in enumerate(families):
                if family not in FAMILIES:
                    self.problem(
                        raw["families"],
                        index,
                        f"{field}.families[{index}]",
                        f"unknown family {family!r} (known: {', '.join(FAMILIES)})",
                    )
        methods = self.text_list("methods", raw, f"{field}.methods")
        for index, method in enumerate(methods):
            if not _HTTP_METHOD.fullmatch(method):
                message = f"{method!r} is not an HTTP method (upper case, e.g. POST)"
                self.problem(raw["methods"], index, f"{field}.methods[{index}]", message)
        status: set[int] = set()
        if "status" in raw:
            value = raw["status"]
            items = value if isinstance(value, list) else [value]
            for item in items:
                if isinstance(item, bool) or not isinstance(item, int) or not 100 <= item <= 599:
                    self.problem(raw, "status", f"{field}.status", f"not an HTTP status: {item!r}")
                else:
                    status.add(item)
        path = self.regex(raw, "path", f"{field}.path") if "path" in raw else None
        location = self.regex(raw, "location", f"{field}.location") if "location" in raw else None
        return HttpMatch(families, frozenset(methods), path, frozenset(status), location)

    def samples(self, raw: Any) -> tuple[tuple[Sample, ...], tuple[Sample, ...]]:
        field = f"{self.where}.samples"
        if raw is None:
            self.problem(self.raw, None, field, "is required: annotated lines that must match")
            return (), ()
        if not isinstance(raw, LineDict):
            self.problem(self.raw, "samples", field, "expected a mapping with match/no_match")
            return (), ()
        for key in raw:
            if key not in _SAMPLE_KEYS:
                self.problem(
                    raw, key, f"{field}.{key}", f"unknown key (known: {_keys(_SAMPLE_KEYS)})"
                )
        sample_format = None
        if "format" in raw:
            if isinstance(raw["format"], str):
                sample_format = raw["format"]
            else:
                self.problem(raw, "format", f"{field}.format", "expected text")
        matches = self.sample_list(raw, "match", f"{field}.match", True, sample_format)
        no_matches = self.sample_list(raw, "no_match", f"{field}.no_match", False, sample_format)
        if not raw.get("match"):
            self.problem(raw, "match", f"{field}.match", "at least one matching sample is required")
        return matches, no_matches

    def sample_list(
        self, raw: LineDict, key: str, field: str, expect_event: bool, default_format: str | None
    ) -> tuple[Sample, ...]:
        if key not in raw:
            return ()
        items = raw[key]
        if not isinstance(items, LineList):
            self.problem(raw, key, field, "expected a list")
            return ()
        samples = []
        for index, item in enumerate(items):
            where = f"{field}[{index}]"
            lineno = items.line_of(index)
            if isinstance(item, str) and not expect_event:
                samples.append(Sample(item, None, None, (), default_format, self.file, lineno))
                continue
            if not isinstance(item, LineDict) or not isinstance(item.get("line"), str):
                shape = "{line: ..., ip: ..., user: ...}" if expect_event else "a line"
                self.problem(items, index, where, f"expected {shape}")
                continue
            for extra in item:
                if extra not in _MATCH_KEYS or (extra in ("ip", "user") and not expect_event):
                    self.problem(item, extra, f"{where}.{extra}", "unknown key")
            ip = item.get("ip")
            if expect_event and not isinstance(ip, str):
                self.problem(item, "ip", f"{where}.ip", "the address the event must name")
                continue
            user = item.get("user")
            if user is not None and not isinstance(user, str):
                self.problem(item, "user", f"{where}.user", "expected text (quote it)")
                continue
            before = self.text_list("before", item, f"{where}.before")
            sample_format = item.get("format", default_format)
            if not isinstance(sample_format, str | None):
                self.problem(item, "format", f"{where}.format", "expected text")
                continue
            samples.append(
                Sample(item["line"], ip, user, tuple(before), sample_format, self.file, lineno)
            )
        return tuple(samples)


def _keys(keys: Iterable[str]) -> str:
    return ", ".join(keys)


def _alternation(patterns: tuple[str, ...], strict: bool = False) -> re.Pattern[str] | None:
    """The patterns as one regex, each in a group ``_<index>`` with its groups renamed
    (see :func:`rewrite`); None when that does not compile (raise with ``strict``)."""
    source = "|".join(f"(?P<_{i}>{rewrite(p, i)})" for i, p in enumerate(patterns))
    try:
        return _compile(source, re.DOTALL)
    except re.error:
        if strict:
            raise
        return None


def _compile(source: str, flags: int = 0) -> re.Pattern[str]:
    """``re.compile`` that fails only with re.error: ``re`` raises OverflowError for a repeat
    count past 2**32 (``a{4294967296}``) and RecursionError for thousands of nested groups,
    and a rule file must report those at their line like any other invalid regex."""
    try:
        return re.compile(source, flags)
    except OverflowError as exc:
        raise re.error(str(exc)) from exc
    except RecursionError as exc:
        raise re.error("groups nested too deep") from exc


def _balanced(pattern: str) -> bool:
    """Whether the groups of a pattern open and close in pairs (escapes and classes aside)."""
    depth = 0
    try:
        for kind, text in _tokens(pattern):
            if kind == "name" or (kind == "char" and text == "("):
                depth += 1
            elif kind == "char" and text == ")":
                depth -= 1
                if depth < 0:
                    return False
    except ValueError:  # an unterminated (?P<...
        return False
    return depth == 0


def _alternatives(regex: re.Pattern[str], patterns: tuple[str, ...]) -> dict[int, Alternative]:
    groups = regex.groupindex
    return {
        groups[f"_{index}"]: Alternative(
            index, groups.get(f"ip__{index}"), groups.get(f"user__{index}"), ip_anchor(pattern)
        )
        for index, pattern in enumerate(patterns)
    }


def _group_names(pattern: str) -> set[str]:
    """The named groups of a (valid) pattern."""
    return {text for kind, text in _tokens(pattern) if kind == "name"}


_SPECIAL = frozenset(".^$*+?{}[]|()\\")


def ip_anchor(pattern: str) -> str | None:
    """The literal text right before the ``ip`` group, when every match of ``pattern`` must
    put the address right after it; None when that cannot be shown from the syntax.

    Shown when: the ip group and the literal run before it sit at the top level of the
    pattern (not in a group, an alternative or a lookaround), the ip group is not
    quantified, and the pattern has no top-level ``|``, no backreference and no inline flags
    (``(?i)`` and ``(?x)`` change what a literal matches).
    """
    tokens = _tokens(pattern)
    depth, ip_at, closes_at = 0, None, None
    for position, (kind, text) in enumerate(tokens):
        if kind == "backref":
            return None
        if kind == "name" or (kind == "char" and text == "("):
            if kind == "char" and _inline_flags(tokens, position):
                return None
            if kind == "name" and text == "ip":
                if depth:
                    return None
                ip_at = position
            depth += 1
        elif kind == "char" and text == ")":
            depth -= 1
            if depth == 0 and ip_at is not None and closes_at is None:
                closes_at = position
        elif kind == "char" and text == "|" and depth == 0:
            return None
    if ip_at is None or closes_at is None:
        return None
    if closes_at + 1 < len(tokens) and tokens[closes_at + 1][1][:1] in ("?", "*", "+", "{"):
        return None
    anchor: list[str] = []
    for kind, text in reversed(tokens[:ip_at]):
        if kind == "char" and len(text) == 1 and text not in _SPECIAL:
            anchor.append(text)
        elif kind == "escape" and len(text) == 2 and not text[1].isalnum():
            anchor.append(text[1])
        else:
            break
    return "".join(reversed(anchor)) or None


def _inline_flags(tokens: list[tuple[str, str]], position: int) -> bool:
    """Whether the ``(`` at ``position`` opens an inline flag group: ``(?i)``, ``(?i:``."""
    following = "".join(text for _, text in tokens[position + 1 : position + 3])
    return following.startswith("?") and following[1:2].isalpha()


@lru_cache(maxsize=1024)
def _tokens(pattern: str) -> tuple[tuple[str, str], ...]:
    """A regex source as (kind, text) pieces: escape, class, name (``(?P<x>``), backref
    (``(?P=x)``), free (``.*`` / ``.+`` not followed by ``?`` or ``+``), char.

    A small scanner rather than a regex over the regex: inside escapes and character classes
    ``.``, ``*`` and ``(?P<`` are literal. Cached: loading reads each pattern five ways.
    """
    return tuple(_scan_tokens(pattern))


def _scan_tokens(pattern: str) -> Iterator[tuple[str, str]]:
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "\\":
            yield "escape", pattern[i : i + 2]
            i += 2
        elif char == "[":
            end = _class_end(pattern, i)
            yield "class", pattern[i:end]
            i = end
        elif pattern.startswith("(?P<", i):
            close = pattern.index(">", i)
            yield "name", pattern[i + 4 : close]
            i = close + 1
        elif pattern.startswith("(?P=", i):
            close = pattern.index(")", i)
            yield "backref", pattern[i + 4 : close]
            i = close + 1
        elif char == "." and i + 1 < n and pattern[i + 1] in "*+":
            greedy = i + 2 >= n or pattern[i + 2] not in "?+"
            yield ("free" if greedy else "char"), pattern[i : i + 2]
            i += 2
        else:
            yield "char", char
            i += 1


def rewrite(pattern: str, index: int, lazy: bool = False) -> str:
    """Rename named groups to ``name__index`` (so patterns can share one alternation) and,
    for the lazy twin, make every free-text ``.*``/``.+`` lazy."""
    out = []
    for kind, text in _tokens(pattern):
        if kind == "name":
            out.append(f"(?P<{text}__{index}>")
        elif kind == "backref":
            out.append(f"(?P={text}__{index})")
        elif kind == "free" and lazy:
            out.append(text + "?")
        else:
            out.append(text)
    return "".join(out)


def embeddable(pattern: str, index: int) -> str | None:
    """:func:`rewrite` of an anchored pattern without its ``^``, to be matched right after
    a header inside one larger regex, or None when that could change what it matches.

    The text before the message is out of a pattern's sight only while it has no lookbehind,
    no other ``^`` or ``\\A`` and no numbered backreference (group numbers shift); ``\\b``
    at its start sees the space that ends every header as it would see the start of the
    message.
    """
    if not pattern.startswith("^"):
        return None
    for kind, text in _tokens(pattern)[1:]:  # after the "^"
        if kind == "char" and text == "^":
            return None
        if kind == "escape" and (text[1] == "A" or text[1].isdigit()):
            return None
    if "(?<=" in pattern or "(?<!" in pattern:
        return None
    return rewrite(pattern[1:], index)


def _class_end(pattern: str, start: int) -> int:
    """Index just past the character class opening at ``start``."""
    i = start + 1
    if i < len(pattern) and pattern[i] == "^":
        i += 1
    if i < len(pattern) and pattern[i] == "]":
        i += 1
    while i < len(pattern) and pattern[i] != "]":
        i += 2 if pattern[i] == "\\" else 1
    return i + 1


__all__ = [
    "Alternative",
    "HttpMatch",
    "Rule",
    "Sample",
    "default_rule_files",
    "load_rule_file",
    "load_rules",
    "rule_source",
]

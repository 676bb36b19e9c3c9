"""Web-attack detection on one logged request: which attack families it carries, where.

The request target is split into its path and query parameters and every piece is
decoded (decode.py) before it is judged; a parameter holding JSON or XML is also judged
member by member (structured.py), and parameter names are judged too, since attackers
fill them as well. Each piece is read as received and after the decodings an application
may apply (value.py), then judged by libinjection and pattern families: sql.py, xss.py,
shell.py (command and code injection), paths.py (traversal, file inclusion, sensitive
files), probes.py (CRLF, control bytes, SQL quote probes), products.py (other products'
files) and patterns.py (Log4Shell, PHP-CGI, scanners). The User-Agent and Referer are
judged too.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from agent.detect.families import FAMILIES, confidence_of
from agent.detect.http import HttpRequest
from agent.detect.injection import (
    paths,
    patterns,
    probes,
    products,
    shell,
    sql,
    structured,
    xss,
)
from agent.detect.injection.decode import MAX_VALUE, normalise, split_target, url_decode
from agent.detect.injection.value import Value, Verdict

__all__ = ["FAMILIES", "Finding", "clear_verdict_caches", "inspect"]

_EVIDENCE_CHARS = 160
#: Parameter names of text a person types: search boxes, messages, comments, titles.
_FREE_TEXT_NAMES = """q s search query keyword keywords term terms text message msg comment
    comments subject title description note notes review feedback question answer"""
FREE_TEXT_PARAMETERS = frozenset(_FREE_TEXT_NAMES.split())
# A path is judged for injected code only when it holds quoting or markup characters: a
# plain path naming "document.cookie" or "sleep(film)" is a page name, not code.
_CODE_IN_PATH = frozenset("<>\"'`();|$")


@dataclass(frozen=True)
class Finding:
    """One attack family seen in one field of a request (at most one per pair), and how
    sure that is (agent.detect.families.confidence_of)."""

    family: str
    field: str  # "target" | "user_agent" | "referer"
    evidence: str
    confidence: str


def inspect(request: HttpRequest, families: Collection[str] = FAMILIES) -> list[Finding]:
    """The attack families present in a request, in FAMILIES order within each field."""
    wanted = frozenset(families)
    unknown = wanted.difference(FAMILIES)
    if unknown:
        raise ValueError(f"unknown attack families: {sorted(unknown)}")
    findings: list[Finding] = []
    if request.target:
        findings += _judge("target", _target_checks(request.target), wanted)
    if request.user_agent:
        findings += _judge_user_agent(request.user_agent, wanted)
    if request.referer:
        findings += _judge_referer(request.referer, wanted)
    return findings


# The same User-Agents and Referers come back on line after line: judge each once.
@lru_cache(maxsize=4096)
def _judge_user_agent(user_agent: str, wanted: frozenset[str]) -> tuple[Finding, ...]:
    return tuple(_judge("user_agent", _header_checks(user_agent, True), wanted))


@lru_cache(maxsize=4096)
def _judge_referer(referer: str, wanted: frozenset[str]) -> tuple[Finding, ...]:
    return tuple(_judge("referer", _referer_checks(referer), wanted))


def clear_verdict_caches() -> None:
    """Forget the User-Agent and Referer verdicts (for benchmarks and reloads)."""
    _judge_user_agent.cache_clear()
    _judge_referer.cache_clear()


# A check is (family, thunk): the thunk returns evidence (a Verdict where it can be
# conclusive) or None. Thunks keep decoding and matching lazy, so a family already found,
# or not wanted, costs nothing.
_Check = tuple[str, Callable[[], "str | Verdict | None"]]


def _judge(field: str, checks: Iterable[_Check], wanted: frozenset[str]) -> list[Finding]:
    found: dict[str, Finding] = {}
    for family, check in checks:
        if family in wanted and family not in found:
            verdict = check()
            if verdict is not None:
                text, conclusive = (verdict, False) if isinstance(verdict, str) else verdict
                confidence = confidence_of(family, conclusive)
                found[family] = Finding(family, field, text[:_EVIDENCE_CHARS], confidence)
    return [found[family] for family in FAMILIES if family in found]


def _target_checks(target: str) -> Iterable[_Check]:
    path, raw_query, params = split_target(target)
    low_path = normalise(path)
    yield "sensitive_file", lambda: paths.sensitive_file(low_path)
    yield "foreign_product", lambda: products.foreign_product(low_path)
    yield "crlf", lambda: _labelled("path", probes.crlf(path, in_path=True))
    yield "control_bytes", lambda: _labelled("path", probes.control_bytes(path))
    yield "scanner", lambda: patterns.scanner_marker(normalise(url_decode(target)))
    yield "traversal", lambda: paths.traversal(low_path, in_path=True)
    yield (
        "php_cgi",
        lambda: patterns.php_cgi(raw_query, normalise(url_decode(raw_query, plus=True))),
    )
    if any(char in path for char in _CODE_IN_PATH):
        yield from _text_checks(Value(path), "path")
    for name, value in params:
        yield from _parameter_checks(name, value)


def _parameter_checks(name: str, value: str) -> Iterable[_Check]:
    """One query parameter: its value, its name, which attackers also fill, and the
    members of a JSON or XML value."""
    label = f"{name}=" if name else "query"
    yield from _value_checks(name, Value(value), label)
    if len(name) > 2:
        yield from _name_checks(Value(name), "name")
    for member, text in structured.fields(value):
        yield from _value_checks(member or name, Value(text), f"{label}{member}")
        if not member:  # a JSON object key
            yield "sqli", lambda text=text: _labelled(label, sql.nosql(text))


def _value_checks(name: str, value: Value, label: str) -> Iterable[_Check]:
    """A parameter value: file access families, then the text families.

    Words with spaces in a parameter whose name says a person types into it (a search
    box, a message, a comment) are never opened as a file or run as a command line by an
    application: there only the syntax that breaks out of them counts."""
    typed = normalise(name) in FREE_TEXT_PARAMETERS
    free_text = typed and any(char.isspace() for char in value.text)

    def traversal(reading: str) -> str | None:
        return paths.traversal(reading, free_text=free_text)

    def lfi(reading: str) -> str | None:
        return None if free_text else paths.lfi(reading)

    def cmdi(reading: str) -> str | None:
        return shell.cmdi(reading, free_text=free_text)

    yield "traversal", lambda: _labelled(label, _first(traversal, value.readings()))
    yield (
        "lfi_rfi",
        lambda: _labelled(
            label,
            _first(lfi, value.readings()) or paths.rfi(normalise(name), value.low),
        ),
    )
    if not typed:  # a file name searched for is not a file asked for
        yield (
            "sensitive_file",
            lambda: _labelled(label, paths.sensitive_file(value.low, in_value=True)),
        )
    header_bound = normalise(name) in probes.HEADER_BOUND_PARAMETERS
    yield "crlf", lambda: _labelled(label, probes.crlf(value.text, header_bound=header_bound))
    yield "control_bytes", lambda: _labelled(label, probes.control_bytes(value.text))
    yield (
        "sqli_probe",
        lambda: _labelled(label, probes.sql_quote_probe(value.text, free_text=typed)),
    )
    yield from _text_checks(value, label, cmdi)


def _name_checks(name: Value, label: str) -> Iterable[_Check]:
    """A parameter name: payloads (``<svg/onload=..>=1``) and NoSQL operators (``id[$ne]``)."""
    yield "sqli", lambda: _labelled(label, sql.nosql(name.low)) or _sqli(name, label)
    yield "xss", lambda: _xss(name, label)
    yield "cmdi", lambda: _labelled(label, shell.cmdi(name.low))
    yield "traversal", lambda: _labelled(label, paths.traversal(name.low))
    yield "crlf", lambda: _labelled(label, probes.crlf(name.text))
    yield "control_bytes", lambda: _labelled(label, probes.control_bytes(name.text))


def _text_checks(
    value: Value, label: str, cmdi: Callable[[str], str | None] = shell.cmdi
) -> Iterable[_Check]:
    """Families that apply to any attacker-supplied text."""
    yield "sqli", lambda: _sqli(value, label)
    yield "xss", lambda: _xss(value, label)
    yield "cmdi", lambda: _labelled(label, _first(cmdi, value.readings()))
    yield "shellshock", lambda: _labelled(label, shell.shellshock(value.low))
    yield "jndi", lambda: _labelled(label, patterns.jndi(value.low))


def _header_checks(text: str, is_user_agent: bool) -> Iterable[_Check]:
    text = text[:MAX_VALUE]
    low = normalise(text)
    # Headers are not URL-encoded by browsers; a percent-encoded payload was put there.
    value = Value(url_decode(text) if "%" in text else text)
    if is_user_agent:
        yield "scanner", lambda: patterns.scanner(low)
    yield "shellshock", lambda: shell.shellshock(low)
    yield "jndi", lambda: patterns.jndi(value.low)
    yield "sqli", lambda: _sqli(value, "header")
    yield "xss", lambda: _xss(value, "header")
    yield "traversal", lambda: paths.traversal(low)
    yield "cmdi", lambda: shell.cmdi(low, header=True)


def _referer_checks(referer: str) -> Iterable[_Check]:
    """A Referer is a URL the client chose: judge its own path and parameters."""
    yield "shellshock", lambda: shell.shellshock(normalise(referer))
    yield "scanner", lambda: patterns.scanner_marker(normalise(url_decode(referer[:MAX_VALUE])))
    yield "jndi", lambda: patterns.jndi(normalise(url_decode(referer[:MAX_VALUE])))
    try:
        parts = urlsplit(referer[:MAX_VALUE])
    except ValueError:  # e.g. a malformed IPv6 literal: judge it as plain text
        yield from _header_checks(referer, False)
        return
    target = parts.path + ("?" + parts.query if parts.query else "")
    path, _, params = split_target(target)
    if any(char in path for char in _CODE_IN_PATH):
        yield "sqli", lambda: _sqli(Value(path), "path")
        yield "xss", lambda: _xss(Value(path), "path")
    for name, value in params:
        parameter = Value(value)
        label = f"{name}=" if name else "query"
        yield "traversal", lambda v=parameter, lb=label: _labelled(lb, paths.traversal(v.low))
        yield from _text_checks(parameter, label)


def _sqli(value: Value, label: str) -> Verdict | None:
    return _quoted(label, value, sql.sqli(value))


def _xss(value: Value, label: str) -> Verdict | None:
    return _quoted(label, value, xss.xss(value))


def _quoted(label: str, value: Value, verdict: Verdict | None) -> Verdict | None:
    """A verdict on a value, its evidence led by where the value was and what it said."""
    if verdict is None:
        return None
    return Verdict(f"{label} {value.text} {verdict.evidence}", verdict.conclusive)


def _first(check: Callable[[str], str | None], readings: Iterable[str]) -> str | None:
    for reading in readings:
        evidence = check(reading)
        if evidence is not None:
            return evidence
    return None


def _labelled(label: str, evidence: str | None) -> str | None:
    return f"{label} {evidence}" if evidence is not None else None

"""Hostile policies (issue 9, items 10 and 13): each one is a located error, exit 2, at once.

``policy validate`` runs through the real command line entry point; nothing here may hang,
print a traceback or exit 1.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hostile import finishes

from agent.cli import main
from checks.policy import load_policy
from checks.regexsafety import UnsafePattern, compile_safe
from checks.yamlsource import InputError

HEADER = "id: p\ntitle: P\n"


def check(params: str, extra: str = "") -> str:
    """A policy with one check of the given ``params`` (its line is 8 of the file)."""
    return (
        f"{HEADER}{extra}checks:\n"
        "  - id: LAPP-SSH-001\n"
        "    title: t\n"
        "    severity: low\n"
        "    type: file_content\n"
        f"    params: {params}\n"
    )


def laughs(levels: int) -> str:
    """Ten aliases of the level below, ``levels`` times: 10**levels strings."""
    lines = ["x0: &x0 [a, a, a, a, a, a, a, a, a, a]"]
    for level in range(1, levels):
        lines.append(f"x{level}: &x{level} [" + ", ".join([f"*x{level - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


DEEP_GROUPS = "(" * 10000 + "a" + ")" * 10000
#: (policy text, line and field of the error, what it says)
CASES = {
    "billion laughs in params": (
        laughs(9) + check("{paths: *x8, pattern: a}"),
        5,  # x4: 10**5 strings
        "",
        "more than 100000 values once aliases are expanded",
    ),
    "exponential file_content pattern": (
        check("{paths: [/etc/x], pattern: '^(a+)+$'}"),
        8,
        "LAPP-SSH-001.params.pattern",
        "pattern can take exponential time (nested quantifier '+' inside a repeated group)",
    ),
    "exponential expect pattern": (
        check("{paths: [/x], pattern: a}")
        .replace("file_content", "apache_directive")
        .replace("{paths: [/x], pattern: a}", "{directive: X, expect: {matches: '(.|.)*$'}}"),
        8,
        "LAPP-SSH-001.params.expect",
        "alternatives inside a repeat can match the same text",
    ),
    "list as a mapping key": (HEADER + "? [a]\n: b\nchecks: []\n", 3, "", "a mapping key"),
    "mapping as a mapping key": (HEADER + "? {a: 1}\n: b\nchecks: []\n", 3, "", "a mapping key"),
    "choices not a list": (
        HEADER + "variables:\n  v: {type: choice, choices: 5}\nchecks: []\n",
        4,
        "variables.v.choices",
        "must be a list of values",
    ),
    "duration default a list": (
        HEADER + "variables:\n  v: {type: duration, default: [1]}\nchecks: []\n",
        4,
        "variables.v.default",
        "expected a duration",
    ),
    "var_set a list": (
        check("{paths: [/x], pattern: a}\n    when: {var_set: [v]}"),
        9,
        "LAPP-SSH-001.when.var_set",
        "expects the name of a variable",
    ),
    "repetition overflow": (
        check("{paths: [/x], pattern: 'a{4294967296}'}"),
        8,
        "LAPP-SSH-001.params.pattern",
        "invalid regex: the repetition number is too large",
    ),
    "ten thousand nested groups": (
        check(f"{{paths: [/x], pattern: '{DEEP_GROUPS}'}}"),
        8,
        "LAPP-SSH-001.params.pattern",
        "pattern longer than 4096 characters",
    ),
    "NUL in a when path": (
        check('{paths: [/x], pattern: a}\n    when: {file: "/etc/\\0x"}'),
        9,
        "LAPP-SSH-001.when.file",
        "without NUL characters",
    ),
    "NUL in a parameter path": (
        check('{paths: ["/etc/\\0x"], pattern: a}'),
        8,
        "LAPP-SSH-001.params.paths",
        "contains a NUL character",
    ),
    "recursive alias": (HEADER + "checks: &c [*c]\n", 3, "", "refers to a value that contains"),
    "nested too deep": (HEADER + "checks: " + "[" * 900 + "]" * 900 + "\n", 3, "", "64 levels"),
}


@pytest.mark.parametrize("name", CASES)
def test_hostile_policy_is_a_located_error(tmp_path: Path, capsys, name: str) -> None:
    text, line, field, message = CASES[name]
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    assert finishes(lambda: main(["policy", "validate", str(path)])) == 2
    err = capsys.readouterr().err
    where = f"{path}:{line}: {field}: " if field else f"{path}:{line}: "
    assert where in err and message in err, err
    assert "Traceback" not in err
    assert len(err) < 2000  # one short line per problem, never the expanded document


def test_alias_use_is_bounded_even_when_small() -> None:
    """Many aliases of a tiny value stay within the node bound but not the alias bound."""
    text = HEADER + "a: &a x\nchecks: [" + ", ".join(["*a"] * 1001) + "]\n"
    with pytest.raises(InputError, match="more than 1000 aliases"):
        load_policy_text(text)


def load_policy_text(text: str) -> None:
    from tempfile import NamedTemporaryFile

    with NamedTemporaryFile("w", suffix=".yaml") as handle:
        handle.write(text)
        handle.flush()
        load_policy(handle.name)


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(a+)+$", "nested quantifier"),
        ("(a*b?)*", "nested quantifier"),
        ("^((.|.)*)*X", "nested quantifier"),
        ("((a+){5}){5}", "nested quantifier"),
        ("(a|ab)*c", "alternatives inside a repeat can match the same text"),
        ("(?:ab|\\w\\w)+y", "alternatives inside a repeat can match the same text"),
        ("(?:x|[a-z]y){11}", "alternatives inside a repeat can match the same text"),
        ("(a|)*", "alternatives inside a repeat can match the same text"),
        ("(a)\\1", "backreference"),
        ("(a)?(?(1)b|c)", "backreference"),
        ("(" * 51 + ")" * 51, "nested more than 50 deep"),
        ("a{4294967296}", "repetition number is too large"),
        ("(", "invalid regex"),
    ],
)
def test_unsafe_patterns_are_refused(pattern: str, reason: str) -> None:
    with pytest.raises(UnsafePattern, match=reason.replace("(", r"\(")):
        finishes(lambda: compile_safe(pattern), 5)


@pytest.mark.parametrize(
    "pattern",
    [
        "(?i)^\\s*(?:Alias|AliasMatch|ScriptAlias)\\s+\\S*(?:phpmyadmin|adminer)\\b",
        "(^|,)(n|codename|a|archive)=[^,]*-security(,|$)|^[^=]*:[^:=,]*-security$",
        "^(always|[1-9][0-9]*[smhd]?)$",
        "(ab|cd)*",
        "(a[bc])*",
        "(?:x|\\w)+y",  # re makes one character class of single characters
        "(\\d{1,3}\\.){3}\\d{1,3}",
        "[(((((]",
    ],
)
def test_safe_patterns_compile(pattern: str) -> None:
    assert compile_safe(pattern).pattern == pattern


def test_the_shipped_policy_passes_the_pattern_check() -> None:
    from policies import builtin_policy

    assert load_policy(builtin_policy("lapp-baseline")).checks

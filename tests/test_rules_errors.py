"""Rule and jail files with mistakes: every mistake is reported, each at file:line:field."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.bans.jails import load_jails
from agent.detect.rules import load_rules
from checks.yamlsource import InputError

GOOD = """\
  - id: ok-rule
    title: fine
    kind: sshd
    severity: low
    prefilter: ["Failed "]
    patterns: ['^Failed \\S+ for (?P<user>.*) from (?P<ip>[0-9.]+) port \\d+$']
    samples: {match: [{line: 'x', ip: 1.2.3.4}]}
"""


def _problems(tmp_path: Path, *texts: str) -> list[str]:
    paths = []
    for number, text in enumerate(texts):
        path = tmp_path / f"rules{number}.yaml"
        path.write_text(text)
        paths.append(path)
    with pytest.raises(InputError) as caught:
        load_rules(paths)
    return [str(problem).replace(f"{tmp_path}/", "") for problem in caught.value.problems]


def test_each_mistake_is_named_with_file_line_and_field(tmp_path: Path):
    text = (
        "rules:\n"
        + GOOD
        + """\
  - id: Bad_Id
    title: many problems
    kind: nginx
    severity: urgent
    levle: aggressive
    prefilter: "Failed"
    patterns:
      - 'Failed (?P<user>.*) from'
      - '^Failed ((unclosed'
      - '^x (?P<ip>\\S+) (?P<_n>\\S+)$'
    samples: {match: []}
  - id: http-bad
    title: http rule with problems
    kind: apache_access
    severity: low
    prefilter: ["x"]
    http: {families: [sqlinjection], methods: [post], status: [200, 999], path: '(', colour: red}
    samples: {match: [{line: 'x'}]}
  - id: context-with-ip
    title: address context but an ip group, and a track rule without its own address
    kind: postgresql
    severity: low
    address: context
    track: true
    prefilter: ["x"]
    patterns: ['^x (?P<ip>\\S+)$']
    samples: {match: [{line: x, ip: 1.2.3.4}], no_match: [{line: y, ip: 1.2.3.4}]}
  - id: syslog-with-http
    title: no samples, and an http matcher on a syslog kind
    kind: sshd
    severity: low
    prefilter: ["x"]
    patterns: ['^x (?P<ip>\\S+)$']
    http: {families: [sqli]}
  - just a string
"""
    )
    assert _problems(tmp_path, text) == [
        "rules0.yaml:13: rules[1](Bad_Id).levle: unknown key (known: id, title, kind, severity, "
        "level, confidence, description, references, prefilter, patterns, address, track, http,"
        " samples)",
        "rules0.yaml:9: rules[1](Bad_Id).id: use lowercase letters, digits and '-'",
        "rules0.yaml:11: rules[1](Bad_Id).kind: 'nginx' is not one of sshd, apache_access, "
        "apache_error, postgresql",
        "rules0.yaml:12: rules[1](Bad_Id).severity: 'urgent' is not one of low, medium, high, "
        "critical",
        "rules0.yaml:14: rules[1](Bad_Id).prefilter: expected a list",
        "rules0.yaml:19: rules[1](Bad_Id).samples.match: at least one matching sample is required",
        "rules0.yaml:16: rules[1](Bad_Id).patterns[0]: must be anchored: start it with ^",
        "rules0.yaml:16: rules[1](Bad_Id).patterns[0]: has no (?P<ip>...) group",
        "rules0.yaml:17: rules[1](Bad_Id).patterns[1]: invalid regex: missing ), unterminated "
        "subpattern at position 9",
        "rules0.yaml:18: rules[1](Bad_Id).patterns[2]: group names reserved: _n",
        "rules0.yaml:25: rules[2](http-bad).http.colour: unknown key (known: families, methods, "
        "path, status, location)",
        "rules0.yaml:25: rules[2](http-bad).http.families[0]: unknown family 'sqlinjection' "
        "(known: sqli, xss, traversal, lfi_rfi, cmdi, shellshock, jndi, php_cgi, scanner, "
        "sensitive_file, crlf, control_bytes, sqli_probe, foreign_product)",
        "rules0.yaml:25: rules[2](http-bad).http.methods[0]: 'post' is not an HTTP method "
        "(upper case, e.g. POST)",
        "rules0.yaml:25: rules[2](http-bad).http.status: not an HTTP status: 999",
        "rules0.yaml:25: rules[2](http-bad).http.path: invalid regex: missing ), unterminated "
        "subpattern at position 0",
        "rules0.yaml:26: rules[2](http-bad).samples.match[0].ip: the address the event must name",
        "rules0.yaml:24: rules[2](http-bad).prefilter: not used by apache_access rules (http)",
        "rules0.yaml:35: rules[3](context-with-ip).samples.no_match[0].ip: unknown key",
        "rules0.yaml:32: rules[3](context-with-ip).track: a track rule must capture the address",
        "rules0.yaml:34: rules[3](context-with-ip).patterns[0]: address: context takes the "
        "address from the header; drop the ip group",
        "rules0.yaml:36: rules[4](syslog-with-http).samples: is required: annotated lines that "
        "must match",
        "rules0.yaml:42: rules[4](syslog-with-http).http: only apache_access rules match requests",
        "rules0.yaml:43: rules[5]: must be a mapping",
    ]


def test_duplicate_ids_across_files_name_both_places(tmp_path: Path):
    assert _problems(tmp_path, "rules:\n" + GOOD, "# second file\nrules:\n" + GOOD) == [
        "rules1.yaml:3: id: duplicate rule id 'ok-rule' (first defined at rules0.yaml:2)"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rules: [\n", "rules0.yaml:2: invalid YAML: "),
        ("- a list\n", "rules0.yaml:1: a rule file is a mapping with one key, 'rules'"),
        ("rules: {}\n", "rules0.yaml:1: rules: must be a list"),
        ("rules:\n" + GOOD + "    title: again\n", "rules0.yaml:9: invalid YAML: duplicate key"),
    ],
)
def test_broken_files(tmp_path: Path, text: str, expected: str):
    (problem,) = _problems(tmp_path, text)
    assert problem.startswith(expected)


def test_missing_file_is_an_error_not_an_empty_rule_set(tmp_path: Path):
    with pytest.raises(InputError) as caught:
        load_rules([tmp_path / "absent.yaml"])
    assert str(caught.value).startswith(f"{tmp_path}/absent.yaml: cannot read: ")


def test_jail_file_mistakes(tmp_path: Path):
    path = tmp_path / "jails.yaml"
    path.write_text(
        """\
allowlist: [10.0.0.0/8, not-a-network]
colour: red
jails:
  - name: one
    rules: [ok-rule, nosuch-*]
    maxretry: 0
    findtime: 10 minutes
    allowlist: [192.0.2.0/33]
  - name: two
    rules: [ok-*]
    maxretry: 3
    findtime: 10m
    bantime: 1h
  - name: three
    rules: [ok-rule]
    maxretry: 3
    findtime: 1m
    bantime: 1h
"""
    )
    with pytest.raises(InputError) as caught:
        load_jails(path, ["ok-rule", "other-rule"])
    assert [str(p).replace(f"{tmp_path}/", "") for p in caught.value.problems] == [
        "jails.yaml:2: colour: unknown key",
        "jails.yaml:1: allowlist[1]: 'not-a-network' does not appear to be an IPv4 or IPv6 network",
        "jails.yaml:5: jails[0](one).rules[1]: no such rule",
        "jails.yaml:6: jails[0](one).maxretry: a whole number from 1 to 1000000",
        "jails.yaml:7: jails[0](one).findtime: '10 minutes' is not a duration such as 10m, 26h "
        "or 7d",
        "jails.yaml:8: jails[0](one).allowlist[0]: '192.0.2.0/33' does not appear to be an IPv4 "
        "or IPv6 network",
        "jails.yaml:4: jails[0](one).bantime: is required (e.g. 10m)",
        "jails.yaml:14: jails(three).rules: ok-rule is already counted by jail two",
    ]


def _rule_with(*patterns: str) -> str:
    listed = ", ".join(f"'{pattern}'" for pattern in patterns)
    return (
        "rules:\n  - id: r\n    title: t\n    kind: sshd\n    severity: low\n"
        f'    prefilter: ["x"]\n    patterns: [{listed}]\n'
        "    samples: {match: [{line: 'x', ip: 1.2.3.4}]}\n"
    )


def test_a_pattern_cannot_close_the_group_it_is_wrapped_in(tmp_path: Path):
    """Patterns are joined as (?P<_0>...)|(?P<_1>...): a stray ")" would otherwise turn an
    invalid pattern into a valid alternation."""
    problems = _problems(tmp_path, _rule_with(r"^x (?P<ip>\S+))|(.*", r"^y (?P<ip>\S+)$"))
    assert problems == [
        "rules0.yaml:7: rules[0](r).patterns[0]: invalid regex: unbalanced parenthesis at "
        "position 14"
    ]


def test_patterns_valid_alone_but_not_together_are_a_problem_not_a_crash(tmp_path: Path):
    problems = _problems(tmp_path, _rule_with(r"^x (?P<ip>\S+)$", r"(?i)^y (?P<ip>\S+)$"))
    assert (
        problems[0] == "rules0.yaml:7: rules[0](r).patterns[1]: must be anchored: start it with ^"
    )
    assert problems[1].startswith(
        "rules0.yaml:7: rules[0](r).patterns: cannot be combined: global flags not at the start"
    )

"""Broken policies: each produces its file:line:field message and exit code 2."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from agent.cli import main
from checks.policy import load_policy
from checks.yamlsource import InputError
from policies import builtin_policy

GOOD_CHECK = """
  - id: LAPP-SVC-001
    title: No FTP
    severity: high
    type: package
    params: {names: [vsftpd], state: absent}
"""


def write(tmp_path: Path, body: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(
        "id: p\ntitle: P\nversion: '1'\nchecks:\n" + textwrap.dedent(body).strip("\n") + "\n"
    )
    return path


CASES = [
    (  # unknown key in a check
        """
  - id: LAPP-SVC-001
    title: t
    severity: high
    type: package
    colour: red
    params: {names: [x]}
""",
        9,
        "LAPP-SVC-001.colour",
        "unknown key",
    ),
    (  # wrong type of a parameter
        """
  - id: LAPP-SVC-001
    title: t
    severity: high
    type: file
    params: {paths: [/etc/x], present: maybe}
""",
        9,
        "LAPP-SVC-001.params.present",
        "expected true or false",
    ),
    (  # unknown check type
        """
  - id: LAPP-SVC-001
    title: t
    severity: high
    type: telepathy
""",
        8,
        "LAPP-SVC-001.type",
        "unknown check type 'telepathy'",
    ),
    (  # invalid regex
        """
  - id: LAPP-SVC-001
    title: t
    severity: high
    type: file_content
    params:
      paths: [/etc/x]
      pattern: '(unclosed'
""",
        11,
        "LAPP-SVC-001.params.pattern",
        "invalid regex",
    ),
    (  # bad severity
        """
  - id: LAPP-SVC-001
    title: t
    severity: urgent
    type: package
    params: {names: [x]}
""",
        7,
        "LAPP-SVC-001.severity",
        "not one of low, medium, high, critical",
    ),
    (  # ID without a known area
        """
  - id: LAPP-XYZ-001
    title: t
    severity: high
    type: package
    params: {names: [x]}
""",
        5,
        "LAPP-XYZ-001.id",
        "not an ID like LAPP-SSH-001",
    ),
    (  # unknown parameter
        """
  - id: LAPP-SVC-001
    title: t
    severity: high
    type: package
    params: {names: [x], stat: absent}
""",
        9,
        "LAPP-SVC-001.params.stat",
        "unknown parameter",
    ),
    (  # YAML's boolean trap
        """
  - id: LAPP-SVC-001
    title: t
    severity: high
    type: command
    params: {argv: [sshd, -T], stdout_matches: x, exit_codes: [no]}
""",
        9,
        "LAPP-SVC-001.params.exit_codes",
        "quote it",
    ),
    (  # unknown condition
        """
  - id: LAPP-SVC-001
    title: t
    severity: high
    when: {pakage: apache2}
    type: package
    params: {names: [x]}
""",
        8,
        "LAPP-SVC-001.when.pakage",
        "unknown condition",
    ),
    (  # a reference YAML reads as a mapping: ": " inside a flow list
        """
  - id: LAPP-SVC-001
    title: t
    severity: high
    references: [ssh-audit dh-modulus-sizes (guide: moduli), dev-sec sshd-48]
    type: package
    params: {names: [x]}
""",
        8,
        "LAPP-SVC-001.references",
        "is not text (quote a reference holding ': ' or ', ')",
    ),
    (  # undeclared variable
        """
  - id: LAPP-SVC-001
    title: t
    severity: high
    type: backup
    params: {dir: '${nowhere}', aspect: freshness}
""",
        9,
        "LAPP-SVC-001.params.dir",
        "unknown variable ${nowhere}",
    ),
]


@pytest.mark.parametrize(("body", "line", "field", "message"), CASES)
def test_broken_policy_names_file_line_field(tmp_path, capsys, body, line, field, message):
    path = write(tmp_path, body)
    with pytest.raises(InputError) as caught:
        load_policy(path)
    problems = [str(p) for p in caught.value.problems]
    assert f"{path}:{line}: {field}: " in problems[0], problems
    assert message in problems[0]

    assert main(["policy", "validate", str(path)]) == 2
    assert f"{path}:{line}: {field}: " in capsys.readouterr().err


def test_duplicate_id_in_one_file(tmp_path, capsys):
    path = write(tmp_path, GOOD_CHECK + GOOD_CHECK)
    assert main(["policy", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:11: LAPP-SVC-001.id: duplicate check ID (first at line 5)" in err


def test_duplicate_id_across_files(tmp_path, capsys):
    first = write(tmp_path, GOOD_CHECK, "a.yaml")
    second = write(tmp_path, GOOD_CHECK, "b.yaml")
    assert main(["policy", "validate", str(first), str(second)]) == 2
    assert (
        f"{second}:5: id: duplicate check ID LAPP-SVC-001 (also at {first}:5)"
        in capsys.readouterr().err
    )


def test_yaml_syntax_error_has_a_line(tmp_path, capsys):
    path = tmp_path / "p.yaml"
    path.write_text("id: p\ntitle: P\nchecks:\n  - id: [unclosed\n")
    assert main(["policy", "validate", str(path)]) == 2
    assert f"{path}:5: invalid YAML" in capsys.readouterr().err


def test_duplicate_yaml_key_is_an_error(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("id: p\ntitle: P\ntitle: Q\nchecks: []\n")
    with pytest.raises(InputError, match=r"p.yaml:3: invalid YAML: .*duplicate key 'title'"):
        load_policy(path)


def test_every_error_is_reported_at_once(tmp_path):
    path = write(
        tmp_path,
        """
  - id: LAPP-SVC-001
    title: t
    severity: urgent
    type: package
    params: {names: [x]}
  - id: LAPP-SVC-002
    title: t
    severity: high
    type: nope
""",
    )
    with pytest.raises(InputError) as caught:
        load_policy(path)
    assert [p.field for p in caught.value.problems] == [
        "LAPP-SVC-001.severity",
        "LAPP-SVC-002.type",
    ]


def test_bad_variable_override_exits_2(capsys):
    assert main(["audit", "--var", "tls_min_version=1.9", "--format", "json"]) == 2
    assert (
        "--var: tls_min_version: '1.9' is not one of 1.0, 1.1, 1.2, 1.3" in capsys.readouterr().err
    )


def test_unknown_variable_override_exits_2(capsys):
    assert main(["audit", "--var", "ofice_networks=10.0.0.0/8"]) == 2
    assert "ofice_networks: no loaded policy declares this variable" in capsys.readouterr().err


def test_shipped_policy_is_valid_and_ids_are_unique():
    policy = load_policy(builtin_policy("lapp-baseline"))
    ids = [check.id for check in policy.checks]
    assert len(ids) == len(set(ids))
    assert all(check.remediation and check.rationale for check in policy.checks)


def test_variables_substitute_with_their_type(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(
        textwrap.dedent("""
        id: p
        title: P
        variables:
          days: {type: number, default: 21}
          dir: {type: str, default: /srv/backup}
        checks:
          - id: LAPP-BAK-001
            title: t
            severity: low
            type: backup
            params: {dir: '${dir}', aspect: retention, retention_days: '${days}'}
    """)
    )
    policy = load_policy(path, {"days": "7"})
    params = policy.checks[0].implementation.params
    assert params["retention_days"] == 7 and params["dir"] == "/srv/backup"

"""Report formats and exit codes: the contracts scripts and CI jobs depend on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest
from treeutil import dpkg_status, make_tree

from agent.cli import main

POLICY = textwrap.dedent("""
    id: sample
    title: Sample
    version: "1"
    checks:
      - id: LAPP-SVC-001
        title: No FTP server package
        severity: high
        rationale: clear-text passwords
        remediation: apt-get purge vsftpd
        references: [CIS 2.2.x]
        type: package
        params: {names: [vsftpd], state: absent}
      - id: LAPP-SVC-002
        title: No telnet server package
        severity: low
        remediation: apt-get purge telnetd
        type: package
        params: {names: [telnetd], state: absent}
      - id: LAPP-WEB-001
        title: Apache hides its version
        severity: medium
        remediation: set ServerTokens Prod
        when: {package: apache2}
        type: file_content
        params: {paths: [/etc/apache2/conf-enabled/security.conf], pattern: '^ServerTokens Prod'}
      - id: LAPP-PHP-001
        title: Reads a file that is a directory
        severity: critical
        remediation: fix the file
        type: file_content
        params: {paths: [/etc/php], pattern: x, match: none}
""")


@pytest.fixture()
def audit(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    root = make_tree(
        tmp_path / "root",
        {
            "/var/lib/dpkg/status": dpkg_status("vsftpd", "telnetd"),
            "/etc/php/.keep": "",
        },
    )

    def run(*extra: str) -> tuple[int, str]:
        output = tmp_path / "report.out"
        code = main(
            ["audit", "--policy", str(policy), "--root", str(root), "--output", str(output), *extra]
        )
        return code, output.read_text()

    return run


def test_json_report_contract(audit):
    code, text = audit("--format", "json")
    document = json.loads(text)
    assert code == 1
    (host,) = document["hosts"]
    assert host["host"].startswith("root:")
    results = {r["id"]: r for r in host["results"]}
    assert set(results) == {"LAPP-SVC-001", "LAPP-SVC-002", "LAPP-WEB-001", "LAPP-PHP-001"}
    for result in results.values():
        assert {"id", "title", "severity", "status", "evidence", "remediation"} <= set(result)
    assert results["LAPP-SVC-001"]["status"] == "fail"
    assert results["LAPP-SVC-001"]["evidence"] == ["vsftpd 1.0-1 installed"]
    assert results["LAPP-SVC-001"]["remediation"] == "apt-get purge vsftpd"
    assert results["LAPP-WEB-001"]["status"] == "skip"
    assert results["LAPP-WEB-001"]["reason"] == "apache2 not installed"
    assert results["LAPP-PHP-001"]["status"] == "error"
    assert document["summary"] == {
        "pass": 0,
        "fail": 2,
        "error": 1,
        "skip": 1,
        "total": 4,
        "fail_on": "medium",
        "blocking": 2,
    }


@pytest.mark.parametrize(
    ("fail_on", "code"), [("low", 1), ("medium", 1), ("high", 1), ("critical", 1)]
)
def test_exit_code_counts_errors_and_failures_at_threshold(audit, fail_on, code):
    assert audit("--fail-on", fail_on, "--format", "json")[0] == code


def test_exit_code_zero_when_only_low_findings(audit):
    assert audit("--only", "LAPP-SVC-002", "--format", "json")[0] == 0  # low < default medium
    assert audit("--only", "LAPP-SVC-002", "--fail-on", "low")[0] == 1
    assert audit("--only", "WEB")[0] == 0  # a skipped check blocks nothing


def test_text_report_failures_first_with_remediation(audit):
    code, text = audit("--color", "never")
    assert code == 1
    attention = text.index("Needs attention")
    assert text.index("LAPP-SVC-001", attention) < text.index("All checks by area")
    assert "fix: apt-get purge vsftpd" in text
    assert "why undecided: cannot read /etc/php" in text
    assert "(below --fail-on)" in text  # the low telnet finding is shown but does not block
    assert "\x1b[" not in text
    assert "Summary: 0 pass, 2 fail, 1 error, 1 skip" in text


def test_colour_only_on_request_or_tty_and_never_with_no_color(audit, tmp_path):
    assert "\x1b[31m" in audit("--color", "always")[1]
    policy = str(tmp_path / "policy.yaml")
    root = str(tmp_path / "root")
    env = {**os.environ, "NO_COLOR": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "agent.cli", "audit", "--policy", policy, "--root", root],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 1 and "\x1b[" not in done.stdout and "LAPP-SVC-001" in done.stdout


def test_junit_report(audit):
    _, text = audit("--format", "junit")
    suite = ET.fromstring(text).find("testsuite")
    assert (
        suite.get("tests"),
        suite.get("failures"),
        suite.get("errors"),
        suite.get("skipped"),
    ) == ("4", "1", "1", "1")  # the low finding is below --fail-on: not a failure
    cases = {case.get("name").split()[0]: case for case in suite.iter("testcase")}
    assert cases["LAPP-SVC-001"].find("failure").get("type") == "high"
    assert "fix: apt-get purge vsftpd" in cases["LAPP-SVC-001"].find("failure").text
    assert cases["LAPP-PHP-001"].find("error") is not None
    assert cases["LAPP-WEB-001"].find("skipped").get("message") == "apache2 not installed"
    below = cases["LAPP-SVC-002"]
    assert below.find("failure") is None and below.find("error") is None
    assert below.find("system-out").text.startswith("low finding below --fail-on medium")


def test_junit_fails_what_the_exit_code_fails(audit):
    code, text = audit("--format", "junit", "--fail-on", "low")
    suite = ET.fromstring(text).find("testsuite")
    assert code == 1 and (suite.get("failures"), suite.get("errors")) == ("2", "1")
    code, text = audit("--format", "junit", "--fail-on", "critical")
    suite = ET.fromstring(text).find("testsuite")
    assert code == 1 and (suite.get("failures"), suite.get("errors")) == ("0", "1")


def test_sarif_report(audit):
    _, text = audit("--format", "sarif")
    document = json.loads(text)
    assert document["version"] == "2.1.0"
    run = document["runs"][0]
    rule_ids = [rule["id"] for rule in run["tool"]["driver"]["rules"]]
    assert rule_ids == ["LAPP-SVC-001", "LAPP-SVC-002", "LAPP-WEB-001", "LAPP-PHP-001"]
    assert [(r["ruleId"], r["level"]) for r in run["results"]] == [
        ("LAPP-SVC-001", "error"),
        ("LAPP-SVC-002", "note"),
    ]
    assert run["results"][0]["ruleIndex"] == 0
    assert (
        run["invocations"][0]["toolExecutionNotifications"][0]["descriptor"]["id"] == "LAPP-PHP-001"
    )


def test_missing_root_is_a_usage_error(tmp_path, capsys):
    assert main(["audit", "--root", str(tmp_path / "nope")]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_config_file_sets_variables(tmp_path, capsys):
    config = tmp_path / "agent.yaml"
    config.write_text("variables:\n  tls_min_version: '1.7'\n")
    assert main(["audit", "--config", str(config), "--root", str(tmp_path)]) == 2
    assert "tls_min_version: '1.7' is not one of" in capsys.readouterr().err

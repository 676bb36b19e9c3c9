"""Report formats and exit codes: the contracts scripts and CI jobs depend on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest
from conftest import drain_terminal
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


# --- fleet reports ---------------------------------------------------------------------------


def _fleet(tmp_path, host_names: list[str]) -> list:
    """Real audits of two trees (one failing SSH, one clean) under the given host names,
    and an unreachable host: the reports a fleet audit hands to the renderers."""
    from dataclasses import replace

    from treeutil import hardened_root

    from checks.engine import audit_host
    from checks.fleet import not_audited
    from checks.hosts import LocalHost
    from checks.policy import load_policies
    from policies import builtin_policy

    policies = load_policies([builtin_policy("lapp-baseline")], {"office_networks": "10.0.0.0/8"})
    weak, clean = hardened_root(tmp_path / "weak"), hardened_root(tmp_path / "clean")
    (weak / "etc/ssh/sshd_config.d/10-cloud.conf").write_text("PasswordAuthentication yes\n")
    first, second, gone = host_names
    return [
        replace(audit_host(policies, LocalHost(root=str(weak))), host=first),
        replace(audit_host(policies, LocalHost(root=str(clean))), host=second),
        not_audited(gone, f"root@{gone}:22: No route to host", 0.0, 3.0),
    ]


def test_the_fleet_table_shows_the_worst_status_of_each_host_and_area(tmp_path):
    from checks.report import RENDERERS
    from checks.result import Severity

    long_name = "a-very-long-host-name-of-the-datacentre.example.org"
    text = RENDERERS["text"](
        _fleet(tmp_path, ["web1", long_name, "gone"]), fail_on=Severity.MEDIUM, fleet=True
    )
    assert text.index("lappguard audit of gone") < text.index("Fleet: 3 hosts, ")
    table = text[text.index("Fleet: 3 hosts") :].splitlines()
    header = table[1].split()
    rows = {
        line.split()[0]: dict(zip(header[1:], line.split()[1:], strict=True)) for line in table[2:5]
    }
    assert rows["web1"]["SSH"] == "FAIL" and rows["gone"]["HOST"] == "ERR"
    assert rows["gone"]["SSH"] == "-" and rows["web1"]["HOST"] == "-"
    (cut,) = (name for name in rows if name.startswith("a-very-long"))
    assert cut.endswith("~") and long_name.startswith(cut[:-1])
    assert all(len(line) <= 100 for line in table)


def test_a_local_report_has_no_fleet_table(tmp_path):
    from checks.report import RENDERERS
    from checks.result import Severity

    (local, *_) = _fleet(tmp_path, ["web1", "web2", "gone"])
    assert "Fleet:" not in RENDERERS["text"]([local], fail_on=Severity.MEDIUM)


def test_progress_is_drawn_on_a_terminal_and_nothing_on_a_pipe(tmp_path):
    from agent.commands.audit import FleetProgress
    from checks.report.summary import blocking_results
    from checks.result import Severity

    reports = _fleet(tmp_path, ["web1", "web2", "gone"])
    leader, follower = os.openpty()
    with os.fdopen(follower, "w") as terminal:
        progress = FleetProgress(len(reports), "medium", terminal)
        for report in reports:
            progress.done(report)
        progress.close()
    shown = drain_terminal(leader)
    failing = sum(bool(blocking_results([r], Severity.MEDIUM)) for r in reports)
    assert "audited 0/3 hosts, 0 failing" in shown.decode()
    assert f"audited 3/3 hosts, {failing} failing" in shown.decode()
    assert shown.endswith(b"\r\x1b[K")  # erased: the report follows on a clean line
    read, write = os.pipe()
    with os.fdopen(write, "w") as pipe:
        progress = FleetProgress(len(reports), "medium", pipe)
        progress.done(reports[0])
        progress.close()
    with os.fdopen(read) as drained:
        assert drained.read() == ""

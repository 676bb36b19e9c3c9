"""The command line's contract with scripts, CI jobs and systemd: every error path exits with
its documented code (agent/exits.py, README "Exit codes") and says what is wrong in one line,
never with a traceback; a failure of lappguard itself is never 1, the code for "findings"."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import FIXTURES, PROJECT_ROOT, lappguard_command, require_program, require_root

from agent import exits
from agent.cli import build_parser, main
from agent.commands import helptext

HARDENED = FIXTURES / "hardened-root"


def lappguard(*argv: str, env: dict | None = None, cwd: Path | None = None):
    return subprocess.run(
        [lappguard_command(), *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def one_line_error(done: subprocess.CompletedProcess, code: int) -> str:
    """The single stderr line of a failed command (asserting the code and no traceback)."""
    assert done.returncode == code, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("lappguard: "), done.stderr
    return lines[0]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --- program errors: exit 2, one line ------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "hint"),
    [
        ("FOO", "'FOO'"),
        ("ssh-001", "did you mean LAPP-SSH-001"),
        ("LAPP-SSH-999", "'LAPP-SSH-999'"),
        ("Web server", "'Web server'"),
    ],
)
def test_an_only_selector_that_matches_nothing_is_exit_2_with_the_known_names(selector, hint):
    line = one_line_error(lappguard("audit", "--root", str(HARDENED), "--only", selector), 2)
    assert hint in line
    assert "known areas: SSH, TLS, WEB (Apache)" in line and "LAPP-SSH-001..045" in line


@pytest.mark.parametrize(
    ("selector", "first"),
    [("ssh", "LAPP-SSH-001"), ("Apache", "LAPP-WEB-001"), ("apache", "LAPP-WEB-001"),
     ("firewall and blocking", "LAPP-FW-001"), ("lapp-pg-006", "LAPP-PG-006")],
)  # fmt: skip
def test_only_ignores_case_and_takes_the_reports_area_names(selector, first):
    done = lappguard("audit", "--root", str(HARDENED), "--only", selector, "--format", "json")
    assert done.returncode in (0, 1), done.stderr
    assert f'"id": "{first}"' in done.stdout


def test_output_into_a_missing_folder_or_onto_a_directory_is_exit_2(tmp_path):
    missing = one_line_error(
        lappguard("audit", "--root", str(HARDENED), "--output", str(tmp_path / "no/r.json")), 2
    )
    assert missing == f"lappguard: --output: {tmp_path / 'no'} is not a directory"
    directory = one_line_error(
        lappguard("audit", "--root", str(HARDENED), "--output", str(tmp_path)), 2
    )
    assert directory == f"lappguard: --output: {tmp_path} is a directory"


def test_output_onto_a_read_only_file_system_is_exit_2(tmp_path):
    require_root()
    unshare = require_program("unshare")
    target = tmp_path / "ro"
    target.mkdir()
    command = (
        f"mount -t tmpfs -o ro tmpfs {target} && exec {shlex.quote(lappguard_command())} audit "
        f"--root {shlex.quote(str(HARDENED))} --output {target}/report.json"
    )
    done = subprocess.run([unshare, "--mount", "--propagation", "private", "sh", "-c", command],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    line = one_line_error(done, 2)
    assert line == f"lappguard: --output: cannot write {target}/report.json: Read-only file system"


def test_output_replaces_the_report_whole(tmp_path):
    report = write(tmp_path / "audit.json", "the previous report")
    report.chmod(0o640)
    done = lappguard("audit", "--root", str(HARDENED), "--format", "json", "--output", str(report))
    assert done.returncode == 1 and done.stderr == ""
    assert report.read_text().startswith("{") and report.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["audit.json"]  # no temporary file left


def test_a_bad_var_value_is_one_error_not_two():
    line = one_line_error(
        lappguard("audit", "--root", str(HARDENED), "--var", "max_auth_tries=abc"), 2
    )
    assert line == "lappguard: --var: max_auth_tries: 'abc' is not a number"


def test_an_unknown_var_names_the_variables_there_are():
    line = one_line_error(
        lappguard("audit", "--root", str(HARDENED), "--var", "office=10.0.0.0/8"), 2
    )
    assert line.startswith("lappguard: --var: office: no loaded policy declares this variable")
    assert "office_networks" in line


def test_a_misspelled_config_key_is_refused_at_its_line(tmp_path):
    config = write(tmp_path / "agent.yaml", "state_dir: /var/lib/lappguard\nvariabels:\n  a: 1\n")
    line = one_line_error(lappguard("audit", "--config", str(config), "--root", str(HARDENED)), 2)
    assert line.startswith(f"lappguard: {config}:2: variabels: unknown key")


@pytest.mark.parametrize(
    ("body", "line", "field"),
    [
        (
            "audit:\n  vars:\n    max_auth_tries: 3\n    office: [10.0.0.0/8]\n",
            4,
            "audit.vars.office",
        ),
        ("variables:\n  office: [10.0.0.0/8]\n", 2, "variables.office"),
    ],
)
def test_an_unknown_variable_of_the_config_is_reported_at_its_line(tmp_path, body, line, field):
    config = write(tmp_path / "agent.yaml", body)
    error = one_line_error(lappguard("audit", "--config", str(config), "--root", str(HARDENED)), 2)
    assert error.startswith(f"lappguard: {config}:{line}: {field}: no loaded policy declares")


def test_a_bad_value_from_the_config_is_reported_at_its_line(tmp_path):
    config = write(tmp_path / "agent.yaml", "audit:\n  vars:\n    tls_min_version: '1.7'\n")
    error = one_line_error(lappguard("audit", "--config", str(config), "--root", str(HARDENED)), 2)
    assert error == (
        f"lappguard: {config}:3: audit.vars.tls_min_version: '1.7' is not one of 1.0, 1.1, 1.2, 1.3"
    )


def test_var_wins_over_the_config(tmp_path):
    config = write(tmp_path / "agent.yaml", "audit:\n  vars:\n    tls_min_version: '1.7'\n")
    done = lappguard(
        "audit", "--config", str(config), "--root", str(HARDENED), "--var", "tls_min_version=1.3",
        "--only", "LAPP-TLS-001", "--format", "json",
    )  # fmt: skip
    assert done.returncode == 1 and '"from": "--var"' in done.stdout


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["audit", "--root", "/nonexistent/tree"], "--root: /nonexistent/tree is not a directory"),
        (["audit", "--policy", "/nonexistent/p.yaml"], "/nonexistent/p.yaml: cannot read"),
        (["explain", "LAPP-XYZ-001"], "explain: no check or rule has the ID 'LAPP-XYZ-001'"),
        (["config", "validate", "/nonexistent/agent.yaml"], "/nonexistent/agent.yaml: cannot read"),
    ],
)
def test_input_errors_are_exit_2_in_one_line(argv, expected):
    assert one_line_error(lappguard(*argv), 2).startswith(f"lappguard: {expected}")


# --- fleet options: local and fleet options do not mix, exit 2 in one line -----------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--host", "web1", "--root", str(HARDENED)],
         "--root: cannot be combined with --host or --inventory"),
        (["--inventory", str(FIXTURES / "nonexistent.ini"), "--root", str(HARDENED)],
         "--root: cannot be combined with --host or --inventory"),
        (["--sudo"], "--sudo: only applies with --host or --inventory"),
        (["--root", str(HARDENED), "--limit", "web"],
         "--limit: only applies with --host or --inventory"),
        (["--accept-new-host-keys"], "--accept-new-host-keys: only applies with --host"),
        (["--host-timeout", "5"], "--host-timeout: only applies with --host"),
        (["--ssh-config", "/etc/ssh/ssh_config"], "--ssh-config: only applies with --host"),
        (["--identity", "id_ed25519"], "--identity: only applies with --host"),
        (["--host", "admin@"], "--host: 'admin@' is not [user@]host[:port]"),
        (["--host", "web1:99999"], "--host: 'web1:99999': the port must be 1-65535"),
        (["--host", "web1", "--limit", "db*"], "--limit: no host or group matches db*"),
        (["--host", "web1", "--ssh-config", "/nonexistent/config"],
         "--ssh-config: /nonexistent/config is not a file"),
        (["--host", "web1", "--identity", "/nonexistent/key"],
         "--identity: /nonexistent/key is not a file"),
        (["--host", "web1", "--only", "FOO"], "--only: no check ID or area"),
        (["--inventory", "/nonexistent/hosts.ini"], "/nonexistent/hosts.ini: cannot read"),
    ],
)  # fmt: skip
def test_fleet_option_errors_are_exit_2_in_one_line_before_connecting(argv, expected):
    assert one_line_error(lappguard("audit", *argv), 2).startswith(f"lappguard: {expected}")


def test_an_inventory_error_names_its_file_and_line(tmp_path):
    inventory = write(tmp_path / "hosts.ini", "[web]\nweb1 ansible_port=http\n")
    line = one_line_error(lappguard("audit", "--inventory", str(inventory)), 2)
    assert line.startswith(f"lappguard: {inventory}:2: ")


def test_the_fleet_default_of_jobs_is_the_engines():
    from agent.commands.audit import FLEET_JOBS
    from checks.fleet import DEFAULT_FLEET_WORKERS

    assert FLEET_JOBS == DEFAULT_FLEET_WORKERS


# --- usage errors: argparse's usage of the command at fault, exit 2 -------------------------


@pytest.mark.parametrize(
    ("argv", "usage", "error"),
    [
        (["audit", "--fail-on", "severe"], "lappguard audit", "choose from 'low', 'medium'"),
        (["audit", "--format", "xml"], "lappguard audit", "choose from 'json', 'junit'"),
        (["audit", "--color", "yes"], "lappguard audit", "choose from 'auto', 'always'"),
        (["audit", "--jobs", "0"], "lappguard audit", "'0' is not a whole number of 1 or more"),
        (
            ["audit", "--host", "web1", "--host-timeout", "-1"],
            "lappguard audit",
            "'-1' is not a number of seconds above 0",
        ),
        (["bans", "list", "--backend", "pf"], "lappguard bans list", "choose from 'nftables'"),
        (["policy", "valdate", "x.yaml"], "lappguard policy", "choose from 'validate'"),
        (["bans", "ad", "10.0.0.1"], "lappguard bans", "choose from 'list', 'add'"),
        (["bans"], "lappguard bans", "the following arguments are required: ACTION"),
        (["config"], "lappguard config", "the following arguments are required: ACTION"),
        (["policy"], "lappguard policy", "the following arguments are required: ACTION"),
    ],
)
def test_usage_errors_show_the_usage_of_the_command_at_fault(argv, usage, error):
    done = lappguard(*argv)
    assert done.returncode == exits.USAGE and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"usage: {usage} ")
    assert error in done.stderr.splitlines()[-1]


def test_no_command_prints_the_help_and_exits_2():
    done = lappguard()
    assert done.returncode == 2 and "commands:" in done.stderr and "exit codes:" in done.stderr


# --- failures of lappguard itself: exit 4, never 1 ------------------------------------------


def explode(args: argparse.Namespace) -> int:
    raise ZeroDivisionError("a bug\nover two lines")


def test_an_internal_error_is_exit_4_in_one_line_without_traceback(monkeypatch, capsys):
    from agent.commands import policy

    monkeypatch.setattr(policy, "run_types", explode)
    monkeypatch.delenv(exits.DEBUG_VARIABLE, raising=False)
    assert main(["policy", "types"]) == exits.INTERNAL
    error = capsys.readouterr().err
    assert error == (
        "lappguard: internal error: ZeroDivisionError: a bug\\nover two lines (a bug in "
        "lappguard; LAPPGUARD_DEBUG=1 prints the traceback)\n"
    )


def test_the_traceback_is_shown_when_asked_for(monkeypatch, capsys):
    from agent.commands import policy

    monkeypatch.setattr(policy, "run_types", explode)
    monkeypatch.setenv(exits.DEBUG_VARIABLE, "1")
    assert main(["policy", "types"]) == exits.INTERNAL
    error = capsys.readouterr().err
    assert "Traceback (most recent call last)" in error and "in explode" in error


def test_the_audit_service_counts_only_findings_as_success():
    unit = (PROJECT_ROOT / "systemd/lappguard-audit.service").read_text()
    assert "\nSuccessExitStatus=1\n" in unit  # 2 and 4 stay failures systemd reports


# --- pipes and signals ---------------------------------------------------------------------


def test_a_reader_that_goes_away_keeps_the_findings_code():
    """`lappguard audit | head -1` under pipefail: the pipeline still fails on findings."""
    command = f"{shlex.quote(lappguard_command())} audit --root {shlex.quote(str(HARDENED))}"
    done = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {command} | head -1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == exits.FINDINGS
    assert done.stdout.startswith("lappguard audit of root:") and done.stderr == ""


def test_a_closed_pipe_before_any_output_keeps_the_code_and_says_nothing():
    process = subprocess.Popen(
        [lappguard_command(), "audit", "--root", str(HARDENED), "--format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdout.close()  # nobody reads: every write fails with EPIPE
    _, error = process.communicate(timeout=120)
    assert process.returncode == exits.FINDINGS and error == b""


def test_a_closed_stdout_is_exit_2_unless_the_report_goes_to_a_file(tmp_path):
    def closed(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([lappguard_command(), *argv], stdout=None, stderr=subprocess.PIPE,
                              text=True, timeout=120, preexec_fn=lambda: os.close(1))  # fmt: skip

    line = one_line_error(closed("policy", "list"), 2)
    assert line == "lappguard: standard output is closed"
    report = tmp_path / "audit.json"
    done = closed("audit", "--root", str(HARDENED), "--format", "json", "--output", str(report))
    assert done.returncode == exits.FINDINGS and done.stderr == "" and report.stat().st_size


def test_ctrl_c_is_exit_130_in_one_line(tmp_path):
    process = subprocess.Popen(
        [lappguard_command(), "bans", "add", "--from-file", "-", "--state-dir", str(tmp_path),
         "--backend", "dry-run"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(1.5)  # reading stdin, which never ends
    process.send_signal(signal.SIGINT)
    _, error = process.communicate(timeout=60)
    assert process.returncode == exits.INTERRUPTED and error == "lappguard: interrupted\n"


# --- --help of every command ---------------------------------------------------------------

PATHS = list(helptext.commands(build_parser()))


@pytest.mark.parametrize("path", PATHS, ids=lambda path: path or "lappguard")
def test_every_help_has_examples_exit_codes_and_text_for_each_option(path):
    done = lappguard(*path.split(), "--help")
    assert done.returncode == 0 and done.stderr == ""
    assert "\nexamples:\n  lappguard" in done.stdout and "\nexit codes:\n  0 " in done.stdout
    command = helptext.commands(build_parser())[path]
    for action in command._actions:
        if not isinstance(action, argparse._SubParsersAction):
            assert action.help, f"lappguard {path}: {action.option_strings or action.dest}"


@pytest.mark.parametrize("path", sorted(helptext.HELP), ids=lambda path: path or "lappguard")
def test_every_help_example_is_a_valid_command_line(path):
    parser = build_parser()
    for example, _ in helptext.HELP[path].examples:
        argv = shlex.split(example)
        assert argv[0] == "lappguard"
        args = parser.parse_args(argv[1:])  # argparse exits on anything it does not know
        assert args.handler is not None


def test_every_exit_code_in_the_help_is_a_documented_one():
    documented = {exits.OK, exits.FINDINGS, exits.USAGE, exits.FIREWALL, exits.INTERNAL,
                  exits.INTERRUPTED}  # fmt: skip
    for entry in helptext.HELP.values():
        assert {int(line.split()[0]) for line in entry.exit_codes} <= documented
    assert exits.INTERNAL not in (exits.FINDINGS, exits.FIREWALL, exits.USAGE)


def test_the_scan_fast_path_shows_the_same_help_as_the_full_parser():
    """`lappguard scan` builds only its own parser (fast start); its help must not differ."""
    done = lappguard("scan", "--help")
    full = helptext.commands(build_parser())["scan"]
    assert done.stdout == full.format_help()
    assert f"\n  {exits.USAGE} usage or rule error" in done.stdout

"""LAPP-FILE-010 (core dumps): sysctl settings read as systemd-sysctl applies them, with
systemd's own ``systemd-analyze cat-config`` as the oracle for which files count and in
which order; systemd-coredump, pipes and hard limits; the running kernel's values."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import require_program
from treeutil import context

from agent.cli import main
from checks.types.kernel import sysctl_files

CHECK = "LAPP-FILE-010"
LIMITS = "*    hard    core    0\n"
SERVICES = "[Manager]\nDefaultLimitCORE=0\n"


def tree(root: Path, files: dict[str, str]) -> Path:
    for path, text in files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return root


def outcome(tmp_path: Path, root: Path) -> tuple[str, list[str]]:
    """Status and evidence (an error's reason, for an error) of the check on a tree."""
    report = tmp_path / "report.json"
    main(["audit", "--root", str(root), "--format", "json", "--output", str(report),
          "--only", CHECK])  # fmt: skip
    (result,) = json.loads(report.read_text())["hosts"][0]["results"]
    return result["status"], result["evidence"] or [result.get("reason", "")]


def hardened(root: Path, **more: str) -> Path:
    files = {
        "/etc/security/limits.conf": LIMITS,
        "/etc/systemd/system.conf": SERVICES,
        "/etc/sysctl.d/60-coredump.conf": "fs.suid_dumpable = 0\n",
    }
    return tree(root, {**files, **more})


def test_sysctl_files_are_the_ones_systemd_applies_in_its_order(tmp_path):
    analyze = require_program("systemd-analyze")  # the oracle (Debian package systemd)
    root = tree(
        tmp_path / "root",
        {
            "/usr/lib/sysctl.d/50-pid-max.conf": "kernel.pid_max = 4194304\n",
            "/usr/lib/sysctl.d/60-hidden.conf": "fs.suid_dumpable = 2\n",
            "/etc/sysctl.d/60-hidden.conf": "fs.suid_dumpable = 0\n",
            "/run/sysctl.d/70-runtime.conf": "kernel.core_pattern = core\n",
            "/usr/local/lib/sysctl.d/10-local.conf": "vm.swappiness = 10\n",
            "/etc/sysctl.d/README.sysctl": "not a .conf file: not read\n",
        },
    )
    shown = subprocess.run(
        [analyze, f"--root={root}", "cat-config", "sysctl.d"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    theirs = [line[2:].removeprefix(str(root)) for line in shown.splitlines()
              if line.startswith("# /")]  # fmt: skip
    assert sysctl_files(context(root)) == theirs
    assert theirs == [
        "/usr/local/lib/sysctl.d/10-local.conf",
        "/usr/lib/sysctl.d/50-pid-max.conf",
        "/etc/sysctl.d/60-hidden.conf",
        "/run/sysctl.d/70-runtime.conf",
    ]


def test_hard_limits_for_sessions_and_services_and_suid_dumpable_0_pass(tmp_path):
    status, evidence = outcome(tmp_path, hardened(tmp_path / "root"))
    assert status == "pass", evidence
    assert "fs.suid_dumpable = 0 (/etc/sysctl.d/60-coredump.conf:1)" in evidence


def test_the_last_assignment_in_systemd_order_wins(tmp_path):
    root = hardened(tmp_path / "root", **{"/etc/sysctl.d/90-debug.conf": "fs/suid_dumpable=2\n"})
    status, evidence = outcome(tmp_path, root)
    assert status == "fail"
    assert evidence[0] == "fs.suid_dumpable = 2 at boot: privileged processes dump"
    assert "fs.suid_dumpable = 2 (/etc/sysctl.d/90-debug.conf:1)" in evidence


def test_a_stock_debian_tree_fails_on_both_hard_limits(tmp_path):
    stock = {
        "/etc/security/limits.conf": "#*  soft  core  0\n",
        "/etc/systemd/system.conf": "[Manager]\n#DefaultLimitCORE=\n",
    }
    root = tree(tmp_path / "root", stock)
    status, evidence = outcome(tmp_path, root)
    assert status == "fail"
    assert evidence[:2] == [
        "login sessions: no '* hard core 0' in /etc/security/limits.conf",
        "services: DefaultLimitCORE is not set (systemd allows raising it)",
    ]


def test_a_later_limits_file_raising_the_session_limit_fails(tmp_path):
    root = hardened(
        tmp_path / "root", **{"/etc/security/limits.d/90-dev.conf": "* - core unlimited\n"}
    )
    status, evidence = outcome(tmp_path, root)
    assert status == "fail"
    assert (
        evidence[0]
        == "login sessions may dump unlimited blocks (/etc/security/limits.d/90-dev.conf:1)"
    )


@pytest.mark.parametrize(
    ("dropin", "status"),
    [("", "fail"), ("[Coredump]\nStorage=none\nProcessSizeMax=0\n", "pass"),
     ("[Coredump]\nStorage=none\n", "fail")],
)  # fmt: skip
def test_systemd_coredump_must_throw_cores_away(tmp_path, dropin, status):
    handler = "|/lib/systemd/systemd-coredump %P %u %g %s %t 9223372036854775808 %h"
    files = {
        "/usr/lib/sysctl.d/50-coredump.conf": f"kernel.core_pattern={handler}\n",
        "/etc/systemd/coredump.conf": "[Coredump]\n#Storage=external\n",
    }
    if dropin:
        files["/etc/systemd/coredump.conf.d/60-off.conf"] = dropin
    found, evidence = outcome(tmp_path, tree(tmp_path / "root", files))
    assert found == status, evidence
    if status == "fail":
        assert evidence[0] == "systemd-coredump keeps cores: set Storage=none and ProcessSizeMax=0"


def test_a_pipe_to_another_handler_fails_and_to_false_passes(tmp_path):
    apport = {
        "/etc/sysctl.d/60-apport.conf": "kernel.core_pattern = |/usr/share/apport/apport %p\n"
    }
    status, evidence = outcome(tmp_path, tree(tmp_path / "a", apport))
    assert status == "fail"
    assert evidence[0] == "cores are handed to /usr/share/apport/apport, which may keep them"
    false = {"/etc/sysctl.d/60-off.conf": "kernel.core_pattern = |/bin/false\n"}
    assert outcome(tmp_path, tree(tmp_path / "b", false))[0] == "pass"


def test_a_sysctl_file_that_cannot_be_read_is_an_error_not_a_pass(tmp_path):
    root = hardened(tmp_path / "root")
    (root / "etc/sysctl.d/70-odd.conf").mkdir()  # globbed as a file, read as a directory
    status, evidence = outcome(tmp_path, root)
    assert (status, evidence) == ("error", ["/etc/sysctl.d/70-odd.conf: Is a directory"])


def test_the_running_kernel_is_read_as_sysctl_reads_it(tmp_path):
    sysctl = require_program("sysctl")  # the oracle (Debian package procps)
    report = tmp_path / "report.json"
    main(["audit", "--format", "json", "--output", str(report), "--only", CHECK])
    (result,) = json.loads(report.read_text())["hosts"][0]["results"]
    ask = [sysctl, "-n", "fs.suid_dumpable", "kernel.core_pattern"]
    dumpable, pattern = subprocess.run(
        ask, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert (
        f"now: fs.suid_dumpable = {dumpable}, kernel.core_pattern = {pattern}" in result["evidence"]
    )

"""The baseline's hygiene checks that need no check type of their own: legacy clear-text
services (packages and running daemons) and debsums, passing and failing, as shipped."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import require_program
from treeutil import make_tree

from checks.engine import audit_host
from checks.hosts import CachedHost, LocalHost, ProcessInfo
from checks.policy import load_policy
from policies import builtin_policy


def outcome(host, check_id: str) -> tuple[str, tuple[str, ...]]:
    policy = load_policy(builtin_policy("lapp-baseline"))
    (result,) = audit_host([policy], host, only=lambda c: c.id == check_id).results
    return result.status.value, result.evidence


def status_file(*names: str) -> str:
    return "\n".join(
        f"Package: {name}\nStatus: install ok installed\nVersion: 1.0-1\n"
        for name in ("base-files", *names)
    )


@pytest.mark.parametrize(
    ("check_id", "installed", "status", "evidence"),
    [
        ("LAPP-SVC-014", (), "pass", None),
        ("LAPP-SVC-014", ("openbsd-inetd", "tftpd-hpa"), "fail",
         ("openbsd-inetd 1.0-1 installed", "tftpd-hpa 1.0-1 installed")),
        ("LAPP-SVC-015", (), "pass", None),
        ("LAPP-SVC-015", ("telnet",), "fail", ("telnet 1.0-1 installed",)),
    ],
)  # fmt: skip
def test_legacy_service_packages(tmp_path, check_id, installed, status, evidence):
    make_tree(tmp_path, {"/var/lib/dpkg/status": status_file(*installed)})
    found = outcome(LocalHost(str(tmp_path)), check_id)
    assert found[0] == status
    if evidence:
        assert found[1] == evidence


class OnlyProcess(LocalHost):
    """This machine showing one process of the test's (the developer's own daemons, and
    other tests', are not judged)."""

    def __init__(self, pid: int | None):
        super().__init__()
        self._pid = pid

    def processes(self) -> list[ProcessInfo]:
        return [p for p in super().processes() if p.pid == self._pid]


def test_a_running_legacy_daemon_fails(tmp_path):
    """A real process named in.tftpd (a copy of sleep: the name is what the check sees)."""
    daemon = tmp_path / "in.tftpd"
    shutil.copy(require_program("sleep"), daemon)
    process = subprocess.Popen([str(daemon), "30"])
    try:
        running = outcome(CachedHost(OnlyProcess(process.pid)), "LAPP-SVC-016")
    finally:
        process.kill()
        process.wait()
    assert running == ("fail", (f"pid {process.pid} in.tftpd (root): {daemon} 30",))
    stopped = outcome(CachedHost(OnlyProcess(process.pid)), "LAPP-SVC-016")
    assert stopped[0] == "pass"


@pytest.mark.parametrize(
    ("default", "status"),
    [("CRON_CHECK=weekly\n", "pass"), ('CRON_CHECK="daily"\n', "pass"),
     ("CRON_CHECK=never\n", "fail"), (None, "fail")],
)  # fmt: skip
def test_debsums_runs_from_cron(tmp_path: Path, default, status):
    files = {"/var/lib/dpkg/status": status_file("debsums")}
    if default is not None:
        files["/etc/default/debsums"] = "# Defaults for debsums cron jobs\n" + default
    make_tree(tmp_path, files)
    assert outcome(LocalHost(str(tmp_path)), "LAPP-PATCH-014")[0] == status

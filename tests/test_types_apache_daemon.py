"""The Apache daemon checks of dev-sec apache-baseline and Lynis HTTP-6640: Apache runs
(LAPP-WEB-021), starts at boot (022), has exactly one root-owned process (023, on real
Apache servers), serves as www-data (024, 025) and loads mod_evasive (026). Each has its
passing and failing form; the hardened tree passes the configuration ones."""

from __future__ import annotations

import os
from contextlib import ExitStack
from pathlib import Path

import pytest
from conftest import require_root
from servers import RunningServer, ServersOnlyHost, run_apache_ssl
from treeutil import context, hardened_root

from checks.hosts import CachedHost, ProcessInfo
from checks.policy import load_policy
from checks.result import Status, Verdict
from checks.types.base import CheckContext
from policies import builtin_policy

ETC = "etc/apache2"
WANTS = "etc/systemd/system/multi-user.target.wants/apache2.service"
POLICY = load_policy(builtin_policy("lapp-baseline"))
CHECKS = {check.id: check for check in POLICY.checks}


def run(cid: str, ctx: CheckContext) -> Verdict:
    return CHECKS[cid].implementation.run(ctx)


def on_tree(root: Path, cid: str) -> Verdict:
    return run(cid, context(root, dict(POLICY.values)))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    require_root()
    return hardened_root(tmp_path)


def test_the_hardened_tree_passes(root: Path) -> None:
    verdicts = {cid: on_tree(root, cid) for cid in ("LAPP-WEB-022", "LAPP-WEB-024",
                                                    "LAPP-WEB-025", "LAPP-WEB-026")}  # fmt: skip
    assert {cid: v.status for cid, v in verdicts.items()} == dict.fromkeys(verdicts, Status.PASS)
    assert verdicts["LAPP-WEB-022"].evidence == (f"apache2.service enabled (/{WANTS})",)
    assert verdicts["LAPP-WEB-024"].evidence == (
        f"server level: User 'www-data' at /{ETC}/apache2.conf:116",
    )
    assert verdicts["LAPP-WEB-026"].evidence[-1] == "evasive20_module loaded"


def test_apache_not_enabled_or_masked_fails(root: Path) -> None:
    (root / WANTS).unlink()
    verdict = on_tree(root, "LAPP-WEB-022")
    assert (verdict.status, verdict.evidence) == (
        Status.FAIL,
        ("apache2.service not enabled", "httpd.service not enabled"),
    )
    (root / WANTS).symlink_to("/lib/systemd/system/apache2.service")
    (root / "etc/systemd/system/apache2.service").symlink_to("/dev/null")  # systemctl mask
    assert on_tree(root, "LAPP-WEB-022").status is Status.FAIL


@pytest.mark.parametrize(
    ("variable", "value", "cid", "problem"),
    [
        ("APACHE_RUN_USER", "root", "LAPP-WEB-024", "User is 'root', expected 'www-data'"),
        ("APACHE_RUN_GROUP", "ssl-cert", "LAPP-WEB-025",
         "Group is 'ssl-cert', expected 'www-data'"),
    ],
)  # fmt: skip
def test_another_user_or_group_fails(
    root: Path, variable: str, value: str, cid: str, problem: str
) -> None:
    envvars = root / ETC / "envvars"
    envvars.write_text(envvars.read_text().replace(f"{variable}=www-data", f"{variable}={value}"))
    verdict = on_tree(root, cid)
    line = 116 if cid == "LAPP-WEB-024" else 117
    assert (verdict.status, verdict.evidence) == (
        Status.FAIL,
        (f"server level: {problem} at /{ETC}/apache2.conf:{line}",),
    )


def test_user_unset_is_httpds_default_and_fails(root: Path) -> None:
    conf = root / ETC / "apache2.conf"
    conf.write_text(conf.read_text().replace("User ${APACHE_RUN_USER}", ""))
    verdict = on_tree(root, "LAPP-WEB-024")
    assert verdict.status is Status.FAIL
    assert verdict.evidence[0].endswith("(not set: httpd's default)")


def test_without_mod_evasive_fails(root: Path) -> None:
    os.unlink(root / ETC / "mods-enabled/evasive.load")
    verdict = on_tree(root, "LAPP-WEB-026")
    assert verdict.status is Status.FAIL
    assert verdict.evidence[-1] == "none of evasive20_module, evasive24_module is loaded"


class ApacheOnlyHost(ServersOnlyHost):
    """This machine, showing only the test's own Apache servers' processes (and sockets),
    so the developer's Apache or another test's is not counted."""

    def __init__(self, *servers: RunningServer):
        super().__init__(*servers)
        self._ours = set().union(*(server.pids() for server in servers))

    def processes(self) -> list[ProcessInfo]:
        return [p for p in super().processes() if p.pid in self._ours]


def live(*servers: RunningServer) -> CheckContext:
    return CheckContext(CachedHost(ApacheOnlyHost(*servers)), dict(POLICY.values))


def test_one_running_apache_passes_both_daemon_checks(tmp_path: Path) -> None:
    with run_apache_ssl(tmp_path) as apache:
        running, parents = run("LAPP-WEB-021", live(apache)), run("LAPP-WEB-023", live(apache))
        children = len(apache.pids()) - 1
    assert running.status is Status.PASS
    assert running.evidence[0].startswith(f"pid {apache.pid} apache2 (root): ")
    assert parents.status is Status.PASS
    assert parents.evidence[0] == (
        f"1 of {children + 1} processes matching an Apache daemon (apache2 or httpd) run as root"
    )
    assert sum("(www-data)" in line for line in parents.evidence) == children > 0


def test_no_apache_process_fails_both() -> None:
    expected = (Status.FAIL, ("no process matches an Apache daemon (apache2 or httpd)",))
    for cid in ("LAPP-WEB-021", "LAPP-WEB-023"):
        verdict = run(cid, live())
        assert (verdict.status, verdict.evidence) == expected


def test_two_root_owned_apache_processes_fail(tmp_path: Path) -> None:
    with ExitStack() as stack:
        first = stack.enter_context(run_apache_ssl(tmp_path))
        second = stack.enter_context(run_apache_ssl(tmp_path))
        verdict = run("LAPP-WEB-023", live(first, second))
        total = len(first.pids() | second.pids())
    assert verdict.status is Status.FAIL
    assert verdict.evidence[0] == (
        f"2 of {total} processes matching an Apache daemon (apache2 or httpd) run as root,"
        " expected exactly 1"
    )

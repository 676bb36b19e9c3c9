"""Regressions through the real command line: `lappguard audit --root` of a hostile tree.

Links that climb or jump out of the tree (chains, ``../``, absolute targets, a directory
in the middle of a path, globs across them) find nothing outside: the check ends as it
would if the outside did not exist, and no byte or name from outside reaches the report.
FIFOs, devices and huge files end as ``error`` with the reason, without hanging. A dpkg
database that is not one is an error, not "nothing installed".

Every audit runs in a child with a time limit, so a FIFO that blocked it fails a test
instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import require_root
from treeutil import Outside, hardened_root, replace_with_link

from checks.rootfs import MAX_READ_BYTES

SSH_CHECKS = [f"LAPP-SSH-00{n}" for n in range(1, 8)]
#: Gated by a package alone (sudo, auditd): only dpkg can answer.
PACKAGE_GATED = ["LAPP-FILE-003", "LAPP-LOG-004", "LAPP-LOG-006"]
#: Gated by ``installed: sshd``, ``postgresql`` or ``apache``: the configuration answers what
#: dpkg cannot.
CONFIG_GATED = [*SSH_CHECKS, "LAPP-PG-001", "LAPP-PG-002", "LAPP-TLS-001", "LAPP-WEB-002"]


@dataclass(frozen=True)
class Audit:
    code: int
    results: dict[str, dict]
    output: str  # everything the command printed, report and diagnostics

    def status(self, check_id: str) -> tuple[str, str]:
        return self.results[check_id]["status"], self.results[check_id]["reason"]

    def comparable(self) -> dict[str, tuple]:
        """What a check concluded, without its timing."""
        return {
            i: (r["status"], r["reason"], tuple(r["evidence"])) for i, r in self.results.items()
        }


def run_audit(*args: str) -> Audit:
    """`lappguard audit --format json ARGS` in a child, with a time limit."""
    done = subprocess.run(
        [sys.executable, "-m", "agent.cli", "audit", "--format", "json", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    results = json.loads(done.stdout)["hosts"][0]["results"]
    return Audit(done.returncode, {r["id"]: r for r in results}, done.stdout + done.stderr)


def audit_cli(root: Path) -> Audit:
    """The baseline policy over the tree, with the variables the hardened tree satisfies."""
    variables = ("--var", "office_networks=10.0.0.0/8", "--var", "backup_dir=/srv/backup")
    return run_audit("--root", str(root), *variables)


def host_shadow_lines() -> list[str]:
    return [line for line in Path("/etc/shadow").read_text().splitlines() if line.strip()]


@pytest.mark.parametrize(
    "target", ["/etc/shadow", "../../../../../../../../../../etc/shadow", "/../../etc/shadow"]
)
def test_a_chain_of_links_to_the_hosts_shadow_reads_nothing_of_it(tmp_path, target):
    require_root()
    root = hardened_root(tmp_path)
    (root / "etc/shadow").unlink()  # the tree's own shadow would be found, and rightly read
    replace_with_link(root, "etc/ssh/sshd_config", "hop1")
    (root / "etc/ssh/hop1").symlink_to("./sub/../hop2")
    (root / "etc/ssh/sub").mkdir()
    (root / "etc/ssh/hop2").symlink_to(target)
    audit = audit_cli(root)
    for check in SSH_CHECKS:
        assert audit.status(check) == (
            "error",
            "cannot read /etc/ssh/sshd_config: /etc/ssh/sshd_config: No such file or directory",
        )
    for line in host_shadow_lines():
        assert line not in audit.output
    assert audit.code == 1


def escape_cases(outside: Outside) -> dict[str, dict[str, str]]:
    """Links (tree path -> target) that would reach ``outside`` if followed on the host."""
    return {
        "absolute link chain to a file outside": {
            "etc/ssh/sshd_config": "hop",
            "etc/ssh/hop": str(outside.path / "sshd_config"),
        },
        "climbing link to a file outside": {"etc/ssh/sshd_config": outside.climb("sshd_config")},
        "directory link in the middle of the path": {"etc/ssh": str(outside.path / "ssh")},
        "climbing directory link for the drop-ins": {
            "etc/ssh/sshd_config.d": outside.climb("dropins"),
        },
        "backup directory linked outside (stat and listing)": {
            "srv/backup": str(outside.path / "backups"),
        },
    }


EXPECTED = {
    "absolute link chain to a file outside": ("LAPP-SSH-001", "error", "No such file"),
    "climbing link to a file outside": ("LAPP-SSH-001", "error", "No such file"),
    "directory link in the middle of the path": ("LAPP-SSH-001", "error", "No such file"),
    # the hardening drop-in is not found, so sshd's defaults apply (and fail)
    "climbing directory link for the drop-ins": ("LAPP-SSH-006", "fail", ""),
    "backup directory linked outside (stat and listing)": ("LAPP-BAK-004", "error", "No such"),
}


@pytest.mark.parametrize("case", list(EXPECTED))
def test_links_out_of_the_tree_find_only_what_is_inside(tmp_path, case):
    outside = Outside.plant(tmp_path)
    root = hardened_root(tmp_path)
    for path, target in escape_cases(outside)[case].items():
        replace_with_link(root, path, target)
    audit = audit_cli(root)
    check, status, reason = EXPECTED[case]
    assert audit.results[check]["status"] == status
    assert reason in audit.results[check]["reason"]
    assert outside.leaks(audit.output, audit.results.values()) == []
    # the outside changes nothing: the same audit without it concludes the same
    shutil.rmtree(outside.path)
    assert audit_cli(root).comparable() == audit.comparable()


def test_globs_across_linked_directories_and_up_with_dotdot_stay_inside(tmp_path):
    outside = Outside.plant(tmp_path)
    root = hardened_root(tmp_path)
    escape = root / "etc/ssh/escape"
    escape.mkdir()
    (escape / "up").symlink_to(outside.climb("dropins"))
    (escape / "abs").symlink_to(outside.path / "dropins")
    (escape / "parent").symlink_to("..")
    dotdots = "/etc/ssh/" + "../" * 12 + str(outside.path / "dropins").lstrip("/")
    config = root / "etc/ssh/sshd_config"
    config.write_text(
        f"Include /etc/ssh/escape/*/*.conf\nInclude {dotdots}/*.conf\n"
        "Include /etc/ssh/escape/parent/../../../../*/ssh/sshd_config.d/*.conf\n"
        + config.read_text()
    )
    audit = audit_cli(root)
    # the outside drop-in would turn password logins on: inside, the hardened one rules
    assert audit.status("LAPP-SSH-001")[0] == "pass"
    assert audit.status("LAPP-SSH-006")[0] == "pass"
    assert outside.leaks(audit.output, audit.results.values()) == []
    shutil.rmtree(outside.path)
    assert audit_cli(root).comparable() == audit.comparable()


def make_fifo(root: Path, path: str) -> None:
    where = root / path
    where.unlink(missing_ok=True)
    where.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(where)


FIFO_CASES = {
    "etc/ssh/sshd_config": ("LAPP-SSH-001", "/etc/ssh/sshd_config: not a regular file (a FIFO)"),
    "etc/apache2/conf-enabled/zz-fifo.conf": (
        "LAPP-WEB-002",
        "/etc/apache2/conf-enabled/zz-fifo.conf: not a regular file (a FIFO)",
    ),
    "var/lib/dpkg/status": (
        "LAPP-LOG-004",  # gated by the auditd package alone
        "cannot list installed packages: /var/lib/dpkg/status: not a regular file (a FIFO)",
    ),
}


@pytest.mark.parametrize("path", list(FIFO_CASES))
def test_a_fifo_where_a_file_belongs_is_an_error_not_a_hang(tmp_path, path):
    root = hardened_root(tmp_path)
    make_fifo(root, path)
    audit = audit_cli(root)
    check, reason = FIFO_CASES[path]
    status, why = audit.status(check)
    assert status == "error" and reason in why
    assert audit.code == 1


def test_devices_linked_as_configuration_are_refused_unopened(tmp_path):
    """/dev/zero would never end and /dev/urandom never repeat: a device made inside the
    tree (as a hostile image may hold) and linked as sshd_config or an Apache include."""
    require_root()
    root = hardened_root(tmp_path)
    (root / "dev").mkdir()
    os.mknod(root / "dev/zero", stat.S_IFCHR | 0o666, os.makedev(1, 5))
    os.mknod(root / "dev/urandom", stat.S_IFCHR | 0o666, os.makedev(1, 9))
    replace_with_link(root, "etc/ssh/sshd_config", "/dev/zero")
    (root / "etc/apache2/conf-enabled/zz-random.conf").symlink_to("../../../dev/urandom")
    audit = audit_cli(root)
    assert audit.status("LAPP-SSH-001") == (
        "error",
        "cannot read /etc/ssh/sshd_config: "
        "/etc/ssh/sshd_config: not a regular file (a character device)",
    )
    status, reason = audit.status("LAPP-WEB-002")
    assert status == "error"
    assert "zz-random.conf: not a regular file (a character device)" in reason


def test_a_huge_sparse_sshd_config_is_refused_by_its_size(tmp_path):
    root = hardened_root(tmp_path)
    size = 64 * 1024**3  # 64 GiB of holes: nothing on disk, endless to read
    os.truncate(root / "etc/ssh/sshd_config", size)
    audit = audit_cli(root)
    assert audit.status("LAPP-SSH-001") == (
        "error",
        "cannot read /etc/ssh/sshd_config: "
        f"/etc/ssh/sshd_config: file too large ({size} bytes, limit {MAX_READ_BYTES})",
    )


def test_the_live_host_refuses_fifos_and_devices_too(tmp_path):
    """Without --root: the same refusal for a FIFO and for the host's /dev/zero."""
    (tmp_path / "fifo.conf").parent.mkdir(exist_ok=True)
    os.mkfifo(tmp_path / "fifo.conf")
    (tmp_path / "zero.conf").symlink_to("/dev/zero")
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        textwrap.dedent(f"""
        id: special-files
        title: Special files where configuration belongs
        version: "1"
        checks:
          - id: LAPP-SVC-901
            title: a FIFO
            severity: high
            remediation: replace it with a file
            type: file_content
            params: {{paths: ["{tmp_path}/fifo.conf"], pattern: x}}
          - id: LAPP-SVC-902
            title: a device
            severity: high
            remediation: replace it with a file
            type: file_content
            params: {{paths: ["{tmp_path}/zero.conf"], pattern: x}}
        """)
    )
    audit = run_audit("--policy", str(policy))
    results = audit.results
    assert results["LAPP-SVC-901"]["status"] == "error"
    assert "fifo.conf: not a regular file (a FIFO)" in results["LAPP-SVC-901"]["evidence"][0]
    assert results["LAPP-SVC-902"]["status"] == "error"
    assert "zero.conf: not a regular file (a character device)" in " ".join(
        results["LAPP-SVC-902"]["evidence"]
    )
    assert audit.code == 1


@pytest.mark.parametrize(
    "content",
    [b"", b"\n\n", b"garbage\x00\xff not a database\n", b"<html><body>404</body></html>\n"],
    ids=["empty", "blank lines", "binary garbage", "an html page"],
)
def test_a_dpkg_status_that_is_no_database_errors_every_package_gated_check(tmp_path, content):
    root = hardened_root(tmp_path)
    (root / "var/lib/dpkg/status").write_bytes(content)
    audit = audit_cli(root)
    for check in PACKAGE_GATED:
        status, reason = audit.status(check)
        assert status == "error", (check, status, reason)
        assert reason.startswith(
            "cannot tell whether the check applies: cannot list installed packages: "
            "/var/lib/dpkg/status"
        )
    for check in CONFIG_GATED:
        assert audit.status(check) == ("pass", ""), check
    assert audit.code == 1


def test_a_dpkg_status_with_nothing_installed_skips_the_package_gated_checks(tmp_path):
    root = hardened_root(tmp_path)
    (root / "var/lib/dpkg/status").write_text(
        "Package: openssh-server\nStatus: purge ok not-installed\n\n"
        "Package: apache2\nStatus: deinstall ok config-files\nVersion: 2.4.62-1\n"
    )
    audit = audit_cli(root)
    assert audit.status("LAPP-LOG-004") == ("skip", "auditd not installed")
    # the package purged, its sshd_config still there (sshd built from source, say): judged
    assert audit.status("LAPP-SSH-001") == ("pass", "")
    # apache2 removed with its configuration kept: what a reinstall would serve is judged
    assert audit.status("LAPP-WEB-002") == ("pass", "")

"""Locked accounts (LAPP-AUTH-017), deleted files in use (LAPP-LOG-007), syslog-ng's
configuration (LAPP-LOG-008) and Snoopy (LAPP-LOG-011): exact outcomes on host trees, and
on this live machine where the check reads /proc or runs a program."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import require_root
from servers import run_check
from treeutil import context, dpkg_status, make_tree

from checks.engine import audit_host
from checks.hosts import LocalHost
from checks.policy import load_policy
from checks.result import Status
from checks.types.accounts import AccountsCheck
from checks.types.system import CommandCheck, DeletedFilesCheck
from policies import builtin_policy

TODAY = int(time.time() // 86400)
PASSWD = """\
root:x:0:0:root:/root:/bin/bash
backup:x:34:34:backup:/var/backups:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
old:x:999:999::/home/old:/bin/bash
alice:x:1000:1000::/home/alice:/bin/bash
deploy:x:1001:1001::/home/deploy:/bin/bash
bob:x:1002:1002::/home/bob:/bin/bash
carol:x:1003:1003::/home/carol:/bin/bash
dave:x:1004:1004::/home/dave:/bin/bash
erin:x:1005:1005::/home/erin:/bin/bash
"""
SHADOW = f"""\
root:!$y$j9T$abc$def:19700:0:99999:7:::
backup:*:19700:0:99999:7:::
nobody:!$6$salt$hash:19700:0:99999:7:::
old:!$6$salt$hash:19700:0:99999:7:::
alice:$y$j9T$abc$def:19700:0:365:7:::
deploy:!:19700:0:99999:7:::
bob:!$y$j9T$abc$def:19700:0:99999:7:::
carol:!$y$j9T$abc$def:19700:0:99999:7::1:
dave:!*:19700:0:99999:7:::
erin:!!$y$j9T$abc$def:19700:0:99999:7::{TODAY + 30}:
"""


def locked(tmp_path: Path, passwd: str, shadow: str):
    files = {"/etc/passwd": passwd, "/etc/shadow": shadow}
    root = make_tree(tmp_path, {**files, "/etc/group": "root:x:0:\n", "/etc/gshadow": "root:*::\n"})
    return run_check(AccountsCheck, {"aspect": "locked_accounts"}, context(root))


def test_a_password_locked_account_open_to_keys_fails(tmp_path):
    verdict = locked(tmp_path, PASSWD, SHADOW)
    # root, system accounts and nobody are not user accounts; alice's password is usable;
    # deploy and dave never had one (key-only); carol is expired
    assert (verdict.status, verdict.evidence) == (
        Status.FAIL,
        (
            "/etc/shadow:7: bob: password locked (!$y$...) but the account never expires: an "
            "SSH key still logs it in (usermod --expiredate 1 bob)",
            f"/etc/shadow:10: erin: password locked (!!$y...) but the account expires on day "
            f"{TODAY + 30}: an SSH key still logs it in (usermod --expiredate 1 erin)",
        ),
    )


def test_expired_key_only_and_unshadowed_accounts(tmp_path):
    expired = SHADOW.replace("bob:!$y$j9T$abc$def:19700:0:99999:7:::", "bob:!$y$x:1:0:9:7::1:")
    expired = expired.replace(f"::{TODAY + 30}:", f"::{TODAY}:")  # expires today: expired
    verdict = locked(tmp_path / "a", PASSWD, expired)
    assert (verdict.status, verdict.evidence) == (
        Status.PASS,
        ("locked accounts: 10 in /etc/passwd, 10 in /etc/shadow, 1 in /etc/group, "
         "1 in /etc/gshadow",),
    )  # fmt: skip
    # no shadow line: the hash in /etc/passwd itself is what passwd -S reads
    verdict = locked(tmp_path / "b", "frank:!$6$s$h:1010:1010::/home/frank:/bin/sh\n", "")
    assert verdict.status is Status.FAIL
    assert verdict.evidence[0].startswith("/etc/passwd:1: frank: password locked (!$6$...)")


# --- deleted files in use --------------------------------------------------------------------


def proc_tree(root: Path, processes: dict[int, tuple[str, dict[str, str]]]) -> Path:
    """A /proc with each process's comm and its exe and fd links (name -> target)."""
    files = {f"/proc/{pid}/comm": f"{comm}\n" for pid, (comm, _) in processes.items()}
    links = {f"/proc/{pid}/{name}": target for pid, (_, held) in processes.items()
             for name, target in held.items()}  # fmt: skip
    make_tree(root, files, links=links)
    for pid in processes:
        (root / f"proc/{pid}/fd").mkdir(exist_ok=True)
    return root


def test_deleted_files_from_proc(tmp_path):
    processes = {
        1: ("systemd", {"exe": "/usr/lib/systemd/systemd", "fd/3": "/memfd:x (deleted)"}),
        2: ("kthreadd", {}),
        812: ("apache2", {
            "exe": "/usr/sbin/apache2 (deleted)",
            "fd/2": "/var/log/apache2/error.log",
            "fd/7": "/var/log/apache2/access.log.1 (deleted)",
            "fd/8": "socket:[1234]",
            "fd/9": "/tmp/#4711 (deleted)",
        }),
    }  # fmt: skip
    verdict = run_check(DeletedFilesCheck, {}, context(proc_tree(tmp_path / "a", processes)))
    assert (verdict.status, verdict.evidence) == (
        Status.FAIL,
        (
            "pid 812 (apache2) runs: /usr/sbin/apache2",
            "pid 812 (apache2) holds: /var/log/apache2/access.log.1",
        ),
    )
    del processes[812]
    verdict = run_check(DeletedFilesCheck, {}, context(proc_tree(tmp_path / "b", processes)))
    assert (verdict.status, verdict.evidence) == (
        Status.PASS,
        ("no deleted file is in use",),
    )


def test_a_live_process_holding_a_deleted_file_is_found(tmp_path):
    require_root()  # every process's descriptors
    log = tmp_path / "app.log"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import os,sys,time; f=open({str(log)!r},'w'); "
         f"os.unlink({str(log)!r}); print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline() == "ready\n"
        verdict = run_check(DeletedFilesCheck, {}, context())  # by find(1)
        ctx = context()
        by_find, _ = DeletedFilesCheck({})._found(ctx)
        walked, _ = DeletedFilesCheck({})._walked(ctx)  # link by link, as on a host without find
    finally:
        holder.kill()
        holder.wait()
    assert verdict.status is Status.FAIL
    # the name in parentheses is the interpreter's (python3, or python3.11)
    assert any(e.startswith(f"pid {holder.pid} (") and e.endswith(f") holds: {log}")
               for e in verdict.evidence), verdict.evidence  # fmt: skip
    mine = (str(holder.pid), "holds", str(log))
    assert mine in by_find and mine in walked


# --- syslog-ng and Snoopy ---------------------------------------------------------------------


def baseline_check(check_id: str):
    policy = load_policy(builtin_policy("lapp-baseline"))
    return next(check for check in policy.checks if check.id == check_id)


def audit_tree(root: Path, check_id: str):
    policy = load_policy(builtin_policy("lapp-baseline"))
    report = audit_host([policy], LocalHost(root=str(root)), only=lambda c: c.id == check_id)
    (result,) = report.results
    return result


@pytest.mark.parametrize(
    ("exit_code", "status"), [(0, Status.PASS), (1, Status.FAIL)], ids=["valid", "broken"]
)
def test_syslog_ng_syntax_check_runs_syslog_ng(tmp_path, monkeypatch, exit_code, status):
    """The policy's command, run live: syslog-ng (not installed on the test machine) is a
    stand-in script here that answers as ``syslog-ng --syntax-only`` does."""
    argv = list(baseline_check("LAPP-LOG-008").implementation.params["argv"])
    stand_in = tmp_path / "syslog-ng"
    stand_in.write_text(f'#!/bin/sh\n[ "$1" = --syntax-only ] || exit 9\nexit {exit_code}\n')
    stand_in.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    verdict = run_check(CommandCheck, {"argv": argv}, context())
    head = f"$ syslog-ng --syntax-only -> exit {exit_code}"
    assert (verdict.status, verdict.evidence[0]) == (status, head)


def test_syslog_ng_check_applies_where_syslog_ng_is_installed(tmp_path):
    root = make_tree(tmp_path, {"/var/lib/dpkg/status": dpkg_status("rsyslog")})
    result = audit_tree(root, "LAPP-LOG-008")
    assert (result.status, result.reason) == (
        Status.SKIP,
        "needs a running system (not available when auditing a directory tree)",
    )


@pytest.mark.parametrize(
    ("preload", "status", "evidence"),
    [
        ("/lib/x86_64-linux-gnu/libsnoopy.so\n", Status.PASS,
         "/etc/ld.so.preload:1: /lib/x86_64-linux-gnu/libsnoopy.so"),
        ("# /lib/x86_64-linux-gnu/libsnoopy.so\n", Status.FAIL,
         "no line matches /^\\s*\\S*/libsnoopy\\.so[.0-9]*\\s*$/ in /etc/ld.so.preload"),
        (None, Status.FAIL, "absent: /etc/ld.so.preload"),
    ],
    ids=["preloaded", "commented-out", "no-preload-file"],
)  # fmt: skip
def test_snoopy_must_be_preloaded_where_installed(tmp_path, preload, status, evidence):
    files = {"/var/lib/dpkg/status": dpkg_status("snoopy")}
    if preload is not None:
        files["/etc/ld.so.preload"] = preload
    result = audit_tree(make_tree(tmp_path, files), "LAPP-LOG-011")
    assert (result.status, result.evidence[0]) == (status, evidence)


def test_snoopy_check_skips_without_snoopy(tmp_path):
    root = make_tree(tmp_path, {"/var/lib/dpkg/status": dpkg_status("openssh-server")})
    result = audit_tree(root, "LAPP-LOG-011")
    assert (result.status, result.reason) == (Status.SKIP, "snoopy not installed")

"""`--root` confinement, watched from inside: a tree with every kind of link and glob escape
planted, audited in-process with the whole baseline policy under an audit hook.

The hook sees every ``open``, ``os.listdir`` and ``os.scandir``. A path relative to a
descriptor (the resolver's O_PATH walk, which opens nothing for reading) is judged where it
is used: reading reopens the descriptor through /proc/self/fd and listing passes the
descriptor, and the hook asks the kernel where those really are. Nothing outside the tree
may be opened or listed, except Python's own modules and lappguard's package files; stat has
no audit event, so the canaries' unique mode stands watch for it in the report.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from treeutil import Outside, hardened_root, replace_with_link

import agent
import checks
import policies
from checks.engine import audit_host
from checks.hosts import LocalHost
from checks.policy import load_policies
from checks.report import DEFAULT_FAIL_ON, RENDERERS
from policies import builtin_policy

WATCHED_EVENTS = {"open", "os.listdir", "os.scandir"}

#: An audit hook cannot be removed, so one is installed when this module loads and calls
#: whichever watchers are active (none, outside these tests).
_watchers: list[Callable[[str, tuple], None]] = []


def _dispatch(event: str, args: tuple) -> None:
    if event in WATCHED_EVENTS:
        for watcher in list(_watchers):
            watcher(event, args)


sys.addaudithook(_dispatch)


@contextmanager
def accesses_outside(root: Path) -> Iterator[list[str]]:
    """Every file or directory opened or listed outside ``root`` while the block runs."""
    allowed = [
        str(root.resolve()),
        *(os.path.dirname(package.__file__) for package in (agent, checks, policies)),
        *(entry for entry in sys.path if os.path.isabs(entry)),  # Python's own imports
    ]
    seen: list[str] = []

    def watch(event: str, args: tuple) -> None:
        where = _real_location(args[0] if args else None)
        if where is not None and not any(_within(where, place) for place in allowed):
            seen.append(f"{event} {where}")

    _watchers.append(watch)
    try:
        yield seen
    finally:
        _watchers.remove(watch)


def _real_location(target: object) -> str | None:
    """The real absolute path an event touches; None for a name relative to a descriptor."""
    if target is None:  # os.listdir() lists the working directory
        return os.getcwd()
    if isinstance(target, int):
        return os.readlink(f"/proc/self/fd/{target}")
    path = os.fsdecode(target)
    if path.startswith("/proc/self/fd/"):
        return os.readlink(path)
    # where the kernel goes, not where the string seems to point: a path inside the tree
    # may cross a link out of it
    return os.path.realpath(path) if os.path.isabs(path) else None


def _within(path: str, place: str) -> bool:
    return path == place or path.startswith(place.rstrip("/") + "/")


def plant_every_escape(root: Path, outside: Outside) -> None:
    """Links out of the tree for every file family the baseline reads, each kind of escape."""
    climb, absolute = outside.climb, (lambda name: str(outside.path / name))
    links = {
        # sshd: globs across linked directories, up through .., and a chain to a file
        "etc/ssh/escape/up": climb("dropins"),
        "etc/ssh/escape/abs": absolute("dropins"),
        "etc/ssh/escape/parent": "..",
        "etc/ssh/chain.conf": "hop1",
        "etc/ssh/hop1": "./escape/../hop2",
        "etc/ssh/hop2": absolute("sshd_config"),
        # Apache: an include that is a chain out, a linked directory of includes
        "etc/apache2/conf-enabled/zz-chain.conf": "../hop",
        "etc/apache2/hop": absolute("dropins/x.conf"),
        "etc/apache2/conf-enabled/zz-dir": absolute("dropins"),
        "etc/apache2/escape/up": climb("dropins"),
        # PHP and PostgreSQL: version directories linked out (matched by * globs)
        "etc/php/8.3": absolute("php"),
        "etc/php/8.4": climb("php"),
        "etc/postgresql/16": climb("postgresql"),
        "etc/postgresql/17": absolute("postgresql"),
        # apt, pam_pwquality, systemd: drop-ins and unit directories linked out
        "etc/apt/apt.conf.d/99escape": climb("apt.conf"),
        "etc/security/pwquality.conf.d": absolute("dropins"),
        "etc/systemd/system/escape.wants": absolute("wants"),
        "etc/systemd/system/zz-chain.service": climb("wants"),
        # backups (listed and stat'ed): the directory itself is a link out
        "srv/escape": climb("backups"),
        # the package database through a link in the middle of its path
        "var/lib/dpkg/status": "../../../var/lib/dpkg-real/status",
    }
    (root / "var/lib/dpkg-real").mkdir()
    (root / "var/lib/dpkg/status").rename(root / "var/lib/dpkg-real/status")
    for path, target in links.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        replace_with_link(root, path, target)
    dotdots = "../" * 12 + str(outside.path / "dropins").lstrip("/")
    sshd_config = root / "etc/ssh/sshd_config"
    sshd_config.write_text(
        f"Include /etc/ssh/escape/*/*.conf\nInclude /etc/ssh/{dotdots}/*.conf\n"
        "Include /etc/ssh/escape/parent/../../*/ssh/escape/*/*\n" + sshd_config.read_text()
    )
    (root / "etc/apache2/conf-enabled/zz-globs.conf").write_text(
        f"IncludeOptional /etc/apache2/escape/*/*.conf\nIncludeOptional {dotdots}/*.conf\n"
    )


def test_an_audit_of_a_hostile_tree_opens_and_lists_nothing_outside_it(tmp_path):
    outside = Outside.plant(tmp_path)
    root = hardened_root(tmp_path)
    plant_every_escape(root, outside)
    variables = {"office_networks": "10.0.0.0/8", "backup_dir": "/srv/escape"}
    baseline = load_policies([builtin_policy("lapp-baseline")], variables)

    with accesses_outside(root) as seen:
        report = audit_host(baseline, LocalHost(root=str(root)))
        rendered = RENDERERS["json"]([report], fail_on=DEFAULT_FAIL_ON)

    assert seen == []
    results = [
        {"id": r.check_id, "reason": r.reason, "evidence": list(r.evidence)} for r in report.results
    ]
    assert outside.leaks(rendered, results) == []
    outcome = {r.check_id: (r.status.value, r.reason) for r in report.results}
    # the audit ran on the tree's own files: the package list behind a link, the one
    # PostgreSQL cluster, pam_pwquality without drop-ins, the nftables unit
    for check in ("LAPP-SVC-010", "LAPP-PG-001", "LAPP-AUTH-001", "LAPP-FW-010"):
        assert outcome[check] == ("pass", ""), check
    # links followed inside lead nowhere: errors that name the tree's paths only
    assert outcome["LAPP-SSH-001"] == (
        "error",
        "cannot read /etc/ssh/sshd_config: /etc/ssh/sshd_config:1: Include "
        "/etc/ssh/escape/parent/chain.conf: /etc/ssh/escape/parent/chain.conf: No such file "
        "or directory",
    )
    assert outcome["LAPP-BAK-001"] == (
        "error",
        "cannot list backups in /srv/escape: /srv/escape: No such file or directory",
    )


def test_the_watch_sees_an_escape(tmp_path):
    """The hook is not blind: reading a file outside the tree is reported."""
    outside = Outside.plant(tmp_path)
    with accesses_outside(tmp_path / "root") as seen:
        (outside.path / "sshd_config").read_text()
        os.listdir(outside.path)
    assert seen == [
        f"open {outside.path / 'sshd_config'}",
        f"os.listdir {outside.path}",
    ]

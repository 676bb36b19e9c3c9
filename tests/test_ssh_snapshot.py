"""A snapshot's answers from find's listing (checks.ssh_snapshot), where no host is needed:
link loops, ``..``, names that are not UTF-8, errors find printed. The contract suite
(test_hosts_contract.py) compares its answers with SFTP's on a real host."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

from checks.ssh_snapshot import CONTENT_MAX_BYTES, Layout, Snapshot

LAYOUT = Layout(trees=("/etc/app",), content=("/etc/app",))


def listing(*entries: tuple[str, str, str] | tuple[str, str, str, bytes]) -> bytes:
    """find's output for (type, path, link target[, flags]) entries: mode 644, root's,
    size 3, mtime 1700000000.5."""
    out = b""
    for kind, path, target, *flags in [("d", "/", ""), ("d", "/etc", ""), *entries]:
        fields = [flags[0] if flags else b"11", kind.encode(), b"644", b"0", b"0", b"3",
                  b"1700000000.5000000000", path.encode() if isinstance(path, str) else path,
                  target.encode()]  # fmt: skip
        out += b"\0".join(fields) + b"\0"
    return out


def snapshot(*entries, errors: str = "") -> Snapshot:
    return Snapshot(listing(*entries), errors, LAYOUT)


def test_links_resolve_as_the_kernel_resolves_them():
    shot = snapshot(
        ("d", "/etc/app", ""),
        ("d", "/etc/app/sub", ""),
        ("f", "/etc/app/a.conf", ""),
        ("l", "/etc/app/up", "sub/../a.conf"),
        ("l", "/etc/app/abs", "/etc/app/up"),
        ("l", "/etc/app/loop", "loop"),
        ("l", "/etc/app/out", "/usr/share/x"),
    )
    assert shot.stat("/etc/app/abs").st_mtime == 1_700_000_000
    assert shot.stat("/etc/app/abs").st_mode == 0o100644
    assert shot.stat("/etc/app/abs", follow_symlinks=False).st_mode == 0o120644
    assert shot.readlink("/etc/app/abs") == "/etc/app/up"
    assert shot.stat("/etc/app/sub/../a.conf").st_size == 3
    for missing in ("/etc/app/loop", "/etc/app/nothing", "/etc/app/a.conf/x"):
        with pytest.raises(OSError) as caught:  # ELOOP, ENOENT, ENOTDIR: SFTP says ENOENT
            shot.stat(missing)
        assert caught.value.errno == errno.ENOENT
    with pytest.raises(OSError) as caught:
        shot.readlink("/etc/app/a.conf")
    assert caught.value.errno == errno.EINVAL
    assert shot.stat("/etc/app/out") is None  # outside: SFTP's to answer
    assert shot.stat("/etc/other") is None  # /etc is not listed whole here
    assert sorted(shot.listdir("/etc/app")) == ["a.conf", "abs", "loop", "out", "sub", "up"]


def test_what_find_could_not_read_is_left_to_sftp():
    shot = snapshot(
        ("d", "/etc/app", ""),
        ("d", "/etc/app/closed", "", b"01"),  # not readable
        ("d", "/etc/app/failed", ""),
        ("d", "/etc/app/odd", ""),
        ("f", b"/etc/app/odd/\xff", ""),
        errors="Could not chdir to home directory /nonexistent\n"
        "find: '/etc/app/failed/x': Permission denied\n",
    )
    for directory in ("/etc/app/closed", "/etc/app/failed", "/etc/app/odd"):
        assert shot.listdir(directory) is None
        assert shot.stat(f"{directory}/anything") is None
    assert shot.listdir("/etc/app") == ["closed", "failed", "odd"]


def test_an_error_naming_nothing_known_or_a_cut_listing_is_no_snapshot():
    with pytest.raises(ValueError):
        snapshot(("d", "/etc/app", ""), errors="find: '/elsewhere/x': Input/output error\n")
    with pytest.raises(ValueError):
        snapshot(errors="find: out of memory\n")
    with pytest.raises(ValueError):
        Snapshot(listing(("d", "/etc/app", ""))[:-5], "", LAYOUT)


def test_contents_are_the_small_readable_files_of_the_content_trees():
    shot = snapshot(
        ("d", "/etc/app", ""),
        ("f", "/etc/app/a.conf", ""),
        ("f", "/etc/app/secret", "", b"00"),
        ("l", "/etc/app/link", "a.conf"),
        ("f", "/etc/elsewhere", ""),
    )
    assert shot.wanted() == ["/etc/app/a.conf"]


def test_the_real_find_lists_each_entry_once_and_what_the_layout_says(tmp_path):
    """Nested listed directories, and a tree below a directory find only passes through
    (apt's lists under a listed /var/lib): each entry printed once, each listed directory
    whole, and "no such file" known only where a directory was listed."""
    root = str(tmp_path)
    for path in ("var/lib/apt/lists/partial", "var/lib/dpkg/info", "var/lib/other/deep",
                 "run/systemd"):  # fmt: skip
        os.makedirs(f"{root}/{path}")
    for path in ("var/lib/apt/lists/a_InRelease", "var/lib/apt/lists/a_Packages",
                 "var/lib/apt/lists/partial/b_InRelease", "var/lib/dpkg/info/x.list",
                 "var/lib/other/deep/file", "run/flag"):  # fmt: skip
        Path(f"{root}/{path}").write_text("x\n")
    for path in ("var/lib/dpkg/status", "run/large"):
        with open(f"{root}/{path}", "wb") as handle:
            handle.truncate(2 * CONTENT_MAX_BYTES)
    layout = Layout(
        trees=(f"{root}/var/lib/apt/lists",),
        listed=(f"{root}/var/lib", f"{root}/var/lib/dpkg", f"{root}/run", f"{root}/run/systemd"),
        content=(f"{root}/run",),
        files=(f"{root}/var/lib/dpkg/status", f"{root}/var/lib/apt/lists/*InRelease"),
    )
    done = subprocess.run(layout.find_argv(), capture_output=True, check=True)
    printed = done.stdout.split(b"\0")[7::9]
    assert len(printed) == len(set(printed))
    shot = Snapshot(done.stdout, done.stderr.decode(), layout)
    for directory in ("var/lib", "var/lib/dpkg", "var/lib/apt/lists",
                      "var/lib/apt/lists/partial", "run", "run/systemd"):  # fmt: skip
        assert sorted(shot.listdir(f"{root}/{directory}")) == sorted(
            os.listdir(f"{root}/{directory}")
        )
    for passed_through in ("var/lib/other", "var/lib/dpkg/info", "var/lib/apt"):
        assert shot.listdir(f"{root}/{passed_through}") is None
    assert shot.stat(f"{root}/var/lib/other/deep") is None  # SFTP's to answer
    for missing in ("var/lib/pgsql", "var/lib/dpkg/available", "run/systemd/system"):
        with pytest.raises(OSError) as caught:
            shot.stat(f"{root}/{missing}")
        assert caught.value.errno == errno.ENOENT
    # a content tree's files up to CONTENT_MAX_BYTES; the named ones may be larger
    assert shot.wanted() == [
        f"{root}/run/flag",
        f"{root}/var/lib/apt/lists/a_InRelease",
        f"{root}/var/lib/apt/lists/partial/b_InRelease",
        f"{root}/var/lib/dpkg/status",
    ]

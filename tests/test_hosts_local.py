"""LocalHost's file primitives on real trees: what stat, read, readlink and glob answer
under ``root`` when links point around, and the same rules on the live host."""

from __future__ import annotations

import os

import pytest
from treeutil import make_tree

from checks.hosts import HostError, LocalHost
from checks.rootfs import MAX_READ_BYTES


def test_stat_through_links_reports_the_file_inside_the_tree(tmp_path):
    root = make_tree(
        tmp_path / "root",
        {"/etc/passwd": "root:x:0:0::/root:/bin/sh\n", "/etc/ssh/key": "k"},
        modes={"/etc/passwd": 0o640, "/etc/ssh/key": 0o600},
        links={
            "/etc/climb": "../../../../../../../etc/passwd",
            "/etc/ssh/absolute": "/etc/ssh/key",
            "/etc/keys": "ssh",
        },
    )
    host = LocalHost(root=str(root))
    # the host's /etc/passwd is 0644: the tree's own is the one seen
    climbed = host.stat("/etc/climb")
    assert (climbed.mode, climbed.is_link, climbed.is_file) == (0o640, True, True)
    assert host.stat("/etc/keys/absolute").mode == 0o600
    assert host.stat("/etc/climb", follow_symlinks=False).is_link
    assert host.readlink("/etc/keys/absolute") == "/etc/ssh/key"
    assert host.listdir("/etc/keys") == ["absolute", "key"]
    assert host.read_text("/etc/keys/../climb").startswith("root:x:0:0")


def test_owner_names_under_a_root_come_from_the_trees_own_files(tmp_path):
    """The image's uid 0 may be called toor, and a uid this machine names is unknown there."""
    mine = os.getuid(), os.getgid()
    root = make_tree(
        tmp_path / "root",
        {
            "/etc/passwd": f"toor:x:{mine[0]}:{mine[1]}::/root:/bin/sh\nshadow:x:{mine[0]}:0::/:\n",
            "/etc/group": f"wheel:x:{mine[1]}:\n",
            "/etc/file": "",
        },
    )
    info = LocalHost(root=str(root)).stat("/etc/file")
    assert (info.owner, info.group) == ("toor", "wheel")  # the first line for a number wins
    (root / "etc/passwd").write_text("")
    (root / "etc/group").unlink()
    info = LocalHost(root=str(root)).stat("/etc/file")
    assert (info.owner, info.group) == (str(mine[0]), str(mine[1]))


def test_glob_under_a_root_follows_globs_rules(tmp_path):
    root = make_tree(
        tmp_path / "root",
        {"/etc/d/a.conf": "", "/etc/d/.hidden.conf": "", "/etc/e/b.conf": ""},
        links={"/etc/f": "/etc/e", "/etc/d/dangling.conf": "/nowhere"},
    )
    host = LocalHost(root=str(root))
    assert host.glob("/etc/*/*.conf") == [
        "/etc/d/a.conf",
        "/etc/d/dangling.conf",
        "/etc/e/b.conf",
        "/etc/f/b.conf",
    ]
    assert host.glob("/etc/d/.*.conf") == ["/etc/d/.hidden.conf"]
    assert host.glob("/etc/f/../d/a*") == ["/etc/f/../d/a.conf"]
    with pytest.raises(HostError, match="not an absolute path"):
        host.glob("etc/*")


@pytest.mark.parametrize("root", [True, False], ids=["under --root", "live host"])
def test_a_huge_file_is_refused_whole_but_its_head_can_be_read(tmp_path, root):
    tree = make_tree(tmp_path / "root", {"/srv/backup.tar": b"\x1f\x8b rest"})
    os.truncate(tree / "srv/backup.tar", 8 * MAX_READ_BYTES)
    host = LocalHost(root=str(tree)) if root else LocalHost()
    path = "/srv/backup.tar" if root else str(tree / "srv/backup.tar")
    assert host.read_bytes(path, limit=2) == b"\x1f\x8b"
    with pytest.raises(HostError, match=r"file too large \(268435456 bytes, limit 33554432\)"):
        host.read_bytes(path)

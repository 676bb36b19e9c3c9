"""A snapshot's answers from find's listing (checks.ssh_snapshot), where no host is needed:
link loops, ``..``, names that are not UTF-8, errors find printed. The contract suite
(test_hosts_contract.py) compares its answers with SFTP's on a real host."""

from __future__ import annotations

import errno

import pytest

from checks.ssh_snapshot import Layout, Snapshot

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

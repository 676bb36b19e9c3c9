"""Property: ``RootFS`` resolves every path exactly as the kernel does under a real chroot.

Hypothesis builds random trees of directories, files and links (relative and absolute
targets, ``..``, ``.``, trailing slashes, loops) inside a directory whose parent holds
look-alike names, so any escape would find something. The oracle is a forked child that
chroots into the tree (we are root) and asks the kernel and Python's glob the same questions.
"""

from __future__ import annotations

import errno
import glob
import os
import pickle
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import require_root
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checks.rootfs import RootFS

NAMES = ("a", "b", ".h")  # few names, so random paths often meet what was built
component = st.sampled_from((*NAMES, "..", "."))
relative = st.lists(component, min_size=1, max_size=4).map("/".join)
link_target = st.builds(
    lambda absolute, path, slash: ("/" if absolute else "") + path + ("/" if slash else ""),
    st.booleans(),
    relative,
    st.booleans(),
)
entry = st.tuples(
    st.lists(st.sampled_from(NAMES), min_size=1, max_size=3).map(tuple),
    st.sampled_from(("dir", "file", "link")),
    link_target,
)
suffix = st.lists(component, max_size=2).map(lambda names: "".join(f"/{n}" for n in names))
slash = st.sampled_from(("", "", "/"))
pattern = st.builds(
    lambda names, slash: "/" + "/".join(names) + ("/" if slash else ""),
    st.lists(st.sampled_from((*NAMES, "..", "*", "?", "[ab]", ".*", "*a")), min_size=1, max_size=4),
    st.booleans(),
)


def outcome(action: Callable[[], Any]) -> Any:
    """The value, or the errno's name: both sides must agree on failures too."""
    try:
        return action()
    except OSError as exc:
        return errno.errorcode[exc.errno]


def ask(
    stat_: Callable[..., os.stat_result],
    readlink: Callable[[str], str],
    listdir: Callable[[str], list[str]],
    read: Callable[[str], bytes],
    globber: Callable[[str], list[str]],
    paths: list[str],
    patterns: list[str],
) -> dict:
    """The same questions for both sides: identity (not following and following), link text,
    listing and content of every path, and the matches of every pattern."""
    return {
        "stat": [outcome(lambda p=p: _identity(stat_(p))) for p in paths],
        "lstat": [outcome(lambda p=p: _identity(stat_(p, follow_symlinks=False))) for p in paths],
        "readlink": [outcome(lambda p=p: readlink(p)) for p in paths],
        "listdir": [outcome(lambda p=p: sorted(listdir(p))) for p in paths],
        "read": [outcome(lambda p=p: read(p)) for p in paths],
        "glob": [sorted(globber(p)) for p in patterns],
    }


def _identity(info: os.stat_result) -> tuple[int, int]:
    return info.st_dev, info.st_ino


def _read_file(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def under_chroot(tree: Path, paths: list[str], patterns: list[str]) -> dict:
    """The kernel's answers, from a forked child chrooted into the tree."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            os.close(reader)
            os.chroot(tree)
            os.chdir("/")
            answers = ask(os.stat, os.readlink, os.listdir, _read_file, glob.glob, paths, patterns)
            with os.fdopen(writer, "wb") as out:
                out.write(pickle.dumps(answers))
            code = 0
        finally:
            os._exit(code)
    os.close(writer)
    with os.fdopen(reader, "rb") as source:
        data = source.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the chrooted oracle failed"
    return pickle.loads(data)


def build(tree: Path, entries: list[tuple[tuple[str, ...], str, str]]) -> list[str]:
    """Directories and files first, links last, each only below real directories (never
    through a link: a link to / must not make the test write on the host). Returns the
    paths created, as seen from inside the tree."""
    created = []
    for names, kind, target in sorted(entries, key=lambda e: e[1] == "link"):
        parent = tree
        for name in names[:-1]:
            parent = parent / name
            if not parent.exists() and not parent.is_symlink():
                parent.mkdir()
            elif not stat.S_ISDIR(parent.lstat().st_mode):
                break
        else:
            path = parent / names[-1]
            if path.exists() or path.is_symlink():
                continue
            if kind == "dir":
                path.mkdir()
            elif kind == "file":
                path.write_text("/".join(names))
            else:
                path.symlink_to(target)
            created.append("/" + "/".join(names))
    return created


def inodes(tree: Path) -> set[tuple[int, int]]:
    """Identity of everything in the tree, found without following a link."""
    found = {_identity(tree.lstat())}
    for directory, dirs, files in os.walk(tree):
        for name in dirs + files:
            found.add(_identity(os.lstat(os.path.join(directory, name))))
    return found


@settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(entries=st.lists(entry, min_size=1, max_size=16), data=st.data())
def test_resolution_agrees_with_a_real_chroot_and_never_leaves_the_tree(entries, data):
    require_root()
    with tempfile.TemporaryDirectory() as base:
        # decoys named like the tree's own entries, beside and above it
        outside = Path(base, "a", "b")
        for decoy in NAMES:
            (outside / decoy).mkdir(parents=True)
            (outside / decoy / "a").write_text("outside")
        tree = outside / "a" / "b"
        tree.mkdir()
        created = build(tree, entries)
        # paths through what was built (so links are followed), then anywhere at all
        start = st.sampled_from(created) if created else st.just("")
        through = st.builds(lambda *parts: "".join(parts), start, suffix, slash)
        anywhere = st.builds(lambda path, end: f"/{path}{end}", relative, slash)
        paths = data.draw(st.lists(st.one_of(through, anywhere), min_size=1, max_size=8))
        patterns = data.draw(st.lists(pattern, max_size=4))
        expected = under_chroot(tree, paths, patterns)
        fs = RootFS(str(tree))
        try:
            got = ask(fs.stat, fs.readlink, fs.listdir, fs.read, fs.glob, paths, patterns)
            assert got == expected, (paths, patterns)
            inside = inodes(tree)
            for answer in got["stat"] + got["lstat"]:
                assert isinstance(answer, str) or answer in inside
            for path in paths:
                opened = _opened(fs, path)
                assert opened is None or opened == str(tree) or opened.startswith(f"{tree}/")
        finally:
            fs.close()


def _opened(fs: RootFS, path: str) -> str | None:
    """Where the kernel says the descriptor a lookup returned is (None: no such file)."""
    try:
        with fs.lookup(path) as fd:
            return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def test_forty_links_are_followed_and_the_forty_first_is_eloop_as_in_the_kernel(tmp_path):
    require_root()
    for length in (40, 41):
        tree = tmp_path / f"chain{length}"
        tree.mkdir()
        (tree / "end").write_text("reached")
        (tree / "l0").symlink_to("end")
        for n in range(1, length):
            (tree / f"l{n}").symlink_to(f"/l{n - 1}" if n % 2 else f"./l{n - 1}")
        head = f"/l{length - 1}"
        fs = RootFS(str(tree))
        got = ask(fs.stat, fs.readlink, fs.listdir, fs.read, fs.glob, [head], [])
        assert got == under_chroot(tree, [head], [])
        assert got["read"] == ([b"reached"] if length == 40 else ["ELOOP"])
        fs.close()

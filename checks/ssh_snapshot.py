"""The configuration trees of a remote host, fetched in two commands instead of hundreds of
SFTP requests, and answered as SFTP would answer.

An audit stats, lists and reads a few hundred files, most under /etc. Over SFTP each is a
round trip or five, and they cost the auditing machine and the host more CPU than the
checks themselves. ``SSHHost.take_snapshot`` runs ``find`` once over a ``Layout`` (the
lstat of every entry, and whether the login user may read and search it) and ``tar`` once
over the small regular files of its content, whose names it sends on tar's stdin: both
are fixed argv lists, and no name found on the host is ever read by a shell.

``Snapshot`` answers a stat, lstat, listdir, readlink or read only where it knows the
answer is the one SFTP would give, resolving links as the kernel does (``..`` and absolute
targets, 40 hops), and "no such file" only inside a directory it listed whole. Everything
else (a path outside the trees, a directory find could not read, a file tar did not
bring, a name that is not UTF-8) returns None: the caller asks SFTP, as it would have
without a snapshot. SFTP carries no errno: sftp-server words ENOENT, ENOTDIR and ELOOP
alike as "no such file", and paramiko raises ENOENT for them, as this does.
"""

from __future__ import annotations

import errno
import io
import os
import re
import stat as statlib
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import cached_property

from checks.rootfs import MAX_LINK_HOPS

CONTENT_MAX_BYTES = 1024 * 1024  # larger files of the content trees are read over SFTP
#: The files a layout names one by one may be larger: dpkg's status is 1-4 MB on a server
NAMED_CONTENT_MAX_BYTES = 16 * 1024 * 1024
CONTENT_MAX_TOTAL_BYTES = 64 * 1024 * 1024
CONTENT_MAX_NAME_BYTES = 512 * 1024

_FIELDS = 9  # readable+searchable, type, mode, uid, gid, size, mtime, path, link target
_FORMAT = "\\0%y\\0%m\\0%U\\0%G\\0%s\\0%T@\\0%p\\0%l\\0"
_TYPES = {
    "f": statlib.S_IFREG,
    "d": statlib.S_IFDIR,
    "l": statlib.S_IFLNK,
    "b": statlib.S_IFBLK,
    "c": statlib.S_IFCHR,
    "p": statlib.S_IFIFO,
    "s": statlib.S_IFSOCK,
}
_FIND_ERROR = re.compile(r"find: '(.*)': [^']*\Z")
_UNDECODABLE = re.compile("[\udc80-\udcff]")


@dataclass(frozen=True)
class Layout:
    """Which parts of a host a snapshot holds (absolute paths, no trailing /)."""

    #: Listed whole: every entry's lstat.
    trees: tuple[str, ...]
    #: Listed one level deep: their entries; directories among them are not descended
    #: into unless trees.
    listed: tuple[str, ...] = ()
    #: Trees (or listed directories) whose small regular files come with the snapshot.
    #: Other files are read over SFTP.
    content: tuple[str, ...] = ()
    #: Further files whose contents come with it, by shell patterns over whole paths
    #: (``*`` crosses ``/``); find must see them: in a tree or directly in a listed one.
    files: tuple[str, ...] = ()
    #: Further entries looked at, not listed: links such as /lib on a merged /usr, so that
    #: a path through them (/lib/systemd/system) resolves in the snapshot too.
    aliases: tuple[str, ...] = ()

    @property
    def starts(self) -> tuple[str, ...]:
        """find's starting points: each entry the snapshot needs (the trees, the listed
        directories, their ancestors, so that paths resolve from /, and the aliases) that
        find does not reach from a directory it descends into (it would print it twice)."""
        tops = {*self.trees, *self.listed}
        ancestors = {"/"} | {path[:i] for path in tops for i in _slashes(path)}
        needed = tops | ancestors | set(self.aliases)
        return tuple(
            sorted(p for p in needed if p == "/" or not self.lists_whole(os.path.dirname(p)))
        )

    def lists_whole(self, path: str) -> bool:
        """Whether a (readable, searchable) directory at ``path`` is listed whole."""
        return path in self._whole or path.startswith(self._inside_trees)

    @cached_property
    def _whole(self) -> frozenset[str]:
        return frozenset((*self.listed, *self.trees))

    @cached_property
    def _inside_trees(self) -> tuple[str, ...]:
        return tuple(f"{tree}/" for tree in self.trees)

    def find_argv(self) -> list[str]:
        """``find`` printing, for every entry it visits, readable and searchable flags,
        type, mode, owner, size, mtime, path and link target, NUL-separated; it descends
        into the trees and the listed directories (``lists_whole``), and no further."""
        descended = [
            *(("-path", _literal(path)) for path in self.listed),
            *(("-path", _literal(tree)) for tree in self.trees),
            *(("-path", f"{_literal(tree)}/*") for tree in self.trees),
        ]
        either = [item for test in descended for item in (*test, "-o")][:-1] or ["-false"]
        return [
            "find", "-P", *self.starts,
            "(", "-readable", "-printf", "1", "-o", "-printf", "0", ")",
            "(", "-executable", "-printf", "1", "-o", "-printf", "0", ")",
            "-printf", _FORMAT,
            "!", "(", *either, ")", "-prune",
        ]  # fmt: skip


_ETC = ("/etc/ssh", "/etc/apache2", "/etc/php", "/etc/postgresql", "/etc/apt", "/etc/audit",
        "/etc/security", "/etc/pam.d", "/etc/logrotate.d", "/etc/rsyslog.d", "/etc/systemd",
        "/etc/sudoers.d", "/etc/default", "/etc/cron.d", "/etc/iptables",
        "/etc/sysctl.d")  # fmt: skip
#: Where the audit of a LAPP server looks: /etc (configuration and accounts), unit files,
#: the packages' sysctl settings, apt's lists, and /usr/local's sbin and bin (where
#: ``which`` looks first); with the contents of what it reads whole. The directories listed
#: one level deep answer the checks that look for what should not be there (an admin
#: panel under /usr/share, a PostgreSQL data directory where another distribution keeps
#: it, a reboot flag in /run) with "no such file", where each was an SFTP round trip.
AUDIT_LAYOUT = Layout(
    trees=(
        *_ETC,
        "/usr/lib/systemd/system",
        "/usr/lib/sysctl.d",
        "/run/systemd/system",
        "/var/lib/apt/lists",
        "/usr/local/sbin",
        "/usr/local/bin",
    ),
    listed=(
        "/etc",
        "/home",
        "/opt",
        "/root",
        "/run",
        "/run/systemd",
        "/usr/lib/systemd",
        "/usr/local",
        "/usr/local/lib",
        "/usr/share",
        "/var/lib",
        "/var/lib/dpkg",
        "/var/lib/postgresql",
        "/var/log",
        "/var/log/postgresql",
    ),
    content=("/etc", "/usr/lib/sysctl.d"),
    files=(
        "/var/lib/dpkg/status",
        "/var/lib/apt/lists/*Release",
        "/usr/lib/systemd/system/rescue.service",
        "/usr/lib/systemd/system/emergency.service",
    ),
    aliases=("/lib", "/bin", "/sbin", "/lib64", "/var/run"),
)


#: tar of the files named on stdin (NUL-separated, never taken as options), to stdout.
TAR_ARGV = ["tar", "-c", "-f", "-", "-P", "--null", "--verbatim-files-from", "-T", "-"]


@dataclass(frozen=True)
class Attributes:
    """An lstat as SFTP carries it (mtime in whole seconds, 32 bits)."""

    st_mode: int
    st_uid: int
    st_gid: int
    st_size: int
    st_mtime: int


class Snapshot:
    """What ``find`` saw; see the module's docstring. Read-only once built.

    Entries stay find's fields (flags, type, mode, uid, gid, size, mtime, path, target)
    until asked for: most are never looked at."""

    def __init__(self, listing: bytes, errors: str, layout: Layout = AUDIT_LAYOUT):
        self.layout = layout
        text = listing.decode("utf-8", errors="surrogateescape")
        fields = text.split("\0")
        if len(fields) % _FIELDS != 1 or fields[-1]:
            raise ValueError("find's output ends inside an entry")
        entries = [fields[i : i + _FIELDS] for i in range(0, len(fields) - 1, _FIELDS)]
        self._entries: dict[str, list[str]] = {entry[7]: entry for entry in entries}
        self._attributes: dict[str, Attributes] = {}
        self._contents: dict[str, bytes] = {}
        self._names: dict[str, list[str]] = {}  # directory -> the names in it
        for path in self._entries:
            parent, _, name = path.rpartition("/")
            if name:
                self._names.setdefault(parent or "/", []).append(name)
        # directories whose every name is an entry
        self._listed = {
            path
            for path, (flags, kind, *_) in self._entries.items()
            if kind == "d" and flags == "11" and layout.lists_whole(path)
        }
        if _UNDECODABLE.search(text):  # a name paramiko could not decode either: ask SFTP
            for path in [p for p in self._entries if _UNDECODABLE.search(p)]:
                self._listed.discard(os.path.dirname(path))
                del self._entries[path]
        self._forget_failures(errors)

    def _forget_failures(self, errors: str) -> None:
        """A directory find could not read, or one holding an entry it could not look at,
        is not listed whole; an error naming nothing known leaves nothing to trust."""
        for line in errors.splitlines():
            if not line.startswith("find: "):
                continue  # sshd's or the login shell's ("Could not chdir to home directory")
            match = _FIND_ERROR.match(line)
            if match is None:
                raise ValueError(f"find: {line}")
            path = match.group(1)
            if path in self.layout.starts:
                self._listed.discard(path)
                continue
            parent = os.path.dirname(path)
            if path not in self._entries and parent not in self._entries:
                raise ValueError(f"find: {line}")
            self._listed.discard(path)
            self._listed.discard(parent)

    def _lstat(self, path: str) -> Attributes:
        attributes = self._attributes.get(path)
        if attributes is None:
            _, kind, mode, uid, gid, size, mtime, _, _ = self._entries[path]
            whole, _, fraction = mtime.partition(".")
            seconds = int(whole) - (whole.startswith("-") and bool(fraction.strip("0")))
            attributes = Attributes(  # sftp-server sends time_t as 32 bits
                _TYPES[kind] | int(mode, 8), int(uid), int(gid), int(size), seconds % 2**32
            )
            self._attributes[path] = attributes
        return attributes

    # --- contents --------------------------------------------------------------------------

    def wanted(self) -> list[str]:
        """The files whose contents ``add_contents`` takes: the small readable regular
        files of the layout's content and the files it names, as many as
        CONTENT_MAX_TOTAL_BYTES hold and their names CONTENT_MAX_NAME_BYTES (tar's stdin is
        written whole before its output is read: it must stay well within the channel's
        window)."""
        content = tuple(f"{tree}/" for tree in self.layout.content)
        chosen, total, names = [], 0, 0
        for path, (flags, kind, _, _, _, size, *_) in sorted(self._entries.items()):
            if kind != "f" or flags[0] != "1":
                continue
            if path.startswith(content):
                limit = CONTENT_MAX_BYTES
            elif any(fnmatchcase(path, pattern) for pattern in self.layout.files):
                limit = NAMED_CONTENT_MAX_BYTES
            else:
                continue
            if int(size) <= limit:
                total, names = total + int(size), names + len(path.encode()) + 1
                if total > CONTENT_MAX_TOTAL_BYTES or names > CONTENT_MAX_NAME_BYTES:
                    break  # the rest is read over SFTP
                chosen.append(path)
        return chosen

    def add_contents(self, archive: bytes) -> None:
        """The regular files of a tar archive (of ``wanted`` files) as their contents."""
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
            for member in tar:
                if member.isreg() and member.name in self._entries:
                    handle = tar.extractfile(member)
                    if handle is not None:
                        self._contents[member.name] = handle.read()

    # --- answers: None where SFTP must be asked ----------------------------------------------

    def stat(self, path: str, follow_symlinks: bool = True) -> Attributes | None:
        real = self._resolve(path, follow_symlinks)
        return None if real is None else self._lstat(real)

    def listdir(self, path: str) -> list[str] | None:
        real = self._resolve(path, follow_last=True)
        if real is None:
            return None
        if self._entries[real][1] != "d":
            raise _missing()  # ENOTDIR, as SFTP words it
        if real not in self._listed:
            return None
        return list(self._names.get(real, ()))

    def readlink(self, path: str) -> str | None:
        real = self._resolve(path, follow_last=False)
        if real is None:
            return None
        _, kind, *_, target = self._entries[real]
        if kind != "l":
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        return target

    def read(self, path: str, check: Callable[[Attributes], None]) -> bytes | None:
        """A file's contents, after ``check`` (which raises) approved its attributes."""
        real = self._resolve(path, follow_last=True)
        if real is None or real not in self._contents:
            return None
        check(self._lstat(real))
        return self._contents[real]

    def _resolve(self, path: str, follow_last: bool) -> str | None:
        """The entry ``path`` names (links followed as the kernel follows them); None when
        the snapshot cannot tell; raises ENOENT where SFTP would."""
        if not path.startswith("/") or (path.endswith("/") and path != "/"):
            return None
        parts = [part for part in path.split("/") if part]
        current, hops = "/", 0
        while parts:
            here = self._entries.get(current)
            if here is None:
                return None
            if here[1] != "d":
                raise _missing()
            name = parts.pop(0)
            if name == ".":
                continue
            if name == "..":
                current = os.path.dirname(current)
                continue
            child = f"{current.rstrip('/')}/{name}"
            entry = self._entries.get(child)
            if entry is None:
                if current in self._listed:
                    raise _missing()
                return None
            kind, target = entry[1], entry[8]
            if kind == "l" and (parts or follow_last):
                hops += 1
                if not target:
                    return None
                if hops > MAX_LINK_HOPS:
                    raise _missing()  # ELOOP, as SFTP words it
                if target.startswith("/"):
                    current = "/"
                parts[:0] = [part for part in target.split("/") if part]
                continue
            if kind not in _TYPES:
                return None
            current = child
        return current if current in self._entries else None


def _slashes(path: str) -> list[int]:
    """Where ``path`` has a slash, after its first character."""
    return [i for i, char in enumerate(path) if char == "/" and i]


def _literal(path: str) -> str:
    """``path`` as a find -path pattern that matches only itself."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", path)


def _missing() -> OSError:
    return OSError(errno.ENOENT, os.strerror(errno.ENOENT))

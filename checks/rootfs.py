"""File systems as checks see them: this machine's ``/``, or a tree looked at as if it were ``/``.

``lappguard audit --root DIR`` reads trees it did not build: a symbolic link in one may name
``/etc/shadow`` or climb out with ``../..``, directly or after a few hops. ``RootFS`` resolves
every path one component at a time from file descriptors, with the semantics of
openat2(RESOLVE_IN_ROOT), i.e. of chroot: an absolute link target starts again at the top of
the tree, ``..`` never climbs above it, and after 40 links the lookup fails with ELOOP. Each
step opens the next name relative to the directory descriptor already held, never following
a link by itself, so nothing renamed in the tree during an audit can lead the walk outside.
``HostFS`` is the machine's own ``/``, resolved by the kernel.

Both hand out O_PATH descriptors, which name a file without opening it, and build every
operation (stat, read, list, readlink, glob) on them, so the two behave alike and a FIFO or
a device is never opened. Every method raises ``OSError``.

``GlobMatcher`` (glob semantics over any ``listdir`` and ``stat``) and ``refuse_unreadable``
(which files are read whole) are shared with hosts whose files are not local (SFTP).
"""

from __future__ import annotations

import errno
import fnmatch
import os
import stat
import weakref
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager

#: As the kernel's MAXSYMLINKS: links followed in one lookup before it fails with ELOOP.
MAX_LINK_HOPS = 40

#: Largest file read whole. Configuration files are kilobytes; dpkg's status file of a
#: full server is a few MiB. A bigger one is refused rather than read without bound.
MAX_READ_BYTES = 32 * 1024 * 1024
#: What a lookup fails with when no file is at the path (a link loop names none either): a
#: glob matches nothing there, as Python's does. Any other failure (permission denied, a
#: lost connection) is an error: "no such file" from it could pass a check that is failing.
NOTHING_THERE = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.ENAMETOOLONG})

_PATH_FLAGS = os.O_PATH | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC

_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def refuse_unreadable(path: str, mode: int, size: int, limit: int | None) -> None:
    """Raise OSError unless a file of this mode and size may be read (whole, or its head).

    Only regular files are read: a FIFO would block the audit, a device may never end
    (``/dev/zero``) or act when opened. A file past ``MAX_READ_BYTES`` is refused too,
    unless only its first ``limit`` bytes are asked for.
    """
    if stat.S_ISDIR(mode):
        raise OSError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    if not stat.S_ISREG(mode):
        kind = _KINDS.get(stat.S_IFMT(mode), "of an unknown kind")
        raise OSError(errno.EINVAL, f"not a regular file ({kind})", path)
    if limit is None and size > MAX_READ_BYTES:
        raise too_large(path, size)


class GlobMatcher(ABC):
    """Python's glob semantics over ``listdir`` and ``stat``, wherever the files are."""

    @abstractmethod
    def listdir(self, path: str) -> list[str]: ...

    @abstractmethod
    def stat(self, path: str, follow_symlinks: bool = True) -> os.stat_result:
        """Anything with ``st_mode``; raises OSError."""

    def glob(self, pattern: str) -> list[str]:
        """Sorted paths matching a shell pattern, as ``glob.glob`` lists them on ``/``.

        Python's rules: ``*``, ``?`` and ``[...]`` never match a name that starts with a
        dot unless the pattern does; a component followed by more must be a directory (a
        link to one counts); a final name without wildcards must exist (a dangling link
        does); ``..`` is kept as written.
        """
        if pattern.endswith("/") and pattern.strip("/"):
            return [f"{path}/" for path in self.glob(pattern.rstrip("/")) if self._isdir(path)]
        if not _has_magic(pattern):
            return [pattern] if self._lexists(pattern) else []
        names = [name for name in pattern.split("/") if name]
        prefixes = [""]  # paths matched so far, "" being "/"
        for index, name in enumerate(names):
            last = index == len(names) - 1
            matched = []
            for prefix in prefixes:
                # a match that is no directory needs no weeding out here: nothing can be
                # found below it, and the kernel refuses ``..`` from it (ENOTDIR)
                if _has_magic(name):
                    matched.extend(f"{prefix}/{n}" for n in self._matching(prefix or "/", name))
                elif not last or self._lexists(f"{prefix}/{name}"):
                    matched.append(f"{prefix}/{name}")
            prefixes = matched
        return sorted(prefixes)

    def _matching(self, directory: str, pattern: str) -> list[str]:
        """Names in ``directory`` matching ``pattern``; a directory that cannot be read
        raises (NOTHING_THERE)."""
        try:
            names = self.listdir(directory)
        except OSError as exc:
            if exc.errno in NOTHING_THERE:
                return []
            raise
        if not pattern.startswith("."):
            names = [name for name in names if not name.startswith(".")]
        return fnmatch.filter(names, pattern)

    def _isdir(self, path: str) -> bool:
        try:
            return stat.S_ISDIR(self.stat(path).st_mode)
        except OSError:
            return False

    def _lexists(self, path: str) -> bool:
        try:
            self.stat(path, follow_symlinks=False)
        except OSError as exc:
            if exc.errno in NOTHING_THERE:
                return False
            raise
        return True


class FileSystem(GlobMatcher):
    """Operations on files named by absolute paths, all built on ``lookup``."""

    @abstractmethod
    def _open_path(self, path: str, follow_symlinks: bool) -> int:
        """An O_PATH descriptor of what ``path`` names (the caller closes it)."""

    @contextmanager
    def lookup(self, path: str, follow_symlinks: bool = True) -> Iterator[int]:
        """An O_PATH descriptor of what ``path`` names, closed on exit.

        With ``follow_symlinks=False`` a link in the last component is itself the answer.
        """
        try:
            fd = self._open_path(path, follow_symlinks)
        except OSError as exc:  # name the path asked for, not the component that failed
            raise OSError(exc.errno, exc.strerror, path) from None
        try:
            yield fd
        finally:
            os.close(fd)

    def stat(self, path: str, follow_symlinks: bool = True) -> os.stat_result:
        with self.lookup(path, follow_symlinks) as fd:
            return os.fstat(fd)

    def readlink(self, path: str) -> str:
        with self.lookup(path, follow_symlinks=False) as fd:
            if not stat.S_ISLNK(os.fstat(fd).st_mode):
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), path)
            return os.readlink("", dir_fd=fd)

    def listdir(self, path: str) -> list[str]:
        with self.lookup(path) as fd:
            # an O_PATH descriptor of a directory is a valid dir_fd: "." opens that directory
            directory = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
        try:
            return os.listdir(directory)
        finally:
            os.close(directory)

    def read(self, path: str, limit: int | None = None) -> bytes:
        """A regular file's bytes, or its first ``limit`` bytes (see ``refuse_unreadable``).

        Anything else is refused before it is opened.
        """
        with self.lookup(path) as fd:
            info = os.fstat(fd)
            refuse_unreadable(path, info.st_mode, info.st_size, limit)
            with open(_reopen(fd, path), "rb") as handle:
                data = handle.read(MAX_READ_BYTES + 1 if limit is None else limit)
        if limit is None and len(data) > MAX_READ_BYTES:  # it grew while being read
            raise too_large(path, len(data))
        return data


class HostFS(FileSystem):
    """This machine's own ``/``: the kernel resolves paths."""

    def _open_path(self, path: str, follow_symlinks: bool) -> int:
        return os.open(path, _PATH_FLAGS | (0 if follow_symlinks else os.O_NOFOLLOW))


class RootFS(FileSystem):
    """The tree under ``path`` as ``/``, holding a descriptor of its top for the object's life."""

    def __init__(self, path: str):
        self.path = path
        self._top = os.open(path, _PATH_FLAGS | os.O_DIRECTORY)
        self._close = weakref.finalize(self, os.close, self._top)

    def close(self) -> None:
        self._close()

    def _open_path(self, path: str, follow_symlinks: bool) -> int:
        """Walk ``path`` from the top of the tree, one name at a time.

        ``walked`` holds a descriptor for each directory entered below the top, so ``..``
        is a pop that stops at the top, never the kernel's idea of the parent.
        """
        pending = _components(path)[::-1]  # a stack: the next name is at the end
        walked: list[int] = []
        hops = 0
        try:
            while pending:
                name = pending.pop()
                if name == "..":
                    if walked:
                        os.close(walked.pop())
                    continue
                if name == "." and pending:
                    continue
                last = not pending
                here = walked[-1] if walked else self._top
                fd = os.open(name, _PATH_FLAGS | os.O_NOFOLLOW, dir_fd=here)
                kind = stat.S_IFMT(os.fstat(fd).st_mode)
                if kind == stat.S_IFLNK and (follow_symlinks or not last):
                    try:
                        target = os.readlink("", dir_fd=fd)
                    finally:
                        os.close(fd)
                    hops += 1
                    if hops > MAX_LINK_HOPS:
                        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                    if target.startswith("/"):
                        while walked:
                            os.close(walked.pop())
                    pending.extend(_components(target)[::-1])
                    continue
                if last:
                    return fd
                if kind != stat.S_IFDIR:
                    os.close(fd)
                    raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
                walked.append(fd)
            return os.open(".", _PATH_FLAGS, dir_fd=walked[-1] if walked else self._top)
        finally:
            for fd in walked:
                os.close(fd)


def _components(path: str) -> list[str]:
    """Names of a path; a trailing ``/`` or ``/.`` becomes a final ``.`` (a directory is due)."""
    names = [name for name in path.split("/") if name not in ("", ".")]
    if names and path.endswith(("/", "/.")):
        names.append(".")
    return names


def _reopen(fd: int, path: str) -> int:
    """Open for reading the very file an O_PATH descriptor names (no second lookup to race)."""
    try:
        return os.open(f"/proc/self/fd/{fd}", _READ_FLAGS)
    except FileNotFoundError:
        raise OSError(errno.ENOENT, "cannot reopen it (is /proc mounted?)", path) from None


def too_large(path: str, size: int) -> OSError:
    return OSError(errno.EFBIG, f"file too large ({size} bytes, limit {MAX_READ_BYTES})", path)


def _has_magic(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")

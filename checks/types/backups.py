"""Backups: fresh, not kept past the retention promise, encrypted, not world-readable."""

from __future__ import annotations

from checks.hosts import FileStat, HostError
from checks.params import Param
from checks.result import Verdict, errored, failed, passed
from checks.types.base import CheckContext, CheckType

#: Headers of the encryption tools a backup may go through (checked on the first bytes).
ENCRYPTED_HEADERS = (
    (b"age-encryption.org/v1", "age"),
    (b"-----BEGIN AGE ENCRYPTED FILE-----", "age (armored)"),
    (b"-----BEGIN PGP MESSAGE-----", "OpenPGP (armored)"),
    (b"Salted__", "openssl enc"),
)
#: First octet of an OpenPGP packet carrying a session key (tags 1 and 3), old and new formats.
OPENPGP_SESSION_KEY_OCTETS = {0x84, 0x85, 0x86, 0x8C, 0x8D, 0x8E, 0xC1, 0xC3}
MAX_FILES = 20000
MAX_DEPTH = 4


class BackupCheck(CheckType):
    """One aspect of the backup files under ``dir`` (recursively, a few levels deep).

    Without ``dir`` the check is an error, not a skip: every server holding personal data
    needs backups, so "no directory named" must never read as "nothing to check".
    """

    name = "backup"
    schema = {
        "dir": Param("str", help="normally ${backup_dir}; the check errors when it is unset"),
        "aspect": Param(
            "choice", required=True, choices=("freshness", "retention", "encryption", "permissions")
        ),
        "max_age": Param("duration", default=26 * 3600),
        "retention_days": Param("number", default=21),
    }

    def run(self, ctx: CheckContext) -> Verdict:
        directory = self.params["dir"]
        if not directory:
            return errored(
                "backup_dir is not set: set it to the directory holding this server's backups "
                "(whether there are any cannot be told without it)"
            )
        try:
            files = ctx.memo(("backup_files", directory), lambda: _backup_files(ctx, directory))
        except HostError as exc:
            return errored(f"cannot list backups in {directory}: {exc}")
        aspect = self.params["aspect"]
        if aspect == "freshness":
            return self._freshness(ctx, directory, files)
        if not files:
            return passed(f"{directory}: no backup files")
        if aspect == "retention":
            return self._retention(ctx, files)
        if aspect == "encryption":
            return self._encryption(ctx, files)
        return self._permissions(ctx, directory, files)

    def _freshness(self, ctx: CheckContext, directory: str, files: list[FileStat]) -> Verdict:
        if not files:
            return failed(f"{directory}: no backup files at all")
        newest = max(files, key=lambda f: f.mtime)
        age = ctx.clock() - newest.mtime
        line = f"newest {newest.path} is {_hours(age)} old (limit {_hours(self.params['max_age'])})"
        return passed(line) if age <= self.params["max_age"] else failed(line)

    def _retention(self, ctx: CheckContext, files: list[FileStat]) -> Verdict:
        limit = self.params["retention_days"] * 86400
        now = ctx.clock()
        too_old = [
            f"{f.path} is {(now - f.mtime) / 86400:.1f} days old"
            for f in sorted(files, key=lambda f: f.mtime)
            if now - f.mtime > limit
        ]
        if too_old:
            return failed(f"kept longer than {self.params['retention_days']:g} days:", *too_old)
        oldest = min(files, key=lambda f: f.mtime)
        return passed(f"oldest {oldest.path} is {(now - oldest.mtime) / 86400:.1f} days old")

    def _encryption(self, ctx: CheckContext, files: list[FileStat]) -> Verdict:
        plain, encrypted = [], []
        for info in files:
            try:
                head = ctx.host.read_bytes(info.path, limit=64)
            except HostError as exc:
                return errored(f"cannot read {info.path}", str(exc))
            tool = encryption_of(head)
            (encrypted if tool else plain).append(f"{info.path}: {tool or 'not encrypted'}")
        return failed(*plain) if plain else passed(*encrypted[:10])

    def _permissions(self, ctx: CheckContext, directory: str, files: list[FileStat]) -> Verdict:
        readable = [f"{f.path}: mode {f.mode:04o}" for f in files if f.mode & 0o004]
        return failed(*readable) if readable else passed(f"{len(files)} files, none world-readable")


def encryption_of(head: bytes) -> str | None:
    """Name of the tool that encrypted a file, from its first bytes; None if it looks plain."""
    for magic, tool in ENCRYPTED_HEADERS:
        if head.startswith(magic):
            return tool
    if head and head[0] in OPENPGP_SESSION_KEY_OCTETS:
        return "OpenPGP"
    return None


def _backup_files(ctx: CheckContext, directory: str) -> list[FileStat]:
    host = ctx.host
    if not host.stat(directory).is_dir:
        raise HostError(f"{directory} is not a directory")
    found: list[FileStat] = []
    pending = [(directory, 0)]
    while pending and len(found) < MAX_FILES:
        current, depth = pending.pop()
        for name in host.listdir(current):
            path = f"{current.rstrip('/')}/{name}"
            info = host.stat(path, follow_symlinks=False)
            if info.is_dir and depth < MAX_DEPTH:
                pending.append((path, depth + 1))
            elif info.is_file:
                found.append(info)
    return found


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f}h"

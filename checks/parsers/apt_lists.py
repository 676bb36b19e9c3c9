"""The package indexes ``apt-get update`` downloaded into /var/lib/apt/lists.

Each archive suite has a Release (or signed InRelease) file naming it (Origin, Label, Suite,
Codename) and Packages indexes beside it with the same file-name prefix
(``<site>_<path>_dists_<suite>_``). apt may keep indexes compressed (``Acquire::GzipIndexes``,
as container images do): gz, xz and bz2 are read compressed and decompressed here; an
uncompressed index goes through ``grep`` on the audited host, lz4 and zstd through apt's own
``apt-helper cat-file`` and ``grep``, so that only the lines ``package_versions`` looks at
cross the connection (a tenth of the index).
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import re
import threading
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Generic, TypeVar

from checks.hosts import CommandNotFound, Host, HostError, PlannedCommand
from checks.parsers.deb822 import Deb822Error, stanzas
from checks.parsers.deb_version import compare

T = TypeVar("T")

LISTS_DIR = "/var/lib/apt/lists"
APT_HELPER = "/usr/lib/apt/apt-helper"
_DECOMPRESS = {".gz": gzip.decompress, ".xz": lzma.decompress, ".bz2": bz2.decompress}
_WITH_APT_HELPER = (".lz4", ".zst")
_PACKAGES = re.compile(r"_Packages(\.gz|\.xz|\.bz2|\.lz4|\.zst)?$")
#: One of the three fields, or an empty line (the end of a stanza). Field names are
#: ASCII-case-insensitive, as apt reads them (``(?a:``: re.I alone would also take the Kelvin
#: sign for a k, a dotless i for an i, a long s for an s), as ``_FILTER`` keeps them.
_WANTED = re.compile(r"^(?:(?a:(Package|Version|Architecture)):[ \t]*(\S+)[ \t]*)?$", re.M | re.I)
#: grep keeping a superset of the lines ``_WANTED`` matches, so that the fields found in its
#: output are those found in the whole index: both split lines at "\n" only (a CRLF blank
#: line is no stanza's end to either), a field line begins with its name and a colon, an
#: empty line ends a stanza; the other lines it keeps (a field with trailing words, say)
#: ``_WANTED`` skips there as here. -a: a stray NUL byte must not turn the lines into
#: "binary file matches". Hosts run commands under LC_ALL=C, where -i folds ASCII letters
#: as ``_WANTED`` does; any other locale folds more, still a superset.
_FILTER = ("grep", "-a", "-i", "-E", "-e", "^((package|version|architecture):|$)")
#: ``apt-helper cat-file INDEX | grep ...`` for dash, which has no pipefail: the pipeline's
#: status is grep's, and apt-helper failing midway would look like a shorter index. So the
#: helper's status leaves its side of the pipe on fd 4, which the command substitution
#: reads, while grep writes the lines to the script's stdout, saved as fd 3; grep's status
#: is the substitution's. Exits as grep does (0 lines, 1 none, 2 trouble), and 2 with
#: "apt-helper exited N" on stderr after the helper's own messages when the helper failed.
#: Words: $1 apt-helper, $2 the index, then grep's argv; no word is ever part of the script.
_HELPER_SCRIPT = """\
helper=$1 index=$2
shift 2
exec 3>&1
status=$( { { "$helper" cat-file -- "$index" 3>&- 4>&-; echo $? >&4; } |
            "$@" >&3 3>&- 4>&-; } 4>&1 )
found=$?
[ "$status" = 0 ] || { echo "$helper exited ${status:-abnormally}" >&2; exit 2; }
exit $found
"""
_SIGNED_BODY = re.compile(
    r"-----BEGIN PGP SIGNED MESSAGE-----\n(?:[^\n]+\n)*\n(.*?)-----BEGIN PGP SIGNATURE-----",
    re.DOTALL,
)


@dataclass(frozen=True)
class Release:
    """One downloaded archive suite."""

    path: str  # its InRelease or Release file
    origin: str
    label: str
    suite: str
    codename: str

    @property
    def prefix(self) -> str:
        """What the names of its index files start with."""
        return self.path.rsplit("_", 1)[0]

    @property
    def is_security(self) -> bool:
        """Debian's security archive (Label Debian-Security), or a ``*-security`` suite
        (Ubuntu's, and mirrors that relabel)."""
        names = (self.suite, self.codename)
        return self.label == "Debian-Security" or any(n.endswith("-security") for n in names)

    def __str__(self) -> str:
        return f"{self.label or self.origin} {self.codename or self.suite}"


class _Kept(Generic[T]):
    """The last few parses of apt's files, by a digest (not the text: the agent runs for
    months). The hosts of a fleet mostly download the same files from the same mirror:
    parsing them again for each host was a fifth of a fleet audit's CPU in this process.
    A host asking for one being parsed waits for it. What is kept is shared, so it must be
    read-only."""

    def __init__(self, size: int):
        self._size = size
        self._kept: dict[bytes, T] = {}  # oldest first
        self._parsing: dict[bytes, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, text: str, parse: Callable[[], T]) -> T:
        return self.by_digest(hashlib.blake2b(text.encode(), digest_size=16).digest(), parse)

    def by_digest(self, digest: bytes, parse: Callable[[], T]) -> T:
        with self._lock:
            parsing = self._parsing.setdefault(digest, threading.Lock())
        try:
            with parsing:
                with self._lock:
                    kept = self._kept.get(digest)
                if kept is None:
                    kept = parse()
                    with self._lock:
                        self._kept[digest] = kept
                        while len(self._kept) > self._size:
                            del self._kept[next(iter(self._kept))]  # the oldest
                return kept
        finally:
            with self._lock:
                self._parsing.pop(digest, None)


_RELEASES: _Kept[Release] = _Kept(16)
_INDEXES: _Kept[Mapping[tuple[str, str], str]] = _Kept(8)
#: The same, by the SHA-256 of the index's file as it lies on the host (``offered_versions``).
_INDEX_FILES: _Kept[Mapping[tuple[str, str], str]] = _Kept(8)


def releases(host: Host) -> list[Release]:
    """Every downloaded suite (an InRelease wins over a Release of the same suite).
    Raises HostError when a Release file cannot be read."""
    found: dict[str, Release] = {}
    for path in host.glob(f"{LISTS_DIR}/*_Release") + host.glob(f"{LISTS_DIR}/*_InRelease"):
        release = read_release(host.read_text(path), path)
        found[release.prefix] = release  # the InRelease, globbed second, wins
    return sorted(found.values(), key=lambda r: r.path)


def read_release(text: str, path: str) -> Release:
    """The fields naming a suite, from a Release file or the body of a signed InRelease
    (kept: an InRelease holds every index's checksums, 150 KB for Debian's main suite)."""
    return replace(_RELEASES.get(text, lambda: _parsed_release(text, path)), path=path)


def _parsed_release(text: str, path: str) -> Release:
    signed = _SIGNED_BODY.search(text)
    body = signed.group(1) if signed else text
    try:
        first = next(iter(stanzas(body, path)), (0, {}))[1]
    except Deb822Error as exc:
        raise HostError(str(exc)) from exc
    return Release(
        path, *(first.get(name, "") for name in ("origin", "label", "suite", "codename"))
    )


def packages_indexes(host: Host, release: Release) -> list[str]:
    """The Packages indexes downloaded for a suite (every component and architecture)."""
    return [
        path
        for path in host.glob(f"{release.prefix}_*Packages*")
        if _PACKAGES.search(path) and ".diff" not in path
    ]


def offered_versions(host: Host, path: str) -> Mapping[tuple[str, str], str]:
    """``package_versions`` of the index at ``path``. An index file seen before, by its
    SHA-256 taken on the host, is not read again: a fleet's hosts mostly hold the same
    indexes, and reading one (apt-helper decompressing 2.6 MB for grep to keep a tenth, sent
    and parsed here) costs a host more CPU than anything else the audit runs there. Raises
    HostError.

    The digest and the text come from two commands a moment apart: should apt replace the
    file in between, the digest of the old file names the new file's versions until this
    process ends, which only a host still holding the old file would ever see.
    """
    digest = file_digest(host, path)
    if digest is None:
        return package_versions(read_index(host, path))
    return _INDEX_FILES.by_digest(digest, lambda: package_versions(read_index(host, path)))


def digest_command(path: str) -> PlannedCommand:
    """The command ``file_digest`` runs (``CheckType.commands``)."""
    return PlannedCommand(("sha256sum", "--", path))


def file_digest(host: Host, path: str) -> bytes | None:
    """The SHA-256 of a file, computed where it lies (None where it cannot be: a tree
    audited under --root, no sha256sum, an error; the file is then read)."""
    if not host.is_live:
        return None
    try:
        done = host.run(digest_command(path).argv)
    except HostError:
        return None
    hexdigest = done.stdout.partition(" ")[0]
    if done.exit_code != 0 or not re.fullmatch(r"[0-9a-f]{64}", hexdigest):
        return None
    return bytes.fromhex(hexdigest)


def index_command(path: str) -> PlannedCommand | None:
    """The command ``read_index`` runs for ``path``, printing only the lines
    ``package_versions`` looks at; None for gz, xz and bz2, which cross the connection
    compressed (smaller still) and are decompressed here."""
    if path.endswith(tuple(_DECOMPRESS)):
        return None
    if path.endswith(_WITH_APT_HELPER):
        return PlannedCommand(("sh", "-c", _HELPER_SCRIPT, "sh", APT_HELPER, path, *_FILTER))
    return PlannedCommand((*_FILTER, "--", path))


def read_index(host: Host, path: str) -> str:
    """An index's text, decompressed: of an uncompressed, lz4 or zstd index only the lines
    ``package_versions`` looks at (what it finds in them is what it finds in the whole).
    Raises HostError."""
    command = index_command(path)
    if command is None:
        extension = "." + path.rsplit(".", 1)[-1]
        try:
            return _DECOMPRESS[extension](host.read_bytes(path)).decode("utf-8", "replace")
        except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
            raise HostError(f"{path}: cannot decompress: {exc}") from exc
    helper = path.endswith(_WITH_APT_HELPER)
    try:
        done = host.run(command.argv, command.timeout)
    except CommandNotFound:
        if helper or host.is_live:
            raise
        return host.read_text(path)  # a tree under --root runs no command: read it whole
    if done.exit_code > 1:  # grep's 1: no line kept, an index without packages
        reader = f"{APT_HELPER} cat-file" if helper else "grep"
        raise HostError(f"{reader} {path}: {done.stderr.strip()[:200]}")
    return done.stdout


def package_versions(text: str) -> Mapping[tuple[str, str], str]:
    """(package, architecture) -> version, the newest when an index lists several.

    Only those three fields and the blank lines between stanzas are looked at: an index apt
    accepted (signed, hash-checked) needs no other validation, and one pass of one pattern
    keeps a 3 MB index at a few milliseconds; the last few are kept (``_Kept``).
    """
    return _INDEXES.get(text, lambda: MappingProxyType(_newest_versions(text)))


def _newest_versions(text: str) -> dict[tuple[str, str], str]:
    versions: dict[tuple[str, str], str] = {}
    fields: dict[str, str] = {}
    for name, value in [*_WANTED.findall(text), ("", "")]:
        if name:
            fields[name.lower()] = value
            continue
        key = (fields.get("package", ""), fields.get("architecture", ""))
        version = fields.get("version", "")
        if key[0] and version and (key not in versions or compare(version, versions[key]) > 0):
            versions[key] = version
        fields = {}
    return versions

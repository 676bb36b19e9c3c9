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
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from checks.hosts import CommandNotFound, Host, HostError, PlannedCommand
from checks.parsers.deb822 import Deb822Error, stanzas
from checks.parsers.deb_version import compare

LISTS_DIR = "/var/lib/apt/lists"
APT_HELPER = "/usr/lib/apt/apt-helper"
_DECOMPRESS = {".gz": gzip.decompress, ".xz": lzma.decompress, ".bz2": bz2.decompress}
_WITH_APT_HELPER = (".lz4", ".zst")
_PACKAGES = re.compile(r"_Packages(\.gz|\.xz|\.bz2|\.lz4|\.zst)?$")
#: Parsed indexes kept for the next host (``package_versions``), by digest, oldest first.
_PARSED: dict[bytes, Mapping[tuple[str, str], str]] = {}
_PARSED_KEPT = 8
_PARSED_LOCK = threading.Lock()
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


def releases(host: Host) -> list[Release]:
    """Every downloaded suite (an InRelease wins over a Release of the same suite).
    Raises HostError when a Release file cannot be read."""
    found: dict[str, Release] = {}
    for path in host.glob(f"{LISTS_DIR}/*_Release") + host.glob(f"{LISTS_DIR}/*_InRelease"):
        release = read_release(host.read_text(path), path)
        found[release.prefix] = release  # the InRelease, globbed second, wins
    return sorted(found.values(), key=lambda r: r.path)


def read_release(text: str, path: str) -> Release:
    """The fields naming a suite, from a Release file or the body of a signed InRelease."""
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
    keeps a 3 MB index at a few milliseconds. The hosts of a fleet mostly download the
    same indexes from the same mirror, so the last few results are kept, by a digest of
    the text (not the text: the agent runs for months): parsing one per host was a fifth
    of a fleet audit's CPU in this process. Read-only, as it is shared.
    """
    digest = hashlib.blake2b(text.encode(), digest_size=16).digest()
    with _PARSED_LOCK:
        parsed = _PARSED.get(digest)
    if parsed is None:
        parsed = MappingProxyType(_newest_versions(text))
        with _PARSED_LOCK:
            _PARSED[digest] = parsed
            while len(_PARSED) > _PARSED_KEPT:
                del _PARSED[next(iter(_PARSED))]  # the oldest
    return parsed


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

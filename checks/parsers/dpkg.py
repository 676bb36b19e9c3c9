"""dpkg's status file (/var/lib/dpkg/status): every package dpkg knows and its state.

What dpkg itself refuses (a line that is no field, a stanza without Package, a bad Status,
an installed package without Version) raises DpkgError, and so does a file without a
single stanza with Package and Status: read as "nothing installed", garbage would skip
every check that applies to a package. dpkg accepts an empty file, but no Debian system
has one (dpkg lists itself). A system with no package installed is still expressible:
stanzas whose Status is ``not-installed`` or ``config-files``.
"""

from __future__ import annotations

from dataclasses import dataclass

from checks.parsers.deb822 import Deb822Error, stanzas

DPKG_STATUS = "/var/lib/dpkg/status"
#: Where dpkg keeps each package's file list (<name>[:<arch>].list), rewritten at install.
DPKG_INFO = "/var/lib/dpkg/info"

#: The words dpkg accepts in a Status field: what is wanted, an error flag, the state.
WANTS = frozenset({"unknown", "install", "hold", "deinstall", "purge"})
FLAGS = frozenset({"ok", "reinstreq"})
STATES = frozenset(
    {
        "not-installed",
        "config-files",
        "half-installed",
        "unpacked",
        "half-configured",
        "triggers-awaited",
        "triggers-pending",
        "installed",
    }
)


class DpkgError(ValueError):
    """dpkg would refuse this status file; names the file and the line."""


@dataclass(frozen=True)
class DpkgPackage:
    """One stanza of the status file that carries a Status."""

    name: str  # without an ":arch" qualifier
    architecture: str  # "" when the stanza names none
    version: str  # "" when none is recorded (a package that is not installed)
    want: str  # install, hold, deinstall, purge, unknown
    flag: str  # ok, reinstreq
    state: str  # installed, config-files, half-configured, ...
    line: int

    @property
    def installed(self) -> bool:
        return self.state == "installed"


def read_status(text: str, source: str = DPKG_STATUS) -> list[DpkgPackage]:
    """Every package with a Status, in file order. Raises DpkgError (see the module)."""
    packages: list[DpkgPackage] = []
    try:
        parsed = list(stanzas(text, source))
    except Deb822Error as exc:
        raise DpkgError(str(exc)) from exc
    for line, fields in parsed:
        name = fields.get("package")
        if not name:
            raise DpkgError(f"{source}:{line}: a stanza without a Package field")
        if "status" not in fields:
            continue  # dpkg reads it as not installed
        words = fields["status"].split()
        if not (len(words) == 3 and words[0] in WANTS and words[1] in FLAGS and words[2] in STATES):
            raise DpkgError(f"{source}:{line}: package {name}: invalid Status field")
        version = fields.get("version", "")
        if words[2] == "installed" and not version:
            raise DpkgError(f"{source}:{line}: package {name}: installed without a Version")
        bare, _, qualifier = name.partition(":")
        architecture = fields.get("architecture", qualifier)
        packages.append(DpkgPackage(bare, architecture, version, *words, line))
    if not packages:
        raise DpkgError(f"{source}: not a dpkg database (no stanza with Package and Status)")
    return packages


def installed_versions(packages: list[DpkgPackage]) -> dict[str, str]:
    """Installed packages (name -> version); half-installed or removed ones are left out."""
    return {p.name: p.version for p in packages if p.installed}

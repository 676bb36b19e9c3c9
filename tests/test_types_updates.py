"""Security updates reach the host: the security archive is an APT source (with apt itself
as the oracle of what the sources say), no security update waits, no reboot is pending."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import FIXTURES, require_program
from servers import run_check
from treeutil import context, make_tree

from checks.hosts import LocalHost
from checks.parsers.apt_sources import parse_sources
from checks.result import Status
from checks.types.updates import AptSecuritySourceCheck

BOOKWORM = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n'
DEBIAN_SOURCES = (FIXTURES / "apt" / "debian.sources").read_text()
INSTALLER_LIST = (FIXTURES / "apt" / "sources.list.bookworm").read_text()
SECURITY_LINE = (
    "deb http://security.debian.org/debian-security bookworm-security main non-free-firmware"
)
SOURCES_D = "/etc/apt/sources.list.d"
SECURITY_ARCHIVE = "http://deb.debian.org/debian-security"


def tree(root: Path, files: dict[str, str], os_release: str | None = BOOKWORM) -> Path:
    if os_release is not None:
        files = {"/etc/os-release": os_release, **files}
    return make_tree(root, files)


def security_source(root: Path):
    return run_check(AptSecuritySourceCheck, {}, context(root))


# name: (files, status, first evidence line)
CASES = {
    "deb822 of the container image": (
        {f"{SOURCES_D}/debian.sources": DEBIAN_SOURCES},
        "pass",
        f"{SOURCES_D}/debian.sources:8: deb http://deb.debian.org/debian-security "
        "bookworm-security main",
    ),
    "sources.list of the installer": (
        {"/etc/apt/sources.list": INSTALLER_LIST},
        "pass",
        f"/etc/apt/sources.list:6: {SECURITY_LINE}",
    ),
    "security line commented out": (
        {"/etc/apt/sources.list": INSTALLER_LIST.replace(SECURITY_LINE, f"# {SECURITY_LINE}")},
        "fail",
        "no enabled 'deb' source of bookworm-security or bookworm/updates with the main component",
    ),
    "only source packages": (
        {"/etc/apt/sources.list": f"deb-src {SECURITY_ARCHIVE} bookworm-security main\n"},
        "fail",
        "no enabled 'deb' source of bookworm-security or bookworm/updates with the main component",
    ),
    "deb822 stanza disabled": (
        {
            f"{SOURCES_D}/debian.sources": DEBIAN_SOURCES.replace(
                "Suites: bookworm-security", "Suites: bookworm-security\nEnabled: no"
            )
        },
        "fail",
        "no enabled 'deb' source of bookworm-security or bookworm/updates with the main component",
    ),
    "the previous release's security suite": (
        {"/etc/apt/sources.list": INSTALLER_LIST.replace("bookworm-security", "bullseye-security")},
        "fail",
        "no enabled 'deb' source of bookworm-security or bookworm/updates with the main component",
    ),
    "an alias that moves with the releases": (
        {"/etc/apt/sources.list": INSTALLER_LIST.replace("bookworm-security", "stable-security")},
        "fail",
        "no enabled 'deb' source of bookworm-security or bookworm/updates with the main component",
    ),
    "without the main component": (
        {"/etc/apt/sources.list": f"deb {SECURITY_ARCHIVE} bookworm-security contrib\n"},
        "fail",
        "no enabled 'deb' source of bookworm-security or bookworm/updates with the main component",
    ),
    "in a file apt ignores by its name": (
        {f"{SOURCES_D}/security.list.disabled": f"{SECURITY_LINE}\n"},
        "fail",
        "no APT sources at all (/etc/apt/sources.list, /etc/apt/sources.list.d)",
    ),
    "a malformed line stops apt": (
        {"/etc/apt/sources.list": f"{SECURITY_LINE}\ndeb http://deb.debian.org/debian\n"},
        "fail",
        "apt refuses its sources: /etc/apt/sources.list:2: malformed entry (dist) "
        "(apt refuses its sources)",
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_security_source(tmp_path, name):
    files, status, first = CASES[name]
    verdict = security_source(tree(tmp_path, files))
    assert (verdict.status.value, verdict.evidence[0]) == (status, first)


def test_without_a_release_codename_any_security_suite_counts(tmp_path):
    root = tree(tmp_path, {"/etc/apt/sources.list": INSTALLER_LIST}, os_release=None)
    verdict = security_source(root)
    assert verdict.status is Status.PASS
    assert verdict.evidence[-1] == "note: no VERSION_CODENAME in os-release"


def apt_index_targets(root: Path) -> tuple[int, set[tuple[str, str, str, str]]]:
    """What apt itself makes of the tree's sources: (exit code, {(type, URI, suite,
    component)} of the enabled entries)."""
    apt_get = require_program("apt-get")
    state = root.parent / f"{root.name}-apt-state"
    (state / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [
            apt_get,
            *("-o", f"Dir::Etc={root}/etc/apt", "-o", "Dir::Etc::Parts=/nonexistent"),
            *("-o", f"Dir::State={state}", "-o", f"Dir::Cache={state}/cache"),
            *("indextargets", "--no-release-info"),
            *("--format", "$(TARGET_OF) $(REPO_URI) $(RELEASE) $(COMPONENT) $(IDENTIFIER)"),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "LC_ALL": "C"},
    )
    targets = set()
    for line in done.stdout.splitlines():
        words = line.split()
        if len(words) == 5 and words[4] in ("Packages", "Sources"):
            targets.add(tuple(words[:4]))
    return done.returncode, targets


@pytest.mark.parametrize("name", CASES)
def test_the_parser_reads_the_sources_as_apt_does(tmp_path, name):
    root = tree(tmp_path / "root", CASES[name][0])
    code, targets = apt_index_targets(root)
    sources = parse_sources(LocalHost(str(root)))
    assert (code != 0) == bool(sources.problems)
    if code == 0:
        ours = {
            (kind, uri if uri.endswith("/") else f"{uri}/", suite, component)
            for entry in sources.entries
            if entry.enabled
            for kind in entry.types
            for uri in entry.uris
            for suite in entry.suites
            for component in entry.components
        }
        assert ours == targets

"""dpkg's status file: read as dpkg reads it, with dpkg-query itself as the judge.

What dpkg refuses we refuse (HostError, so package-gated checks end as ``error``). We are
stricter in one way only: a file without a single stanza with Package and Status (empty,
blank, Status-less) is no package database of a Debian system, though dpkg accepts it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import require_program

from checks.hosts import DPKG_STATUS, HostError, parse_dpkg_status

INSTALLED = "Status: install ok installed\nVersion: 1.0\nArchitecture: all\n"

AGREED = {
    "installed, removed and never installed": (
        f"Package: foo\n{INSTALLED}\nPackage: bar\nStatus: deinstall ok config-files\n"
        "Version: 2\n\nPackage: baz\n\n\n"
        "Package: held\nStatus: hold ok installed\nVersion: 3:4.5-6\nArchitecture: all\n"
    ),
    "continuation lines and lower-case field names": (
        "Package: foo\nstatus: install ok installed\nversion: 1.0\nArchitecture: all\n"
        "Description: a package\n long text\n .\n more\nConffiles:\n /etc/foo 123\n"
    ),
    "a package of two architectures": (
        "Package: libc6\nStatus: install ok installed\nVersion: 2.36\nArchitecture: amd64\n"
        "Multi-Arch: same\n\n"
        "Package: libc6\nStatus: install ok installed\nVersion: 2.36\nArchitecture: i386\n"
        "Multi-Arch: same\n"
    ),
    "nothing installed": "Package: foo\nStatus: purge ok not-installed\n",
    "a line that is no field": f"Package: foo\n{INSTALLED}garbage\n",
    "a comment": f"# written by hand\nPackage: foo\n{INSTALLED}",
    "a stanza without Package": f"Package: foo\n{INSTALLED}\n{INSTALLED}",
    "an unknown Status word": "Package: foo\nStatus: install ok sideways\nVersion: 1\n",
    "trailing junk in Status": "Package: foo\nStatus: install ok installed now\nVersion: 1\n",
    "a repeated field": f"Package: foo\nPackage: foo\n{INSTALLED}",
    "installed without a Version": "Package: foo\nStatus: install ok installed\n",
    "white space between stanzas": f"Package: foo\n{INSTALLED}\n \n\nPackage: bar\n{INSTALLED}",
    "a continuation line first": f" indented\nPackage: foo\n{INSTALLED}",
}


def dpkg_query(tmp_path: Path, content: str) -> dict[str, str] | None:
    """dpkg-query's installed packages from this status file, or None when it refuses it."""
    program = require_program("dpkg-query")
    admin = tmp_path / "dpkg"
    (admin / "updates").mkdir(parents=True, exist_ok=True)
    (admin / "info").mkdir(exist_ok=True)
    (admin / "available").touch()
    (admin / "status").write_text(content)
    return installed_by_dpkg(program, admin)


def installed_by_dpkg(program: str, admin: Path) -> dict[str, str] | None:
    done = subprocess.run(
        [program, f"--admindir={admin}", "-W", "-f", "${Package} ${Status} ${Version}\\n"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return None
    installed = {}
    for line in done.stdout.splitlines():
        name, _want, _flag, state, version = line.split(" ", 4)
        if state == "installed":
            installed[name] = version
    return installed


def ours(content: str) -> dict[str, str] | None:
    try:
        return parse_dpkg_status(content)
    except HostError:
        return None


@pytest.mark.parametrize("content", list(AGREED.values()), ids=list(AGREED))
def test_we_accept_and_refuse_what_dpkg_does(tmp_path, content):
    assert ours(content) == dpkg_query(tmp_path, content)


def test_this_hosts_package_database_reads_as_dpkg_reads_it():
    program = require_program("dpkg-query")
    expected = installed_by_dpkg(program, Path(DPKG_STATUS).parent)
    assert expected, "dpkg-query lists no installed package on this host"
    assert parse_dpkg_status(Path(DPKG_STATUS).read_text()) == expected


@pytest.mark.parametrize(
    "content",
    ["", "\n\n\n", "Package: foo\n\nPackage: bar\n"],
    ids=["empty", "blank lines", "stanzas without Status"],
)
def test_a_file_dpkg_accepts_but_no_system_has_is_refused(tmp_path, content):
    assert dpkg_query(tmp_path, content) is not None
    with pytest.raises(HostError, match="not a dpkg database"):
        parse_dpkg_status(content)


def test_refusals_name_the_line():
    with pytest.raises(HostError, match=r"^/var/lib/dpkg/status:7: not a 'Field: value' line$"):
        parse_dpkg_status(f"Package: foo\n{INSTALLED}\n\n<html>\n")
    with pytest.raises(HostError, match=r":1: package foo: invalid Status field$"):
        parse_dpkg_status("Package: foo\nStatus: installed\n")

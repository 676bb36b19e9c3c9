"""dpkg_state: broken installs, leftovers of removed packages and old kernels, with dpkg's
own reading of the same status file (dpkg-query) as the oracle."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import require_program
from servers import run_check
from treeutil import context, make_tree

from checks.result import Status
from checks.types.dpkg import DpkgStateCheck

CLEAN = {
    "apache2": "install ok installed",
    "postgresql-15": "install ok installed",
    "linux-image-6.1.0-27-amd64": "install ok installed",
    "linux-image-6.1.0-28-amd64": "install ok installed",
    "linux-image-amd64": "install ok installed",  # the meta package: not a kernel
    "telnet": "purge ok not-installed",
}
UNTIDY = {
    **CLEAN,
    "php8.2-fpm": "install ok half-configured",
    "libssl3": "install reinstreq half-installed",
    "man-db": "install ok triggers-pending",
    "vsftpd": "deinstall ok config-files",
    **{f"linux-image-6.1.0-{n}-amd64": "deinstall ok config-files" for n in (20, 21, 22, 23)},
}


def status_file(packages: dict[str, str]) -> str:
    return "\n".join(
        f"Package: {name}\nStatus: {status}\nArchitecture: amd64\nVersion: 1.0-1\n"
        "Maintainer: Debian <debian@example.org>\nDescription: test\n"
        + ("Triggers-Pending: ldconfig\n" if status.endswith("triggers-pending") else "")
        for name, status in packages.items()
    )


def state(root: Path, aspect: str):
    return run_check(DpkgStateCheck, {"aspect": aspect}, context(root))


def tree(root: Path, packages: dict[str, str]) -> Path:
    return make_tree(root, {"/var/lib/dpkg/status": status_file(packages)})


def test_a_clean_database_passes_every_aspect(tmp_path):
    root = tree(tmp_path, CLEAN)
    assert {a: state(root, a).evidence for a in ("broken", "leftovers", "kernels")} == {
        "broken": ("6 packages, every one fully installed or removed",),
        "leftovers": ("no removed package left configuration files behind",),
        "kernels": (
            "2 kernel package(s)",
            "linux-image-6.1.0-27-amd64:amd64 1.0-1 (installed)",
            "linux-image-6.1.0-28-amd64:amd64 1.0-1 (installed)",
        ),
    }


def test_an_untidy_database_fails_every_aspect(tmp_path):
    root = tree(tmp_path, UNTIDY)
    broken, leftovers, kernels = (state(root, a) for a in ("broken", "leftovers", "kernels"))
    assert broken.evidence == (
        "php8.2-fpm:amd64: half-configured, ok",
        "libssl3:amd64: half-installed, reinstreq",
        "man-db:amd64: triggers-pending, ok",
    )
    assert leftovers.evidence[0] == "vsftpd:amd64: removed, configuration files left"
    assert len(leftovers.evidence) == 5
    assert kernels.evidence[0] == "6 kernel packages (at most 5)"
    assert {broken.status, leftovers.status, kernels.status} == {Status.FAIL}


@pytest.mark.parametrize("packages", [CLEAN, UNTIDY], ids=["clean", "untidy"])
def test_states_agree_with_dpkg_query(tmp_path, packages):
    dpkg_query = require_program("dpkg-query")
    root = tree(tmp_path, packages)
    admin = root / "var/lib/dpkg"
    (admin / "available").touch()
    (admin / "info").mkdir()
    (admin / "updates").mkdir()
    listed = subprocess.run(
        [dpkg_query, f"--admindir={admin}", "-W", "-f=${db:Status-Abbrev}${Package}\\n"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    abbrev = {line[3:]: line[:3] for line in listed}
    dpkg_broken = {n for n, a in abbrev.items() if a[1] not in "icn" or a[2] == "R"}
    dpkg_leftover = {n for n, a in abbrev.items() if a[1] == "c"}
    ours_broken = {line.split(":")[0] for line in state(root, "broken").evidence if ": " in line}
    leftovers = state(root, "leftovers").evidence
    ours_leftover = {line.split(":")[0] for line in leftovers if line.endswith("files left")}
    assert (ours_broken, ours_leftover) == (dpkg_broken, dpkg_leftover)

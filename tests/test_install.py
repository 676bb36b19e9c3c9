"""scripts/install as a sysadmin runs it, staged into a temporary prefix and DESTDIR so this
machine's /opt, /usr/local and /etc stay untouched: quiet (no build or deprecation
warning), units pointing at the prefix, man page and completion in place, and an
uninstall that removes all of it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT, require_program

pytestmark = pytest.mark.slow

UNITS = ("lappguard.service", "lappguard-audit.service", "lappguard-audit.timer")


def install(prefix: Path, dest: Path, *flags: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "LAPPGUARD_PREFIX": str(prefix),
        "DESTDIR": str(dest),
        # only the project's own output is judged, not this machine's pip configuration
        "PIP_CONFIG_FILE": os.devnull,
    }
    return subprocess.run([str(PROJECT_ROOT / "scripts/install"), *flags], env=env,
                          capture_output=True, text=True, timeout=900)  # fmt: skip


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    base = tmp_path_factory.mktemp("install")
    prefix, dest = base / "opt", base / "root"
    done = install(prefix, dest, "--service")
    return prefix, dest, done


def test_install_is_quiet_and_working(staged):
    prefix, dest, done = staged
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"lappguard installed in {prefix} (lappguard 0.1.0); man lappguard",
        f"units installed in {dest}/etc/systemd/system (systemd is not running here)",
    ]
    link = dest / "usr/local/bin/lappguard"
    assert os.readlink(link) == f"{prefix}/bin/lappguard"
    version = subprocess.run([str(link), "--version"], capture_output=True, text=True)
    assert version.stdout == "lappguard 0.1.0\n"


def test_units_start_what_was_installed(staged):
    prefix, dest, _ = staged
    for unit in UNITS:
        text = (dest / "etc/systemd/system" / unit).read_text()
        assert "/opt/lappguard" not in text
        for line in text.splitlines():
            if line.startswith("ExecStart="):
                assert line.split("=", 1)[1].split()[0] == f"{prefix}/bin/lappguard"
    assert (dest / "etc/lappguard/agent.yaml").read_text() == (
        PROJECT_ROOT / "contrib/agent.yaml"
    ).read_text()


def test_man_page_and_completion_are_installed(staged):
    _, dest, _ = staged
    man = require_program("man")
    page = dest / "usr/local/share/man/man1/lappguard.1"
    shown = subprocess.run([man, "-l", str(page)], capture_output=True, text=True)
    assert "lappguard audit [options]" in shown.stdout
    script = dest / "usr/local/share/bash-completion/completions/lappguard"
    completed = subprocess.run(
        ["bash", "-c", f"source {script}; COMP_WORDS=(lappguard au); COMP_CWORD=1; _lappguard; "
         'echo "${COMPREPLY[@]}"'],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert completed.stdout == "audit\n"


def test_uninstall_removes_everything_it_installed(tmp_path):
    prefix, dest = tmp_path / "opt", tmp_path / "root"
    assert install(prefix, dest).returncode == 0
    (dest / "etc/lappguard").mkdir(parents=True)
    (dest / "etc/lappguard/agent.yaml").write_text("state_dir: /var/lib/lappguard\n")
    done = install(prefix, dest, "--uninstall")
    assert done.returncode == 0, done.stderr
    assert not prefix.exists()
    left = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if not p.is_dir())
    assert left == ["etc/lappguard/agent.yaml"]  # the config stays without --purge
    assert install(prefix, dest, "--uninstall", "--purge").returncode == 0
    assert not (dest / "etc/lappguard").exists()


def test_uninstall_leaves_a_prefix_that_holds_no_lappguard(tmp_path):
    prefix = tmp_path / "not-lappguard"
    (prefix / "bin").mkdir(parents=True)
    done = install(prefix, tmp_path / "root", "--uninstall")
    assert done.returncode == 0 and prefix.exists()
    assert f"{prefix} holds no lappguard install" in done.stderr


def test_a_wrong_flag_is_a_usage_error(tmp_path):
    done = install(tmp_path / "opt", tmp_path / "root", "--services")
    assert done.returncode == 2
    assert done.stderr == "usage: scripts/install [--service | --uninstall [--purge]]\n"

"""The shipped units as systemd judges them: `systemd-analyze verify` clean, the agent's
sandbox exposure at most 2.0, and what the unit promises in its comments."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT, lappguard_command, require_program

UNITS = PROJECT_ROOT / "systemd"


def installed(tmp_path: Path, name: str) -> Path:
    """The unit as scripts/install writes it: ExecStart pointing at a real lappguard."""
    text = (UNITS / name).read_text().replace("/opt/lappguard/bin/lappguard", lappguard_command())
    target = tmp_path / name
    target.write_text(text)
    return target


@pytest.mark.parametrize(
    "names", [["lappguard.service"], ["lappguard-audit.service", "lappguard-audit.timer"]]
)
def test_units_verify_clean(tmp_path, names):
    analyze = require_program("systemd-analyze")
    units = [str(installed(tmp_path, name)) for name in names]
    done = subprocess.run([analyze, "verify", *units], capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_agent_exposure_is_at_most_2(tmp_path):
    analyze = require_program("systemd-analyze")
    unit = installed(tmp_path, "lappguard.service")
    done = subprocess.run([analyze, "security", "--offline=true", str(unit)],
                          capture_output=True, text=True)  # fmt: skip
    score = re.search(r"Overall exposure level for lappguard.service: ([\d.]+)", done.stdout)
    assert score, done.stdout + done.stderr
    assert float(score.group(1)) <= 2.0, done.stdout


def test_agent_unit_is_notify_with_watchdog_and_reload():
    text = (UNITS / "lappguard.service").read_text()
    for line in ("Type=notify", "WatchdogSec=", "ExecReload=/bin/kill -HUP $MAINPID",
                 "StateDirectory=lappguard", "ConfigurationDirectory=lappguard",
                 "ProtectSystem=strict", "NoNewPrivileges=yes"):  # fmt: skip
        assert line in text
    capabilities = re.search(r"^CapabilityBoundingSet=(.*)$", text, re.M).group(1).split()
    assert sorted(capabilities) == ["CAP_DAC_READ_SEARCH", "CAP_NET_ADMIN"]

"""The agent's unit runs as an unprivileged user with only the capabilities it names. This
runs the LAPP baseline under exactly those credentials (setpriv: another uid, the unit's
ambient and bounding capabilities) and as root, on this host with a real PostgreSQL
listening on every address, and requires the same verdict for every check: fewer
privileges must never turn a finding into a pass."""

from __future__ import annotations

import json
import re
import subprocess

from conftest import PROJECT_ROOT, lappguard_command, require_program, require_root
from servers import run_postgres

UNIT = PROJECT_ROOT / "systemd" / "lappguard.service"
NOBODY = "65534"
#: Checks that open a session inside PostgreSQL as its OS account (runuser): only root can,
#: so under the unit's credentials they must be errors, never a verdict.
NEED_ROOT = {f"LAPP-PG-0{n}" for n in range(20, 28)}
#: Checks that read other accounts' processes' open files (/proc/PID/fd): that takes root or
#: CAP_SYS_PTRACE, which the unit withholds. Under its credentials they see only the agent's
#: own processes: what they find still fails them, and what they cannot read is an error,
#: never a pass.
NEED_PTRACE = {"LAPP-LOG-007"}


def unit_capabilities() -> list[str]:
    text = UNIT.read_text()
    ambient = re.search(r"^AmbientCapabilities=(.*)$", text, re.M).group(1).split()
    bounding = re.search(r"^CapabilityBoundingSet=(.*)$", text, re.M).group(1).split()
    assert sorted(ambient) == sorted(bounding)
    return [name.removeprefix("CAP_").lower() for name in ambient]


def audit(*prefix: str) -> dict[str, tuple[str, list[str]]]:
    done = subprocess.run([*prefix, lappguard_command(), "audit", "--format", "json"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    results = json.loads(done.stdout)["hosts"][0]["results"]
    return {r["id"]: (r["status"], r["evidence"]) for r in results}


def test_the_units_credentials_give_roots_verdicts(tmp_path):
    require_root()
    setpriv = require_program("setpriv")
    caps = ",".join(f"+{cap}" for cap in unit_capabilities())
    as_unit = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
               f"--inh-caps=-all,{caps}", f"--ambient-caps=-all,{caps}",
               f"--bounding-set=-all,{caps}", "--no-new-privs"]  # fmt: skip
    with run_postgres(tmp_path, "*") as pg:
        # the postgres user runs another program too (a pg_dump, a psql from cron)
        other = subprocess.Popen(["runuser", "-u", "postgres", "--", "sleep", "120"])
        try:
            as_root = audit()
            unprivileged = audit(*as_unit)
        finally:
            other.kill()
            other.wait()
    assert as_root["LAPP-PG-010"][0] == "fail"
    assert any(f":{pg.port}" in line for line in unprivileged["LAPP-PG-010"][1]), unprivileged[
        "LAPP-PG-010"
    ]
    differ = {check: (as_root[check][0], unprivileged[check][0]) for check in as_root
              if as_root[check][0] != unprivileged[check][0]
              and check not in NEED_ROOT | NEED_PTRACE}  # fmt: skip
    assert differ == {}
    for check in NEED_PTRACE:
        assert unprivileged[check][0] in {"fail", "error"}, unprivileged[check]
        assert any("CAP_SYS_PTRACE" in line for line in unprivileged[check][1]), unprivileged[check]
    assert {as_root[check][0] for check in NEED_ROOT} <= {"pass", "fail"}
    assert {unprivileged[check][0] for check in NEED_ROOT} == {"error"}

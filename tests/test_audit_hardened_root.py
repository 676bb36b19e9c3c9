"""Acceptance: `lappguard audit --root` of a fully hardened host tree passes every applicable
check, and only the checks that need a running system are skipped."""

from __future__ import annotations

import json

from conftest import require_root
from treeutil import hardened_root

from agent.cli import main
from checks.policy import load_policy
from policies import builtin_policy

LIVE_ONLY = {
    "LAPP-SSH-051",
    "LAPP-SSH-052",
    "LAPP-SSH-053",
    "LAPP-SSH-054",
    "LAPP-SSH-050",
    "LAPP-TLS-050",
    "LAPP-TLS-051",
    "LAPP-TLS-052",
    "LAPP-TLS-053",
    "LAPP-TLS-054",
    "LAPP-TLS-055",
    "LAPP-TLS-056",
    "LAPP-TLS-057",
    "LAPP-TLS-058",
    "LAPP-TLS-059",
    "LAPP-TLS-061",
    "LAPP-TLS-062",
    "LAPP-TLS-063",
    "LAPP-TLS-064",
    "LAPP-TLS-065",
    "LAPP-PG-010",
    "LAPP-SVC-002",
    "LAPP-SVC-003",
    "LAPP-WEB-021",
    "LAPP-WEB-023",
    "LAPP-SVC-013",
    "LAPP-SVC-016",
    "LAPP-FW-011",
    "LAPP-LOG-005",
    "LAPP-LOG-007",
    "LAPP-LOG-008",
    "LAPP-PATCH-009",
    "LAPP-PATCH-010",
    *(f"LAPP-PG-0{n}" for n in range(20, 28)),
}
#: Checks of software the hardened tree does not have: they apply where it is installed.
NOT_INSTALLED = {"LAPP-LOG-011"}  # snoopy


def audit(tmp_path, root, *extra: str) -> tuple[int, list[dict]]:
    report = tmp_path / "report.json"
    code = main(
        [
            "audit",
            "--root",
            str(root),
            "--format",
            "json",
            "--output",
            str(report),
            "--var",
            "office_networks=10.0.0.0/8,192.168.10.0/24",
            "--var",
            "backup_dir=/srv/backup",
            *extra,
        ]
    )
    return code, json.loads(report.read_text())["hosts"][0]["results"]


def test_every_applicable_check_passes(tmp_path):
    require_root()  # owners: root (Apache configuration, TLS keys), uid 1000 (the login home)
    code, results = audit(tmp_path, hardened_root(tmp_path), "--fail-on", "low")
    not_passed = {
        r["id"]: (r["status"], r["reason"], r["evidence"]) for r in results if r["status"] != "pass"
    }
    assert set(not_passed) == LIVE_ONLY | NOT_INSTALLED, not_passed
    assert {status for status, _, _ in not_passed.values()} == {"skip"}
    every_id = {check.id for check in load_policy(builtin_policy("lapp-baseline")).checks}
    assert {r["id"] for r in results} == every_id
    assert code == 0


def test_the_same_tree_with_one_weakness_fails_exactly_that_check(tmp_path):
    root = hardened_root(tmp_path)
    dropin = root / "etc/ssh/sshd_config.d/50-hardening.conf"
    dropin.write_text(dropin.read_text().replace("MaxAuthTries 3", "MaxAuthTries 10"))
    code, results = audit(tmp_path, root)
    assert {r["id"] for r in results if r["status"] == "fail"} == {"LAPP-SSH-006"}
    assert code == 1

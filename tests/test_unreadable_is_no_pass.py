"""A directory the auditor cannot read is an error, never "no such file": a check that
passes when nothing matches (no admin-panel Alias in conf-enabled/*) would otherwise pass
on a host whose configuration it never saw. Run for real: an unprivileged user (nobody)
audits a tree whose Apache directory only root may list."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from conftest import lappguard_command, require_program, require_root
from treeutil import dpkg_status, make_tree

NOBODY = 65534


def audit_as_nobody(root: Path, check_id: str) -> dict:
    setpriv = require_program("setpriv")
    as_nobody = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    done = subprocess.run(
        [*as_nobody, lappguard_command(), "audit", "--root", str(root), "--only", check_id,
         "--format", "json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode in (0, 1, 3), done.stderr
    (result,) = json.loads(done.stdout)["hosts"][0]["results"]
    return result


def test_an_unlistable_directory_errors_where_an_absent_one_passes():
    require_root()
    base = Path(tempfile.mkdtemp(prefix="lappguard-unreadable-"))  # nobody must reach it
    try:
        os.chmod(base, 0o755)
        root = make_tree(
            base / "root",
            {
                "/var/lib/dpkg/status": dpkg_status("apache2"),
                "/etc/apache2/conf-enabled/phpmyadmin.conf": "Alias /phpmyadmin /usr/share/pma\n",
            },
        )
        for path in (root, root / "etc", root / "var", root / "var/lib", root / "var/lib/dpkg"):
            os.chmod(path, 0o755)
        os.chmod(root / "var/lib/dpkg/status", 0o644)
        os.chmod(root / "etc/apache2", 0o700)  # root's only

        hidden = audit_as_nobody(root, "LAPP-SVC-012")
        assert hidden["status"] == "error", hidden
        assert "Permission denied" in " ".join([hidden["reason"], *hidden["evidence"]]), hidden

        shutil.rmtree(root / "etc/apache2")  # truly absent: nothing to find, a pass
        assert audit_as_nobody(root, "LAPP-SVC-012")["status"] == "pass"
    finally:
        shutil.rmtree(base, ignore_errors=True)

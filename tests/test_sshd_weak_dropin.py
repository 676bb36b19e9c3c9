"""Every SSH configuration check fails on one weak drop-in, with the line that weakens it.

tests/fixtures/sshd/weak_everything.conf (synthetic) replaces the hardened tree's drop-in and
sets each keyword to a value the baseline refuses; the files and keys are opened up too.
"""

from __future__ import annotations

import json
import os
import shutil

from conftest import FIXTURES, require_root
from treeutil import hardened_root

from agent.cli import main

DROPIN = "/etc/ssh/sshd_config.d/50-hardening.conf"
FOR = " [for user=lappguard-audit,host=audit.invalid,addr=192.0.2.10]"
EXPECTED = {
    "LAPP-SSH-008": (
        "diffie-hellman-group14-sha1: fail (broken SHA-1 hash; 2048-bit group: 112-bit "
        "strength; no protection against post-quantum attacks): not allowed by the policy"
    ),
    "LAPP-SSH-009": "aes128-cbc: warn (weak CBC cipher mode): not allowed by the policy",
    "LAPP-SSH-010": (
        "hmac-sha1: fail (broken SHA-1 hash; encrypt-and-MAC mode): not allowed by the policy"
    ),
    "LAPP-SSH-011": "ssh-rsa: fail (broken SHA-1 hash): not allowed by the policy",
    "LAPP-SSH-013": "loglevel INFO ({DROPIN}:7): is 'INFO', expected 'VERBOSE'{FOR}",
    "LAPP-SSH-014": (
        "syslogfacility LOCAL0 ({DROPIN}:8): is 'LOCAL0', expected one of AUTH, AUTHPRIV{FOR}"
    ),
    "LAPP-SSH-015": "allowtcpforwarding yes ({DROPIN}:9): is 'yes', expected 'no'{FOR}",
    "LAPP-SSH-016": "allowagentforwarding yes ({DROPIN}:10): is 'yes', expected 'no'{FOR}",
    "LAPP-SSH-017": "allowstreamlocalforwarding yes ({DROPIN}:11): is 'yes', expected 'no'{FOR}",
    "LAPP-SSH-018": (
        "gatewayports clientspecified ({DROPIN}:12): is 'clientspecified', expected 'no'{FOR}"
    ),
    "LAPP-SSH-019": "permittunnel yes ({DROPIN}:13): is 'yes', expected 'no'{FOR}",
    "LAPP-SSH-020": "x11forwarding yes ({DROPIN}:14): is 'yes', expected 'no'{FOR}",
    "LAPP-SSH-021": "x11uselocalhost no ({DROPIN}:15): is 'no', expected 'yes'{FOR}",
    "LAPP-SSH-022": "maxsessions 10 ({DROPIN}:16): is 10, expected at most 2{FOR}",
    "LAPP-SSH-023": "clientaliveinterval 0 ({DROPIN}:17): is 0, expected at least 1{FOR}",
    "LAPP-SSH-024": "clientalivecountmax 3 ({DROPIN}:18): is 3, expected at most 2{FOR}",
    "LAPP-SSH-025": "logingracetime 120 ({DROPIN}:19): is 120, expected at most 30{FOR}",
    "LAPP-SSH-026": "maxstartups 10:30:100 ({DROPIN}:20): looser than 10:30:60",
    "LAPP-SSH-027": "strictmodes no ({DROPIN}:21): is 'no', expected 'yes'{FOR}",
    "LAPP-SSH-028": "ignorerhosts no ({DROPIN}:22): is 'no', expected 'yes'{FOR}",
    "LAPP-SSH-029": "ignoreuserknownhosts no ({DROPIN}:23): is 'no', expected 'yes'{FOR}",
    "LAPP-SSH-030": "hostbasedauthentication yes ({DROPIN}:24): is 'yes', expected 'no'{FOR}",
    "LAPP-SSH-031": "permituserenvironment yes ({DROPIN}:25): is 'yes', expected 'no'{FOR}",
    "LAPP-SSH-032": "compression yes ({DROPIN}:26): is 'yes', expected 'no'{FOR}",
    "LAPP-SSH-033": "usedns yes ({DROPIN}:27): is 'yes', expected 'no'{FOR}",
    "LAPP-SSH-034": (
        "banner /etc/issue.net ({DROPIN}:28): is '/etc/issue.net', expected 'none'{FOR}"
    ),
    "LAPP-SSH-035": "debianbanner yes ({DROPIN}:29): is 'yes', expected 'no'{FOR}",
    "LAPP-SSH-036": "pubkeyauthentication no ({DROPIN}:30): is 'no', expected 'yes'{FOR}",
    "LAPP-SSH-037": "kerberosauthentication yes ({DROPIN}:31): is 'yes', expected 'no'{FOR}",
    "LAPP-SSH-038": "tcpkeepalive yes ({DROPIN}:32): is 'yes', expected 'no'{FOR}",
    "LAPP-SSH-039": "printlastlog no ({DROPIN}:33): is 'no', expected 'yes'{FOR}",
    "LAPP-SSH-040": "neither AllowUsers nor AllowGroups is set: every account may log in",
    "LAPP-SSH-041": "fingerprinthash md5 ({DROPIN}:34): is 'md5', expected 'SHA256'{FOR}",
    "LAPP-SSH-042": "/etc/ssh: 0777 root:root (mode 0777 exceeds 0755)",
    "LAPP-SSH-043": "{DROPIN}: 0644 root:root (mode 0644 exceeds 0600)",
    "LAPP-SSH-044": "/etc/ssh/ssh_host_rsa_key: 0644 root:root (mode 0644 exceeds 0600)",
    "LAPP-SSH-045": (
        "default as user=lappguard-audit,host=audit.invalid,addr=192.0.2.10: hostbased, "
        "password: hostbased, password needs no key"
    ),
}


def test_every_ssh_check_fails_on_the_weak_drop_in_naming_its_line(tmp_path):
    require_root()
    root = hardened_root(tmp_path)
    shutil.copy(FIXTURES / "sshd/weak_everything.conf", root / DROPIN.lstrip("/"))
    os.chmod(root / DROPIN.lstrip("/"), 0o644)
    os.chmod(root / "etc/ssh/ssh_host_rsa_key", 0o644)
    os.chmod(root / "etc/ssh", 0o777)
    report = tmp_path / "report.json"
    main(["audit", "--root", str(root), "--format", "json", "--output", str(report),
          *(f"--only={check_id}" for check_id in EXPECTED)])  # fmt: skip
    results = json.loads(report.read_text())["hosts"][0]["results"]
    got = {r["id"]: (r["status"], (r["evidence"] or [r["reason"]])[0]) for r in results}
    expected = {
        check_id: ("fail", text.format(FOR=FOR, DROPIN=DROPIN))
        for check_id, text in EXPECTED.items()
    }
    assert got == expected

"""The accounts, files, logs and sshd-limit checks on host trees: exact outcomes.

Each check passes on the hardened tree (test_audit_hardened_root); here the same tree is
weakened one way per check, and exactly that check fails, with the evidence naming why.
"""

from __future__ import annotations

import json
import os

import pytest
from conftest import require_root
from treeutil import hardened_root

from agent.cli import main

WEAK_SHADOW = "root:$1$salt$hashhashhashhashhashha:19700:0:99999:7:::\n"


def run_audit(tmp_path, root, only: str) -> dict:
    report = tmp_path / "report.json"
    main(["audit", "--root", str(root), "--format", "json", "--output", str(report),
          "--var", "office_networks=10.0.0.0/8", "--only", only])  # fmt: skip
    (result,) = json.loads(report.read_text())["hosts"][0]["results"]
    return result


def append(root, path: str, text: str) -> None:
    (root / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
    with open(root / path.lstrip("/"), "a") as handle:
        handle.write(text)


def make_file(root, path: str, text: str, mode: int) -> None:
    (root / path.lstrip("/")).write_text(text)
    os.chmod(root / path.lstrip("/"), mode)


def link(root, path: str, target: str) -> None:
    (root / path.lstrip("/")).unlink()
    (root / path.lstrip("/")).symlink_to(target)


def replace(root, path: str, old: str, new: str) -> None:
    target = root / path.lstrip("/")
    content = target.read_text()
    assert old in content, (path, old)
    target.write_text(content.replace(old, new))


WEAKENINGS = {
    "LAPP-AUTH-002": (
        lambda r: append(r, "/etc/passwd", "toor:x:0:0::/root:/bin/sh\n"),
        "/etc/passwd:8: toor: UID 0 but not root",
    ),
    "LAPP-AUTH-003": (
        lambda r: replace(r, "/etc/group", "nogroup:x:65534:", "nogroup:x:1000:"),
        "/etc/group:9: admin: GID 1000 also at /etc/group:8: nogroup",
    ),
    "LAPP-AUTH-004": (
        lambda r: append(r, "/etc/shadow", "admin:*:19700:0:99999:7:::\n"),
        "/etc/shadow:8: admin: name admin also at /etc/shadow:7: admin",
    ),
    "LAPP-AUTH-005": (
        lambda r: replace(r, "/etc/shadow", "daemon:*:", "daemon::"),
        "/etc/shadow:2: daemon: empty password field (anyone may log in as daemon)",
    ),
    "LAPP-AUTH-006": (
        lambda r: append(r, "/etc/passwd", "+::::::\n"),
        "/etc/passwd:8: +: NIS compat entry",
    ),
    "LAPP-AUTH-007": (
        lambda r: replace(r, "/etc/shadow", "root:*:19700:0:99999:7:::\n", WEAK_SHADOW),
        "/etc/shadow:1: root: weak hash method $1$",
    ),
    "LAPP-AUTH-008": (
        lambda r: append(r, "/etc/group", "orphans:x:2000:\n"),
        "/etc/group:10: orphans: no /etc/gshadow entry",
    ),
    "LAPP-AUTH-009": (
        lambda r: replace(r, "/etc/login.defs", "UMASK\t\t027", "UMASK\t\t022"),
        "UMASK 022 (/etc/login.defs:151): is '022', which does not match /^0?[0-7][2367]7$/",
    ),
    "LAPP-AUTH-010": (
        lambda r: replace(r, "/etc/login.defs", "MAX_ROUNDS 5000", "MAX_ROUNDS 1000"),
        "SHA_CRYPT_MAX_ROUNDS 1000 (/etc/login.defs:311): is 1000, expected at least 5000",
    ),
    "LAPP-AUTH-011": (
        lambda r: replace(r, "/etc/login.defs", "FAILLOG_ENAB\t\tyes", "#"),
        "FAILLOG_ENAB no (default): is 'no', expected 'yes'",
    ),
    "LAPP-AUTH-012": (
        lambda r: append(
            r,
            "/etc/systemd/system/rescue.service.d/override.conf",
            "[Service]\nExecStart=\nExecStart=-/bin/sh\n",
        ),
        "rescue.service: ExecStart=-/bin/sh (/etc/systemd/system/rescue.service.d/override.conf:3)",
    ),
    "LAPP-AUTH-013": (
        lambda r: replace(r, "/etc/login.defs", "PASS_MAX_DAYS\t365", "PASS_MAX_DAYS\t99999"),
        "PASS_MAX_DAYS 99999 (/etc/login.defs:165): is 99999, expected at most 365",
    ),
    "LAPP-AUTH-014": (
        lambda r: replace(r, "/etc/login.defs", "PASS_MIN_DAYS\t1", "PASS_MIN_DAYS\t0"),
        "PASS_MIN_DAYS 0 (/etc/login.defs:166): is 0, expected at least 1",
    ),
    "LAPP-AUTH-015": (
        lambda r: replace(r, "/etc/shadow", ":1:365:7:::", ":1:99999:7:::"),
        "/etc/shadow:7: admin: password maximum age 99999 (at most 365 wanted)",
    ),
    "LAPP-AUTH-016": (
        lambda r: replace(r, "/etc/shadow", ":1:365:7:::", ":1:0:7:::"),
        "/etc/shadow:7: admin: password expired 1 days ago",
    ),
    "LAPP-AUTH-017": (
        lambda r: replace(r, "/etc/shadow", "admin:$y$", "admin:!$y$"),
        "/etc/shadow:7: admin: password locked (!$y$...) but the account never expires: an "
        "SSH key still logs it in (usermod --expiredate 1 admin)",
    ),
    "LAPP-LOG-009": (
        lambda r: os.chmod(r / "var/log/account/pacct", 0o644),
        "/var/log/account/pacct: 0644 root:root (mode 0644 exceeds 0640)",
    ),
    "LAPP-LOG-010": (
        lambda r: replace(r, "/etc/default/sysstat", 'ENABLED="true"', 'ENABLED="false"'),
        "no line matches /^\\s*ENABLED\\s*=\\s*(\"true\"|'true'|true)\\s*$/ in "
        "/etc/default/sysstat",
    ),
    "LAPP-FILE-001": (
        lambda r: os.chmod(r / "etc/shadow", 0o644),
        "/etc/shadow: 0644 root:root (mode 0644 exceeds 0640)",
    ),
    "LAPP-FILE-003": (
        lambda r: os.chmod(r / "etc/sudoers.d/README", 0o640),
        "/etc/sudoers.d/README: 0640 root:root (mode 0640 exceeds 0440)",
    ),
    "LAPP-FILE-002": (
        lambda r: make_file(r, "/etc/passwd-", "root:x:0:0::/root:/bin/sh\n", 0o666),
        "/etc/passwd-: 0666 root:root (mode 0666 exceeds 0644)",
    ),
    "LAPP-FILE-007": (
        lambda r: os.chmod(r / "etc/cron.d", 0o755),
        "/etc/cron.d: 0755 root:root (mode 0755 exceeds 0700)",
    ),
    "LAPP-FILE-008": (
        lambda r: (r / "root/.ssh").mkdir(mode=0o755, parents=True),
        "/root/.ssh: 0755 root:root (mode 0755 exceeds 0700)",
    ),
    "LAPP-FILE-004": (
        lambda r: os.chmod(r / "etc/apache2/ports.conf", 0o666),
        "/etc/apache2/ports.conf: 0666 root:root (mode 0666 exceeds 0755)",
    ),
    "LAPP-FILE-005": (
        lambda r: os.chmod(r / "etc/postgresql/15/main/pg_hba.conf", 0o646),
        "/etc/postgresql/15/main/pg_hba.conf: 0646 postgres:",  # its owner: treeutil.hardened_root
    ),
    "LAPP-FILE-006": (
        lambda r: os.chmod(r / "home/admin", 0o755),
        "/home/admin (admin): 0755 admin:admin (mode 0755 exceeds 0750)",
    ),
    "LAPP-FILE-009": (
        lambda r: link(r, "/home/admin/.bash_history", "/dev/null"),
        "/home/admin/.bash_history: a link to /dev/null",
    ),
    "LAPP-LOG-001": (
        lambda r: os.unlink(r / "etc/rsyslog.d/90-forward.conf"),
        "no auditd, no rsyslog forwarding and no systemd-journal-upload with a URL: "
        "the only record of an intrusion is on the intruded host",
    ),
    "LAPP-FILE-010": (
        lambda r: replace(r, "/etc/systemd/system.conf.d/60-coredump.conf", "=0", "=0:infinity"),
        "services may dump (hard limit infinity, /etc/systemd/system.conf.d/60-coredump.conf:3)",
    ),
    "LAPP-LOG-002": (
        lambda r: replace(
            r, "/etc/systemd/journald.conf.d/50-persistent.conf", "persistent", "volatile"
        ),
        "Storage=volatile (/etc/systemd/journald.conf.d/50-persistent.conf:2): "
        "the journal is not kept on disk",
    ),
    "LAPP-LOG-003": (
        lambda r: replace(r, "/etc/logrotate.d/apache2", "rotate 90", "rotate 365"),
        "/var/log/apache2/*.log (/etc/logrotate.d/apache2:1): daily at "
        "/etc/logrotate.d/apache2:2, rotate 365 at /etc/logrotate.d/apache2:4: "
        "kept 365 days, more than 90",
    ),
    "LAPP-LOG-004": (
        lambda r: replace(r, "/etc/audit/rules.d/50-lapp.rules", "-w /", "#-w /"),
        "no line matches /^\\s*-[aw]\\s/ in /etc/audit/rules.d/50-lapp.rules",
    ),
    "LAPP-LOG-006": (
        lambda r: os.chmod(r / "var/log/audit/audit.log", 0o644),
        "log_file /var/log/audit/audit.log (/etc/audit/auditd.conf:3): 0644 root:root "
        "(mode 0644 exceeds 0600)",
    ),
    "LAPP-SSH-012": (
        lambda r: append(r, "/etc/ssh/moduli", "20220714110357 2 6 100 2047 2 E98F\n"),
        "/etc/ssh/moduli: groups smaller than 3071: 1 of size 2047",
    ),
    "LAPP-SSH-026": (
        lambda r: replace(
            r,
            "/etc/ssh/sshd_config.d/50-hardening.conf",
            "PerSourceMaxStartups 3",
            "PerSourceMaxStartups 20",
        ),
        "persourcemaxstartups 20 (/etc/ssh/sshd_config.d/50-hardening.conf:12): "
        "one source may take every slot (want 1 to 10)",
    ),
    "LAPP-SSH-040": (
        lambda r: replace(r, "/etc/ssh/sshd_config.d/50-hardening.conf", "AllowUsers", "#"),
        "neither AllowUsers nor AllowGroups is set: every account may log in",
    ),
}


@pytest.mark.parametrize("check_id", sorted(WEAKENINGS))
def test_one_weakness_fails_its_check_with_the_reason(tmp_path, check_id):
    require_root()  # owners (root, and uid 1000 for the home) as on a real host
    root = hardened_root(tmp_path)
    assert run_audit(tmp_path, root, check_id)["status"] == "pass"
    weaken, evidence = WEAKENINGS[check_id]
    weaken(root)
    result = run_audit(tmp_path, root, check_id)
    assert result["status"] == "fail"
    assert result["evidence"][0].startswith(evidence), result["evidence"]


def test_host_keys_by_type_and_size_from_the_files(tmp_path):
    require_root()
    root = hardened_root(tmp_path)
    key = root / "etc/ssh/ssh_host_rsa_key.pub"
    assert run_audit(tmp_path, root, "LAPP-SSH-011")["status"] == "pass"
    key.unlink()  # the private file is read when the .pub is missing: here it is no key
    result = run_audit(tmp_path, root, "LAPP-SSH-011")
    assert result["status"] == "fail"
    assert result["evidence"][0].startswith("/etc/ssh/ssh_host_rsa_key: not a host key")


def test_algorithm_lists_under_root_need_explicit_settings(tmp_path):
    require_root()
    root = hardened_root(tmp_path)
    replace(root, "/etc/ssh/sshd_config.d/50-hardening.conf", "MACs hmac", "MACs -hmac")
    result = run_audit(tmp_path, root, "LAPP-SSH-010")
    assert (result["status"], result["reason"]) == (
        "error",
        "macs -hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,"
        "umac-128-etm@openssh.com changes the compiled-in list, which only sshd -T knows",
    )

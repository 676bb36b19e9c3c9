"""The generic check types: files, content, packages, services, processes, sockets, commands,
password policy and backups - each with passing and failing fixtures."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
from treeutil import context, dpkg_status, make_tree

from checks.params import Param, convert
from checks.result import Status
from checks.types import REGISTRY


def run(type_name: str, ctx, **params):
    cls = REGISTRY[type_name]
    converted = {
        name: (convert(spec, params[name]) if name in params else spec.default)
        for name, spec in cls.schema.items()
    }
    assert set(params) <= set(cls.schema), set(params) - set(cls.schema)
    return cls(converted).run(ctx)


def test_file_mode_and_owner(tmp_path):
    make_tree(
        tmp_path,
        {"/etc/ssh/sshd_config": "x", "/etc/shadow": "y", "/etc/passwd": "root:x:0:0::/:\n"},
        modes={"/etc/ssh/sshd_config": 0o600, "/etc/shadow": 0o644},
    )
    ctx = context(tmp_path)
    ok = run("file", ctx, paths=["/etc/ssh/sshd_config"], mode_max="0640", owners=["root"])
    assert ok.status is Status.PASS
    bad = run("file", ctx, paths=["/etc/shadow"], mode_max="0640")
    assert bad.status is Status.FAIL and "mode 0644 exceeds 0640" in bad.evidence[0]
    missing = run("file", ctx, paths=["/etc/nothing"])
    assert missing.status is Status.FAIL


def test_file_absence_with_globs(tmp_path):
    make_tree(tmp_path, {"/usr/share/webmin/index.cgi": "x"})
    ctx = context(tmp_path)
    assert run("file", ctx, paths=["/usr/share/webmin"], present=False).status is Status.FAIL
    assert (
        run("file", ctx, paths=["/usr/local/cpanel", "/opt/p*"], present=False).status
        is Status.PASS
    )


@pytest.mark.parametrize(
    ("mode", "pattern", "expected"),
    [
        ("any", r"^ServerTokens\s+Prod", Status.PASS),
        ("none", r"^ServerTokens\s+Prod", Status.FAIL),
        ("all", r"^\w+\s", Status.PASS),
        ("all", r"Prod", Status.FAIL),
        ("none", r"TraceEnable\s+On", Status.PASS),
    ],
)
def test_file_content_modes(tmp_path, mode, pattern, expected):
    make_tree(
        tmp_path,
        {
            "/etc/apache2/conf-enabled/security.conf": (
                "# ServerTokens Full\nServerTokens Prod\n\nTraceEnable Off\n"
            )
        },
    )
    verdict = run(
        "file_content",
        context(tmp_path),
        paths=["/etc/apache2/conf-enabled/*.conf"],
        pattern=pattern,
        match=mode,
    )
    assert verdict.status is expected


def test_file_content_missing_file_policy(tmp_path):
    ctx = context(tmp_path)
    assert run("file_content", ctx, paths=["/etc/x"], pattern="a").status is Status.FAIL
    assert (
        run("file_content", ctx, paths=["/etc/x"], pattern="a", missing="pass").status
        is Status.PASS
    )
    assert (
        run("file_content", ctx, paths=["/etc/x"], pattern="a", missing="error").status
        is Status.ERROR
    )


def test_unreadable_file_is_an_error_not_a_pass(tmp_path):
    # a directory where a file should be cannot be read, even by root
    (tmp_path / "etc/secret.conf").mkdir(parents=True)
    verdict = run(
        "file_content", context(tmp_path), paths=["/etc/secret.conf"], pattern="a", match="none"
    )
    assert verdict.status is Status.ERROR
    assert "cannot read /etc/secret.conf" in verdict.reason


def test_packages_from_dpkg_status(tmp_path):
    make_tree(tmp_path, {"/var/lib/dpkg/status": dpkg_status("openssh-server", "vsftpd")})
    ctx = context(tmp_path)
    assert run("package", ctx, names=["vsftpd", "proftpd-basic"], state="absent").evidence == (
        "vsftpd 1.0-1 installed",
    )
    assert (
        run("package", ctx, names=["proftpd-basic", "gone"], state="absent").status is Status.PASS
    )
    assert run("package", ctx, names=["openssh-server"]).status is Status.PASS
    assert (
        run("package", ctx, names=["openssh-server", "unattended-upgrades"]).status is Status.FAIL
    )
    assert (
        run("package", ctx, names=["fail2ban", "openssh-server"], match="any").status is Status.PASS
    )


def test_missing_dpkg_status_is_an_error(tmp_path):
    assert run("package", context(tmp_path), names=["x"]).status is Status.ERROR


WANTS = "/etc/systemd/system/multi-user.target.wants"


def test_services_from_unit_symlinks(tmp_path):
    make_tree(
        tmp_path,
        {
            "/lib/systemd/system/fail2ban.service": "[Unit]\n",
            "/lib/systemd/system/ssh.service": "[Unit]\n",
            "/lib/systemd/system/vsftpd.service": "[Unit]\n",
        },
        links={
            f"{WANTS}/fail2ban.service": "/lib/systemd/system/fail2ban.service",
            f"{WANTS}/vsftpd.service": "/lib/systemd/system/vsftpd.service",
            "/etc/systemd/system/vsftpd.service": "/dev/null",  # masked
        },
    )
    ctx = context(tmp_path)
    assert run("service", ctx, units=["lappguard", "fail2ban"]).status is Status.PASS
    assert run("service", ctx, units=["lappguard", "ssh"]).status is Status.FAIL
    assert run("service", ctx, units=["vsftpd"], state="disabled").status is Status.PASS
    assert run("service", ctx, units=["fail2ban"], state="disabled").status is Status.FAIL


def test_process_running_and_absent():
    marker = f"lappguard-test-{os.getpid()}"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", marker])
    try:
        ctx = context()
        found = run("process", ctx, cmdline=marker)
        assert found.status is Status.PASS and f"pid {child.pid} " in found.evidence[0]
        assert run("process", ctx, cmdline=marker, state="absent").status is Status.FAIL
        assert run("process", ctx, names=["no-such-daemon"]).status is Status.FAIL
    finally:
        child.kill()
        child.wait()


def test_listening_loopback_only_and_absent():
    exposed = socket.socket()
    private = socket.socket()
    try:
        exposed.bind(("0.0.0.0", 0))
        private.bind(("127.0.0.1", 0))
        exposed.listen()
        private.listen()
        exposed_port, private_port = exposed.getsockname()[1], private.getsockname()[1]
        ctx = context()
        verdict = run("listening", ctx, ports=[exposed_port, private_port])
        assert verdict.status is Status.FAIL
        assert len(verdict.evidence) == 1
        assert verdict.evidence[0].startswith(f"tcp 0.0.0.0:{exposed_port} python")
        assert verdict.evidence[0].endswith(f"(pid {os.getpid()})")
        assert run("listening", context(), ports=[private_port]).status is Status.PASS
        assert (
            run("listening", context(), ports=[private_port], expect="absent").status is Status.FAIL
        )
    finally:
        exposed.close()
        private.close()
    assert run("listening", context(), ports=[private_port], expect="absent").status is Status.PASS


def test_command_exit_code_and_output():
    ctx = context()
    assert run("command", ctx, argv=["true"]).status is Status.PASS
    assert run("command", ctx, argv=["false"]).status is Status.FAIL
    assert run("command", ctx, argv=["false"], exit_codes=[1]).status is Status.PASS
    echo = run("command", ctx, argv=["echo", "PermitRootLogin yes"], stdout_not_matches="yes$")
    assert echo.status is Status.FAIL and "PermitRootLogin yes" in echo.evidence[-1]
    assert run("command", ctx, argv=["no-such-program-x"]).status is Status.ERROR
    # argv is never a shell string: metacharacters are plain arguments
    literal = run(
        "command", ctx, argv=["echo", "$(id)", ";", "true"], stdout_matches=r"^\$\(id\) ; true$"
    )
    assert literal.status is Status.PASS


PAM_WITH_PWQUALITY = (
    "password\t[success=2 default=ignore]\tpam_unix.so obscure yescrypt\n"
    "password\trequisite\t\t\tpam_pwquality.so retry=3 minlen=12 dcredit=-1\n"
)


@pytest.mark.parametrize(
    ("conf", "pam", "status"),
    [
        ("ucredit = -1\nlcredit = -1\n", PAM_WITH_PWQUALITY, Status.PASS),
        ("ucredit = -1\n", PAM_WITH_PWQUALITY, Status.FAIL),  # lower case not required
        (
            "minlen = 12\nucredit=-1\nlcredit=-1\ndcredit=-1\n",
            "password required pam_unix.so\n",
            Status.FAIL,
        ),
        (
            "ucredit = -1\nlcredit = -1\n",
            PAM_WITH_PWQUALITY.replace("minlen=12", "minlen=6"),
            Status.FAIL,
        ),
    ],
)
def test_pwquality(tmp_path, conf, pam, status):
    make_tree(tmp_path, {"/etc/security/pwquality.conf": conf, "/etc/pam.d/common-password": pam})
    assert run("pwquality", context(tmp_path)).status is status


def test_pwquality_conf_d_overrides_main_file(tmp_path):
    make_tree(
        tmp_path,
        {
            "/etc/security/pwquality.conf": "ucredit = -1\nlcredit = -1\n",
            "/etc/security/pwquality.conf.d/50-local.conf": "lcredit = 0\n",
            "/etc/pam.d/common-password": PAM_WITH_PWQUALITY,
        },
    )
    verdict = run("pwquality", context(tmp_path))
    assert verdict.status is Status.FAIL
    assert "lcredit=0 (/etc/security/pwquality.conf.d/50-local.conf:1)" in verdict.evidence[0]


def backup_tree(tmp_path, now):
    make_tree(
        tmp_path,
        {
            "/srv/backup/db-1.sql.gz.age": b"age-encryption.org/v1\n-> X25519 abc\n",
            "/srv/backup/db-2.dump.gpg": bytes([0x85, 0x01, 0x0C]) + b"rest",
            "/srv/backup/weekly/files.tar.enc": b"Salted__12345678",
        },
        modes={
            "/srv/backup/db-1.sql.gz.age": 0o600,
            "/srv/backup/db-2.dump.gpg": 0o640,
            "/srv/backup/weekly/files.tar.enc": 0o600,
        },
    )
    ages = {
        "db-1.sql.gz.age": 3 * 3600,
        "db-2.dump.gpg": 5 * 86400,
        "weekly/files.tar.enc": 20 * 86400,
    }
    for name, age in ages.items():
        os.utime(tmp_path / "srv/backup" / name, (now - age, now - age))


def test_backups_all_aspects_pass(tmp_path):
    now = time.time()
    backup_tree(tmp_path, now)
    ctx = context(tmp_path, clock=lambda: now)
    for aspect in ("freshness", "retention", "encryption", "permissions"):
        assert run("backup", ctx, dir="/srv/backup", aspect=aspect).status is Status.PASS, aspect


def test_backups_each_aspect_fails(tmp_path):
    now = time.time()
    backup_tree(tmp_path, now)
    make_tree(
        tmp_path,
        {"/srv/backup/plain.sql": "CREATE TABLE patients (...);\n"},
        modes={"/srv/backup/plain.sql": 0o644},
    )
    old = now - 30 * 86400
    os.utime(tmp_path / "srv/backup/plain.sql", (old, old))
    late = lambda: now + 2 * 86400  # noqa: E731 - nothing written for two days
    ctx = context(tmp_path, clock=late)
    fresh = run("backup", ctx, dir="/srv/backup", aspect="freshness", max_age="26h")
    assert fresh.status is Status.FAIL
    retention = run("backup", ctx, dir="/srv/backup", aspect="retention", retention_days=21)
    assert retention.status is Status.FAIL
    assert [e for e in retention.evidence if "plain.sql" in e]
    encryption = run("backup", ctx, dir="/srv/backup", aspect="encryption")
    assert encryption.evidence == ("/srv/backup/plain.sql: not encrypted",)
    permissions = run("backup", ctx, dir="/srv/backup", aspect="permissions")
    assert permissions.evidence == ("/srv/backup/plain.sql: mode 0644",)


def test_backup_dir_missing_is_an_error(tmp_path):
    assert (
        run("backup", context(tmp_path), dir="/srv/none", aspect="freshness").status is Status.ERROR
    )


def test_the_baseline_backup_checks_error_until_backup_dir_is_set(tmp_path):
    """No directory named is not "nothing to check": a server without backups must not pass
    as skipped."""
    from checks.engine import audit_host
    from checks.hosts import LocalHost
    from checks.policy import load_policy
    from policies import builtin_policy

    backup = "/srv/backup/db.sql.age"
    make_tree(tmp_path, {backup: b"age-encryption.org/v1\n"}, modes={backup: 0o600})
    baks = lambda c: c.area == "BAK"  # noqa: E731
    unset = audit_host([load_policy(builtin_policy("lapp-baseline"))], LocalHost(str(tmp_path)),
                       only=baks, clock=time.time)  # fmt: skip
    assert {r.check_id: (r.status, r.reason) for r in unset.results} == dict.fromkeys(
        ["LAPP-BAK-001", "LAPP-BAK-002", "LAPP-BAK-003", "LAPP-BAK-004"],
        (
            Status.ERROR,
            "backup_dir is not set: set it to the directory holding this server's backups "
            "(whether there are any cannot be told without it)",
        ),
    )
    policy = load_policy(builtin_policy("lapp-baseline"), {"backup_dir": "/srv/backup"})
    named = audit_host([policy], LocalHost(str(tmp_path)), only=baks)
    assert [r.status for r in named.results] == [Status.PASS] * 4


def test_every_registered_type_declares_a_schema_of_params():
    for name, cls in REGISTRY.items():
        assert cls.name == name
        assert all(isinstance(spec, Param) for spec in cls.schema.values())

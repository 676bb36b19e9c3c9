"""What a first-time user reads from an audit: fixes that match the evidence and what scan
trusts, explanations where two checks seem to disagree, `policy list` and `explain`."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from conftest import lappguard_command
from treeutil import dpkg_status, hardened_root, make_tree

from agent.cli import main

PG_CONF = "/etc/postgresql/15/main/postgresql.conf"


def audit_json(root: Path, *only: str) -> dict[str, dict]:
    done = subprocess.run(
        [lappguard_command(), "audit", "--root", str(root), "--format", "json",
         "--only", ",".join(only)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    return {r["id"]: r for r in json.loads(done.stdout)["hosts"][0]["results"]}


def with_prefix(tmp_path: Path, settings: str) -> Path:
    root = hardened_root(tmp_path)
    conf = root / PG_CONF.lstrip("/")
    lines = [line for line in conf.read_text().splitlines() if "log_line_prefix" not in line]
    conf.write_text("\n".join([*lines, settings, ""]))
    return root


# --- LAPP-PG-006 asks for what lappguard scan trusts -------------------------------------------


@pytest.mark.parametrize(
    ("settings", "status"),
    [
        ("log_line_prefix = '%m [%p] %h '", "pass"),  # no client-chosen name
        ("log_line_prefix = '%m [%p] %h %q%u@%d '", "pass"),  # the address first
        ("log_line_prefix = '%m [%p] %r %q%u@%d '", "pass"),
        ("log_line_prefix = '%m [%p] %q%u@%d %h '", "fail"),  # a name can forge the address
        ("log_line_prefix = '%m [%p] %a %h '", "fail"),  # the application name too
        ("log_line_prefix = '%m [%p] %q%u@%d '", "fail"),  # Debian's: no address at all
        ("log_line_prefix = '%m [%p] %H '", "fail"),  # %H is not %h
        # jsonlog carries remote_host and escapes every name: the prefix does not matter
        ("log_destination = 'jsonlog'\nlogging_collector = on\n"
         "log_line_prefix = '%m [%p] %q%u@%d '", "pass"),
        ("log_destination = 'stderr,jsonlog'\nlog_line_prefix = '%m [%p] '", "pass"),
    ],
)  # fmt: skip
def test_pg_006_passes_only_prefixes_scan_trusts(tmp_path, settings, status):
    result = audit_json(with_prefix(tmp_path, settings), "LAPP-PG-006")["LAPP-PG-006"]
    assert result["status"] == status, result["evidence"]


def test_pg_006_fix_is_the_prefix_scan_recommends(tmp_path):
    root = with_prefix(tmp_path, "log_line_prefix = '%m [%p] %q%u@%d '")
    result = audit_json(root, "LAPP-PG-006")["LAPP-PG-006"]
    assert "log_line_prefix = '%m [%p] %h '" in result["remediation"]
    assert "log_destination = 'jsonlog'" in result["remediation"]
    assert "%u@%d %h" not in result["remediation"]  # the forgeable order is never advised
    assert result["evidence"][0].endswith(
        "expected %h (or %r) before any client-chosen %u, %d or %a"
    )


@pytest.mark.parametrize(
    ("prefix", "code"), [("%m [%p] %h ", 0), ("%m [%p] %h %q%u@%d ", 0), ("%m [%p] %q%u@%d %h ", 2)]
)
def test_scan_takes_the_prefixes_pg_006_passes_and_refuses_the_one_it_fails(tmp_path, prefix, code):
    stamp = "2025-01-05 10:00:00.000 UTC [1234] "
    line = prefix.replace("%m [%p] ", stamp).replace("%h", "203.0.113.5")
    line = line.replace("%q%u@%d", "alice@app")
    log = tmp_path / "postgresql.log"
    log.write_text(f'{line}FATAL:  password authentication failed for user "alice"\n')
    scan = subprocess.run(
        [lappguard_command(), "scan", "--kind", "postgresql", "--pg-prefix", prefix,
         "--format", "events", str(log)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert scan.returncode == code, scan.stderr
    if code == 0:
        assert json.loads(scan.stdout)["ip"] == "203.0.113.5"


# --- the TLS configuration check and the live probe -----------------------------------------


def tls_tree(tmp_path: Path, packages: tuple[str, ...], cipher_suite: str = "") -> Path:
    site = (
        "Listen 443\n<VirtualHost *:443>\n  SSLEngine on\n  SSLProtocol all -SSLv3\n"
        + (f"  SSLCipherSuite {cipher_suite}\n" if cipher_suite else "")
        + "</VirtualHost>\n"
    )
    return make_tree(
        tmp_path,
        {
            "/etc/apache2/apache2.conf": site,
            "/var/lib/dpkg/status": dpkg_status("apache2", *packages),
        },
    )


def test_when_openssl_3_will_refuse_old_tls_the_config_check_says_why(tmp_path):
    result = audit_json(tls_tree(tmp_path, ("libssl3",)), "LAPP-TLS-001")["LAPP-TLS-001"]
    assert result["status"] == "fail"
    note = result["evidence"][0]
    assert note.startswith("note: this host's OpenSSL 3 has no SSLv3 and refuses TLS 1.0 and 1.1")
    assert "LAPP-TLS-050" in note and "@SECLEVEL=0" in note


@pytest.mark.parametrize(
    ("packages", "ciphers"),
    [(("libssl3",), "HIGH:@SECLEVEL=0"), (("libssl1.1",), "")],
    ids=["security level 0", "OpenSSL 1.1"],
)
def test_no_such_note_where_old_tls_really_is_served(tmp_path, packages, ciphers):
    result = audit_json(tls_tree(tmp_path, packages, ciphers), "LAPP-TLS-001")["LAPP-TLS-001"]
    assert result["status"] == "fail"
    assert not any(line.startswith("note: this host's OpenSSL") for line in result["evidence"])


# --- failed-login blocking names what exists now ------------------------------------------------


def test_blocking_fixes_name_the_agent_and_how_to_install_it(tmp_path):
    root = make_tree(tmp_path, {"/var/lib/dpkg/status": dpkg_status("openssh-server")})
    result = audit_json(root, "LAPP-FW-010")["LAPP-FW-010"]
    assert result["status"] == "fail"
    assert "scripts/install --service" in result["remediation"]
    assert result["evidence"] == ["lappguard.service not enabled", "fail2ban.service not enabled"]


def test_an_enabled_agent_counts_as_failed_login_blocking(tmp_path):
    wants = "/etc/systemd/system/multi-user.target.wants/lappguard.service"
    root = make_tree(tmp_path, {"/etc/systemd/system/lappguard.service": "[Unit]\n"},
                     links={wants: "/etc/systemd/system/lappguard.service"})  # fmt: skip
    result = audit_json(root, "LAPP-FW-010")["LAPP-FW-010"]
    assert result["status"] == "pass"


# --- policy list and explain ----------------------------------------------------------------


def test_policy_list_shows_the_policies_and_rule_sets_with_their_checks(capsys):
    assert main(["policy", "list"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("policy lapp-baseline (lapp-baseline 1.0.0): LAPP server security")
    assert re.search(r"\n  lappguard audit --policy lapp-baseline; \d+ checks:\n", out)
    assert "    LAPP-PG-006     low      PostgreSQL log lines name the client address" in out
    for rule_set in ("sshd", "apache-access", "apache-error", "postgresql", "php-app"):
        assert f"\nrule set {rule_set} (" in out
    assert "    sshd-failed-auth " in out


def test_explain_a_check_and_a_rule(capsys):
    assert main(["explain", "lapp-ssh-006", "sshd-failed-auth"]) == 0
    out = capsys.readouterr().out
    check, rule = out.split("\n\n")
    assert check.startswith("LAPP-SSH-006  SSH allows at most 4 authentication attempts")
    for section in ("\nWhy:\n", "\nFix:\n", "\nReferences:\n  CIS Debian Linux 12"):
        assert section in check
    assert rule.startswith("sshd-failed-auth  Failed password or keyboard-interactive login")
    assert "\nWhat it sees:\n  sshd logs every failed password" in rule
    assert all(len(line) <= 100 for line in out.splitlines())


def test_explain_looks_in_a_policy_given_too(tmp_path, capsys):
    policy = tmp_path / "site.yaml"
    policy.write_text(
        "id: site\ntitle: Site\nversion: '2'\nchecks:\n  - id: SITE-SVC-001\n"
        "    title: No telnet\n    severity: high\n    remediation: apt-get purge telnetd\n"
        "    type: package\n    params: {names: [telnetd], state: absent}\n"
    )
    assert main(["explain", "--policy", str(policy), "SITE-SVC-001"]) == 0
    out = capsys.readouterr().out
    assert "policy: site 2" in out and "apt-get purge telnetd" in out


def test_evidence_says_in_words_what_a_pattern_looks_for(tmp_path):
    root = make_tree(
        tmp_path,
        {
            "/var/lib/dpkg/status": dpkg_status("unattended-upgrades"),
            "/etc/apt/apt.conf.d/50unattended-upgrades": (
                'Unattended-Upgrade::Origins-Pattern { "origin=Debian,codename=bookworm"; };\n'
            ),
        },
    )
    result = audit_json(root, "LAPP-PATCH-005")["LAPP-PATCH-005"]
    assert result["status"] == "fail"
    (line,) = result["evidence"]
    assert "no entry names the Debian -security suite" in line and "/(" not in line

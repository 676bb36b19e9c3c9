"""Check types for sshd, PostgreSQL, pg_hba, APT and the firewall: exact outcomes.

The baseline checks (the same YAML the policy gets) run through the real policy loader and
engine against host trees (``--root`` audits): a hardened tree passes every one, an
insecure tree fails exactly the controls it violates. Live variants run the real sshd -T
and nft, inside throw-away namespaces.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import FIXTURES, require_program, require_root
from line_breaks import each_separator
from namespaces import PRIVATE_RUN, NamespacedHost, in_namespace, network_namespace
from servers import run_check
from treeutil import context, dpkg_status, make_tree

from checks.engine import audit_host
from checks.hosts import CachedHost, Host, LocalHost
from checks.parsers.origin import Origin
from checks.parsers.sshd import Directive, SshdConfig, parse_sshd_t
from checks.policy import load_policy
from checks.result import Status
from checks.types.apt import AptConfCheck
from checks.types.base import CheckContext
from checks.types.firewall import FirewallDefaultDenyCheck
from checks.types.postgres import PgHbaCheck, PostgresConfCheck
from checks.types.sshd import (
    SshdAuthModeCheck,
    SshdConfigCheck,
    SshdEffectiveCheck,
    SshdNetworkRestrictionCheck,
    ssh_ports,
)
from policies import builtin_policy

OFFICE = ["10.0.0.0/8", "192.168.10.0/24", "2001:db8:a::/48"]
ROOT_NOTE = (
    "note: sshd -T not used (sshd cannot run when auditing a directory tree): values from the files"
)

BASELINE_IDS = (
    [f"LAPP-SSH-00{i}" for i in range(1, 8)]
    + [f"LAPP-PG-00{i}" for i in range(1, 7)]
    + [f"LAPP-PATCH-00{i}" for i in range(1, 8)]
    + ["LAPP-FW-001"]
)


def audit(tmp_path: Path, root: Path, **variables) -> dict[str, tuple[Status, tuple[str, ...]]]:
    """The shipped baseline's SSH, PG, PATCH and FW-001 checks (this file's types) on a tree."""
    policy = load_policy(builtin_policy("lapp-baseline"), {"office_networks": OFFICE, **variables})
    wanted = set(BASELINE_IDS)
    report = audit_host(
        [policy], LocalHost(root=str(root)), only=lambda c: c.id in wanted, workers=4
    )
    return {r.check_id: (r.status, r.evidence) for r in report.results}


def statuses(results) -> dict[str, str]:
    return {check_id: status.value for check_id, (status, _) in results.items()}


def lapp_tree(
    root: Path, *, sshd: dict, postgres: dict, apt: dict, firewall: str, packages
) -> Path:
    files = {**sshd, **postgres, **apt, "/etc/nftables.conf": firewall}
    files["/var/lib/dpkg/status"] = dpkg_status(*packages)
    return make_tree(root, files, links=NFTABLES_ENABLED)


def fixture(*parts: str) -> str:
    return FIXTURES.joinpath(*parts).read_text()


HARDENING_DROPIN = """\
PasswordAuthentication no
PermitRootLogin no
MaxAuthTries 3
AllowUsers admin@10.0.0.0/8 deploy@192.168.10.*
"""
GOOD_PG = """\
data_directory = '/var/lib/postgresql/15/main'
hba_file = '/etc/postgresql/15/main/pg_hba.conf'
listen_addresses = 'localhost'
password_encryption = scram-sha-256
log_connections = on
log_line_prefix = '%m [%p] %h %q%u@%d '
"""
BAD_PG = """\
data_directory = '/var/lib/postgresql/15/main'
hba_file = '/etc/postgresql/15/main/pg_hba.conf'
listen_addresses = '*'
password_encryption = md5
"""
NFTABLES_ENABLED = {
    "/etc/systemd/system/sysinit.target.wants/nftables.service": (
        "/lib/systemd/system/nftables.service"
    )
}
PACKAGES = ("openssh-server", "postgresql-common", "unattended-upgrades", "nftables")


def hardened_tree(root: Path) -> Path:
    return lapp_tree(
        root,
        sshd={
            "/etc/ssh/sshd_config": fixture("sshd", "debian_openssh_9.8p1-3_sshd_config"),
            "/etc/ssh/sshd_config.d/50-hardening.conf": HARDENING_DROPIN,
        },
        postgres={
            "/etc/postgresql/15/main/postgresql.conf": GOOD_PG,
            "/etc/postgresql/15/main/pg_hba.conf": fixture(
                "postgres", "pg_hba.rendered_peer_scram.conf"
            ),
        },
        apt={
            "/etc/apt/apt.conf.d/20auto-upgrades": fixture("apt", "20auto-upgrades"),
            "/etc/apt/apt.conf.d/50unattended-upgrades": fixture(
                "apt", "50unattended-upgrades.Debian"
            ),
            "/etc/apt/apt.conf.d/52unattended-upgrades-local": 'Unattended-Upgrade::Mail "root";\n'
            'Unattended-Upgrade::Automatic-Reboot "false";\n',
        },
        firewall=fixture("firewall", "hardened.nftables.conf"),
        packages=PACKAGES,
    )


def insecure_tree(root: Path) -> Path:
    trust = fixture("postgres", "pg_hba.rendered_initdb_default_trust.conf")
    return lapp_tree(
        root,
        sshd={"/etc/ssh/sshd_config": fixture("sshd", "insecure_synthetic.sshd_config")},
        postgres={
            "/etc/postgresql/15/main/postgresql.conf": BAD_PG,
            "/etc/postgresql/15/main/pg_hba.conf": trust + "host all all 0.0.0.0/0 md5\n",
        },
        apt={
            "/etc/apt/apt.conf.d/20auto-upgrades": fixture("apt", "20auto-upgrades-disabled"),
            "/etc/apt/apt.conf.d/50unattended-upgrades": fixture(
                "apt", "test_data_50unattended-upgrades.Test"
            ),
        },
        firewall=fixture("firewall", "debian_default.nftables.conf"),
        packages=PACKAGES,
    )


def test_hardened_tree_passes_every_baseline_check(tmp_path):
    results = audit(tmp_path, hardened_tree(tmp_path / "root"))
    assert statuses(results) == dict.fromkeys(BASELINE_IDS, "pass")
    assert results["LAPP-SSH-001"][1][0] == (
        "passwordauthentication no (/etc/ssh/sshd_config.d/50-hardening.conf:1)"
    )
    assert results["LAPP-SSH-007"][1][:2] == (
        "AllowUsers admits only office hosts: allowusers admin@10.0.0.0/8 deploy@192.168.10.* "
        "(/etc/ssh/sshd_config.d/50-hardening.conf:4)",
        "firewall accepts SSH only from office/loopback: port 22/ipv4 accepted from 10.0.0.0/8, "
        "127.0.0.0/8, 192.168.10.0/24; port 22/ipv6 accepted from ::1/128, 2001:db8:a::/48",
    )


def test_insecure_tree_fails_exactly_the_violated_controls(tmp_path):
    results = audit(tmp_path, insecure_tree(tmp_path / "root"))
    expected = dict.fromkeys(BASELINE_IDS, "fail")
    expected["LAPP-PATCH-001"] = "pass"  # installed, just badly configured
    expected["LAPP-PATCH-004"] = "pass"  # Enable is unset: apt's default "1"
    assert statuses(results) == expected
    path = "/etc/ssh/sshd_config"
    assert results["LAPP-SSH-001"][1][:2] == (
        f"passwordauthentication yes ({path}:7): is 'yes', expected 'no' "
        "[for user=lappguard-audit,host=audit.invalid,addr=192.0.2.10]",
        f"Match Address 10.0.0.0/8 ({path}:43) sets passwordauthentication yes ({path}:44): "
        "is 'yes', expected 'no'",
    )
    pg_hba = "/etc/postgresql/15/main/pg_hba.conf"
    assert [e.split(":")[1] for e in results["LAPP-PG-002"][1]] == ["9", "11", "15", "16"]
    assert results["LAPP-PG-003"][1] == (
        f"{pg_hba}:17: host all all 0.0.0.0/0 md5 (address 0.0.0.0/0 admits every client)",
    )
    assert results["LAPP-PG-006"][1] == (
        "/etc/postgresql/15/main/postgresql.conf: log_line_prefix = '%m [%p] ' (built-in default)"
        ": is '%m [%p] ', expected %h (or %r) before any client-chosen %u, %d or %a",
    )


#: The hardened tree's files that hold its hardening, as (host path, comment marker).
HARDENING_FILES = (
    "/etc/ssh/sshd_config.d/50-hardening.conf",
    "/etc/postgresql/15/main/postgresql.conf",
    "/etc/apt/apt.conf.d/20auto-upgrades",
    "/etc/apt/apt.conf.d/52unattended-upgrades-local",
)


@each_separator
def test_settings_behind_a_comment_and_a_separator_are_comments(tmp_path, sep):
    """``# off<FF>PasswordAuthentication no``: sshd, PostgreSQL and apt read one comment line,
    so the audit must judge the tree as if the hardening were not there at all."""
    hidden, emptied = hardened_tree(tmp_path / "hidden"), hardened_tree(tmp_path / "emptied")
    for path in HARDENING_FILES:
        file = hidden / path.lstrip("/")
        lines = [line for line in file.read_text().split("\n") if line]
        file.write_bytes("".join(f"# off{sep}{line}\n" for line in lines).encode())
        (emptied / path.lstrip("/")).write_text("")
    judged = statuses(audit(tmp_path, hidden))
    assert judged == statuses(audit(tmp_path, emptied))
    assert {judged[i] for i in ("LAPP-SSH-001", "LAPP-PG-005", "LAPP-PATCH-002")} == {"fail"}


def test_a_host_without_the_packages_skips_with_reasons(tmp_path):
    root = make_tree(tmp_path / "root", {"/var/lib/dpkg/status": dpkg_status("bash")})
    results = audit(tmp_path, root)
    skipped = {i for i, (status, _) in results.items() if status is Status.SKIP}
    assert skipped == {i for i in BASELINE_IDS if i.startswith(("LAPP-SSH", "LAPP-PG"))} | {
        "LAPP-PATCH-003",
        "LAPP-PATCH-005",
        "LAPP-PATCH-006",
        "LAPP-PATCH-007",
    }
    assert statuses(results)["LAPP-PATCH-001"] == "fail"
    assert results["LAPP-FW-001"] == (
        Status.FAIL,
        (
            "no firewall ruleset loaded",
            "note: not live: judged from the configuration loaded at boot",
        ),
    )


# --- sshd_config / sshd_effective with the real sshd -T ---------------------------------------


def sshd_tree(tmp_path: Path, text: str, keys: bool = True) -> Path:
    """A config for the real sshd (absolute paths), with a host key unless ``keys`` is False."""
    require_root()
    require_program("sshd")
    require_program("unshare")
    key = tmp_path / "host_ed25519"
    if keys:
        subprocess.run(["ssh-keygen", "-q", "-N", "", "-t", "ed25519", "-f", str(key)], check=True)
    path = tmp_path / "sshd_config"
    path.write_text(f"HostKey {key}\n{text}")
    return path


def live_ctx(**variables) -> CheckContext:
    return context_for(NamespacedHost(PRIVATE_RUN), variables)


def context_for(host: Host, variables: dict) -> CheckContext:
    return CheckContext(CachedHost(host), dict(variables))


def test_sshd_effective_asks_the_real_sshd_and_names_the_line(tmp_path):
    hardened = fixture("sshd", "hardened_devsec_defaults_handrendered.sshd_config")
    hardened = "\n".join(line for line in hardened.splitlines() if not line.startswith("HostKey"))
    config = sshd_tree(tmp_path, hardened + "\nMatch User backup\n    PasswordAuthentication yes\n")
    ctx = live_ctx()
    params = {
        "config": str(config),
        "keyword": "PasswordAuthentication",
        "expect": {"equals": "no"},
    }
    verdict = run_check(SshdEffectiveCheck, params, ctx)
    assert verdict.status is Status.FAIL  # the Match block turns passwords on for one user
    assert verdict.evidence == (
        f"Match User backup ({config}:50) sets passwordauthentication yes ({config}:51): "
        "is 'yes', expected 'no'",
        f"passwordauthentication no (sshd -T; set at {config}:24)",
    )
    as_backup = run_check(
        SshdEffectiveCheck, {**params, "user": "backup", "match_blocks": False}, ctx
    )
    assert as_backup.evidence[0].startswith("passwordauthentication yes (sshd -T; set at ")
    assert as_backup.status is Status.FAIL
    outside = run_check(SshdEffectiveCheck, {**params, "match_blocks": False}, ctx)
    assert outside.status is Status.PASS
    tries = run_check(
        SshdEffectiveCheck, {**params, "keyword": "maxauthtries", "expect": {"max": 4}}, ctx
    )
    assert (tries.status, tries.evidence) == (
        Status.PASS,
        (f"maxauthtries 2 (sshd -T; set at {config}:15)",),
    )


def test_sshd_effective_falls_back_to_the_files_when_sshd_cannot_run(tmp_path):
    config = sshd_tree(tmp_path, "PermitRootLogin yes\n", keys=False)  # its host key is missing
    expect = {"one_of": ["no", "prohibit-password"]}
    params = {"config": str(config), "keyword": "permitrootlogin", "user": "root", "expect": expect}
    verdict = run_check(SshdEffectiveCheck, params, live_ctx())
    assert verdict.status is Status.FAIL
    assert verdict.evidence[0] == (
        f"permitrootlogin yes ({config}:2): is 'yes', expected one of no, prohibit-password "
        "[for user=root,host=audit.invalid,addr=192.0.2.10]"
    )
    assert verdict.evidence[1].startswith("note: sshd -T not used (sshd -T failed: ")
    config_check = run_check(SshdConfigCheck, params, live_ctx())
    assert config_check.evidence == verdict.evidence[:1]  # same answer, no note needed


def test_sshd_checks_error_when_the_config_is_unreadable(tmp_path):
    params = {"keyword": "permitrootlogin", "expect": {"equals": "no"}}
    verdict = run_check(SshdEffectiveCheck, params, context(tmp_path))
    assert verdict.status is Status.ERROR
    assert verdict.reason.startswith("cannot read /etc/ssh/sshd_config: ")


# --- sshd_auth_mode ---------------------------------------------------------------------------

CERTIFICATES = """\
PasswordAuthentication no
KbdInteractiveAuthentication no
TrustedUserCAKeys /etc/ssh/user_ca.pub
AuthorizedKeysFile none
"""


@pytest.mark.parametrize(
    ("config", "mode", "status", "first"),
    [
        (CERTIFICATES, "certificates", "pass", "ssh_auth=certificates holds for "),
        (CERTIFICATES, "keys", "pass", "ssh_auth=keys holds for "),
        (
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\n",
            "certificates",
            "fail",
            "trustedusercakeys none (compiled-in default): no user CA is trusted",
        ),
        (
            "PasswordAuthentication no\nAuthenticationMethods publickey,keyboard-interactive\n",
            "keys",
            "pass",
            "ssh_auth=keys holds for ",
        ),
        (
            "PasswordAuthentication no\nAuthenticationMethods publickey keyboard-interactive\n",
            "keys",
            "fail",
            "login possible with keyboard-interactive only: "
            "kbdinteractiveauthentication yes (compiled-in default)",
        ),
        (
            "KbdInteractiveAuthentication no\n",
            "keys",
            "fail",
            "login possible with password only: passwordauthentication yes (compiled-in default)",
        ),
        (
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "Match Address 10.0.0.0/8\n  PasswordAuthentication yes\n",
            "keys",
            "fail",
            "Match Address 10.0.0.0/8 (/etc/ssh/sshd_config:3) sets passwordauthentication yes "
            "(/etc/ssh/sshd_config:4): not a key",
        ),
        (
            CERTIFICATES + "Match User legacy\n  AuthorizedKeysFile .ssh/authorized_keys\n",
            "certificates",
            "fail",
            "Match User legacy (/etc/ssh/sshd_config:5) sets authorizedkeysfile "
            ".ssh/authorized_keys (/etc/ssh/sshd_config:6): keys outside the CA are accepted",
        ),
    ],
)
def test_auth_mode(tmp_path, config, mode, status, first):
    make_tree(tmp_path, {"/etc/ssh/sshd_config": config})
    verdict = run_check(SshdAuthModeCheck, {}, context(tmp_path, {"ssh_auth": mode}))
    assert verdict.status.value == status
    assert verdict.evidence[0].startswith(first)


def test_auth_mode_for_an_office_client_and_without_the_variable(tmp_path):
    config = (
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "Match Address 10.0.0.0/8\n  PasswordAuthentication yes\n"
    )
    make_tree(tmp_path, {"/etc/ssh/sshd_config": config})
    office = run_check(
        SshdAuthModeCheck, {"addr": "10.1.1.1"}, context(tmp_path, {"ssh_auth": "keys"})
    )
    assert office.evidence == (
        "login possible with password only: passwordauthentication yes (/etc/ssh/sshd_config:4)",
        "Match Address 10.0.0.0/8 (/etc/ssh/sshd_config:3) sets passwordauthentication yes "
        "(/etc/ssh/sshd_config:4): not a key",
        ROOT_NOTE,
    )
    unset = run_check(SshdAuthModeCheck, {}, context(tmp_path))
    assert unset.status is Status.ERROR
    assert unset.reason == (
        "the policy variable ssh_auth is None, not keys or certificates: set it with "
        "--var ssh_auth=keys or audit.vars.ssh_auth in the agent config"
    )


# --- sshd_network_restriction -----------------------------------------------------------------


def restriction(tmp_path: Path, sshd_config: str, office=OFFICE, files=None, units=()) -> tuple:
    tree = {"/etc/ssh/sshd_config": sshd_config, **(files or {})}
    links = {
        f"/etc/systemd/system/multi-user.target.wants/{u}": f"/lib/systemd/system/{u}"
        for u in units
    }
    make_tree(tmp_path, tree, links=links)
    verdict = run_check(
        SshdNetworkRestrictionCheck, {}, context(tmp_path, {"office_networks": office})
    )
    return verdict.status.value, verdict.evidence, verdict.reason


def test_restriction_by_allow_users(tmp_path):
    status, evidence, _ = restriction(tmp_path, "AllowUsers admin@10.0.0.0/8 ops@2001:db8:a::/64\n")
    assert status == "pass"
    assert evidence == (
        "AllowUsers admits only office hosts: allowusers admin@10.0.0.0/8 ops@2001:db8:a::/64 "
        "(/etc/ssh/sshd_config:1)",
        ROOT_NOTE,
    )


def test_allow_users_reaching_beyond_the_office_fails(tmp_path):
    status, evidence, _ = restriction(tmp_path, "AllowUsers admin@10.0.0.0/8 ops@12.0.0.0/8\n")
    assert status == "fail"
    assert evidence[:2] == (
        "SSH is reachable from outside 10.0.0.0/8, 192.168.10.0/24, 2001:db8:a::/48",
        "AllowUsers entries reach beyond office_networks: allowusers admin@10.0.0.0/8 "
        "ops@12.0.0.0/8 (/etc/ssh/sshd_config:1)",
    )


def test_restriction_by_a_match_block_refusing_outsiders(tmp_path):
    config = "Match Address *,!10.0.0.0/8,!192.168.10.0/24,!2001:db8:a::/48\n    DenyUsers *\n"
    status, evidence, _ = restriction(tmp_path, config)
    assert status == "pass"
    assert evidence == (
        "sshd refuses clients outside the office: 192.0.2.10: DenyUsers *; 2001:db8::10: "
        "DenyUsers *; 9.255.255.255: DenyUsers *; 11.0.0.0: DenyUsers *; 192.168.9.255: "
        "DenyUsers *; 192.168.11.0: DenyUsers *; 2001:db8:9:ffff:ffff:ffff:ffff:ffff: DenyUsers *; "
        "2001:db8:b::: DenyUsers *",
        ROOT_NOTE,
    )


def test_restriction_by_disabling_every_auth_method_outside(tmp_path):
    config = (
        "Match Address *,!10.0.0.0/8,!192.168.10.0/24,!2001:db8:a::/48\n"
        "    PasswordAuthentication no\n    PubkeyAuthentication no\n"
        "    KbdInteractiveAuthentication no\n"
    )
    status, evidence, _ = restriction(tmp_path, config)
    assert status == "pass"
    assert evidence[0].startswith(
        "sshd refuses clients outside the office: 192.0.2.10: no authentication method is usable;"
    )


def test_a_match_block_wider_than_the_office_is_caught_at_its_edge(tmp_path):
    config = "Match Address *,!10.0.0.0/7,!192.168.10.0/24,!2001:db8:a::/48\n    DenyUsers *\n"
    status, evidence, _ = restriction(tmp_path, config)
    assert status == "fail"
    assert "a client from 11.0.0.0 is not refused by sshd" in evidence


def test_restriction_by_listen_address(tmp_path):
    status, evidence, _ = restriction(
        tmp_path, "ListenAddress 10.0.0.5\nListenAddress [::1]:2222\n"
    )
    assert (status, evidence) == (
        "pass",
        (
            "sshd listens only on office/loopback addresses: listenaddress 10.0.0.5 [::1]:2222 "
            "(/etc/ssh/sshd_config:1, /etc/ssh/sshd_config:2)",
            ROOT_NOTE,
        ),
    )


def test_restriction_by_the_boot_firewall(tmp_path):
    files = {"/etc/nftables.conf": fixture("firewall", "hardened.nftables.conf")}
    status, evidence, _ = restriction(
        tmp_path, "Port 22\n", files=files, units=["nftables.service"]
    )
    assert status == "pass"
    assert evidence[0].startswith("firewall accepts SSH only from office/loopback: port 22/ipv4")


def test_an_open_firewall_on_the_ssh_port_is_no_restriction(tmp_path):
    files = {"/etc/nftables.conf": fixture("firewall", "ssh_open.nftables.conf")}
    status, evidence, _ = restriction(tmp_path, "", files=files, units=["nftables.service"])
    assert status == "fail"
    assert evidence == (
        "SSH is reachable from outside 10.0.0.0/8, 192.168.10.0/24, 2001:db8:a::/48",
        "AllowUsers: not set",
        "a client from 192.0.2.10 is not refused by sshd",
        "sshd listens on every address: listenaddress 0.0.0.0 :: (compiled-in default)",
        "firewall: port 22/ipv4 accepted from 0.0.0.0/0; port 22/ipv6 accepted from ::/0",
        ROOT_NOTE,
    )


def test_ssh_ports_come_from_listen_addresses_or_port():
    live = parse_sshd_t("listenaddress 10.0.0.5:2222\nlistenaddress [::]:22\nport 22\n", "sshd -T")
    assert ssh_ports(live) == {22, 2222}
    config = SshdConfig("/etc/ssh/sshd_config")
    lines = [
        ("listenaddress", ("10.0.0.5",)),
        ("listenaddress", ("10.0.0.6:2200",)),
        ("port", ("2022",)),
    ]
    for number, (keyword, args) in enumerate(lines, 1):
        config.directives.append(Directive(keyword, args, Origin(config.main, number)))
    assert ssh_ports(config.effective(None)) == {2022, 2200}


def test_empty_office_networks(tmp_path):
    status, evidence, reason = restriction(
        tmp_path / "a", "AllowUsers admin@10.0.0.0/8\n", office=[]
    )
    assert (status, evidence[0]) == (
        "error",
        "AllowUsers entries reach beyond office_networks: allowusers admin@10.0.0.0/8 "
        "(/etc/ssh/sshd_config:1)",
    )
    assert reason.endswith(
        "office_networks is empty: set it to the networks allowed to reach SSH, with --var "
        "office_networks=198.51.100.0/24,2001:db8:1::/48 or audit.vars.office_networks in the "
        "agent config"
    )
    status, evidence, _ = restriction(tmp_path / "b", "PermitRootLogin no\n", office=[])
    assert (status, evidence[0]) == ("fail", "SSH is not restricted to any network")


def test_live_restriction_by_a_real_firewall_and_real_sshd(tmp_path):
    require_program("nft")
    require_program("ip")
    config = sshd_tree(tmp_path, "Port 22\n")
    with network_namespace() as name:
        in_namespace(name, "nft", "-f", str(FIXTURES / "firewall" / "hardened.nftables.conf"))
        host = NamespacedHost(["ip", "netns", "exec", name, *PRIVATE_RUN])
        ctx = context_for(host, {"office_networks": OFFICE})
        verdict = run_check(SshdNetworkRestrictionCheck, {"config": str(config)}, ctx)
    assert verdict.status is Status.PASS
    assert verdict.evidence == (
        "firewall accepts SSH only from office/loopback: port 22/ipv4 accepted from 10.0.0.0/8, "
        "127.0.0.0/8, 192.168.10.0/24; port 22/ipv6 accepted from ::1/128, 2001:db8:a::/48",
    )


# --- postgresql_conf and pg_hba ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("listen", "status"),
    [
        ("localhost", "pass"),
        ("127.0.0.1, ::1", "pass"),
        ("", "pass"),
        ("*", "fail"),
        ("0.0.0.0", "fail"),
        ("localhost,10.0.0.5", "fail"),
        ("::", "fail"),
    ],
)
def test_listen_addresses_loopback_only(tmp_path, listen, status):
    make_tree(
        tmp_path, {"/etc/postgresql/15/main/postgresql.conf": f"listen_addresses = '{listen}'\n"}
    )
    verdict = run_check(
        PostgresConfCheck, {"setting": "listen_addresses", "loopback_only": True}, context(tmp_path)
    )
    assert verdict.status.value == status


def test_a_postgresql_conf_line_the_server_rejects_leaves_the_check_undecided(tmp_path):
    """``port = 5432<FF>``: postgres refuses to start (or ignores a reload) with this file."""
    conf = "/etc/postgresql/15/main/postgresql.conf"
    make_tree(tmp_path, {conf: "listen_addresses = 'localhost'\nport = 5432\f\n"})
    params = {"setting": "listen_addresses", "loopback_only": True}
    verdict = run_check(PostgresConfCheck, params, context(tmp_path))
    assert (verdict.status, verdict.reason) == (
        Status.ERROR,
        f"postgresql.conf is not loadable: {conf}:2: unexpected character '\\x0c' "
        "(PostgreSQL rejects this line)",
    )


def test_every_cluster_is_judged_with_its_own_defaults(tmp_path):
    make_tree(
        tmp_path,
        {
            "/etc/postgresql/13/old/postgresql.conf": "# nothing set\n",
            "/etc/postgresql/15/main/postgresql.conf": "# nothing set\n",
        },
    )
    params = {"setting": "password_encryption", "expect": {"equals": "scram-sha-256"}}
    verdict = run_check(PostgresConfCheck, params, context(tmp_path))
    assert (verdict.status, verdict.evidence) == (
        Status.FAIL,
        (
            "/etc/postgresql/13/old/postgresql.conf: password_encryption = 'md5' (built-in default)"
            ": is 'md5', expected 'scram-sha-256'",
            "/etc/postgresql/15/main/postgresql.conf: password_encryption = 'scram-sha-256' "
            "(built-in default)",
        ),
    )
    explicit = run_check(
        PostgresConfCheck,
        {**params, "config": "/etc/postgresql/15/main/postgresql.conf"},
        context(tmp_path),
    )
    assert explicit.status is Status.PASS


def test_postgres_checks_skip_without_clusters_and_error_on_bad_params(tmp_path):
    params = {"setting": "ssl", "expect": {"equals": "on"}}
    assert run_check(PostgresConfCheck, params, context(tmp_path)).status is Status.SKIP
    both = run_check(PostgresConfCheck, {**params, "loopback_only": True}, context(tmp_path))
    assert (both.status, both.reason) == (
        Status.ERROR,
        "give exactly one of expect and loopback_only",
    )
    nothing = run_check(PgHbaCheck, {"hba": "/x"}, context(tmp_path))
    assert nothing.reason == (
        "nothing to check: set forbid_methods, allow_methods, forbid_open or ssl_beyond_loopback"
    )
    missing = run_check(
        PgHbaCheck, {"hba": "/etc/pg_hba.conf", "forbid_open": True}, context(tmp_path)
    )
    assert missing.status is Status.ERROR and missing.reason.startswith("cannot read pg_hba.conf:")


def test_pg_hba_open_rules_in_the_inspec_fixture(tmp_path):
    hba = fixture("postgres", "inspec_fixture_pg_hba.conf") + "host all all 0.0.0.0/0 reject\n"
    make_tree(tmp_path, {"/etc/pg_hba.conf": hba})
    verdict = run_check(
        PgHbaCheck, {"hba": "/etc/pg_hba.conf", "forbid_open": True}, context(tmp_path)
    )
    assert verdict.status is Status.FAIL
    assert [int(e.split(":")[1]) for e in verdict.evidence] == [14, 15, 16, 17, 20, 21, 22, 23]
    assert verdict.evidence[1] == (
        "/etc/pg_hba.conf:15: host    acme_test_db    all                    127.0.0.1/0     md5"
        " (address 127.0.0.1/0 admits every client)"
    )
    local_only = run_check(
        PgHbaCheck,
        {"hba": "/etc/pg_hba.conf", "forbid_methods": ["md5"], "types": ["local"]},
        context(tmp_path),
    )
    assert [int(e.split(":")[1]) for e in local_only.evidence] == [6]
    no_passwords = {"hba": "/etc/pg_hba.conf", "forbid_methods": ["trust", "password"]}
    scram = run_check(PgHbaCheck, no_passwords, context(tmp_path))
    assert scram.evidence == (
        "/etc/pg_hba.conf: 11 host/hostssl/hostnossl/hostgssenc/hostnogssenc rule(s), "
        "no method trust/password",
    )


@pytest.mark.parametrize("address", ["0/0", "0 0", "0.0/0", "0.0 0", "::0/0", "::0 ::"])
def test_short_address_forms_are_open_trust_rules(tmp_path, address):
    """PostgreSQL reads ``0/0`` and ``0 0`` as 0.0.0.0/0 (inet_aton's short forms)."""
    make_tree(tmp_path, {"/etc/pg_hba.conf": f"host all all {address} trust\n"})
    trust = {"hba": "/etc/pg_hba.conf", "forbid_methods": ["trust"]}
    open_rule = {"hba": "/etc/pg_hba.conf", "forbid_open": True}
    assert run_check(PgHbaCheck, trust, context(tmp_path)).status is Status.FAIL
    verdict = run_check(PgHbaCheck, open_rule, context(tmp_path))
    assert verdict.evidence == (
        f"/etc/pg_hba.conf:1: host all all {address} trust (address {address.replace(' ', '/')}"
        " admits every client)",
    )


def test_a_line_postgresql_rejects_leaves_pg_hba_undecided(tmp_path):
    """The server does not load such a file (or keeps its old rules on reload): no pass."""
    hba = "host all all 10.0.0.0/8 scram-sha-256\nhost all all 0 trust\n"
    make_tree(tmp_path, {"/etc/pg_hba.conf": hba})
    verdict = run_check(
        PgHbaCheck, {"hba": "/etc/pg_hba.conf", "forbid_open": True}, context(tmp_path)
    )
    assert (verdict.status, verdict.reason) == (
        Status.ERROR,
        "pg_hba.conf is not loadable: /etc/pg_hba.conf:2: invalid IP mask 'trust': Name or "
        "service not known (PostgreSQL rejects this line)",
    )


# --- apt_conf ---------------------------------------------------------------------------------

SECURITY = r"(^|,)(n|codename|a|archive|suite)=[^,]*-security(,|$)|^[^=]*:[^:=,]*-security$"
ORIGIN_KEYS = ["Unattended-Upgrade::Origins-Pattern", "Unattended-Upgrade::Allowed-Origins"]


@pytest.mark.parametrize(
    ("source", "status"),
    [
        ("50unattended-upgrades.Debian", "pass"),
        ("50unattended-upgrades.Ubuntu", "pass"),
        ("test_data_50unattended-upgrades.compat", "pass"),
        ("test_root.untrusted_etc_apt_apt.conf", "pass"),
        ("test_data_50unattended-upgrades.Test", "fail"),
        ("test_data_50unattended-upgrades.colon", "fail"),
        ("20auto-upgrades", "fail"),
    ],
)
def test_security_origin_allowed(tmp_path, source, status):
    make_tree(tmp_path, {"/etc/apt/apt.conf.d/50unattended-upgrades": fixture("apt", source)})
    verdict = run_check(
        AptConfCheck, {"key": ORIGIN_KEYS, "any_matches": SECURITY}, context(tmp_path)
    )
    assert verdict.status.value == status


def test_apt_scalars_defaults_and_syntax_errors(tmp_path):
    make_tree(
        tmp_path,
        {
            "/etc/apt/apt.conf.d/20auto-upgrades": fixture("apt", "20auto-upgrades"),
            "/etc/apt/apt.conf.d/60mail": 'Unattended-Upgrade::Mail "";\n',
        },
    )
    ctx = context(tmp_path)
    periodic = run_check(
        AptConfCheck, {"key": ["APT::Periodic::Unattended-Upgrade"], "expect": {"equals": "1"}}, ctx
    )
    assert periodic.evidence == (
        'APT::Periodic::Unattended-Upgrade "1" (/etc/apt/apt.conf.d/20auto-upgrades:2)',
    )
    mail = run_check(
        AptConfCheck, {"key": ["Unattended-Upgrade::Mail"], "expect": {"matches": r"\S"}}, ctx
    )
    assert mail.status is Status.FAIL  # set, but empty
    enable = run_check(
        AptConfCheck,
        {"key": ["APT::Periodic::Enable"], "default": "1", "expect": {"not_one_of": ["0"]}},
        ctx,
    )
    assert enable.evidence == ('APT::Periodic::Enable not set: apt uses "1"',)
    reboot = run_check(
        AptConfCheck,
        {"key": ["Unattended-Upgrade::Automatic-Reboot"], "expect": {"present": True}},
        ctx,
    )
    assert reboot.evidence == (
        "Unattended-Upgrade::Automatic-Reboot not set: not set (expected present=True)",
    )

    make_tree(tmp_path, {"/etc/apt/apt.conf.d/99broken": 'APT::Periodic::Enable "1"\n'})
    periodic_on = {"key": ["APT::Periodic::Unattended-Upgrade"], "expect": {"equals": "1"}}
    broken = run_check(AptConfCheck, periodic_on, context(tmp_path))
    assert broken.status is Status.FAIL
    assert broken.evidence[0] == (
        "apt rejects its configuration: /etc/apt/apt.conf.d/99broken:1: "
        "syntax error: extra junk at end of file"
    )


# --- firewall_default_deny --------------------------------------------------------------------


def firewall_verdict(tmp_path: Path, conf: str, enabled: bool = True):
    links = NFTABLES_ENABLED if enabled else {}
    make_tree(tmp_path, {"/etc/nftables.conf": fixture("firewall", conf)}, links=links)
    return run_check(FirewallDefaultDenyCheck, {}, context(tmp_path))


def test_default_deny_from_boot_configuration(tmp_path):
    good = firewall_verdict(tmp_path / "a", "hardened.nftables.conf")
    assert good.status is Status.PASS
    assert good.evidence[0] == (
        "ipv4: /etc/nftables.conf (not live): table inet filter chain input "
        "(hook input, policy drop): policy drop"
    )
    half = firewall_verdict(tmp_path / "b", "ipv4_only.nftables.conf")
    assert (half.status, half.evidence[0]) == (
        Status.FAIL,
        "ipv6: /etc/nftables.conf (not live): no input chain for ipv6",
    )
    debian = firewall_verdict(tmp_path / "c", "debian_default.nftables.conf")
    assert debian.status is Status.FAIL
    off = firewall_verdict(tmp_path / "d", "hardened.nftables.conf", enabled=False)
    assert off.evidence == (
        "no firewall ruleset loaded",
        "note: not live: judged from the configuration loaded at boot",
        "note: /etc/nftables.conf exists but nftables.service is not enabled",
    )


def test_default_deny_on_a_live_ruleset():
    require_root()
    require_program("nft")
    with network_namespace() as name:
        host = NamespacedHost(["ip", "netns", "exec", name])
        empty = run_check(FirewallDefaultDenyCheck, {}, context_for(host, {}))
        in_namespace(name, "nft", "-f", str(FIXTURES / "firewall" / "hardened.nftables.conf"))
        loaded = run_check(FirewallDefaultDenyCheck, {}, context_for(host, {}))
    assert empty.evidence == ("no firewall ruleset loaded",)
    assert loaded.status is Status.PASS
    chain = "nft -j list ruleset: table inet filter chain input (hook input, policy drop)"
    assert loaded.evidence == (f"ipv4: {chain}: policy drop", f"ipv6: {chain}: policy drop")


class WithoutFirewallTools(LocalHost):
    """This machine as a host where nft and iptables are not installed (they cannot be
    uninstalled for a test); everything else is the real LocalHost."""

    def which(self, program: str) -> str | None:
        return (
            None
            if program in ("nft", "iptables-save", "ip6tables-save")
            else super().which(program)
        )


def test_live_host_without_firewall_tools_fails():
    verdict = run_check(FirewallDefaultDenyCheck, {}, context_for(WithoutFirewallTools(), {}))
    assert verdict.evidence == (
        "no firewall ruleset loaded",
        "note: no firewall tool (nft, iptables-save) on this host",
    )

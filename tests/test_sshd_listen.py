"""Where sshd listens (LAPP-SSH-055..057), GSSAPI (LAPP-SSH-058, -059), PrintMotd (LAPP-SSH-061)
and VersionAddendum (LAPP-SSH-062): exact outcomes on host trees (``--root``: sshd's files),
and the same verdicts from the real ``sshd -T`` (the oracle) for the same configurations."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import require_program, require_root
from namespaces import PRIVATE_RUN, NamespacedHost
from servers import run_check
from treeutil import context, hardened_root, make_tree

from agent.cli import main
from checks.hosts import CachedHost
from checks.result import Status
from checks.types.base import CheckContext
from checks.types.sshd_listen import SshdListenCheck

ROOT_NOTE = (
    "note: sshd -T not used (sshd cannot run when auditing a directory tree): values from the files"
)
DEFAULTS = {"ssh_port": 22, "ssh_address_family": "any", "ssh_listen_addresses": []}

#: (sshd_config lines, variables) -> the problems each aspect finds ([] passes).
CASES = [
    ("", {}, {"port": [], "address_family": [], "addresses": [
        "0.0.0.0:22: every IPv4 address of the host", "[::]:22: every IPv6 address of the host"]}),
    ("ListenAddress 10.1.2.3\nListenAddress 127.0.0.1\n", {},
     {"port": [], "address_family": [], "addresses": []}),
    ("Port 2222\nListenAddress 10.1.2.3\n", {},
     {"port": ["sshd listens on 10.1.2.3:2222, not port 22"], "address_family": [],
      "addresses": []}),
    ("Port 22\nPort 2200\nAddressFamily inet\n", {"ssh_address_family": "inet6"},
     {"port": ["sshd listens on 0.0.0.0:2200, not port 22"],
      "address_family": ["sshd uses AddressFamily inet, not inet6 (ssh_address_family)"],
      "addresses": ["0.0.0.0:22: every IPv4 address of the host",
                    "0.0.0.0:2200: every IPv4 address of the host"]}),
    ("ListenAddress 10.1.2.3:2200\nListenAddress 192.0.2.7\nAddressFamily inet\n",
     {"ssh_port": 2200, "ssh_address_family": "inet", "ssh_listen_addresses": ["10.0.0.0/8"]},
     {"port": ["sshd listens on 192.0.2.7:22, not port 2200"], "address_family": [],
      "addresses": ["192.0.2.7:22: outside ssh_listen_addresses"]}),
]  # fmt: skip


def problems(verdict) -> list[str]:
    """The findings of a failed verdict, without the settings shown after them."""
    if verdict.status is Status.PASS:
        return []
    shown = ("port ", "listenaddress ", "addressfamily ", "note: ")
    return sorted(e for e in verdict.evidence if not e.startswith(shown))


def tree_ctx(tmp_path: Path, text: str, variables: dict) -> CheckContext:
    root = make_tree(tmp_path, {"/etc/ssh/sshd_config": text})
    return context(root, {**DEFAULTS, **variables})


@pytest.mark.parametrize(("text", "variables", "expected"), CASES)
def test_listen_aspects_from_the_files(tmp_path, text, variables, expected):
    ctx = tree_ctx(tmp_path, text, variables)
    got = {aspect: problems(run_check(SshdListenCheck, {"aspect": aspect}, ctx))
           for aspect in expected}  # fmt: skip
    assert got == {aspect: sorted(found) for aspect, found in expected.items()}


def test_listen_evidence_names_the_lines(tmp_path):
    text = "ListenAddress 10.1.2.3:2200\nListenAddress 0.0.0.0\nPort 2200\n"
    ctx = tree_ctx(tmp_path, text, {"ssh_port": 2200})
    listen = "listenaddress 10.1.2.3:2200 0.0.0.0 (/etc/ssh/sshd_config:1, /etc/ssh/sshd_config:2)"
    expected = {
        "port": (Status.PASS, "sshd listens on port 2200 only",
                 "port 2200 (/etc/ssh/sshd_config:3)", listen),
        "addresses": (Status.FAIL, "0.0.0.0:2200: every IPv4 address of the host", listen),
        "address_family": (Status.PASS, "addressfamily any (compiled-in default)",
                           "ssh_address_family=any"),
    }  # fmt: skip
    for aspect, (status, *evidence) in expected.items():
        verdict = run_check(SshdListenCheck, {"aspect": aspect}, ctx)
        assert (verdict.status, verdict.evidence) == (status, (*evidence, ROOT_NOTE))


def test_a_host_name_is_no_listen_address_and_bad_variables_are_errors(tmp_path):
    ctx = tree_ctx(tmp_path, "ListenAddress ssh.example.org\n", {})
    verdict = run_check(SshdListenCheck, {"aspect": "addresses"}, ctx)
    assert verdict.status is Status.FAIL
    assert verdict.evidence[0] == (
        "ssh.example.org:22: a name, not an address (it may resolve to any)"
    )
    for aspect, variables, reason in (
        ("port", {"ssh_port": None}, "the policy variable ssh_port is None, not a port"),
        ("address_family", {"ssh_address_family": "ipx"}, "ssh_address_family is 'ipx'"),
        ("addresses", {"ssh_listen_addresses": ["nowhere"]}, "ssh_listen_addresses is not"),
    ):
        ctx = tree_ctx(tmp_path / aspect, "", variables)
        verdict = run_check(SshdListenCheck, {"aspect": aspect}, ctx)
        assert verdict.status is Status.ERROR and reason in verdict.reason, verdict


def test_unreadable_config_is_an_error(tmp_path):
    verdict = run_check(SshdListenCheck, {"aspect": "port"}, context(tmp_path, DEFAULTS))
    assert verdict.status is Status.ERROR
    assert verdict.reason.startswith("cannot read /etc/ssh/sshd_config")


@pytest.fixture(scope="module")
def host_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_root()
    require_program("sshd")
    require_program("unshare")
    require_program("ssh-keygen")
    key = tmp_path_factory.mktemp("sshd") / "host_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-N", "", "-t", "ed25519", "-f", str(key)], check=True)
    return key


@pytest.mark.parametrize(("text", "variables", "expected"), CASES)
def test_the_real_sshd_t_gives_the_same_verdicts(tmp_path, host_key, text, variables, expected):
    """The oracle: sshd -T's listen addresses, ports and family give the same findings as
    the files do (the check reads sshd -T on a live host)."""
    config = tmp_path / "sshd_config"
    config.write_text(f"HostKey {host_key}\n{text}")
    ctx = CheckContext(CachedHost(NamespacedHost(PRIVATE_RUN)), {**DEFAULTS, **variables})
    for aspect, found in expected.items():
        verdict = run_check(SshdListenCheck, {"aspect": aspect, "config": str(config)}, ctx)
        assert not any(e.startswith("note: sshd -T not used") for e in verdict.evidence), verdict
        assert problems(verdict) == sorted(found), (aspect, verdict)


GSSAPI_MOTD = ("LAPP-SSH-058", "LAPP-SSH-059", "LAPP-SSH-061")


def audit_ids(tmp_path: Path, root: Path, ids, *extra: str) -> dict[str, tuple[str, str]]:
    report = tmp_path / "report.json"
    main(["audit", "--root", str(root), "--format", "json", "--output", str(report),
          *extra, *(f"--only={i}" for i in ids)])  # fmt: skip
    results = json.loads(report.read_text())["hosts"][0]["results"]
    return {r["id"]: (r["status"], (r["evidence"] or [r["reason"]])[0]) for r in results}


def test_the_hardened_tree_passes_and_a_weak_drop_in_fails_each_check(tmp_path):
    require_root()
    root = hardened_root(tmp_path)
    ids = [*(f"LAPP-SSH-0{n}" for n in range(55, 60)), "LAPP-SSH-061", "LAPP-SSH-062"]
    assert audit_ids(tmp_path, root, ids) == {
        "LAPP-SSH-055": ("pass", "sshd listens on port 22 only"),
        "LAPP-SSH-056": ("pass", "addressfamily any (compiled-in default)"),
        "LAPP-SSH-057": (
            "pass",
            "listenaddress 10.0.0.5 127.0.0.1 (/etc/ssh/sshd_config.d/60-listen.conf:2, "
            "/etc/ssh/sshd_config.d/60-listen.conf:3)",
        ),
        "LAPP-SSH-058": ("pass", "gssapiauthentication no (compiled-in default)"),
        "LAPP-SSH-059": ("pass", "gssapicleanupcredentials yes (compiled-in default)"),
        "LAPP-SSH-061": ("pass", "printmotd no (/etc/ssh/sshd_config:95)"),
        "LAPP-SSH-062": ("pass", "versionaddendum none (compiled-in default)"),
    }
    dropin = root / "etc/ssh/sshd_config.d/00-weak.conf"
    dropin.write_text(
        "Port 2222\nAddressFamily inet\nListenAddress 0.0.0.0\nGSSAPIAuthentication yes\n"
        "GSSAPICleanupCredentials no\nPrintMotd yes\nVersionAddendum web01 (intranet)\n"
    )
    weak = str(dropin.relative_to(root)).join(("/", ""))
    for_outside = " [for user=lappguard-audit,host=audit.invalid,addr=192.0.2.10]"
    assert audit_ids(tmp_path, root, ids, "--var", "ssh_address_family=inet6") == {
        "LAPP-SSH-055": ("fail", "sshd listens on 0.0.0.0:2222, 10.0.0.5:2222, 127.0.0.1:2222, "
                                 "not port 22"),
        "LAPP-SSH-056": ("fail", "sshd uses AddressFamily inet, not inet6 (ssh_address_family)"),
        "LAPP-SSH-057": ("fail", "0.0.0.0:2222: every IPv4 address of the host"),
        "LAPP-SSH-058": ("fail", f"gssapiauthentication yes ({weak}:4): is 'yes', expected "
                                 f"'no'{for_outside}"),
        "LAPP-SSH-059": ("fail", f"gssapicleanupcredentials no ({weak}:5): is 'no', expected "
                                 f"'yes'{for_outside}"),
        "LAPP-SSH-061": ("fail", f"printmotd yes ({weak}:6): is 'yes', expected "
                                 f"'no'{for_outside}"),
        "LAPP-SSH-062": ("fail", f"versionaddendum web01 (intranet) ({weak}:7): is 'web01 "
                                 f"(intranet)', expected 'none'{for_outside}"),
    }  # fmt: skip


def test_a_match_block_turning_gssapi_on_fails(tmp_path):
    require_root()
    root = hardened_root(tmp_path)
    with (root / "etc/ssh/sshd_config").open("a") as config:
        config.write("Match Address 10.0.0.0/8\n    GSSAPIAuthentication yes\n")
    got = audit_ids(tmp_path, root, GSSAPI_MOTD)
    assert got["LAPP-SSH-058"] == (
        "fail",
        "Match Address 10.0.0.0/8 (/etc/ssh/sshd_config:124) sets gssapiauthentication yes "
        "(/etc/ssh/sshd_config:125): is 'yes', expected 'no'",
    )
    assert got["LAPP-SSH-059"][0] == got["LAPP-SSH-061"][0] == "pass"

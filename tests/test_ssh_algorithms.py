"""SSH algorithms against the field's tool: ssh-audit judges the same real servers.

A stock Debian 12 sshd (RSA 3072, ECDSA and Ed25519 host keys, compiled-in lists) and one
hardened as ssh-audit's Debian 12 guide says are started on loopback. For each, every
algorithm's level (fail, warn, ok) from our KEXINIT reader and knowledge must equal
ssh-audit's, and our policy verdict must equal ssh-audit's verdict for its "Hardened
Debian 12" policy. The configuration checks (sshd -T) must agree with the live ones.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from servers import run_check, run_sshd

from checks.policy import load_policy
from checks.probes.ssh_kex import read_kexinit, rsa_host_key_bits
from checks.probes.wire import Target
from checks.result import Status
from checks.ssh_algorithms import KINDS, MARKERS, judge, key_family, known
from checks.types.ssh_crypto import (
    SshAlgorithmsProbeCheck,
    SshdAlgorithmsCheck,
    SshdModuliCheck,
)
from policies import builtin_policy

ssh_audit = pytest.importorskip("ssh_audit", reason="pip install -e '.[test]' brings ssh-audit")

SSH_AUDIT_POLICY = "Hardened Debian 12 (version 3)"
GUIDE_LISTS = {  # ssh-audit's Debian 12 hardening guide (version 3)
    "KexAlgorithms": "sntrup761x25519-sha512 sntrup761x25519-sha512@openssh.com curve25519-sha256 "
    "curve25519-sha256@libssh.org diffie-hellman-group16-sha512 diffie-hellman-group18-sha512 "
    "diffie-hellman-group-exchange-sha256",
    "Ciphers": "chacha20-poly1305@openssh.com aes256-gcm@openssh.com aes256-ctr aes192-ctr "
    "aes128-gcm@openssh.com aes128-ctr",
    "MACs": "hmac-sha2-256-etm@openssh.com hmac-sha2-512-etm@openssh.com umac-128-etm@openssh.com",
    "HostKeyAlgorithms": "ssh-ed25519 rsa-sha2-512 rsa-sha2-256",
}
HARDENED = "".join(f"{k} {','.join(v.split())}\n" for k, v in GUIDE_LISTS.items())
#: Our kinds as ssh-audit's JSON names its sections.
SECTIONS = {"kex": "kex", "key": "key", "enc": "enc", "mac": "mac"}
CHECKS = {
    "kex": "LAPP-SSH-051",
    "enc": "LAPP-SSH-052",
    "mac": "LAPP-SSH-053",
    "key": "LAPP-SSH-054",
}


def baseline_params() -> dict[str, dict]:
    """The live algorithm checks' parameters as the shipped baseline resolves them."""
    policy = load_policy(builtin_policy("lapp-baseline"))
    by_id = {check.id: check for check in policy.checks}
    params = {}
    for kind, check_id in CHECKS.items():
        values = by_id[check_id].implementation.params
        params[kind] = {"kind": kind, "allowed": list(values["allowed"])}
        params[kind]["min_rsa_bits"] = values["min_rsa_bits"]
    return params


def strong_moduli(directory: Path) -> Path:
    """/etc/ssh/moduli without the groups below 3071 bits, as the guide writes it."""
    kept = [
        line
        for line in Path("/etc/ssh/moduli").read_text().splitlines()
        if line.startswith("#") or int(line.split()[4]) >= 3071
    ]
    path = directory / "moduli.safe"
    path.write_text("\n".join(kept) + "\n")
    return path


def ssh_audit_json(port: int, *extra: str) -> tuple[int, dict]:
    done = subprocess.run(
        [sys.executable, "-m", "ssh_audit", "-j", "--skip-rate-test", "-p", str(port),
         *extra, "127.0.0.1"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return done.returncode, json.loads(done.stdout)


def their_levels(report: dict) -> dict[tuple[str, str], str]:
    levels = {}
    for kind, section in SECTIONS.items():
        for entry in report[section]:
            notes = entry.get("notes", {})
            level = "fail" if notes.get("fail") else "warn" if notes.get("warn") else "ok"
            levels[(kind, entry["algorithm"])] = level
    return levels


def our_levels(port: int) -> dict[tuple[str, str], str]:
    target = Target("127.0.0.1", port)
    offer = read_kexinit(target)
    rsa = tuple(n for n in offer.key if key_family(n) == "rsa")
    bits = rsa_host_key_bits(target, rsa) if rsa else None
    strict = "kex-strict-s-v00@openssh.com" in offer.kex
    context = (*offer.enc, *offer.mac)
    levels = {}
    for kind in KINDS:
        for name in offer.offered(kind):
            size = bits if kind == "key" and key_family(name) == "rsa" else None
            levels[(kind, name)] = judge(kind, name, context, strict, size).level
    return levels


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """(stock, hardened) sshd on loopback."""
    base = tmp_path_factory.mktemp("algorithms")
    hardened_config = f"{HARDENED}ModuliFile {strong_moduli(base)}\n"
    with (
        run_sshd(base, "", host_keys=("rsa:3072", "ecdsa", "ed25519")) as stock,
        run_sshd(base, hardened_config, host_keys=("ed25519", "rsa:4096")) as hardened,
    ):
        yield stock, hardened


@pytest.mark.parametrize("which", ["stock", "hardened"])
def test_every_offered_algorithm_has_ssh_audits_level(servers, which):
    server = servers[0] if which == "stock" else servers[1]
    _, report = ssh_audit_json(server.port)
    theirs = their_levels(report)
    ours = our_levels(server.port)
    # ssh-audit lists the host keys it verified; every name both list must agree
    assert {k: v for k, v in ours.items() if k in theirs} == theirs
    assert set(theirs) <= set(ours)
    assert len(theirs) > 15
    if which == "stock":
        assert theirs[("kex", "ecdh-sha2-nistp256")] == "fail"
        assert theirs[("mac", "umac-64-etm@openssh.com")] == "warn"
    else:
        assert {level for (kind, _), level in theirs.items() if kind in ("enc", "mac")} == {"ok"}


@pytest.mark.parametrize(("which", "status"), [("stock", Status.FAIL), ("hardened", Status.PASS)])
def test_policy_verdict_equals_ssh_audits_policy(servers, which, status):
    server = servers[0] if which == "stock" else servers[1]
    code, report = ssh_audit_json(server.port, "-P", SSH_AUDIT_POLICY)
    assert report["passed"] is (status is Status.PASS), report.get("errors")
    assert code == (0 if status is Status.PASS else 3)
    verdicts = {
        kind: run_check(SshAlgorithmsProbeCheck, {**params, "targets": [server.target]})
        for kind, params in baseline_params().items()
    }
    overall = (
        Status.FAIL if any(v.status is Status.FAIL for v in verdicts.values()) else Status.PASS
    )
    assert overall is status, verdicts
    if which == "stock":
        assert {k: v.status for k, v in verdicts.items()} == {
            "kex": Status.FAIL,  # ecdh-sha2-nistp*, diffie-hellman-group14-sha256
            "enc": Status.PASS,
            "mac": Status.FAIL,  # umac-64, hmac-sha1, encrypt-and-MAC
            "key": Status.FAIL,  # ecdsa-sha2-nistp256, RSA 3072 < 4096
        }
        assert "RSA host key of 3072 bits (at least 4096 wanted)" in verdicts["key"].evidence[0]


@pytest.mark.parametrize("which", ["stock", "hardened"])
def test_configuration_checks_agree_with_the_live_server(servers, which):
    server = servers[0] if which == "stock" else servers[1]
    config = str(server.workdir / "sshd_config")
    for kind, params in baseline_params().items():
        live = run_check(SshAlgorithmsProbeCheck, {**params, "targets": [server.target]})
        by_config = run_check(SshdAlgorithmsCheck, {**params, "config": config})
        assert by_config.status is live.status, (kind, by_config, live)
    moduli = run_check(SshdModuliCheck, {"config": config})
    assert moduli.status is (Status.PASS if which == "hardened" else Status.FAIL)


def test_our_table_agrees_with_ssh_audits_database():
    from ssh_audit.ssh2_kexdb import SSH2_KexDB

    database = SSH2_KexDB.get_db()
    compared = 0
    for kind in KINDS:
        for name, (fails, warns) in known(kind).items():
            if name == "none" or name in MARKERS:
                continue
            entry = database[kind].get(name)
            assert entry is not None, (kind, name)
            theirs = (
                "fail"
                if len(entry) > 1 and entry[1]
                else "warn"
                if len(entry) > 2 and entry[2]
                else "ok"
            )
            ours = "fail" if fails else "warn" if warns else "ok"
            assert ours == theirs, (kind, name)
            compared += 1
    assert compared > 50

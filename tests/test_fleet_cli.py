"""``lappguard audit --host/--inventory`` as a sysadmin runs it: the real command, in the
auditing network namespace, against the namespace hosts of tests/test_fleet_remote.py
(web hardened, old weakened, db with PostgreSQL), over real SSH."""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess
from pathlib import Path

from conftest import lappguard_command
from remote_hosts import MACHINE_WIDE_TYPES, Lan, allow_sudo
from test_fleet_remote import network  # noqa: F401  (the module's hosts, built once)
from treeutil import hardened_root

from checks.fleet import HOST_CHECK_ID
from checks.policy import load_policies
from policies import builtin_policy


def audit(net: Lan, *argv: str) -> subprocess.CompletedProcess:
    """``lappguard audit ARGV`` run from the auditing namespace, without an ssh-agent, so
    only the keys the command line or the SSH config names can log in."""
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    return subprocess.run(
        ["ip", "netns", "exec", net.auditor, lappguard_command(), "audit", *argv],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def hosts_of(done: subprocess.CompletedProcess) -> dict[str, dict[str, dict]]:
    """The JSON report's results by host, then by check ID."""
    document = json.loads(done.stdout)
    return {h["host"]: {r["id"]: r for r in h["results"]} for h in document["hosts"]}


def ssh_config(net: Lan, tmp_path: Path, known_hosts: Path | None = None) -> Path:
    """A config for addresses (as an inventory names them): the LAN's known_hosts, the
    test key only when given with --identity."""
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host *\n  User root\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {known_hosts or net.known_hosts}\n"
    )
    return config


def test_hosts_on_the_command_line_make_one_report_and_one_exit_code(network):  # noqa: F811
    done = audit(
        network, "--host", "web", "--host", "old", "--ssh-config", str(network.ssh_config()),
        "--var", "office_networks=10.0.0.0/8", "--only", "SSH,PHP", "--format", "json",
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stderr == ""  # no progress: stderr is not a terminal
    reports = hosts_of(done)
    assert list(reports) == ["web", "old"]
    web, old = reports["web"], reports["old"]
    assert web["LAPP-SSH-001"]["status"] == "pass"
    assert old["LAPP-SSH-001"]["status"] == old["LAPP-PHP-001"]["status"] == "fail"
    assert {r["area"] for r in web.values()} == {"SSH", "PHP"}  # --only, on every host
    summary = json.loads(done.stdout)["summary"]
    assert summary["total"] == len(web) + len(old) and summary["blocking"] > 0


def test_the_text_report_has_a_section_per_host_and_a_fleet_table(network):  # noqa: F811
    done = audit(
        network, "--host", "web", "--host", "old", "--ssh-config", str(network.ssh_config()),
        "--only", "LAPP-SSH-001,LAPP-PHP-001", "--color", "never",
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    text = done.stdout
    assert "lappguard audit of web: 2 checks" in text and "lappguard audit of old: 2 checks" in text
    table = text[text.index("Fleet: 2 hosts, 1 with a check at or above medium") :]
    rows = {line.split()[0]: line.split()[1:] for line in table.splitlines()[1:4]}
    assert rows == {
        "host": ["SSH", "PHP"],
        "web": ["ok", "ok"],
        "old": ["FAIL", "fail"],
    }  # expose_php is low
    # (a provenance line may hold one word longer than a line: a list of algorithms)
    assert all(len(line) <= 100 for line in table.splitlines())


def test_an_ansible_inventory_limited_to_a_group_with_an_unreachable_host(network, tmp_path):  # noqa: F811
    web, old, db = (network.hosts[name] for name in ("web", "old", "db"))
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        "# the fleet, as Ansible knows it\n"
        "[webservers]\n"
        f"web1 ansible_host={web.address} ansible_user=root\n"
        f"web2 ansible_host={old.address} ansible_user=root\n"
        f"gone ansible_host={network.unused_address()} ansible_user=root\n"
        "[databases]\n"
        f"db1 ansible_host={db.address} ansible_user=root\n"
        "[webservers:vars]\n"
        "office_networks=10.0.0.0/8\n"
        "backup_dir=/srv/backup\n"
    )
    done = audit(
        network, "--inventory", str(inventory), "--limit", "webservers",
        "--ssh-config", str(ssh_config(network, tmp_path)), "--identity", str(network.client_key),
        "--host-timeout", "60", "--jobs", "2", "--format", "json",
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    reports = hosts_of(done)
    assert list(reports) == ["web1", "web2", "gone"]  # db1 is not in webservers
    (only,) = reports["gone"].values()
    assert (only["id"], only["status"], only["severity"]) == (HOST_CHECK_ID, "error", "critical")
    assert "No route to host" in only["reason"] or "no answer within" in only["reason"]
    assert reports["web1"]["LAPP-SSH-001"]["status"] == "pass"
    assert reports["web2"]["LAPP-SSH-001"]["status"] == "fail"
    assert HOST_CHECK_ID not in reports["web1"]


def two_groups(net: Lan, tmp_path: Path) -> Path:
    """An Ansible inventory naming the web host twice: "open" in a group whose
    office_networks is everyone (line 2), "closed" in one whose is 10.0.0.0/8 (line 6)."""
    web = net.hosts["web"]
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        f"[everywhere]\nopen ansible_host={web.address}\n"
        f"[everywhere:vars]\noffice_networks=0.0.0.0/0\n"
        f"[office]\nclosed ansible_host={web.address}\n"
        f"[office:vars]\noffice_networks=10.0.0.0/8\n"
    )
    return inventory


def inventory_argv(net: Lan, tmp_path: Path, inventory: Path) -> tuple[str, ...]:
    """An audit of LAPP-SSH-007 on every host of ``inventory``."""
    return (
        "--inventory", str(inventory), "--ssh-config", str(ssh_config(net, tmp_path)),
        "--identity", str(net.client_key), "--only", "LAPP-SSH-007",
    )  # fmt: skip


def test_the_inventorys_variables_are_the_hosts_and_var_wins(network, tmp_path):  # noqa: F811
    inventory = two_groups(network, tmp_path)
    argv = (*inventory_argv(network, tmp_path, inventory), "--format", "json")
    reports = hosts_of(audit(network, *argv))
    assert reports["open"]["LAPP-SSH-007"]["status"] != reports["closed"]["LAPP-SSH-007"]["status"]
    same = hosts_of(audit(network, *argv, "--var", "office_networks=10.0.0.0/8"))
    opened, closed = same["open"]["LAPP-SSH-007"], same["closed"]["LAPP-SSH-007"]
    assert (opened["status"], opened["evidence"]) == (closed["status"], closed["evidence"])


def test_each_hosts_report_shows_its_own_variables(network, tmp_path):  # noqa: F811
    """The text section and the JSON object of each host say the variables its audit ran
    with (its inventory values, and where they were set), not those common to all."""
    inventory = two_groups(network, tmp_path)
    argv = inventory_argv(network, tmp_path, inventory)
    own = {"open": ("0.0.0.0/0", f"{inventory}:2"), "closed": ("10.0.0.0/8", f"{inventory}:6")}
    document = json.loads(audit(network, *argv, "--format", "json").stdout)
    for host in document["hosts"]:
        variables = host["variables"]["office_networks"]
        assert (variables["text"], variables["from"]) == own[host["host"]]
        assert host["variables"]["backup_dir"]["from"] == "default"
    assert document["variables"]["office_networks"]["from"] == "default"  # the run's own
    text = " ".join(audit(network, *argv, "--color", "never").stdout.split())
    closed_at = text.index("lappguard audit of closed:")
    sections = {"open": text[:closed_at], "closed": text[closed_at:]}
    for name, (value, where) in own.items():
        assert f"office_networks={value} ({where})" in sections[name]
    forced = json.loads(audit(network, *argv, "--var", "office_networks=10.9.0.0/16",
                              "--format", "json").stdout)  # fmt: skip
    for host in forced["hosts"]:
        variables = host["variables"]["office_networks"]
        assert (variables["text"], variables["from"]) == ("10.9.0.0/16", "--var")


def test_an_unknown_host_key_is_refused_unless_new_keys_are_accepted(network, tmp_path):  # noqa: F811
    known = tmp_path / "known_hosts"
    argv = (
        "--host", network.hosts["db"].address, "--ssh-config",
        str(ssh_config(network, tmp_path, known_hosts=known)), "--identity",
        str(network.client_key), "--only", "LAPP-SSH-001", "--format", "json",
    )  # fmt: skip
    refused = audit(network, *argv)
    assert refused.returncode == 1, refused.stderr
    (only,) = next(iter(hosts_of(refused).values())).values()
    assert only["id"] == HOST_CHECK_ID and "host key not known" in only["reason"]
    assert not known.exists() or known.read_text() == ""
    accepted = audit(network, *argv, "--accept-new-host-keys")
    assert accepted.returncode == 0, accepted.stdout
    assert network.hosts["db"].host_key in known.read_text()


def test_sudo_reads_root_only_files_and_without_it_they_are_errors(network, tmp_path):  # noqa: F811
    """Logged in as ``auditor`` (uid 4242, ``sudo -n`` allowed): with --sudo every verdict
    equals a root login's; without it every verdict that differs from root's is an error,
    those of root-only files (sshd_config and shadow are 0600 on the hardened host) naming
    the file: never a pass in its place."""
    host = network.add_host("sudoer", hardened_root(tmp_path))
    allow_sudo(host)
    network.trust(host)
    argv = ("--host", "sudoer", "--var", "office_networks=10.0.0.0/8", "--format", "json")
    machine_wide = {
        check.id for check in load_policies([builtin_policy("lapp-baseline")])[0].checks
        if check.type_name in MACHINE_WIDE_TYPES
    }  # fmt: skip

    def results(user: str, *more: str) -> dict[str, dict]:
        done = audit(network, *argv, "--ssh-config", str(network.ssh_config(user)), *more)
        assert done.returncode in (0, 1), done.stderr
        return {i: r for i, r in hosts_of(done)["sudoer"].items() if i not in machine_wide}

    root, plain, sudo = results("root"), results("auditor"), results("auditor", "--sudo")
    assert HOST_CHECK_ID not in root and HOST_CHECK_ID not in sudo
    assert {i: r["status"] for i, r in sudo.items()} == {i: r["status"] for i, r in root.items()}
    differ = {i: r for i, r in plain.items() if r["status"] != root[i]["status"]}
    assert {i: r["reason"] for i, r in differ.items() if r["status"] != "error"} == {}
    denied = {
        path
        for r in differ.values()
        for path in re.findall(r"(/\S+): Permission denied", r["reason"])
    }
    assert {"/etc/ssh/sshd_config", "/etc/shadow"} <= denied
    for path in denied:  # truly closed to the login user: the file or a directory above it
        inside = host.tree / path.lstrip("/")  # a pattern, when a glob was denied
        steps = [inside, *list(inside.parents)[: path.count("/") - 1]]
        found = [
            host.tree / name
            for step in steps
            for name in glob.glob(str(step.relative_to(host.tree)), root_dir=host.tree)
        ]
        assert any(not p.stat().st_mode & 0o004 for p in found), path

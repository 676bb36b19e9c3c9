"""Every example in the README is tried: a new user copies them first.

Each fenced block is recognised and checked the way it is meant to be used: policies are
validated, agent configs validated, safe shell commands run from the checkout, synopses
compared with the real parser, the JSON report with a real report, the PostgreSQL settings
read by lappguard's own parser. A block no verifier recognises fails the suite, so a new
example cannot go untested.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import PROJECT_ROOT, lappguard_command
from treeutil import make_tree

from agent.cli import build_parser
from agent.commands.helptext import commands
from agent.config import DEFAULT_METRICS_PORT
from checks.hosts import LocalHost
from checks.parsers.postgres import parse_postgresql_conf

README = PROJECT_ROOT / "README.md"
SAFE_SUBCOMMANDS = {("--help",), ("policy", "validate"), ("policy", "types"),
                    ("policy", "list"), ("explain",), ("audit",)}  # fmt: skip
#: Commands shown but not run by the suite, and why; the scripts are checked to exist and
#: to take the flags shown.
NOT_RUN = {
    "scripts/install": "installs into /opt and /usr/local (tests/test_install.py runs it staged)",
    "scripts/test": "the suite itself",
    "systemctl": "acts on this machine's services",
    "journalctl": "reads this machine's journal",
}
#: Options of commands that reach other machines (fleet audits over SSH): such a command is
#: parsed, as its --help examples are, not run (tests/test_fleet_cli.py runs them against
#: real SSH hosts).
REMOTE_OPTIONS = ("--host", "--inventory")


@dataclass(frozen=True)
class Block:
    language: str
    text: str
    line: int

    def __str__(self) -> str:
        return f"README.md:{self.line}"


def blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    return [
        Block(match.group(1), match.group(2), text[: match.start()].count("\n") + 1)
        for match in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.M | re.S)
    ]


def kind(block: Block) -> str:
    """Which verifier a block needs."""
    first = block.text.lstrip().splitlines()[0]
    if block.language == "sh":
        return "shell"
    if block.language == "json":
        return "json report"
    if block.language == "ini":
        return "ansible inventory"
    if block.language == "yaml":
        document = yaml.safe_load(block.text)
        if "checks" in document:
            return "policy"
        if "scrape_configs" in document:
            return "prometheus"
        return "agent config"
    if first.startswith("lappguard "):
        return "synopsis"
    if first.startswith("log_destination"):
        return "postgresql.conf"
    return "unknown"


BLOCKS = blocks()


@pytest.mark.parametrize("block", BLOCKS, ids=str)
def test_every_readme_block_is_tried(block, tmp_path):
    verify = VERIFIERS.get(kind(block))
    assert verify is not None, f"{block}: no verifier for this example; add one"
    verify(block, tmp_path)


def test_the_readme_shows_the_safe_commands_it_promises():
    commands_run = [c for b in BLOCKS if kind(b) == "shell" for c in shell_commands(b)]
    assert any(c[:2] == ["lappguard", "audit"] and "--root" in c for c in commands_run)
    assert any(c[:3] == ["lappguard", "policy", "validate"] for c in commands_run)
    assert ["lappguard", "--help"] in commands_run
    assert any(c[:2] == ["lappguard", "audit"] and "--inventory" in c for c in commands_run)


# --- verifiers -------------------------------------------------------------------------------


def lappguard(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([lappguard_command(), *argv], capture_output=True, text=True,
                          timeout=120, cwd=PROJECT_ROOT)  # fmt: skip


def verify_policy(block: Block, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(block.text)
    done = lappguard("policy", "validate", str(policy))
    assert done.returncode == 0, f"{block}: {done.stderr}"


def verify_agent_config(block: Block, tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text(block.text)
    done = lappguard("config", "validate", str(config))
    assert done.returncode == 0, f"{block}: {done.stderr}"


def verify_prometheus(block: Block, tmp_path: Path) -> None:
    """The scrape target is the agent's port; the rule file is the one contrib ships."""
    document = yaml.safe_load(block.text)
    (job,) = document["scrape_configs"]
    targets = [t for group in job["static_configs"] for t in group["targets"]]
    assert all(t.endswith(f":{DEFAULT_METRICS_PORT}") for t in targets), block
    shipped = yaml.safe_load((PROJECT_ROOT / "contrib/prometheus/prometheus.yml").read_text())
    assert job["job_name"] in {j["job_name"] for j in shipped["scrape_configs"]}, block


def shell_commands(block: Block) -> Iterator[list[str]]:
    for line in block.text.splitlines():
        for part in line.split("#", 1)[0].split("&&"):
            if part.strip():
                yield shlex.split(part)


def verify_shell(block: Block, tmp_path: Path) -> None:
    for argv in shell_commands(block):
        if argv[0] == "lappguard" and any(a.split("=")[0] in REMOTE_OPTIONS for a in argv):
            args = build_parser().parse_args(argv[1:])  # exits on an unknown option or value
            assert args.handler is not None, f"{block}: {shlex.join(argv)}"
        elif argv[0] == "lappguard":
            assert tuple(argv[1:3]) in SAFE_SUBCOMMANDS or tuple(argv[1:2]) in SAFE_SUBCOMMANDS, (
                f"{block}: {shlex.join(argv)} is neither known safe nor in NOT_RUN"
            )
            done = lappguard(*argv[1:])
            # an audit's findings (exit 1) are its result; usage or internal errors never are
            allowed = (0, 1) if argv[1] == "audit" else (0,)
            assert done.returncode in allowed, f"{block}: {shlex.join(argv)}: {done.stderr}"
            assert done.stdout, f"{block}: {shlex.join(argv)} printed nothing"
        else:
            assert argv[0] in NOT_RUN, f"{block}: {shlex.join(argv)} is not known to be safe"
            if argv[0].startswith("scripts/"):
                script = PROJECT_ROOT / argv[0]
                assert script.is_file() and script.stat().st_mode & 0o111, block
                for flag in (a for a in argv[1:] if a.startswith("--")):
                    assert f"{flag})" in script.read_text(), f"{block}: {argv[0]} {flag}"


def verify_synopsis(block: Block, tmp_path: Path) -> None:
    """Each line's command exists, and so does each flag with the values it shows."""
    parsers = commands(build_parser())
    for line in (text.strip() for text in block.text.splitlines() if text.strip()):
        if line.startswith("lappguard "):
            words = line.split()[1:]
            path = ""
            while words and f"{path} {words[0]}".strip() in parsers:
                path = f"{path} {words.pop(0)}".strip()
            parser = parsers[path]
        for flag, values in re.findall(r"(--[a-z-]+)(?: ([a-z0-9|-]+\|[a-z0-9|-]+))?", line):
            action = next((a for a in parser._actions if flag in a.option_strings), None)
            assert action is not None, f"{block}: lappguard {path} has no {flag}"
            if values and action.choices:
                assert set(values.split("|")) == set(map(str, action.choices)), (block, flag)


def verify_json_report(block: Block, tmp_path: Path) -> None:
    """Every field the example shows is in a real report, nested the same way."""
    example = json.loads(block.text.replace("{...}", "{}"))
    done = lappguard("audit", "--root", "tests/fixtures/hardened-root", "--format", "json")
    assert done.returncode in (0, 1), done.stderr
    assert_fields_within(example, json.loads(done.stdout), block)


def assert_fields_within(example: object, real: object, block: Block) -> None:
    if isinstance(example, dict) and example:
        assert isinstance(real, dict), block
        missing = set(example) - set(real)
        # `variables` in the example names the baseline's; the real report has them all
        assert not missing, f"{block}: not in a real report: {sorted(missing)}"
        for key, value in example.items():
            assert_fields_within(value, real[key], block)
    elif isinstance(example, list) and example and isinstance(real, list) and real:
        assert_fields_within(example[0], real[0], block)


def verify_ansible_inventory(block: Block, tmp_path: Path) -> None:
    """lappguard reads the inventory, and the variables it sets are the baseline's."""
    from checks.fleet import policies_per_host
    from checks.inventory import load_inventory
    from policies import builtin_policy

    inventory = tmp_path / "hosts.ini"
    inventory.write_text(block.text)
    hosts = load_inventory(inventory)
    assert hosts, block
    policies_per_host(hosts, [builtin_policy("lapp-baseline")])  # every value is accepted
    assert all(host.address != host.name for host in hosts), block  # ansible_host is read


def verify_postgresql_conf(block: Block, tmp_path: Path) -> None:
    """lappguard's own parser reads the settings as the README means them."""
    conf = "/etc/postgresql/15/main/postgresql.conf"
    make_tree(tmp_path, {conf: block.text})
    parsed = parse_postgresql_conf(LocalHost(root=str(tmp_path)), conf)
    assert parsed.problems == [], block
    shown = dict(re.findall(r"^(\w+) = (\S+)", block.text, re.M))
    for name, value in shown.items():
        assert parsed.get(name).value == value.strip("'"), (block, name)


VERIFIERS = {
    "policy": verify_policy,
    "agent config": verify_agent_config,
    "prometheus": verify_prometheus,
    "shell": verify_shell,
    "synopsis": verify_synopsis,
    "json report": verify_json_report,
    "ansible inventory": verify_ansible_inventory,
    "postgresql.conf": verify_postgresql_conf,
}


def test_a_synopsis_flag_that_does_not_exist_is_caught(tmp_path):
    with pytest.raises(AssertionError, match="has no --colour"):
        verify_synopsis(Block("", "lappguard audit [--colour always]\n", 1), tmp_path)


def test_the_parser_of_every_synopsis_line_is_found():
    assert isinstance(commands(build_parser())["trail verify"], argparse.ArgumentParser)

"""The man page and bash completion, generated from the parser: groff renders the page
without a warning and it describes every command and option; bash completes as a user
types."""

from __future__ import annotations

import argparse
import subprocess
from datetime import date

import pytest
from conftest import require_program

from agent.cli import build_parser
from agent.commands.completion import bash_completion, known_ids
from agent.commands.helptext import commands
from agent.commands.manpage import manpage

PARSER = build_parser()


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    path = tmp_path_factory.mktemp("man") / "lappguard.1"
    path.write_text(manpage(PARSER, today=date(2025, 11, 23)))
    return path


def test_groff_renders_the_page_without_a_warning(page):
    groff = require_program("groff")
    done = subprocess.run([groff, "-man", "-Tutf8", "-ww", "-z", str(page)],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0 and done.stderr == ""


def test_the_page_names_every_command_option_and_exit_code(page):
    man = require_program("man")
    done = subprocess.run([man, "-l", str(page)], capture_output=True, text=True,
                          env={"MANWIDTH": "100", "PATH": "/usr/bin:/bin"})  # fmt: skip
    text = done.stdout.replace("\u2010", "-")  # groff's hyphen
    for heading in ("NAME", "SYNOPSIS", "COMMANDS", "EXAMPLES", "EXIT STATUS", "ENVIRONMENT"):
        assert f"\n{heading}\n" in text
    for path, command in commands(PARSER).items():
        if path:
            assert f"lappguard {path} [options]" in text
        for action in command._actions:
            for option in action.option_strings:
                assert option in text, f"{path}: {option}"
    assert "LAPPGUARD_DEBUG" in text and "\n       4      lappguard failed" in text


@pytest.fixture(scope="module")
def completion(tmp_path_factory):
    path = tmp_path_factory.mktemp("completion") / "lappguard"
    path.write_text(bash_completion(PARSER, known_ids()))
    return path


def complete(script, *words: str) -> list[str]:
    """What bash offers after ``words`` (the last one being typed)."""
    bash = require_program("bash")
    program = (
        f"source {script}\n"
        f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
        "_lappguard; printf '%s\\n' \"${COMPREPLY[@]}\"\n"
    )
    done = subprocess.run([bash, "-c", program], capture_output=True, text=True, check=True)
    return [line for line in done.stdout.splitlines() if line]


@pytest.mark.parametrize(
    ("words", "offered"),
    [
        (["lappguard", ""], ["audit", "policy", "explain", "scan", "bans", "trail", "run",
                             "config"]),
        (["lappguard", "po"], ["policy"]),
        (["lappguard", "policy", ""], ["validate", "types", "list"]),
        (["lappguard", "audit", "--fa"], ["--fail-on"]),
        (["lappguard", "audit", "--ho"], ["--host", "--host-timeout"]),
        (["lappguard", "audit", "--fail-on", ""], ["low", "medium", "high", "critical"]),
        (["lappguard", "audit", "--format", "j"], ["json", "junit"]),
        (["lappguard", "bans", "add", "--backend", "n"], ["nftables"]),
        (["lappguard", "trail", "verify", "--an"], ["--anchor"]),
        (["lappguard", "explain", "LAPP-PG-00"], [f"LAPP-PG-00{n}" for n in range(1, 7)]),
        (["lappguard", "explain", "sshd-failed-a"], ["sshd-failed-auth"]),
        (["lappguard", "audit", "--var", ""], []),
    ],
)  # fmt: skip
def test_bash_completes_commands_options_and_values(completion, words, offered):
    assert complete(completion, *words) == offered


def test_bash_completes_directories_after_root(completion, tmp_path):
    (tmp_path / "image").mkdir()
    (tmp_path / "file").write_text("")
    assert complete(completion, "lappguard", "audit", "--root", f"{tmp_path}/") == [
        f"{tmp_path}/image"
    ]


def test_every_option_of_every_command_is_offered(completion):
    for path, command in commands(PARSER).items():
        options = {o for a in command._actions for o in a.option_strings}
        offered = set(complete(completion, "lappguard", *path.split(), "-"))
        assert options <= offered, path
        assert all(isinstance(a, argparse.Action) for a in command._actions)

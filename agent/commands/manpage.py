"""The lappguard(1) man page, written from the command line's own parser.

Generated, not maintained by hand, so it can never describe an option that does not exist
or miss one that does: ``scripts/install`` runs ``python -m agent.commands.manpage`` and
installs the result. Examples and exit codes are those of ``--help`` (``helptext``).
"""

from __future__ import annotations

import argparse
import sys
from datetime import date

from agent import __version__, exits
from agent.commands.helptext import HELP, commands, summaries

ENVIRONMENT = (
    ("NO_COLOR", "when set, the text report is never coloured (https://no-color.org)."),
    (exits.DEBUG_VARIABLE, "when set, an internal error (exit 4) also prints its traceback."),
)
FILES = (
    ("/etc/lappguard/agent.yaml", "the agent config; audit --config reads audit.policies and "
     "audit.vars from it (contrib/agent.yaml is a commented example)"),
    ("/var/lib/lappguard", "the state directory: bans, the trail, the daily audit report"),
    ("/etc/systemd/system/lappguard.service", "the agent under systemd"),
    ("/etc/systemd/system/lappguard-audit.timer", "the daily audit"),
)  # fmt: skip


def manpage(parser: argparse.ArgumentParser, today: date | None = None) -> str:
    """The page in man(7) troff."""
    day = (today or date.today()).isoformat()
    lines = [
        f'.TH LAPPGUARD 1 "{day}" "lappguard {__version__}" "User Commands"',
        ".ad l",  # options and paths read better unjustified and unhyphenated
        ".nh",
        ".SH NAME",
        r"lappguard \- security hardening audits and attack monitoring for LAPP servers",
        ".SH SYNOPSIS",
    ]
    tree = commands(parser)
    lines += [f".B lappguard {_text(path)}\n.RI [ options ]\n.br" for path in tree if path]
    lines += [".SH DESCRIPTION", _text(parser.description or "")]
    lines += [".SH OPTIONS", *_options(parser)]
    lines += [".SH COMMANDS"]
    helps = summaries(parser)
    for path, command in tree.items():
        if not path:
            continue
        lines += [f".SS {_text(path)}", _text(helps.get(path, "")), ".PP", ".nf"]
        lines += [_text(command.format_usage().strip()), ".fi"]
        lines += _options(command)
    lines += [".SH EXAMPLES"]
    for entry in HELP.values():
        for example, what in entry.examples:
            lines += [".TP", f".B {_text(example)}", _text(what)]
    lines += [".SH EXIT STATUS"]
    for line in HELP[""].exit_codes:
        code, _, meaning = line.partition(" ")
        lines += [".TP", f".B {code}", _text(meaning)]
    lines += [".PP", _text("Each command's --help lists the codes it uses.")]
    lines += [".SH ENVIRONMENT"]
    for name, meaning in ENVIRONMENT:
        lines += [".TP", f".B {name}", _text(meaning)]
    lines += [".SH FILES"]
    for name, meaning in FILES:
        lines += [".TP", f".I {name}", _text(meaning)]
    lines += [".SH SEE ALSO", r"\fBnft\fR(8), \fBsshd_config\fR(5), \fBfail2ban\-regex\fR(1)"]
    return "\n".join(lines) + "\n"


def _options(command: argparse.ArgumentParser) -> list[str]:
    lines = []
    for action in command._actions:
        if isinstance(action, argparse._SubParsersAction) or action.help == argparse.SUPPRESS:
            continue
        names = ", ".join(action.option_strings) or str(action.metavar or action.dest)
        takes = action.option_strings and action.nargs != 0
        metavar = f" {action.metavar or action.dest.upper()}" if takes else ""
        if action.choices and takes and not action.metavar:
            metavar = f" {{{','.join(map(str, action.choices))}}}"
        lines += [".TP", f".B {_text(names)}{_text(metavar)}", _text(action.help or "")]
    return lines


def _text(text: str) -> str:
    """Text safe in troff: backslashes and hyphens escaped, no line read as a request."""
    escaped = text.replace("\\", r"\e").replace("-", r"\-")
    return "\n".join(
        rf"\&{line}" if line.startswith((".", "'")) else line for line in escaped.splitlines()
    )


def main() -> int:
    from agent.cli import build_parser

    sys.stdout.write(manpage(build_parser()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

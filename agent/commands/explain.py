"""``lappguard explain ID``: what a check or detection rule is for and how to fix a finding.

Looks in the shipped policies (and ``--policy`` files) for a check ID, and in the shipped
detection rules for a rule id. Exit codes: 0 explained; 2 no such ID (the message names
the closest known ones).
"""

from __future__ import annotations

import argparse
import difflib
import textwrap
from collections.abc import Iterable
from pathlib import Path

from checks.areas import described
from checks.yamlsource import InputError, LineDict, LineList, Problem, load_yaml
from policies import policy_path

WIDTH = 100
RULE_ACTION = (
    "lappguard run bans the address through the jails that count this rule "
    "(policies/jails.yaml); lappguard scan tries the rule on a log file; lappguard bans show "
    "IP says why an address was banned."
)


def add_commands(commands: argparse._SubParsersAction) -> None:
    explain = commands.add_parser(
        "explain", help="what a check or detection rule is for, and how to fix its finding"
    )
    explain.add_argument(
        "ids", nargs="+", metavar="ID", help="a check ID (LAPP-SSH-001) or rule id (any case)"
    )
    explain.add_argument(
        "--policy",
        action="append",
        default=[],
        metavar="NAME|FILE",
        help="also look in this policy (repeatable; the shipped ones are always searched)",
    )
    explain.set_defaults(handler=run_explain)


def run_explain(args: argparse.Namespace) -> int:
    entries = known_entries(args.policy)
    by_id = {key.casefold(): entry for key, entry in entries.items()}
    unknown, found = [], []
    for wanted in args.ids:
        entry = by_id.get(wanted.casefold())
        if entry is not None:
            found.append(entry)
            continue
        close = difflib.get_close_matches(wanted.upper(), list(entries), n=3, cutoff=0.5)
        unknown.append(f"{wanted!r}" + (f" (did you mean {' or '.join(close)}?)" if close else ""))
    if unknown:
        message = f"no check or rule has the ID {', '.join(unknown)}; lappguard policy list"
        raise InputError([Problem("explain", 0, "", message + " shows them all")])
    print("\n\n".join(found))
    return 0


def known_entries(extra_policies: Iterable[str]) -> dict[str, str]:
    """Every explainable ID and its explanation, policies first, then detection rules."""
    from agent.commands.policy import shipped_policies
    from agent.detect.rules import default_rule_files, load_rules
    from checks.policy import load_policies

    paths = [*shipped_policies(), *(policy_path(name) for name in extra_policies)]
    entries: dict[str, str] = {}
    for policy in load_policies(dict.fromkeys(paths)):
        for check in policy.checks:
            entries[check.id] = _explained(
                f"{check.id}  {check.title}",
                [
                    ("severity", check.severity.value),
                    ("area", described(check.area)),
                    ("policy", f"{policy.id} {policy.version} ({check.file}:{check.line})"),
                ],
                [
                    ("Why", check.rationale),
                    ("Fix", check.remediation),
                    ("References", "; ".join(check.references)),
                ],
            )
    texts = _rule_texts(default_rule_files())
    for rule in load_rules():
        description, references = texts.get(rule.id, ("", ""))
        entries.setdefault(
            rule.id,
            _explained(
                f"{rule.id}  {rule.title}",
                [
                    ("severity", rule.severity),
                    ("detection rule", f"{rule.kind} logs ({rule.file}:{rule.line})"),
                    ("level", rule.level),
                ],
                [
                    ("What it sees", description),
                    ("What is done", RULE_ACTION),
                    ("References", references),
                ],
            ),
        )
    return entries


def _rule_texts(paths: Iterable[Path]) -> dict[str, tuple[str, str]]:
    """Description and references of each rule, which the detector itself does not keep."""
    found: dict[str, tuple[str, str]] = {}
    for path in paths:
        document = load_yaml(path)
        entries = document.get("rules") if isinstance(document, LineDict) else None
        for entry in entries if isinstance(entries, LineList) else []:
            if isinstance(entry, LineDict) and isinstance(entry.get("id"), str):
                references = entry.get("references") or []
                found[entry["id"]] = (
                    " ".join(str(entry.get("description", "")).split()),
                    "; ".join(map(str, references)) if isinstance(references, list) else "",
                )
    return found


def _explained(heading: str, facts: list[tuple[str, str]], sections: list[tuple[str, str]]) -> str:
    lines = [heading, *(f"  {name}: {value}" for name, value in facts if value)]
    for name, text in sections:
        if text:
            lines.append(f"{name}:")
            lines.extend(textwrap.wrap(text, WIDTH, initial_indent="  ", subsequent_indent="  "))
    return "\n".join(lines)

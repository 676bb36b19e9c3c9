"""``lappguard policy validate|types|list``: check policy files, and show what ships.

Exit codes: 0 done; 2 a policy (or rule file) has errors, each named by file, line, field.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from policies import POLICY_DIR, policy_path


def add_commands(commands: argparse._SubParsersAction) -> None:
    policy = commands.add_parser("policy", help="check policy files; list the shipped ones")
    actions = policy.add_subparsers(metavar="ACTION", title="actions")
    validate = actions.add_parser("validate", help="check policy files; exit 2 on errors")
    validate.add_argument(
        "files", nargs="+", metavar="FILE", help="policy files, or shipped policies by name"
    )
    validate.set_defaults(handler=run_validate)
    types = actions.add_parser("types", help="list the check types and their parameters")
    types.set_defaults(handler=run_types)
    listing = actions.add_parser(
        "list", help="the shipped policies and detection rule sets, with their checks and rules"
    )
    listing.set_defaults(handler=run_list)


def run_validate(args: argparse.Namespace) -> int:
    from checks.policy import load_policies

    policies = load_policies([policy_path(name) for name in args.files])
    for policy in policies:
        print(f"{policy.file}: OK ({policy.id} {policy.version}, {len(policy.checks)} checks)")
    return 0


def run_types(args: argparse.Namespace) -> int:
    from checks.types import REGISTRY

    for name, cls in sorted(REGISTRY.items()):
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        print(f"{name}: {doc}")
        for param, spec in cls.schema.items():
            required = "required" if spec.required else f"default {spec.default!r}"
            print(f"    {param} ({spec.kind}, {required})")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from agent.detect.rules import default_rule_files, load_rule_file
    from checks.policy import load_policy

    for path in shipped_policies():
        policy = load_policy(path)
        print(f"policy {path.stem} ({policy.id} {policy.version}): {policy.title}")
        print(f"  lappguard audit --policy {path.stem}; {len(policy.checks)} checks:")
        for check in policy.checks:
            print(f"    {check.id:15} {check.severity.value:8} {check.title}")
    for path in default_rule_files():
        rules = load_rule_file(path)
        print(f"rule set {path.stem} ({len(rules)} rules): lappguard scan --rules {path.stem}")
        for rule in rules:
            print(f"    {rule.id:40} {rule.severity:8} {rule.title}")
    return 0


def shipped_policies() -> list[Path]:
    """The audit policies of the package (jails.yaml beside them configures the agent)."""
    return sorted(p for p in POLICY_DIR.glob("*.yaml") if p.name != "jails.yaml")

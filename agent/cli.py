"""The ``lappguard`` command line: audit, policy validation and (offline) log scanning."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.state import StateError
from checks.yamlsource import InputError, Problem
from policies import policy_path

DEFAULT_CONFIG = "/etc/lappguard/agent.yaml"
DEFAULT_POLICY = "lapp-baseline"


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    # `lappguard scan` builds only its own parser: the audit side's imports (check types,
    # reports, psutil) would take longer than scanning a small log
    parser = _scan_only_parser() if arguments[:1] == ["scan"] else build_parser()
    args = parser.parse_args(arguments)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.handler(args)
    except InputError as exc:
        for problem in exc.problems:
            print(f"lappguard: {problem}", file=sys.stderr)
        return 2
    except StateError as exc:
        print(f"lappguard: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _top_parser()
    commands = parser.add_subparsers(metavar="COMMAND")

    audit = commands.add_parser(
        "audit", help="audit this host (or a directory tree) against policies"
    )
    _add_audit_arguments(audit)
    audit.set_defaults(handler=run_audit)

    policy = commands.add_parser("policy", help="work with policy files")
    policy_commands = policy.add_subparsers(metavar="ACTION")
    validate = policy_commands.add_parser("validate", help="check policy files; exit 2 on errors")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.set_defaults(handler=run_policy_validate)
    types = policy_commands.add_parser("types", help="list the check types and their parameters")
    types.set_defaults(handler=run_policy_types)

    _add_scan_command(commands)
    from agent.commands import bans, run

    bans.add_commands(commands)
    run.add_commands(commands)
    return parser


def _top_parser() -> argparse.ArgumentParser:
    from agent import __version__

    parser = argparse.ArgumentParser(
        prog="lappguard",
        description="Security hardening audits and attack monitoring for LAPP servers.",
    )
    parser.add_argument("--version", action="version", version=f"lappguard {__version__}")
    return parser


def _scan_only_parser() -> argparse.ArgumentParser:
    parser = _top_parser()
    _add_scan_command(parser.add_subparsers(metavar="COMMAND"))
    return parser


def _add_audit_arguments(audit: argparse.ArgumentParser) -> None:
    from checks.report import DEFAULT_FAIL_ON, RENDERERS
    from checks.result import Severity

    audit.add_argument(
        "--policy",
        action="append",
        metavar="NAME|FILE",
        help=f"policy to apply (repeatable; default: {DEFAULT_POLICY})",
    )
    audit.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a policy variable, e.g. office_networks=10.1.0.0/16,192.0.2.0/24",
    )
    audit.add_argument(
        "--config",
        metavar="FILE",
        help=f"agent config: audit.policies and audit.vars (default: {DEFAULT_CONFIG} if present)",
    )
    audit.add_argument(
        "--root",
        metavar="DIR",
        help="audit a directory tree as if it were / (image, mounted disk, fixture)",
    )
    audit.add_argument("--format", choices=sorted(RENDERERS), default="text")
    audit.add_argument("--output", metavar="FILE", help="write the report here instead of stdout")
    audit.add_argument(
        "--fail-on",
        type=Severity,
        choices=list(Severity),
        default=DEFAULT_FAIL_ON,
        metavar="SEVERITY",
        help=f"exit 1 when a check at or above this fails (default: {DEFAULT_FAIL_ON.value})",
    )
    audit.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="ID|AREA",
        help="run only these check IDs or areas (repeatable, comma-separated)",
    )
    audit.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    audit.add_argument("--jobs", type=int, default=8, help="checks run concurrently (default 8)")


def run_audit(args: argparse.Namespace) -> int:
    from agent.config import load_config
    from checks.engine import audit_host
    from checks.hosts import LocalHost
    from checks.policy import load_policies
    from checks.report import RENDERERS, exit_code

    config = load_config(args.config)
    overrides: dict[str, Any] = dict(config.audit.vars)
    for item in args.var:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise InputError([Problem("--var", 0, item, "expected NAME=VALUE")])
        overrides[name.strip()] = value
    names = args.policy or list(config.audit.policies)
    policies = load_policies([policy_path(name) for name in names], overrides)
    if args.root and not os.path.isdir(args.root):
        raise InputError([Problem("--root", 0, "", f"{args.root} is not a directory")])

    wanted = {token.strip() for item in args.only for token in item.split(",") if token.strip()}
    only = (lambda check: check.id in wanted or check.area in wanted) if wanted else None
    report = audit_host(policies, LocalHost(root=args.root), only=only, workers=args.jobs)
    colour = _use_colour(args.color, args.output)
    rendered = RENDERERS[args.format]([report], fail_on=args.fail_on, colour=colour)
    if args.output:
        Path(args.output).write_text(rendered, encoding="utf-8")
    else:
        sys.stdout.write(rendered)
    return exit_code([report], args.fail_on)


def run_policy_validate(args: argparse.Namespace) -> int:
    from checks.policy import load_policies

    policies = load_policies([policy_path(name) for name in args.files])
    for policy in policies:
        print(f"{policy.file}: OK ({policy.id} {policy.version}, {len(policy.checks)} checks)")
    return 0


def run_policy_types(args: argparse.Namespace) -> int:
    from checks.types import REGISTRY

    for name, cls in sorted(REGISTRY.items()):
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        print(f"{name}: {doc}")
        for param, spec in cls.schema.items():
            required = "required" if spec.required else f"default {spec.default!r}"
            print(f"    {param} ({spec.kind}, {required})")
    return 0


def _add_scan_command(commands: argparse._SubParsersAction) -> None:
    try:
        from agent import scan
    except ImportError:
        return
    parser = commands.add_parser(
        "scan", help="run detection offline over log files (like fail2ban-regex)"
    )
    scan.add_scan_arguments(parser)
    parser.set_defaults(handler=scan.run_scan)


def _use_colour(choice: str, output: str | None) -> bool:
    if choice == "always":
        return True
    if choice == "never" or output or os.environ.get("NO_COLOR"):
        return False
    return sys.stdout.isatty()


if __name__ == "__main__":
    sys.exit(main())

"""``lappguard audit``: run policies against this host (or a tree) and write one report.

Exit codes (README, "lappguard audit"): 0 nothing at or above ``--fail-on`` failed or was
undecided; 1 something was; 2 usage, policy, config or report-file problems; 4 a bug.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from agent.config import DEFAULT_CONFIG, AgentConfig, load_config
from checks.policy import Origin
from checks.yamlsource import InputError, LineDict, Problem, load_yaml
from policies import policy_path

DEFAULT_POLICY = "lapp-baseline"
COLOUR_CHOICES = ("auto", "always", "never")


def add_commands(commands: argparse._SubParsersAction) -> None:
    from checks.report import DEFAULT_FAIL_ON, RENDERERS
    from checks.result import Severity

    audit = commands.add_parser(
        "audit", help="audit this host (or a directory tree) against policies"
    )
    audit.add_argument(
        "--policy",
        action="append",
        metavar="NAME|FILE",
        help=f"policy to apply (repeatable; default: the config's audit.policies, "
        f"else {DEFAULT_POLICY}); lappguard policy list shows the shipped ones",
    )
    audit.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a policy variable, e.g. office_networks=10.1.0.0/16,192.0.2.0/24 "
        "(repeatable; wins over the config's audit.vars)",
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
    audit.add_argument(
        "--format",
        choices=sorted(RENDERERS),
        default="text",
        help="text for people (default); json, junit or sarif for scripts and CI",
    )
    audit.add_argument(
        "--output",
        metavar="FILE",
        help="write the report here (replaced whole, never half-written) instead of stdout",
    )
    audit.add_argument(
        "--fail-on",
        type=str.lower,
        choices=[severity.value for severity in Severity],
        default=DEFAULT_FAIL_ON.value,
        metavar="SEVERITY",
        help="exit 1 when a check at or above this severity fails or is undecided: "
        f"low, medium, high or critical (default: {DEFAULT_FAIL_ON.value})",
    )
    audit.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="ID|AREA",
        help="run only these check IDs or areas, e.g. LAPP-SSH-001, SSH, Apache "
        "(repeatable, comma-separated, any case; one that matches nothing is an error)",
    )
    audit.add_argument(
        "--color",
        choices=COLOUR_CHOICES,
        default="auto",
        help="colour the text report: auto (on a terminal, unless NO_COLOR is set), "
        "always or never",
    )
    audit.add_argument("--jobs", type=int, default=8, help="checks run concurrently (default 8)")
    audit.set_defaults(handler=run_audit)


def run_audit(args: argparse.Namespace) -> int:
    from checks.engine import audit_host
    from checks.hosts import LocalHost
    from checks.policy import load_policies
    from checks.report import RENDERERS, exit_code
    from checks.report.provenance import describe_run
    from checks.result import Severity
    from checks.selection import select, selectors

    config = load_config(args.config)
    overrides, origins = variable_settings(config, args.var)
    names = args.policy or list(config.audit.policies)
    policies = load_policies([policy_path(name) for name in names], overrides, origins)
    if args.root and not os.path.isdir(args.root):
        raise InputError([Problem("--root", 0, "", f"{args.root} is not a directory")])
    only = select(policies, selectors(args.only))
    if args.output:  # before the audit: its probes should not run for nothing
        check_output_place(Path(args.output))

    report = audit_host(policies, LocalHost(root=args.root), only=only, workers=args.jobs)
    root = os.path.abspath(args.root) if args.root else None
    provenance = describe_run(policies, config=config.file, root=root, origins=origins)
    fail_on = Severity(args.fail_on)
    colour = use_colour(args.color, args.output)
    render = RENDERERS[args.format]
    rendered = render([report], fail_on=fail_on, colour=colour, provenance=provenance)
    if args.output:
        write_report(Path(args.output), rendered)
    else:
        sys.stdout.write(rendered)
    return exit_code([report], fail_on)


def variable_settings(
    config: AgentConfig, assignments: list[str]
) -> tuple[dict[str, Any], dict[str, Origin]]:
    """Policy variables from the config's audit.vars, then ``--var`` (which wins), and
    where each was set, so a bad or unknown one is reported at its place."""
    overrides: dict[str, Any] = dict(config.audit.vars)
    origins = config_origins(config)
    for item in assignments:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise InputError([Problem("--var", 0, item, "expected NAME=VALUE")])
        overrides[name.strip()] = value
        origins[name.strip()] = Origin()
    return overrides, origins


def config_origins(config: AgentConfig) -> dict[str, Origin]:
    """The line of each variable the config sets, under ``audit.vars`` or the older
    top-level ``variables`` (the config loader keeps values, not lines)."""
    if config.file is None or not config.audit.vars:
        return {}
    document = load_yaml(config.file)
    audit = document.get("audit") if isinstance(document, LineDict) else None
    for field, section in (
        ("audit.vars", audit.get("vars") if isinstance(audit, LineDict) else None),
        ("variables", document.get("variables") if isinstance(document, LineDict) else None),
    ):
        if isinstance(section, LineDict):
            return {
                str(name): Origin(config.file, section.line_of(name), f"{field}.{name}")
                for name in section
            }
    return {}


def write_report(path: Path, text: str) -> None:
    """Replace ``path`` whole: a reader (a dashboard, the next audit's diff) never sees half a
    report, and a failed write leaves the previous one in place."""
    check_output_place(path)
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as exc:
        raise _unwritable(path, exc) from exc
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, _mode_for(path))
        os.replace(temporary, path)
    except BaseException as exc:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(exc, OSError):  # a full disk, a read-only file system
            raise _unwritable(path, exc) from exc
        raise


def check_output_place(path: Path) -> None:
    """InputError unless ``path`` can be a report file: not a directory, in one."""
    if path.is_dir():
        raise InputError([Problem("--output", 0, "", f"{path} is a directory")])
    if not path.parent.is_dir():
        raise InputError([Problem("--output", 0, "", f"{path.parent} is not a directory")])


def _unwritable(path: Path, exc: OSError) -> InputError:
    """Named by the report's path, not by the temporary file the error was about."""
    return InputError([Problem("--output", 0, "", f"cannot write {path}: {exc.strerror}")])


def _mode_for(path: Path) -> int:
    """The mode the report had, or what the umask gives a new file (mkstemp's is 0600)."""
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def use_colour(choice: str, output: str | None) -> bool:
    if choice == "always":
        return True
    if choice == "never" or output or os.environ.get("NO_COLOR"):
        return False
    return sys.stdout.isatty()

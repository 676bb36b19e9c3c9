"""``lappguard audit``: run policies against this host, a tree, or a fleet over SSH, and
write one report.

A local audit (this host, or ``--root DIR``) and a fleet audit (``--host``/``--inventory``)
share everything but the targets: policies, ``--var``, ``--only``, formats, ``--output``
and ``--fail-on``. The exit code covers every host of a fleet, and a host that could not
be audited (LAPP-HOST-001) counts as an error result.

Exit codes (README, "lappguard audit"): 0 nothing at or above ``--fail-on`` failed or was
undecided; 1 something was; 2 usage, policy, config or report-file problems; 4 a bug.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from agent.config import DEFAULT_CONFIG, AgentConfig, load_config
from checks.policy import Origin
from checks.yamlsource import InputError, LineDict, Problem, load_yaml
from policies import policy_path

if TYPE_CHECKING:
    from collections.abc import Mapping

    from checks.engine import HostReport
    from checks.inventory import InventoryHost
    from checks.policy import Policy
    from checks.selection import Selection

DEFAULT_POLICY = "lapp-baseline"
COLOUR_CHOICES = ("auto", "always", "never")
#: Hosts audited at once by default: checks.fleet.DEFAULT_FLEET_WORKERS, written out so
#: that building the parser does not import the SSH client (a test holds them equal).
FLEET_JOBS = 16
#: Options that only mean something for a fleet: (argparse dest, flag).
FLEET_ONLY_OPTIONS = (
    ("limit", "--limit"),
    ("accept_new_host_keys", "--accept-new-host-keys"),
    ("sudo", "--sudo"),
    ("host_timeout", "--host-timeout"),
    ("ssh_config", "--ssh-config"),
    ("identity", "--identity"),
)


def add_commands(commands: argparse._SubParsersAction) -> None:
    from checks.engine import DEFAULT_WORKERS
    from checks.report import DEFAULT_FAIL_ON, RENDERERS
    from checks.result import Severity

    audit = commands.add_parser(
        "audit", help="audit this host, a directory tree or hosts over SSH against policies"
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
    audit.add_argument(
        "--jobs",
        type=_positive_int,
        metavar="N",
        help=f"how many at once: checks on this host (default {DEFAULT_WORKERS}); with --host or "
        f"--inventory, hosts audited in parallel (default {FLEET_JOBS})",
    )
    fleet = audit.add_argument_group(
        "fleet audits over SSH", "audit other machines over SSH, as OpenSSH would log in"
    )
    fleet.add_argument(
        "--host",
        action="append",
        default=[],
        metavar="[USER@]HOST[:PORT]",
        help="audit this host over SSH (repeatable); names and aliases go through the SSH "
        "config (~/.ssh/config), as with ssh",
    )
    fleet.add_argument(
        "--inventory",
        metavar="FILE",
        help="audit the hosts of this inventory: a plain list, a YAML list or an Ansible INI "
        "or YAML inventory (ansible_host/_port/_user; its variables set policy variables)",
    )
    fleet.add_argument(
        "--limit",
        action="append",
        default=[],
        metavar="GROUP|HOST",
        help="only these hosts or inventory groups (repeatable, comma-separated, shell "
        "wildcards, !PATTERN leaves out), as ansible --limit",
    )
    fleet.add_argument(
        "--accept-new-host-keys",
        action="store_true",
        help="record the key of a host not yet in known_hosts (StrictHostKeyChecking="
        "accept-new); a changed key is always refused",
    )
    fleet.add_argument(
        "--sudo",
        action="store_true",
        help="read root-only files and run commands through sudo -n on each host",
    )
    fleet.add_argument(
        "--host-timeout",
        type=_positive_float,
        metavar="SECONDS",
        help="a host not done within this long is an error result, LAPP-HOST-001 (default 300)",
    )
    fleet.add_argument(
        "--ssh-config",
        metavar="FILE",
        help="use this SSH config instead of ~/.ssh/config and /etc/ssh/ssh_config (ssh -F)",
    )
    fleet.add_argument(
        "--identity",
        action="append",
        default=[],
        metavar="FILE",
        help="a private key to log in with, tried before the SSH config's (ssh -i; repeatable)",
    )
    audit.set_defaults(handler=run_audit)


def _positive_int(text: str) -> int:
    """``--jobs``: a whole number, at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return int(text)


def _positive_float(text: str) -> float:
    """``--host-timeout``: a finite number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value


def run_audit(args: argparse.Namespace) -> int:
    from checks.engine import DEFAULT_WORKERS, audit_host
    from checks.hosts import LocalHost
    from checks.policy import load_policies
    from checks.report import RENDERERS, exit_code
    from checks.report.provenance import describe_run
    from checks.result import Severity
    from checks.selection import select, selectors

    config = load_config(args.config)
    overrides, origins = variable_settings(config, args.var)
    names = args.policy or list(config.audit.policies)
    paths = [policy_path(name) for name in names]
    policies = load_policies(paths, overrides, origins)
    targets = fleet_targets(args)
    if args.root and not os.path.isdir(args.root):
        raise InputError([Problem("--root", 0, "", f"{args.root} is not a directory")])
    only = select(policies, selectors(args.only))  # the same checks on every host
    if args.output:  # before the audit: its probes should not run for nothing
        check_output_place(Path(args.output))

    if targets is None:
        workers = args.jobs or DEFAULT_WORKERS
        reports = [audit_host(policies, LocalHost(root=args.root), only=only, workers=workers)]
    else:
        host_policies = policies_for_targets(targets, paths, config, args.var)
        reports = audit_targets(targets, host_policies, args, only)
    root = os.path.abspath(args.root) if args.root else None
    hosts = None
    if targets is not None:  # each host's own values: the inventory's win over the config's
        given = parse_assignments(args.var)
        hosts = {
            host.name: (host_policies[host.name], {**origins, **inventory_origins(host, given)})
            for host in targets
        }
    provenance = describe_run(policies, config=config.file, root=root, origins=origins, hosts=hosts)
    fail_on = Severity(args.fail_on)
    colour = use_colour(args.color, args.output)
    render = RENDERERS[args.format]
    rendered = render(
        reports, fail_on=fail_on, colour=colour, provenance=provenance, fleet=targets is not None
    )
    if args.output:
        write_report(Path(args.output), rendered)
    else:
        sys.stdout.write(rendered)
    return exit_code(reports, fail_on)


def fleet_targets(args: argparse.Namespace) -> list[InventoryHost] | None:
    """The hosts of a fleet audit (``--host``, ``--inventory``, narrowed by ``--limit``),
    or None for a local audit. Options of the other kind are refused in one line rather
    than ignored: ``--root`` with ``--host`` would otherwise audit one and not the other."""
    from checks.inventory import load_inventory, parse_target
    from checks.inventory import select as limit_hosts

    if not args.host and not args.inventory:
        for dest, flag in FLEET_ONLY_OPTIONS:
            if getattr(args, dest):
                raise _usage(flag, "only applies with --host or --inventory")
        return None
    if args.root:
        raise _usage("--root", "cannot be combined with --host or --inventory")
    hosts = []
    for text in args.host:
        try:
            hosts.append(parse_target(text, source="--host"))
        except ValueError as exc:
            raise _usage("--host", str(exc)) from exc
    if args.inventory:
        hosts.extend(load_inventory(args.inventory))
    unique: dict[str, InventoryHost] = {}
    for host in hosts:  # a host named twice is audited once, as first given
        unique.setdefault(host.name, host)
    chosen = list(unique.values())
    if args.limit:
        chosen = limit_hosts(chosen, args.limit)
        if not chosen:
            raise _usage("--limit", f"no host or group matches {','.join(args.limit)}")
    return chosen


def policies_for_targets(
    hosts: list[InventoryHost], paths: list[Path], config: AgentConfig, assignments: list[str]
) -> dict[str, list[Policy]]:
    """Each host's policies. A variable's value comes from, lowest first: the policy's
    default, the config's audit.vars (for every host), the host's inventory entry, and
    ``--var`` (for every host, as ansible's ``-e``)."""
    from checks.fleet import policies_per_host

    shared = dict(config.audit.vars)
    hosts = [replace(host, variables={**shared, **host.variables}) for host in hosts]
    return policies_per_host(hosts, paths, parse_assignments(assignments))


def audit_targets(
    hosts: list[InventoryHost],
    policies: dict[str, list[Policy]],
    args: argparse.Namespace,
    only: Selection | None,
) -> list[HostReport]:
    """Audit every host over SSH, ``--jobs`` at a time, showing progress on a terminal."""
    from checks.fleet import DEFAULT_HOST_TIMEOUT, FleetOptions, audit_fleet
    from checks.ssh_connect import DEFAULT_CONFIG_FILES, SSHOptions

    files = [("--ssh-config", args.ssh_config), *(("--identity", key) for key in args.identity)]
    for flag, path in files:
        if path and not os.path.isfile(path):
            raise _usage(flag, f"{path} is not a file")
    ssh = SSHOptions(
        config_files=(args.ssh_config,) if args.ssh_config else DEFAULT_CONFIG_FILES,
        accept_new_host_keys=args.accept_new_host_keys,
        identity_files=tuple(args.identity),
    )
    options = FleetOptions(
        ssh=ssh,
        workers=args.jobs or FLEET_JOBS,
        host_timeout=args.host_timeout or DEFAULT_HOST_TIMEOUT,
        sudo=args.sudo,
    )
    progress = FleetProgress(len(hosts), args.fail_on, sys.stderr)
    try:
        return audit_fleet(hosts, policies, options, only=only, on_report=progress.done)
    finally:
        progress.close()


class FleetProgress:
    """``audited 3/20 hosts, 1 failing`` on one line of a terminal's stderr, redrawn as each
    host finishes and erased at the end; nothing at all when stderr is not a terminal, so
    a log or a CI job holds only the report and real errors."""

    def __init__(self, total: int, fail_on: str, stream: TextIO):
        from checks.result import Severity

        self.total = total
        self.fail_on = Severity(fail_on)
        self.stream = stream
        self.shown = stream.isatty()
        self.finished = 0
        self.failing = 0
        self._draw()

    def done(self, report: HostReport) -> None:
        """Called by ``audit_fleet`` as each host finishes (from its supervising thread)."""
        from checks.report.summary import blocking_results

        self.finished += 1
        self.failing += bool(blocking_results([report], self.fail_on))
        self._draw()

    def close(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()

    def _draw(self) -> None:
        if self.shown:
            line = f"audited {self.finished}/{self.total} hosts, {self.failing} failing"
            self.stream.write(f"\r\x1b[K{line}")
            self.stream.flush()


def _usage(flag: str, message: str) -> InputError:
    """A misuse of the command line, reported in one line and exit 2 like a bad value."""
    return InputError([Problem(flag, 0, "", message)])


def variable_settings(
    config: AgentConfig, assignments: list[str]
) -> tuple[dict[str, Any], dict[str, Origin]]:
    """Policy variables from the config's audit.vars, then ``--var`` (which wins), and
    where each was set, so a bad or unknown one is reported at its place."""
    overrides: dict[str, Any] = dict(config.audit.vars)
    origins = config_origins(config)
    given = parse_assignments(assignments)
    overrides.update(given)
    origins.update(dict.fromkeys(given, Origin()))
    return overrides, origins


def inventory_origins(host: InventoryHost, given: Mapping[str, str]) -> dict[str, Origin]:
    """Where the host's inventory set its variables (its entry's file and line), for those
    ``--var`` (in ``given``) does not override."""
    file, _, line = host.source.rpartition(":")
    where = Origin(file, int(line)) if line.isdigit() else Origin(host.source or "inventory")
    return {name: where for name in host.variables if name not in given}


def parse_assignments(assignments: list[str]) -> dict[str, str]:
    """``--var NAME=VALUE`` values by name (a later one wins)."""
    values = {}
    for item in assignments:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise InputError([Problem("--var", 0, item, "expected NAME=VALUE")])
        values[name.strip()] = value
    return values


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

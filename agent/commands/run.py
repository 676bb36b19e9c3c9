"""``lappguard run`` (the daemon) and ``lappguard config validate|show``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import asdict
from typing import Any

import yaml

from agent.config import DEFAULT_CONFIG, AgentConfig, load_config

#: Syslog priorities journald reads from a "<N>" prefix on each stderr line.
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
             logging.CRITICAL: 2}  # fmt: skip


def add_commands(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser("run", help="the agent: follow logs, ban attackers, audit, export")
    run.add_argument("--config", metavar="FILE",
                     help=f"agent config (default {DEFAULT_CONFIG} when present)")  # fmt: skip
    run.add_argument("--verbose", action="store_true", help="log debug messages too")
    run.set_defaults(handler=run_daemon)

    config = commands.add_parser("config", help="check or show the agent config")
    actions = config.add_subparsers(metavar="ACTION")
    validate = actions.add_parser("validate", help="check config files; exit 2 on errors")
    validate.add_argument("files", nargs="+", metavar="FILE", help="config files to check")
    validate.set_defaults(handler=run_validate)
    show = actions.add_parser("show", help="print the effective config, defaults filled in")
    show.add_argument("--config", metavar="FILE",
                      help=f"agent config (default {DEFAULT_CONFIG} when present)")  # fmt: skip
    show.set_defaults(handler=run_show)


def run_daemon(args: argparse.Namespace) -> int:
    from agent.daemon import Daemon

    _log_to_stderr(logging.DEBUG if args.verbose else logging.INFO)
    return Daemon(args.config).run()


def run_validate(args: argparse.Namespace) -> int:
    for name in args.files:
        config = load_config(name)
        sources = "discovered" if config.sources is None else f"{len(config.sources)} sources"
        print(f"{name}: OK ({sources}, firewall {config.firewall.backend})")
    return 0


def run_show(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    print(f"# effective config (from {config.file or 'defaults: no config file'})")
    yaml.safe_dump(effective(config), sys.stdout, sort_keys=False, default_flow_style=False)
    return 0


def effective(config: AgentConfig) -> dict[str, Any]:
    """The config as YAML-ready data, with what defaults and discovery fill in."""
    from agent.discovery import discover_sources
    from agent.firewall import choose_backend

    backend, warning = choose_backend(config.firewall.backend)
    sources = config.sources if config.sources is not None else discover_sources()
    jails = {}
    for jail in config.jail_config().jails:
        fields = asdict(jail)
        fields.pop("name")
        fields["rules"] = list(jail.rules)
        fields["allowlist"] = [str(n) for n in jail.allowlist]
        jails[jail.name] = fields
    return {
        "state_dir": str(config.state_dir),
        "metrics": asdict(config.metrics),
        "firewall": {
            "backend": config.firewall.backend,
            "resolved": backend + (f" ({warning})" if warning else ""),
            **{name: dict(options) for name, options in config.firewall.options.items()},
        },
        "allowlist": [str(n) for n in config.allowlist],
        "sources": [
            {key: value for key, value in asdict(source).items() if value not in (None, {})}
            for source in sources
        ],
        "jails": jails,
        "audit": {
            "policies": list(config.audit.policies),
            "interval": config.audit.interval,
            "vars": dict(config.audit.vars),
        },
    }


class _JournalFormatter(logging.Formatter):
    """``<priority>message``: journald stores the level and adds time and unit itself."""

    def format(self, record: logging.LogRecord) -> str:
        return f"<{_PRIORITY.get(record.levelno, 6)}>{super().format(record)}"


def _log_to_stderr(level: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(_JournalFormatter("%(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("lappguard")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False

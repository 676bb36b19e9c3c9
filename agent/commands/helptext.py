"""Examples and exit codes for every command's ``--help``, in one place.

The same texts make the EXAMPLES and EXIT STATUS of the man page, and the test suite runs
every example that is safe to run, so none of them can drift from what the command does.
``decorate`` also makes an action required where its command does nothing alone
(``lappguard bans`` prints the usage of ``bans``, not of ``lappguard``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from agent import exits

INTERNAL = (
    f"{exits.INTERNAL} lappguard failed (a bug; {exits.DEBUG_VARIABLE}=1 shows the traceback)"
)


@dataclass(frozen=True)
class Help:
    examples: tuple[tuple[str, str], ...]  # (command line, what it does)
    exit_codes: tuple[str, ...]


_AUDIT_EXITS = (
    f"{exits.OK} nothing at or above --fail-on failed or was undecided",
    f"{exits.FINDINGS} a check at or above --fail-on failed or could not decide, on any host",
    f"{exits.USAGE} usage, policy or config error, or the report could not be written",
    INTERNAL,
)
_POLICY_EXITS = (
    f"{exits.OK} done",
    f"{exits.USAGE} a policy has errors (each as FILE:LINE: FIELD: message)",
    INTERNAL,
)
_BANS_EXITS = (
    f"{exits.OK} done",
    f"{exits.FINDINGS} an address was refused (allowlisted, loopback, this host, a session)",
    f"{exits.USAGE} bad input (an unparsable address names its file and line) or config",
    f"{exits.FIREWALL} stored, but the firewall failed (the bans stay pending and are applied)",
    INTERNAL,
)
_READ_EXITS = (
    f"{exits.OK} done",
    f"{exits.USAGE} bad input, config or state directory",
    INTERNAL,
)

HELP: dict[str, Help] = {
    "": Help(
        (
            ("lappguard audit", "audit this host against the LAPP baseline"),
            ("lappguard explain LAPP-SSH-001", "what a check is for and how to fix it"),
            ("lappguard scan /var/log/auth.log", "who attacked, from yesterday's logs"),
            ("lappguard run", "the agent: follow logs, ban attackers, re-audit, export metrics"),
        ),
        (
            f"{exits.OK} done",
            f"{exits.FINDINGS} findings (audit), a refusal (bans), a broken trail (trail verify)",
            f"{exits.USAGE} usage, input, policy or config error",
            f"{exits.FIREWALL} bans stored but the firewall failed",
            INTERNAL,
            f"{exits.INTERRUPTED} interrupted",
        ),
    ),
    "audit": Help(
        (
            ("lappguard audit", "the baseline against this host, a report for people"),
            (
                "lappguard audit --var office_networks=198.51.100.0/24 --only SSH,Apache",
                "only the SSH and Apache checks, with the office network set",
            ),
            (
                "lappguard audit --format sarif --output audit.sarif --fail-on high",
                "a report for code scanning; exit 1 only for high and critical findings",
            ),
            ("lappguard audit --root /mnt/image --format json", "audit a mounted disk image"),
            (
                "lappguard audit --host web1 --host admin@db1:2222 --sudo",
                "two hosts over SSH, root-only files read through sudo -n",
            ),
            (
                "lappguard audit --inventory hosts.ini --limit webservers --jobs 32",
                "an Ansible inventory's webservers group, 32 hosts at a time",
            ),
        ),
        _AUDIT_EXITS,
    ),
    "policy": Help(
        (
            ("lappguard policy list", "the shipped policies and rule sets"),
            ("lappguard policy validate site.yaml", "check a policy file"),
        ),
        _POLICY_EXITS,
    ),
    "policy validate": Help(
        (
            ("lappguard policy validate site.yaml", "check a policy file"),
            ("lappguard policy validate lapp-baseline site.yaml", "and that IDs do not clash"),
        ),
        _POLICY_EXITS,
    ),
    "policy types": Help(
        (("lappguard policy types", "every check type and its parameters"),), _POLICY_EXITS
    ),
    "policy list": Help(
        (("lappguard policy list", "the shipped policies and rule sets"),), _POLICY_EXITS
    ),
    "explain": Help(
        (
            ("lappguard explain LAPP-PG-006", "a check: why, how to fix, references"),
            ("lappguard explain sshd-failed-auth", "a detection rule"),
        ),
        (f"{exits.OK} done", f"{exits.USAGE} no such check or rule ID", INTERNAL),
    ),
    "scan": Help(
        (
            ("lappguard scan /var/log/auth.log", "who attacked, and whom the jails would ban"),
            (
                "lappguard scan /var/log/apache2/*.log",
                "every Apache log; an empty one is 0 lines, an unreadable one a warning",
            ),
            (
                "lappguard scan --format events /var/log/auth.log.2.gz",
                "one JSON object per event, for jq",
            ),
            (
                "lappguard scan --kind sshd --rules sshd --level aggressive -",
                "stdin as an sshd log, with the opt-in rules",
            ),
        ),
        (
            f"{exits.OK} every file was scanned",
            f"{exits.USAGE} usage or rule error, a report it cannot write, or a file it cannot"
            " read or tell the kind of (the others are still scanned)",
            INTERNAL,
        ),
    ),
    "bans": Help(
        (
            ("lappguard bans list", "active bans"),
            ("lappguard bans add 203.0.113.7 --for 1d --reason 'seen in the WAF'", "ban by hand"),
            ("lappguard bans show 203.0.113.7", "why an address is banned"),
        ),
        _BANS_EXITS,
    ),
    "bans list": Help(
        (
            ("lappguard bans list", "active bans, pending ones marked"),
            ("lappguard bans list --all --format json", "every ban ever, for scripts"),
        ),
        _READ_EXITS,
    ),
    "bans add": Help(
        (
            ("lappguard bans add 203.0.113.7 2001:db8::/64", "ban until removed"),
            ("lappguard bans add --from-file blocklist.txt --for 7d", "one address per line"),
        ),
        _BANS_EXITS,
    ),
    "bans del": Help(
        (("lappguard bans del 203.0.113.7 --reason 'our partner'", "lift every ban on it"),),
        _BANS_EXITS,
    ),
    "bans sync": Help(
        (("lappguard bans sync", "make the firewall hold exactly the stored bans"),),
        _BANS_EXITS,
    ),
    "bans show": Help(
        (("lappguard bans show 203.0.113.7", "its bans, jail, rule and the log lines"),),
        _READ_EXITS,
    ),
    "trail": Help(
        (
            ("lappguard trail --since 1d", "every ban action of the last day"),
            ("lappguard trail verify", "check the hash chain; prints the head SEQ:HASH"),
        ),
        _READ_EXITS,
    ),
    "trail verify": Help(
        (
            ("lappguard trail verify", "check the chain; keep the printed head elsewhere"),
            ("lappguard trail verify --anchor 42:9f86d0...", "and that it still holds the head"),
        ),
        (
            f"{exits.OK} the chain is intact",
            f"{exits.FINDINGS} a record was edited, deleted or reordered (the first is named)",
            f"{exits.USAGE} bad --anchor, config or state directory",
            INTERNAL,
        ),
    ),
    "run": Help(
        (
            ("lappguard run", "the agent with the defaults (no config file needed)"),
            ("lappguard run --config /etc/lappguard/agent.yaml --verbose", "debug logging"),
        ),
        (
            f"{exits.OK} stopped by SIGTERM or SIGINT",
            f"{exits.USAGE} config, rule or policy error, or a port or file it cannot use",
            INTERNAL,
        ),
    ),
    "config": Help(
        (
            ("lappguard config validate /etc/lappguard/agent.yaml", "check a config"),
            ("lappguard config show", "the effective config, defaults filled in"),
        ),
        _READ_EXITS,
    ),
    "config validate": Help(
        (("lappguard config validate contrib/agent.yaml", "every problem as FILE:LINE: FIELD"),),
        _READ_EXITS,
    ),
    "config show": Help(
        (("lappguard config show --config contrib/agent.yaml", "what the agent would use"),),
        _READ_EXITS,
    ),
}


def epilog(entry: Help) -> str:
    lines = ["examples:"]
    for command, what in entry.examples:
        lines += [f"  {command}", f"      {what}"]
    lines += ["", "exit codes:"]
    lines += [f"  {line}" for line in entry.exit_codes]
    return "\n".join(lines)


def commands(parser: argparse.ArgumentParser, path: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every command's parser by its path (``""``, ``audit``, ``bans add``, ...)."""
    found = {path: parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found |= commands(child, f"{path} {name}".strip())
    return found


def summaries(parser: argparse.ArgumentParser) -> dict[str, str]:
    """The one-line help each command has in its parent's list, by path."""
    found: dict[str, str] = {}
    for path, command in commands(parser).items():
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    found[f"{path} {choice.dest}".strip()] = choice.help or ""
    return found


def decorate(parser: argparse.ArgumentParser) -> None:
    """Add the examples and exit codes to each command's help; require an action where the
    command alone does nothing."""
    lines = summaries(parser)
    for path, command in commands(parser).items():
        if command.description is None and lines.get(path):
            command.description = lines[path][0].upper() + lines[path][1:] + "."
        entry = HELP.get(path)
        if entry is not None:
            command.epilog = epilog(entry)
            command.formatter_class = argparse.RawDescriptionHelpFormatter
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction) and path:
                action.required = command.get_default("handler") is None

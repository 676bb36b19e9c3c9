"""Every way to log in, in every Match context, as sshd itself evaluates it.

The live probe (``ssh_probe``) learns only the first step of AuthenticationMethods, for a
user that does not exist: later steps need an accepted key, which a probe never has. This
check closes that gap from the configuration: for each Match block it builds a client the
block applies to (a user, group member, host name, address or local port it names), asks
``sshd -T -C`` for that client's effective settings (the parsed files under ``--root``),
and requires publickey in every complete chain of methods that client could use.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import ClassVar

from checks.hosts import HostError, PlannedCommand
from checks.params import Param
from checks.parsers.lines import lf_lines
from checks.parsers.sshd import (
    DEFAULT_CONFIG,
    ConnectionSpec,
    MatchBlock,
    parse_cidr,
)
from checks.result import Verdict, errored, failed, passed
from checks.types.base import CheckContext, CheckType
from checks.types.sshd import auth_paths, effective_config, parsed_config, sshd_t_commands


def _positive(patterns: str) -> list[str]:
    return [p for p in patterns.split(",") if p and not p.startswith("!")]


def _name_for(patterns: str) -> str | None:
    """A name the pattern list matches: its first positive pattern, wildcards filled."""
    for pattern in _positive(patterns):
        return pattern.replace("*", "x").replace("?", "x")
    return None


def _address_for(patterns: str) -> str | None:
    """An address inside the first positive network (or wildcard) of an address list."""
    for pattern in _positive(patterns):
        try:
            network = parse_cidr(pattern)
        except ValueError:
            continue
        if network is not None:
            hosts = network.num_addresses > 2
            return str(network.network_address + 1 if hosts else network.network_address)
        filled = pattern.replace("*", "1").replace("?", "1")
        try:
            return str(ipaddress.ip_address(filled))
        except ValueError:
            continue
    return None


def _member_of(ctx: CheckContext, groups: str) -> tuple[str, str] | None:
    """(user, group): a member of one of the groups named, from the host's /etc/group."""
    try:
        text = ctx.host.read_text("/etc/group")
    except HostError:
        return None
    wanted = set(_positive(groups))
    for line in lf_lines(text):
        fields = line.split(":")
        if len(fields) == 4 and fields[0] in wanted and fields[3]:
            return fields[3].split(",")[0], fields[0]
    return None


def client_for(ctx: CheckContext, blocks: tuple[MatchBlock, ...]) -> ConnectionSpec | None:
    """A connection every block applies to, or None when none can be built."""
    fields: dict = {"groups": ()}
    for block in blocks:
        for name, arg in block.criteria:
            if name == "all":
                continue
            if name == "user":
                fields["user"] = _name_for(arg)
            elif name == "group":
                member = _member_of(ctx, arg)
                if member is None:
                    return None
                fields["user"], group = member
                fields["groups"] = (group,)
            elif name == "host":
                fields["host"] = _name_for(arg)
            elif name in ("address", "localaddress"):
                fields["addr" if name == "address" else "laddr"] = _address_for(arg)
            elif name == "localport" and arg.isdigit():
                fields["lport"] = int(arg)
            else:
                return None  # invalid-user, rdomain: no client to build
            if any(value is None for value in fields.values()):
                return None
    spec = ConnectionSpec(**fields)
    return spec if all(block.matches(spec) for block in blocks) else None


class SshdAuthContextsCheck(CheckType):
    """In the default context and every Match block's, each usable AuthenticationMethods
    chain includes publickey."""

    name = "sshd_auth_contexts"
    schema: ClassVar[dict[str, Param]] = {
        "config": Param("str", default=DEFAULT_CONFIG, help="sshd_config path (sshd -f)")
    }

    def commands(self, ctx: CheckContext) -> Sequence[PlannedCommand]:
        specs = [spec for spec in self._contexts(ctx).values() if spec is not None]
        return sshd_t_commands(ctx, self.params["config"], specs)

    def _contexts(self, ctx: CheckContext) -> dict[str, ConnectionSpec | None]:
        """The default client and one for each set of Match blocks (None: none fits),
        by label. Raises HostError when the configuration cannot be read."""
        contexts: dict[str, ConnectionSpec | None] = {"default": ConnectionSpec()}
        for directive in parsed_config(ctx, self.params["config"]).directives:
            if directive.blocks:
                label = " and ".join(f"{b.text} ({b.origin})" for b in directive.blocks)
                contexts.setdefault(label, client_for(ctx, directive.blocks))
        return contexts

    def run(self, ctx: CheckContext) -> Verdict:
        path = self.params["config"]
        try:
            contexts = self._contexts(ctx)
            problems, good, notes = [], [], []
            for label, spec in contexts.items():
                if spec is None:
                    notes.append(f"note: {label}: no client can be built for it (LAPP-SSH-003 "
                                 "judges its lines)")  # fmt: skip
                    continue
                view = effective_config(ctx, path, spec)
                notes.extend(f"note: {n}" for n in view.notes if f"note: {n}" not in notes)
                paths = auth_paths(view)
                chains = ", ".join("+".join(p) for p in paths) or "no usable method"
                line = f"{label} as {spec}: {chains}"
                keyless = [p for p in paths if "publickey" not in p]
                (problems if keyless else good).append(
                    f"{line}: {', '.join('+'.join(p) for p in keyless)} needs no key"
                    if keyless
                    else line
                )
        except HostError as exc:
            return errored(f"cannot read {path}: {exc}")
        return failed(*problems, *good, *notes) if problems else passed(*good, *notes)

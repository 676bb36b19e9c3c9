"""Firewall checks: input is default-deny for IPv4 and IPv6."""

from __future__ import annotations

from collections.abc import Sequence

from checks.hosts import HostError, PlannedCommand
from checks.parsers.firewall import LIVE_COMMANDS, read_firewall
from checks.parsers.firewall_rules import FAMILIES, FirewallState
from checks.result import Verdict, errored, failed, passed
from checks.types.base import CheckContext, CheckType
from checks.types.system import enabled_units


def firewall_state(ctx: CheckContext) -> FirewallState:
    """The host's firewall, read once per audit (live ruleset, or boot config under --root)."""

    def read() -> FirewallState:
        units: dict[str, str] = {}
        if not ctx.host.is_live:
            units = ctx.memo(("enabled_units",), lambda: enabled_units(ctx))
        return read_firewall(ctx.host, units)

    return ctx.memo(("firewall",), read)


class FirewallDefaultDenyCheck(CheckType):
    """Incoming traffic no rule accepts is dropped, for IPv4 and for IPv6 (an ``inet`` table
    covers both). Live hosts are judged by the loaded ruleset, never by files on disk."""

    name = "firewall_default_deny"
    schema = {}

    def commands(self, ctx: CheckContext) -> Sequence[PlannedCommand]:
        return LIVE_COMMANDS

    def run(self, ctx: CheckContext) -> Verdict:
        try:
            state = firewall_state(ctx)
        except HostError as exc:
            return errored(str(exc))
        notes = [f"note: {n}" for n in [*state.notes, *state.problems]]
        if not state.loaded:
            return failed("no firewall ruleset loaded", *notes)
        good, bad = [], []
        for family in FAMILIES:
            deny, reasons = state.default_deny(family)
            (good if deny else bad).extend(f"{family}: {r}" for r in reasons)
        if bad:
            return failed(*bad, *good, *_agent_table_note(state), *notes)
        return passed(*good, *notes)


#: The lappguard agent's own nftables table (agent/firewall/nftables.py).
AGENT_TABLE = ("inet", "lappguard")


def _agent_table_note(state: FirewallState) -> list[str]:
    """Why the agent's table, which a sysadmin may take for a firewall, does not count."""
    tables = {(c.family, c.table) for ruleset in state.rulesets for c in ruleset.chains.values()}
    if AGENT_TABLE not in tables:
        return []
    return [
        "note: table inet lappguard is the lappguard agent's: it drops only the addresses it "
        "banned, so an input chain that drops by default is still needed beside it"
    ]

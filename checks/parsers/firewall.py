"""Host firewall rulesets, reduced to the two facts audits need.

1. Is input default-deny for IPv4 and IPv6: some input base chain drops what no rule
   accepted (policy drop, or a final unconditional drop/reject), and no earlier rule
   accepts everything?
2. Which source addresses can open a new TCP connection to a given port?

Sources: the live ruleset (``nft -j list ruleset``, ``iptables-save``, ``ip6tables-save``)
or, when auditing a directory tree, /etc/nftables.conf and /etc/iptables/rules.v{4,6}.
All three formats are read by the one interpreter of ``firewall_rules``.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Collection
from typing import Any

from checks.hosts import CommandNotFound, Host, HostError, PlannedCommand
from checks.parsers.firewall_rules import Chain, FirewallState, NamedSets, Ruleset, rule_from_exprs
from checks.parsers.lines import cut_at_nul, numbered
from checks.parsers.nftables_conf import parse_nftables_conf

NFTABLES_CONF = "/etc/nftables.conf"
IPTABLES_RULES = {"ipv4": "/etc/iptables/rules.v4", "ipv6": "/etc/iptables/rules.v6"}
NFTABLES_UNIT = "nftables.service"
IPTABLES_UNIT = "netfilter-persistent.service"


# --- reading the host --------------------------------------------------------------------


def read_firewall(host: Host, enabled_units: Collection[str] = ()) -> FirewallState:
    """The live ruleset on a running host; the boot-time configuration under ``--root``.

    Raises HostError when a firewall tool exists but cannot list its rules.
    """
    if host.is_live:
        return _read_live(host)
    return _read_config_files(host, enabled_units)


#: The dumps of the loaded rulesets, each read by its parser when its tool is installed.
LIVE_TOOLS: tuple[tuple[tuple[str, ...], Callable[[str, str], Ruleset]], ...] = (
    (("nft", "-j", "list", "ruleset"), lambda text, source: parse_nft_json(text, source)),
    (("iptables-save",), lambda text, source: parse_iptables_save(text, source, "ipv4")),
    (("ip6tables-save",), lambda text, source: parse_iptables_save(text, source, "ipv6")),
)
#: What reading a live host's firewall runs (``CheckType.commands``).
LIVE_COMMANDS = tuple(PlannedCommand(argv) for argv, _ in LIVE_TOOLS)


def _read_live(host: Host) -> FirewallState:
    state = FirewallState(live=True)
    failures = []
    for argv, parse in LIVE_TOOLS:
        try:
            done = host.run(argv)
        except CommandNotFound:
            continue
        source = " ".join(argv)
        if done.exit_code != 0:
            failures.append(f"{source}: {done.stderr.strip() or f'exit code {done.exit_code}'}")
            continue
        state.rulesets.append(parse(done.stdout, source))
    if failures and not state.rulesets:
        raise HostError("cannot list the firewall rules: " + "; ".join(failures))
    state.notes.extend(failures)
    if not state.rulesets and not failures:
        state.notes.append("no firewall tool (nft, iptables-save) on this host")
    return state


def _read_config_files(host: Host, enabled_units: Collection[str]) -> FirewallState:
    state = FirewallState(live=False)
    state.notes.append("not live: judged from the configuration loaded at boot")
    if host.lexists(NFTABLES_CONF):
        if NFTABLES_UNIT in enabled_units:
            state.rulesets.append(parse_nftables_conf(host, NFTABLES_CONF))
        else:
            state.notes.append(f"{NFTABLES_CONF} exists but {NFTABLES_UNIT} is not enabled")
    for family, path in IPTABLES_RULES.items():
        if not host.lexists(path):
            continue
        if IPTABLES_UNIT in enabled_units:
            state.rulesets.append(parse_iptables_save(host.read_text(path), path, family, path))
        else:
            state.notes.append(f"{path} exists but {IPTABLES_UNIT} is not enabled")
    return state


# --- nft -j list ruleset ---------------------------------------------------------------------


def parse_nft_json(text: str, source: str) -> Ruleset:
    """``nft -j list ruleset`` output (iptables-nft rules appear here too)."""
    ruleset = Ruleset(source)
    try:
        items = json.loads(text).get("nftables", [])
    except (ValueError, AttributeError) as exc:
        ruleset.problems.append(f"{source}: unreadable JSON: {exc}")
        return ruleset
    sets = NamedSets()
    for item in items:
        body = (item.get("set") or item.get("map")) if isinstance(item, dict) else None
        if isinstance(body, dict):
            key = (body.get("family", ""), body.get("table", ""), body.get("name", ""))
            sets.elements[key] = list(body.get("elem", []))
    for item in items:
        chain = item.get("chain") if isinstance(item, dict) else None
        if isinstance(chain, dict):
            key = (chain.get("family", ""), chain.get("table", ""), chain.get("name", ""))
            ruleset.chains[key] = Chain(
                *key,
                hook=chain.get("hook") if chain.get("type") == "filter" else None,
                policy=chain.get("policy", "accept"),
            )
    for item in items:
        rule = item.get("rule") if isinstance(item, dict) else None
        if not isinstance(rule, dict):
            continue
        key = (rule.get("family", ""), rule.get("table", ""), rule.get("chain", ""))
        chain = ruleset.chains.get(key)
        if chain is None:
            continue
        where = f"{chain.family} {chain.table} {chain.name} handle {rule.get('handle')}"
        exprs = rule.get("expr", [])
        chain.rules.extend(rule_from_exprs(exprs, where, key[0], key[1], sets))
    return ruleset


# --- iptables-save ---------------------------------------------------------------------------


def parse_iptables_save(text: str, source: str, family: str, file: str = "") -> Ruleset:
    """iptables-save / ip6tables-save output (also the iptables-persistent rules files)."""
    ruleset = Ruleset(source)
    table_family = "ip" if family == "ipv4" else "ip6"
    table = ""
    for number, raw in numbered(text):  # iptables-restore: fgets(), so LF ends a line
        line = cut_at_nul(raw).strip()
        where = f"{file}:{number}" if file else f"{source} line {number}"
        if not line or line.startswith("#") or line == "COMMIT":
            continue
        if line.startswith("*"):
            table = line[1:]
            continue
        if line.startswith(":"):
            name, _, policy = line[1:].partition(" ")
            policy = policy.split()[0].lower() if policy.split() else "-"
            builtin = table == "filter" and name == "INPUT"
            ruleset.chains[(table_family, table, name)] = Chain(
                table_family,
                table,
                name,
                hook="input" if builtin else None,
                policy=policy if policy in ("accept", "drop") else "accept",
                where=where,
            )
            continue
        try:
            words = shlex.split(line)
        except ValueError as exc:
            ruleset.problems.append(f"{where}: {exc}")
            continue
        if len(words) < 2 or words[0] not in ("-A", "--append"):
            ruleset.problems.append(f"{where}: not understood: {line}")
            continue
        chain = ruleset.chains.setdefault(
            (table_family, table, words[1]), Chain(table_family, table, words[1])
        )
        exprs = _iptables_exprs(words[2:], table_family)
        rules = rule_from_exprs(exprs, f"{where}: {line}", table_family, table, NamedSets())
        chain.rules.extend(rules)
    return ruleset


_TARGETS = {"ACCEPT": "accept", "DROP": "drop", "REJECT": "reject", "RETURN": "return"}
_IGNORED_TARGETS = ("LOG", "NFLOG", "ULOG")


def _iptables_exprs(words: list[str], table_family: str) -> list[Any]:
    """iptables options -> nft JSON-like statements for the common interpreter."""
    exprs: list[Any] = []
    protocol = None
    saddr = {"protocol": table_family, "field": "saddr"}
    items = iter(words)
    negate = False
    for word in items:
        if word == "!":
            negate = True
            continue
        op = "!=" if negate else "=="
        negate = False
        if word in ("-s", "--source", "--src"):
            exprs.append(_m(op, {"payload": saddr}, {"set": next(items, "").split(",")}))
        elif word in ("-p", "--protocol"):
            protocol = next(items, "")
            exprs.append(_m(op, {"meta": {"key": "l4proto"}}, protocol))
        elif word in ("--dport", "--destination-port", "--dports", "--destination-ports"):
            ports = [_iptables_port(p) for p in next(items, "").split(",")]
            payload = {"protocol": protocol or "th", "field": "dport"}
            exprs.append(_m(op, {"payload": payload}, {"set": ports}))
        elif word in ("--ctstate", "--state"):
            states = next(items, "").lower().split(",")
            exprs.append(_m(op, {"ct": {"key": "state"}}, {"set": states}))
        elif word in ("-i", "--in-interface"):
            exprs.append(_m(op, {"meta": {"key": "iifname"}}, next(items, "")))
        elif word in ("-m", "--match"):
            module = next(items, "")
            if module == "comment":
                next(items, None), next(items, None)  # --comment TEXT
            elif module not in ("tcp", "udp", "conntrack", "state", "multiport"):
                exprs.append({"xt": module})
        elif word in ("-j", "--jump", "-g", "--goto"):
            target = next(items, "")
            if target in _TARGETS:
                exprs.append({_TARGETS[target]: None})
            elif target in _IGNORED_TARGETS:
                exprs.append({"log": None})
            elif target.isupper():
                exprs.append({"xt": target})
            else:
                exprs.append({"goto" if word in ("-g", "--goto") else "jump": {"target": target}})
        elif word.startswith("-"):
            exprs.append({"xt": word})
    return exprs


def _m(op: str, left: Any, right: Any) -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


def _iptables_port(text: str) -> Any:
    low, colon, high = text.partition(":")
    return {"range": [low or "0", high or "65535"]} if colon else text

"""``lappguard bans`` and ``lappguard trail``: the sysadmin's hands on bans and their record.

Exit codes (README, "Bans"): 0 done; 1 something was refused (an allowlisted, loopback or
own address) or the trail does not verify; 2 bad input (an unparsable address names its
file and line) or a config problem; 3 the bans are stored but the firewall failed (they
stay pending and are applied by the daemon's next repair or ``lappguard bans sync``).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from agent.bans import store, trail
from agent.bans.allowlist import Allowlist
from agent.bans.manager import BanManager, BanRequest, Outcome
from agent.config import FIREWALL_CHOICES, AgentConfig, load_config
from agent.firewall.base import Network
from agent.state import StateStore
from checks.params import parse_duration
from checks.visible import visible
from checks.yamlsource import InputError, Problem

EXIT_REFUSED = 1
EXIT_FIREWALL = 3
#: Kept log lines ``bans show`` prints at most (the JSON carries them all).
SHOWN_EVENTS = 20


def add_commands(commands: argparse._SubParsersAction) -> None:
    bans = commands.add_parser("bans", help="list, add, remove and sync bans")
    actions = bans.add_subparsers(metavar="ACTION")

    listing = actions.add_parser("list", help="active bans (with --all, ended ones too)")
    _common(listing)
    listing.add_argument("--all", action="store_true", help="include expired and removed bans")
    listing.add_argument("--format", choices=("text", "json"), default="text", help="text or json")
    listing.set_defaults(handler=run_list)

    add = actions.add_parser("add", help="ban addresses or networks by hand")
    _common(add)
    add.add_argument("targets", nargs="*", metavar="IP|CIDR", help="addresses or networks to ban")
    add.add_argument("--from-file", metavar="FILE|-", help="one address or CIDR per line")
    add.add_argument("--for", dest="duration", metavar="DURATION",
                     help="ban for this long (10m, 12h, 7d); default: until removed")  # fmt: skip
    add.add_argument("--reason", default="banned by hand", help="why, for the trail")
    add.set_defaults(handler=run_add)

    delete = actions.add_parser("del", help="lift bans (every ban holding the address)")
    _common(delete)
    delete.add_argument("targets", nargs="+", metavar="IP|CIDR", help="addresses or networks")
    delete.add_argument("--reason", default="removed by hand", help="why, for the trail")
    delete.set_defaults(handler=run_del)

    sync = actions.add_parser("sync", help="make the firewall hold exactly the stored bans")
    _common(sync)
    sync.set_defaults(handler=run_sync)

    show = actions.add_parser("show", help="why an address is (or was) banned")
    _common(show)
    show.add_argument("target", metavar="IP|CIDR", help="the address or network asked about")
    show.add_argument("--format", choices=("text", "json"), default="text", help="text or json")
    show.set_defaults(handler=run_show)

    record = commands.add_parser("trail", help="the tamper-evident record of ban actions")
    _common(record, firewall=False)
    record.add_argument("--since", metavar="DURATION", help="only the last DURATION (e.g. 1d)")
    record.add_argument("--format", choices=("text", "json"), default="text", help="text or json")
    record.set_defaults(handler=run_trail)
    verify = record.add_subparsers(metavar="ACTION").add_parser(
        "verify", help="check the hash chain; exit 1 naming the first bad record"
    )
    _common(verify, firewall=False)
    verify.add_argument("--anchor", metavar="SEQ:HASH",
                        help="a head printed by an earlier verify, kept elsewhere")  # fmt: skip
    verify.set_defaults(handler=run_verify)


def _common(parser: argparse.ArgumentParser, firewall: bool = True) -> None:
    """Options every bans/trail command takes. Left unset they are absent from the
    namespace (SUPPRESS), so ``trail --state-dir X verify`` keeps X for ``verify``."""
    unset = argparse.SUPPRESS
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=unset,
        help="agent config (default /etc/lappguard/agent.yaml when present)",
    )
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        default=unset,
        help="where the state database is (overrides the config)",
    )
    if firewall:
        parser.add_argument("--backend", choices=FIREWALL_CHOICES[1:], default=unset,
                            help="firewall backend (overrides the config)")  # fmt: skip


# -- handlers ---------------------------------------------------------------------------


def run_list(args: argparse.Namespace) -> int:
    with _state(args) as state, state.reading() as conn:
        bans = store.every_ban(conn) if args.all else store.active(conn)
    if args.format == "json":
        _print_json({"bans": [ban.as_json() for ban in bans]})
        return 0
    rows = [("ADDRESS", "JAIL", "SINCE", "UNTIL", "COUNT", "REASON")]
    for ban in bans:
        until = _when(ban.expires) if ban.expires else "permanent"
        state_note = f" [{ban.end_reason}]" if ban.ended else "" if ban.applied else " [pending]"
        rows.append((str(ban.network), ban.jail, _when(ban.created), until, str(ban.count),
                     visible(ban.reason) + state_note))  # fmt: skip
    _print_table(rows)
    if not bans:
        print("no bans" if args.all else "no active bans")
    return 0


def run_add(args: argparse.Namespace) -> int:
    targets = _parse_targets(args.targets, "argument")
    if args.from_file:
        targets += _read_targets(args.from_file)
    if not targets:
        raise InputError([Problem("bans add", 0, "", "give addresses or --from-file")])
    duration = None
    if args.duration is not None:
        try:
            duration = parse_duration(args.duration)
        except ValueError as exc:
            raise InputError([Problem("--for", 0, "", str(exc))]) from exc
        if duration <= 0:
            raise InputError([Problem("--for", 0, "", "must be longer than zero")])
    requests = [BanRequest(target, None, args.reason, duration) for target in targets]
    with _manager(args) as manager:
        return _report(manager.ban(requests))


def run_del(args: argparse.Namespace) -> int:
    targets = _parse_targets(args.targets, "argument")
    with _manager(args) as manager:
        return _report(manager.unban(targets, args.reason))


def run_sync(args: argparse.Namespace) -> int:
    with _manager(args) as manager:
        ok = manager.sync()
        with manager.state.reading() as conn:
            active = len(store.active(conn))
            debt = store.debt(conn)
    if not ok:
        reason = debt[1] if debt else "unknown error"
        print(f"lappguard: firewall {manager.firewall.name} failed: {reason}", file=sys.stderr)
        return EXIT_FIREWALL
    print(f"firewall ({manager.firewall.name}) holds the {active} active bans")
    return 0


def run_show(args: argparse.Namespace) -> int:
    target = _parse_targets([args.target], "argument")[0]
    with _state(args) as state, state.reading() as conn:
        bans = store.history(conn, target)
        networks = {str(ban.network) for ban in bans}
        records = [r for r in trail.records(conn) if r.network in networks]
        events = store.events_of(conn, {ban.ip for ban in bans})
    if args.format == "json":
        _print_json({"target": str(target), "bans": [b.as_json() for b in bans],
                     "trail": [r.as_json() for r in records],
                     "events": [asdict(event) for event in events]})  # fmt: skip
        return 0
    active = [ban for ban in bans if ban.ended is None]
    if active:
        ban = active[-1]
        until = f"until {_when(ban.expires)}" if ban.expires else "until removed"
        print(f"{target}: BANNED as {ban.network} by {ban.jail}, {until}")
    else:
        print(f"{target}: not banned now")
    print(f"{len(bans)} ban(s) on record" + (":" if bans else ""))
    counted = {(r.network, r.time): r.detail["events"] for r in records
               if r.action == "ban" and "events" in r.detail}  # fmt: skip
    for number, ban in enumerate(bans, 1):
        ended = f"{ban.end_reason} {_when(ban.ended)}" if ban.ended else "active"
        until = _when(ban.expires) if ban.expires else "permanent"
        print(f"  {number}. {ban.network}  jail {ban.jail}  {_when(ban.created)} -> {until}"
              f"  ({ended}, level {ban.level}, by {visible(ban.actor)})")  # fmt: skip
        print(f"     why: {visible(ban.reason)}")
        if ban.first_line:
            print(f"     first line: {visible(ban.first_line)}")
        if ban.last_line and ban.last_line != ban.first_line:
            print(f"     last line:  {visible(ban.last_line)}")
        for_ban = counted.get((str(ban.network), ban.created), ())
        if for_ban:
            shown = ", ".join(f"{_when(when)} {visible(rule)}" for when, rule in for_ban)
            print(f"     counted: {shown}")
    if events:
        print(f"log lines the agent still keeps ({len(events)}, latest last):")
        for event in events[-SHOWN_EVENTS:]:
            where = f"{event.source}:{event.line}" if event.line else event.source
            print(
                f"  {_when(event.time)}  {event.rule}  {visible(where)}: {visible(event.evidence)}"
            )
    if records:
        print("trail:")
        for record in records:
            print("  " + _trail_line(record))
    return 0


def run_trail(args: argparse.Namespace) -> int:
    since = None
    if args.since:
        try:
            since = time.time() - parse_duration(args.since)
        except ValueError as exc:
            raise InputError([Problem("--since", 0, "", str(exc))]) from exc
    with _state(args) as state, state.reading() as conn:
        records = list(trail.records(conn, since))
    if args.format == "json":
        _print_json({"trail": [record.as_json() for record in records]})
    else:
        for record in records:
            print(_trail_line(record))
    return 0


def run_verify(args: argparse.Namespace) -> int:
    anchor = None
    if args.anchor:
        seq, sep, digest = args.anchor.partition(":")
        if not sep or not seq.isdigit() or len(digest) != 64:
            raise InputError([Problem("--anchor", 0, args.anchor, "expected SEQ:HASH (64 hex)")])
        anchor = (int(seq), digest)
    with _state(args) as state, state.reading() as conn:
        verdict = trail.verify(conn, anchor)
    if verdict.ok:
        print(f"trail OK: {verdict.records} records; head {verdict.head_seq}:{verdict.head_hash}")
        return 0
    print(f"trail BROKEN at record {verdict.bad_seq}: {verdict.problem}"
          f" ({verdict.records} records verified before it)")  # fmt: skip
    return 1


# -- plumbing ---------------------------------------------------------------------------


def _config(args: argparse.Namespace) -> AgentConfig:
    config = load_config(getattr(args, "config", None))
    if getattr(args, "state_dir", None):
        config = replace(config, state_dir=Path(args.state_dir))
    return config


@contextmanager
def _state(args: argparse.Namespace) -> Iterator[StateStore]:
    """The state store named by the config or ``--state-dir``."""
    state = StateStore(_config(args).state_path)
    try:
        yield state
    finally:
        state.close()


@contextmanager
def _manager(args: argparse.Namespace) -> Iterator[BanManager]:
    """A BanManager acting for the person running the command."""
    from agent.firewall import choose_backend, open_firewall

    config = _config(args)
    name, warning = choose_backend(getattr(args, "backend", None) or config.firewall.backend)
    if warning:
        print(f"lappguard: warning: {warning}", file=sys.stderr)
    firewall = open_firewall(name, config.firewall.options.get(name, {}), config.state_dir)
    state = StateStore(config.state_path)
    manager = BanManager(state, firewall, Allowlist(config.allowlist), actor=trail.invoking_user())
    try:
        yield manager
    finally:
        firewall.close()
        state.close()


def _parse_targets(texts: Iterable[str], where: str, file: str | None = None) -> list[Network]:
    found, problems = [], []
    for index, text in enumerate(texts, 1):
        try:
            found.append(parse_target(text))
        except ValueError as exc:
            if file is None:
                problems.append(Problem(where, 0, "", str(exc)))
            else:
                problems.append(Problem(file, index, "", str(exc)))
    if problems:
        raise InputError(problems)
    return found


def _read_targets(name: str) -> list[Network]:
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError([Problem(name, 0, "", f"cannot read: {exc}")]) from exc
    lines = [line.split("#", 1)[0].strip() for line in text.split("\n")]
    found, problems = [], []
    for number, line in enumerate(lines, 1):
        if not line:
            continue
        try:
            found.append(parse_target(line))
        except ValueError as exc:
            problems.append(Problem("stdin" if name == "-" else name, number, "", str(exc)))
    if problems:
        raise InputError(problems)
    return found


def parse_target(text: str) -> Network:
    """An address or CIDR network, strictly: ``10.1.2.3/24`` (host bits set) is refused,
    since a typo in a prefix length (``/2`` for ``/32``) must never ban a quarter of the
    Internet. IPv4-mapped IPv6 becomes IPv4, as the firewall sees those packets."""
    candidate = text.strip()
    try:
        network = ipaddress.ip_network(candidate)
    except ValueError as exc:
        message = str(exc)
        if "has host bits set" in message:
            wide = ipaddress.ip_network(candidate, strict=False)
            message = f"{candidate} has host bits set; did you mean {wide}?"
        elif "does not appear to be" in message:
            message = f"{visible(candidate)!r} is not an IP address or CIDR network"
        raise ValueError(message) from None
    mapped = network.network_address
    if isinstance(network, ipaddress.IPv6Network) and mapped.ipv4_mapped is not None:
        return ipaddress.ip_network(f"{mapped.ipv4_mapped}/{max(0, network.prefixlen - 96)}")
    return network


def _report(outcomes: Sequence[Outcome]) -> int:
    code = 0
    for outcome in outcomes:
        if outcome.status == "refused":
            print(f"lappguard: refused {outcome.target}: {outcome.reason}", file=sys.stderr)
            code = max(code, EXIT_REFUSED)
        elif outcome.status == "pending":
            print(f"lappguard: {outcome.target}: {outcome.reason}", file=sys.stderr)
            code = EXIT_FIREWALL
        elif outcome.status == "banned":
            until = f"until {_when(outcome.expires)}" if outcome.expires else "until removed"
            print(f"banned {outcome.network} {until}")
        elif outcome.status == "unbanned":
            print(f"unbanned {outcome.network}")
        else:
            print(f"{outcome.target}: {outcome.reason}")
    return code


def _trail_line(record: trail.TrailRecord) -> str:
    detail = " ".join(f"{key}={visible(str(value))}" for key, value in record.detail.items()
                      if key not in ("first_line", "last_line", "events"))  # fmt: skip
    parts = [str(record.seq), _when(record.time), record.action, record.network or "-",
             record.jail or "-", f"by {visible(record.actor)}", detail]  # fmt: skip
    return "  ".join(part for part in parts if part)


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _print_table(rows: Sequence[Sequence[str]], out: TextIO = sys.stdout) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        out.write("  ".join([*cells, row[-1]]).rstrip() + "\n")


def _print_json(document: object) -> None:
    json.dump(document, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")

"""Bans that hold: from a jail's decision or a sysadmin's command to the store and the firewall.

Order of work, the same for every change: decide everything inside one store transaction
(scope, allowlist, overlaps, escalation, the trail record), commit, and only then touch the
firewall, outside the transaction, so a slow firewall never holds the database. A firewall
failure leaves the bans in the store marked pending and the firewall "in debt"; ``repair``
pays the debt with one ``sync`` (with backoff), and also notices when somebody flushed our
bans out of the firewall. A crash between commit and firewall is the same as a failure:
the next start syncs.

Every firewall change holds an exclusive lock file beside the database, and ``sync`` reads
the active bans under it: a ``lappguard bans add`` and the daemon's sync can then never
interleave so that the sync's older list overwrites the new ban in the firewall.

The store never holds two active bans that overlap: a ban inside an active one is
"already banned", a wider one supersedes those inside it. So the firewall's sets never
hold overlapping intervals (nftables refuses them).
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from agent.bans import store
from agent.bans.allowlist import Allowlist
from agent.bans.jails import Decision, Jail
from agent.bans.trail import TrailWriter
from agent.detect.events import normalise_ip
from agent.firewall.base import Firewall, FirewallError, Network
from agent.state import StateStore, open_private

MANUAL = "manual"
#: Longest pause between two attempts to repair a failing firewall.
MAX_BACKOFF = 60.0


@dataclass(frozen=True)
class BanRequest:
    """Something to ban: an offending address a jail decided on, or a network given by hand.

    ``target`` is the offending address (/32 or /128) for a jail, which then widens it to
    the jail's scope; a manual request bans ``target`` itself, for ``duration`` seconds
    (None: until removed).
    """

    target: Network
    jail: Jail | None
    reason: str
    duration: float | None = None
    count: int = 0
    rule: str | None = None
    first_line: str | None = None
    last_line: str | None = None
    events: tuple[tuple[float, str], ...] = ()  # (time, rule) the jail counted


@dataclass(frozen=True)
class Outcome:
    """What became of one request or removal, for the command line and the daemon's log."""

    target: str
    status: str  # banned | pending | refused | already | unbanned | absent
    network: Network | None = None
    reason: str = ""
    expires: float | None = None


class BanManager:
    """Bans, unbans, expiry and firewall repair over one store and one firewall.

    ``actor`` goes into the trail: ``"daemon"`` for the agent, the person for the CLI.
    ``counters`` counts what happened, for metrics: ``banned:<jail>``, ``refused``,
    ``unbanned``, ``expired``, ``superseded``, ``firewall_errors``, ``syncs:<reason>``,
    ``restores``.
    """

    def __init__(
        self,
        state: StateStore,
        firewall: Firewall,
        allowlist: Allowlist,
        *,
        jails: Mapping[str, Jail] | None = None,
        actor: str = "daemon",
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = state
        self.firewall = firewall
        self.allowlist = allowlist
        self.jails = dict(jails or {})
        self.actor = actor
        self.counters: Counter[str] = Counter()
        self._clock = clock
        self._monotonic = monotonic
        self._backoff = 0.0
        self._next_repair = float("-inf")

    # -- banning ----------------------------------------------------------------------

    def requests_for(self, decisions: Sequence[Decision]) -> list[BanRequest]:
        """Ban requests for what jails decided (a decision of an unknown jail is a bug)."""
        requests = []
        for decision in decisions:
            jail = self.jails.get(decision.jail)
            if jail is None:
                raise KeyError(f"decision for unknown jail {decision.jail!r}")
            address = normalise_ip(decision.ip)  # IPv4-mapped IPv6 is the IPv4 host
            if address is None:
                raise ValueError(f"decision names no address: {decision.ip!r}")
            requests.append(
                BanRequest(
                    target=ipaddress.ip_network(address),
                    jail=jail,
                    reason=decision.why(jail),
                    count=decision.count,
                    rule=decision.rule,
                    first_line=decision.first_line,
                    last_line=decision.last_line,
                    events=decision.events,
                )
            )
        return requests

    def decide(self, decisions: Sequence[Decision]) -> list[Outcome]:
        """Ban the addresses jails decided on, store and firewall at once."""
        return self.ban(self.requests_for(decisions))

    def ban(self, requests: Sequence[BanRequest]) -> list[Outcome]:
        """Record the bans, then put them into the firewall straight away (the command
        line's way; the daemon records and leaves the firewall to its own thread)."""
        outcomes = self.record(requests)
        if any(outcome.status == "banned" for outcome in outcomes):
            error = self.flush()
            if error is not None:
                outcomes = [_pending(o, error) if o.status == "banned" else o for o in outcomes]
        return outcomes

    def record(
        self, requests: Sequence[BanRequest], events: Sequence[store.StoredEvent] = ()
    ) -> list[Outcome]:
        """Decide and store the bans in one transaction, pending for the firewall, with
        the counted ``events`` behind them (the daemon keeps those for its jails)."""
        now = self._clock()
        outcomes: list[Outcome] = []
        with self.state.transaction() as conn:
            store.insert_events(conn, events)
            trail = TrailWriter(conn)
            # widest first: a narrower request in the same batch then finds it "already"
            for request in sorted(requests, key=lambda r: r.target.prefixlen):
                outcomes.append(self._ban_one(conn, trail, request, now))
            trail.flush()
        return outcomes

    def flush(self) -> str | None:
        """Put every pending ban into the firewall in one change (a whole sync when one of
        them supersedes bans the firewall still holds, as sets must never overlap); the
        error text when the firewall failed."""
        with self._firewall_lock():
            now = self._clock()
            with self.state.reading() as conn:
                pending = [ban for ban in store.pending(conn)
                           if ban.expires is None or ban.expires > now]  # fmt: skip
            if not pending:
                return None
            if any(ban.replaces for ban in pending):
                return self._sync_locked("supersede")
            try:
                self.firewall.ban([ban.entry for ban in pending], now)
            except FirewallError as exc:
                self._failed(now, exc)
                return str(exc)
            with self.state.transaction() as conn:
                store.mark_applied(conn, [ban.network for ban in pending])
        return None

    def _ban_one(self, conn, trail: TrailWriter, request: BanRequest, now: float) -> Outcome:
        jail = request.jail
        jail_name = jail.name if jail else MANUAL
        target = request.target
        if jail is not None:
            prefix = jail.ipv4_prefix if target.version == 4 else jail.ipv6_prefix
            wanted = ipaddress.ip_network(f"{target.network_address}/{prefix}", strict=False)
            network, refusal = self.allowlist.scoped(target, wanted)
        else:
            network, refusal = target, self.allowlist.refusal(target)
        ip = str(target.network_address) if jail is not None else str(target)
        if refusal is not None:
            self.counters["refused"] += 1
            trail.append(now, "refuse", self.actor, str(network), jail_name, ip=ip,
                         reason=request.reason, refused=refusal, rule=request.rule,
                         count=request.count or None)  # fmt: skip
            return Outcome(str(target), "refused", network, refusal)
        cover = store.covering(conn, network)
        if cover is not None:
            why = f"already banned as {cover.network} ({cover.jail})"
            return Outcome(str(target), "already", cover.network, why, cover.expires)
        inside = store.covered(conn, network)
        for old in inside:
            trail.append(now, "supersede", self.actor, str(old.network), old.jail,
                         by=str(network))  # fmt: skip
        store.end(conn, [old.id for old in inside], now, "superseded")
        self.counters["superseded"] += len(inside)
        if jail is not None:
            previous = store.previous_bans(conn, network, now - jail.escalate.forget)
            duration = jail.escalate.bantime(jail.bantime, previous)
        else:
            previous = store.previous_bans(conn, network, float("-inf"))
            duration = request.duration
        expires = None if duration is None else now + duration
        first_line = request.first_line
        if first_line is None and request.events:
            first_line = store.line_of(conn, ip, *request.events[0])
        ban = store.NewBan(network, ip, jail_name, now, expires, previous + 1, request.count,
                           request.rule, request.reason, self.actor, first_line,
                           request.last_line, len(inside))  # fmt: skip
        store.insert(conn, [ban])
        trail.append(now, "ban", self.actor, str(network), jail_name, ip=ip,
                     reason=request.reason, expires=expires, level=previous + 1,
                     count=request.count or None, rule=request.rule,
                     first_line=first_line, last_line=request.last_line,
                     events=[list(event) for event in request.events] or None)  # fmt: skip
        self.counters[f"banned:{jail_name}"] += 1
        return Outcome(str(target), "banned", network, request.reason, expires)

    # -- unbanning and expiry -----------------------------------------------------------

    def unban(self, targets: Sequence[Network], reason: str = "removed by hand") -> list[Outcome]:
        """End the active bans holding each target (or lying inside it), then the firewall."""
        now = self._clock()
        outcomes: list[Outcome] = []
        removed: list[Network] = []
        with self.state.transaction() as conn:
            trail = TrailWriter(conn)
            for target in targets:
                found = {b.id: b for b in store.covered(conn, target)}
                cover = store.covering(conn, target)
                if cover is not None:
                    found[cover.id] = cover
                if not found:
                    outcomes.append(Outcome(str(target), "absent", None, "not banned"))
                    continue
                store.end(conn, found, now, "unbanned")
                for ban in found.values():
                    trail.append(now, "unban", self.actor, str(ban.network), ban.jail,
                                 reason=reason)  # fmt: skip
                    outcomes.append(Outcome(str(target), "unbanned", ban.network, reason))
                    removed.append(ban.network)
            trail.flush()
        self.counters["unbanned"] += len(removed)
        if removed:
            self._unban(now, removed)
        return outcomes

    def expire(self) -> int:
        """End the bans whose time is up and take them out of the firewall; how many."""
        now = self._clock()
        with self.state.transaction() as conn:
            due = store.due(conn, now)
            if not due:
                return 0
            trail = TrailWriter(conn)
            store.end(conn, [ban.id for ban in due], now, "expired")
            for ban in due:
                trail.append(now, "expire", self.actor, str(ban.network), ban.jail)
            trail.flush()
        self.counters["expired"] += len(due)
        if not self.firewall.expires_natively:  # the kernel has dropped them already
            self._unban(now, [ban.network for ban in due])
        return len(due)

    # -- keeping the firewall in step ---------------------------------------------------

    def sync(self, reason: str = "manual") -> bool:
        """Make the firewall hold exactly the active bans (expired ones dropped first), in
        one change; False (and the debt recorded) when the firewall failed. ``reason`` is
        counted: start, manual, debt, loss or supersede."""
        self.expire()
        with self._firewall_lock():
            return self._sync_locked(reason) is None

    def _sync_locked(self, reason: str) -> str | None:
        now = self._clock()
        with self.state.reading() as conn:
            active = store.active(conn)
            debt = store.debt(conn)
        try:
            self.firewall.sync([ban.entry for ban in active if ban.expires is None
                                or ban.expires > now], now)  # fmt: skip
        except FirewallError as exc:
            self._failed(now, exc)
            return str(exc)
        with self.state.transaction() as conn:
            store.mark_applied(conn, [ban.network for ban in active])
            store.clear_debt(conn, debt)
        self.counters[f"syncs:{reason}"] += 1
        self._backoff = 0.0
        return None

    def repair(self) -> bool:
        """Called every few seconds by the daemon: sync when the firewall owes us (a failure,
        pending bans) or lost our bans behind our back. True when a sync ran and worked."""
        if self._monotonic() < self._next_repair:
            return False
        with self.state.reading() as conn:
            owed = store.debt(conn) is not None or store.pending_count(conn) > 0
        try:
            lost = not self.firewall.intact()
        except FirewallError as exc:
            self._failed(self._clock(), exc)
            return False
        if not (owed or lost):
            return False
        if lost:
            self._record_restore()
        return self.sync("loss" if lost else "debt")

    def _record_restore(self) -> None:
        now = self._clock()
        with self.state.transaction() as conn:
            count = len(store.active(conn))
            trail = TrailWriter(conn)
            trail.append(now, "restore", self.actor, None, None, bans=count,
                         reason="the firewall lost our bans; re-adding them")  # fmt: skip
            trail.flush()
        self.counters["restores"] += 1

    def _unban(self, now: float, networks: Sequence[Network]) -> None:
        """Take committed unbans out of the firewall (a failure is recorded as debt)."""
        try:
            with self._firewall_lock():
                self.firewall.unban(networks)
        except FirewallError as exc:
            self._failed(now, exc)

    @contextmanager
    def _firewall_lock(self) -> Iterator[None]:
        """One firewall change at a time across every lappguard process on this host."""
        descriptor = open_private(self.state.path.with_name("firewall.lock"))
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)

    def _failed(self, now: float, exc: FirewallError) -> None:
        self.counters["firewall_errors"] += 1
        with self.state.transaction() as conn:
            store.record_debt(conn, now, str(exc))
        self._backoff = min(MAX_BACKOFF, max(1.0, self._backoff * 2))
        self._next_repair = self._monotonic() + self._backoff


def _pending(outcome: Outcome, error: str) -> Outcome:
    return Outcome(outcome.target, "pending", outcome.network,
                   f"stored, but the firewall failed: {error}", outcome.expires)  # fmt: skip

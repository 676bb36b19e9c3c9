"""Bans in the state database: the active ones, their history, and the firewall's debt.

The ``ban`` table is the source of truth the firewall is synced from: a ban is written here
(``applied = 0``) before the firewall is touched and marked applied once the firewall
confirmed it, so a crash in between is repaired by the next sync. A network is stored with
its first and last address as 16-byte big-endian blobs, so "is this network inside an
active ban?" and "which bans does it cover?" are index range scans, not Python loops.

Functions taking ``conn`` run inside the caller's ``StateStore.transaction()``, so a ban, its
trail record and any bans it supersedes commit together.
"""

from __future__ import annotations

import ipaddress
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from agent.firewall.base import Entry, Network

_COLUMNS = ("id, network, ip, jail, created, expires, ended, end_reason, level, count, rule,"
            " reason, actor, first_line, last_line, replaces, applied")  # fmt: skip


@dataclass(frozen=True)
class BanRecord:
    id: int
    network: Network
    ip: str
    jail: str
    created: float
    expires: float | None
    ended: float | None
    end_reason: str | None
    level: int
    count: int
    rule: str | None
    reason: str
    actor: str
    first_line: str | None
    last_line: str | None
    replaces: int
    applied: bool

    @property
    def entry(self) -> Entry:
        return Entry(self.network, self.expires)

    def as_json(self) -> dict:
        return {
            "network": str(self.network),
            "ip": self.ip,
            "jail": self.jail,
            "since": self.created,
            "until": self.expires,
            "ended": self.ended,
            "end_reason": self.end_reason,
            "level": self.level,
            "count": self.count,
            "rule": self.rule,
            "reason": self.reason,
            "actor": self.actor,
            "first_line": self.first_line,
            "last_line": self.last_line,
            "pending": not self.applied and self.ended is None,
        }


@dataclass(frozen=True)
class NewBan:
    """A ban about to be written (the manager has checked scope, allowlist and overlaps)."""

    network: Network
    ip: str
    jail: str
    created: float
    expires: float | None
    level: int
    count: int
    rule: str | None
    reason: str
    actor: str
    first_line: str | None = None
    last_line: str | None = None
    replaces: int = 0


@dataclass(frozen=True)
class StoredEvent:
    """An event a jail counted, kept so jail windows survive a restart."""

    time: float
    rule: str
    jail: str
    ip: str
    source: str
    line: int | None
    evidence: str
    confidence: str = "weak"


def bounds(network: Network) -> tuple[int, bytes, bytes]:
    """(family, first address, last address) as the table stores them."""
    lo = int(network.network_address).to_bytes(16, "big")
    hi = int(network.broadcast_address).to_bytes(16, "big")
    return network.version, lo, hi


def _record(row: Sequence) -> BanRecord:
    (id_, network, ip, jail, created, expires, ended, end_reason, level, count, rule, reason,
     actor, first_line, last_line, replaces, applied) = row  # fmt: skip
    return BanRecord(id_, ipaddress.ip_network(network), ip, jail, created, expires, ended,
                     end_reason, level, count, rule, reason, actor, first_line, last_line,
                     replaces, bool(applied))  # fmt: skip


def _bans(conn: sqlite3.Connection, where: str, params: tuple = ()) -> list[BanRecord]:
    """The bans matching an SQL condition (and ordering)."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM ban WHERE {where}", params).fetchall()
    return [_record(row) for row in rows]


def covering(conn: sqlite3.Connection, network: Network) -> BanRecord | None:
    """The active ban whose network holds all of ``network``, if any."""
    found = _bans(conn, "ended IS NULL AND family = ? AND lo <= ? AND hi >= ?"
                  " ORDER BY lo DESC LIMIT 1", bounds(network))  # fmt: skip
    return found[0] if found else None


def covered(conn: sqlite3.Connection, network: Network) -> list[BanRecord]:
    """Active bans lying wholly inside ``network`` (a wider ban supersedes them)."""
    return _bans(conn, "ended IS NULL AND family = ? AND lo >= ? AND hi <= ?", bounds(network))


def previous_bans(conn: sqlite3.Connection, network: Network, since: float) -> int:
    """Bans of this very network (or inside it) created at or after ``since``."""
    family, lo, hi = bounds(network)
    return conn.execute(
        "SELECT count(*) FROM ban WHERE family = ? AND lo >= ? AND hi <= ? AND created >= ?",
        (family, lo, hi, since),
    ).fetchone()[0]


def insert(conn: sqlite3.Connection, bans: Iterable[NewBan]) -> None:
    rows = []
    for ban in bans:
        family, lo, hi = bounds(ban.network)
        rows.append((str(ban.network), family, lo, hi, ban.ip, ban.jail, ban.created,
                     ban.expires, ban.level, ban.count, ban.rule, ban.reason, ban.actor,
                     ban.first_line, ban.last_line, ban.replaces))  # fmt: skip
    conn.executemany(
        "INSERT INTO ban (network, family, lo, hi, ip, jail, created, expires, level, count,"
        " rule, reason, actor, first_line, last_line, replaces, applied)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
        rows,
    )


def end(conn: sqlite3.Connection, ids: Iterable[int], when: float, reason: str) -> None:
    conn.executemany(
        "UPDATE ban SET ended = ?, end_reason = ? WHERE id = ? AND ended IS NULL",
        [(when, reason, id_) for id_ in ids],
    )


def due(conn: sqlite3.Connection, now: float) -> list[BanRecord]:
    """Active bans whose time is up."""
    return _bans(conn, "ended IS NULL AND expires IS NOT NULL AND expires <= ?", (now,))


def active(conn: sqlite3.Connection) -> list[BanRecord]:
    """Active bans, oldest first."""
    return _bans(conn, "ended IS NULL ORDER BY created, id")


def every_ban(conn: sqlite3.Connection) -> list[BanRecord]:
    """Active and ended bans, oldest first."""
    return _bans(conn, "1 ORDER BY created, id")


def history(conn: sqlite3.Connection, network: Network) -> list[BanRecord]:
    """Every ban, past or present, that held any part of ``network``."""
    family, lo, hi = bounds(network)
    return _bans(conn, "family = ? AND lo <= ? AND hi >= ? ORDER BY created, id", (family, hi, lo))


def pending(conn: sqlite3.Connection) -> list[BanRecord]:
    """Active bans the firewall has not confirmed yet."""
    return _bans(conn, "ended IS NULL AND applied = 0 ORDER BY id")


def pending_count(conn: sqlite3.Connection) -> int:
    """Active bans the firewall has not confirmed yet."""
    query = "SELECT count(*) FROM ban WHERE ended IS NULL AND applied = 0"
    return conn.execute(query).fetchone()[0]


def debt(conn: sqlite3.Connection) -> tuple[float, str, int] | None:
    """(since, last error, retries) while the firewall owes us a sync, else None."""
    row = conn.execute("SELECT since, error, retries FROM firewall_debt").fetchone()
    return (row[0], row[1], row[2]) if row else None


def mark_applied(conn: sqlite3.Connection, networks: Iterable[Network]) -> None:
    conn.executemany(
        "UPDATE ban SET applied = 1 WHERE ended IS NULL AND network = ?",
        [(str(network),) for network in networks],
    )


def clear_debt(conn: sqlite3.Connection, seen: tuple[float, str, int] | None) -> None:
    """A sync that started when the debt was ``seen`` succeeded: clear it, unless another
    failure (another process, meanwhile) has changed it since."""
    if seen is not None:
        conn.execute(
            "DELETE FROM firewall_debt WHERE since = ? AND error = ? AND retries = ?", seen
        )


def record_debt(conn: sqlite3.Connection, when: float, error: str) -> None:
    """The firewall failed: remember it until a sync succeeds (pending bans stay 0)."""
    conn.execute(
        "INSERT INTO firewall_debt VALUES (1, ?, ?, 0) ON CONFLICT (id)"
        " DO UPDATE SET error = excluded.error, retries = retries + 1",
        (when, error),
    )


def insert_events(conn: sqlite3.Connection, events: Iterable[StoredEvent]) -> None:
    rows = [(e.time, e.rule, e.jail, e.ip, e.source, e.line, e.evidence, e.confidence)
            for e in events]  # fmt: skip
    conn.executemany(
        "INSERT INTO event (time, rule, jail, ip, source, line, evidence, confidence)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


def line_of(conn: sqlite3.Connection, ip: str, time: float, rule: str) -> str | None:
    """``source:line: text`` of the kept event of ``ip`` by ``rule`` at ``time`` (the first
    event a ban counted), if it is still kept."""
    row = conn.execute(
        "SELECT source, line, evidence FROM event WHERE ip = ? AND time = ? AND rule = ?"
        " ORDER BY id LIMIT 1",
        (ip, time, rule),
    ).fetchone()
    if row is None:
        return None
    source, line, evidence = row
    return f"{source}:{line}: {evidence}" if line else f"{source}: {evidence}"


def events_since(conn: sqlite3.Connection, horizon: float) -> list[tuple[float, str, str, str]]:
    """(time, rule, ip, confidence) of the kept events from ``horizon`` on, oldest first."""
    return conn.execute(
        "SELECT time, rule, ip, confidence FROM event WHERE time >= ? ORDER BY time, id",
        (horizon,),
    ).fetchall()


def events_of(conn: sqlite3.Connection, ips: Iterable[str]) -> list[StoredEvent]:
    """The kept events of these addresses, oldest first."""
    found: list[StoredEvent] = []
    for ip in sorted(set(ips)):
        rows = conn.execute(
            "SELECT time, rule, jail, ip, source, line, evidence, confidence FROM event"
            " WHERE ip = ? ORDER BY time, id",
            (ip,),
        ).fetchall()
        found += [StoredEvent(*row) for row in rows]
    return sorted(found, key=lambda event: event.time)


def prune_events(conn: sqlite3.Connection, horizon: float, keep: int) -> int:
    """Forget events older than ``horizon``, and the oldest beyond ``keep``; how many."""
    gone = conn.execute("DELETE FROM event WHERE time < ?", (horizon,)).rowcount
    excess = conn.execute("SELECT count(*) FROM event").fetchone()[0] - keep
    if excess > 0:
        gone += conn.execute(
            "DELETE FROM event WHERE id IN (SELECT id FROM event ORDER BY time, id LIMIT ?)",
            (excess,),
        ).rowcount
    return gone

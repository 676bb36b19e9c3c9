"""The audit trail: an append-only, hash-chained record of every ban action.

Each record carries the SHA-256 of the one before it (``prev_hash``) and its own hash over
that and its canonical JSON, so editing, deleting or reordering any record breaks the chain
at that record, and ``verify`` names it. ``trail_head`` holds the last (seq, hash), written
in the same transaction, so cutting records off the end is seen too. Someone who can write
the database can still rewrite the whole chain consistently: against that, compare the head
with a copy kept elsewhere (``lappguard trail verify --anchor SEQ:HASH``, or the
``lappguard_trail_records`` metric Prometheus has been scraping, which would go down).

Records are appended only inside a store transaction (``StateStore.transaction``), whose
``BEGIN IMMEDIATE`` serialises writers across processes: two ``lappguard bans add`` at once
still give one chain.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

GENESIS = bytes(32)
#: What a record can say happened.
ACTIONS = ("ban", "unban", "expire", "refuse", "supersede", "restore")


@dataclass(frozen=True)
class TrailRecord:
    seq: int
    time: float
    action: str
    network: str | None
    jail: str | None
    actor: str
    detail: dict[str, Any]
    prev_hash: bytes
    hash: bytes

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "action": self.action,
            "network": self.network,
            "jail": self.jail,
            "actor": self.actor,
            "detail": self.detail,
            "hash": self.hash.hex(),
        }


@dataclass(frozen=True)
class Verdict:
    """What ``verify`` found: ``ok``, or the first bad record and what is wrong with it."""

    ok: bool
    records: int
    head_seq: int
    head_hash: str
    bad_seq: int | None = None
    problem: str = ""


def canonical(detail: Mapping[str, Any]) -> str:
    """The one JSON text of a detail mapping that is hashed and stored."""
    return json.dumps(detail, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def record_hash(
    prev_hash: bytes,
    seq: int,
    time: float,
    action: str,
    network: str | None,
    jail: str | None,
    actor: str,
    detail_json: str,
) -> bytes:
    body = json.dumps([seq, time, action, network, jail, actor, detail_json],
                      separators=(",", ":"), ensure_ascii=False)  # fmt: skip
    return hashlib.sha256(prev_hash + body.encode("utf-8", "surrogatepass")).digest()


class TrailWriter:
    """Appends records inside one open transaction (``conn`` from ``StateStore.transaction``)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        head = conn.execute("SELECT seq, hash FROM trail_head WHERE id = 1").fetchone()
        self._seq, self._hash = (head[0], bytes(head[1])) if head else (0, GENESIS)
        self._rows: list[tuple] = []

    def append(
        self,
        time: float,
        action: str,
        actor: str,
        network: str | None = None,
        jail: str | None = None,
        **detail: Any,
    ) -> None:
        if action not in ACTIONS:
            raise ValueError(f"unknown trail action {action!r}")
        text = canonical({key: value for key, value in detail.items() if value is not None})
        seq = self._seq + 1
        digest = record_hash(self._hash, seq, time, action, network, jail, actor, text)
        self._rows.append((seq, time, action, network, jail, actor, text, self._hash, digest))
        self._seq, self._hash = seq, digest

    def flush(self) -> None:
        """Write what was appended (and the new head); call before the transaction ends."""
        if not self._rows:
            return
        self._conn.executemany("INSERT INTO trail VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", self._rows)
        self._conn.execute(
            "INSERT INTO trail_head VALUES (1, ?, ?) ON CONFLICT (id)"
            " DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
            (self._seq, self._hash),
        )
        self._rows = []


def records(conn: sqlite3.Connection, since: float | None = None) -> Iterator[TrailRecord]:
    """The trail in order (from ``since``, UTC epoch seconds, when given)."""
    query = "SELECT * FROM trail"
    params: tuple = ()
    if since is not None:
        query += " WHERE time >= ?"
        params = (since,)
    for seq, time, action, network, jail, actor, detail, prev, digest in conn.execute(
        query + " ORDER BY seq", params
    ):
        yield TrailRecord(seq, time, action, network, jail, actor, _detail(detail),
                          bytes(prev), bytes(digest))  # fmt: skip


def verify(conn: sqlite3.Connection, anchor: tuple[int, str] | None = None) -> Verdict:
    """Walk the whole chain; the first record that does not fit names the tampering."""
    expected_prev, expected_seq, count = GENESIS, 1, 0
    anchor_seen = anchor is None
    rows = conn.execute("SELECT * FROM trail ORDER BY seq")
    for seq, time, action, network, jail, actor, detail, prev, digest in rows:
        if seq != expected_seq:  # rows come in seq order: a gap means deleted records
            return _bad(count, expected_seq, f"records {expected_seq}..{seq - 1} are missing")
        if bytes(prev) != expected_prev:
            return _bad(count, seq, "does not follow the record before it (deleted or reordered)")
        if not isinstance(detail, str) or not isinstance(time, float | int):
            return _bad(count, seq, "has a field of the wrong type (edited)")
        actual = record_hash(bytes(prev), seq, float(time), action, network, jail, actor, detail)
        if actual != bytes(digest):
            return _bad(count, seq, "its content does not match its hash (edited)")
        if anchor is not None and seq == anchor[0]:
            if actual.hex() != anchor[1].lower():
                return _bad(count, seq, "differs from the anchor (the chain was rewritten)")
            anchor_seen = True
        expected_prev, expected_seq, count = actual, seq + 1, count + 1
    head = conn.execute("SELECT seq, hash FROM trail_head WHERE id = 1").fetchone()
    head_seq, head_hash = (head[0], bytes(head[1])) if head else (0, GENESIS)
    if head_seq != count or head_hash != expected_prev:
        return _bad(count, count + 1 if head_seq > count else head_seq,
                    f"the trail ends at record {count}, but its head says {head_seq}"
                    " (records were cut off the end, or the head was edited)")  # fmt: skip
    if not anchor_seen:
        return _bad(count, anchor[0] if anchor else None, "the anchored record is not in the trail")
    return Verdict(True, count, head_seq, head_hash.hex())


def _bad(count: int, seq: int | None, problem: str) -> Verdict:
    return Verdict(False, count, 0, "", seq, problem)


def _detail(text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return {"unreadable": str(text)}
    return value if isinstance(value, dict) else {"value": value}


def invoking_user() -> str:
    """Who is behind this process, for the trail: the login user (the kernel's loginuid
    survives sudo and su, unlike $SUDO_USER, which anyone can set), plus the effective user
    when that differs, e.g. ``alice as root``."""
    effective = _user_name(os.geteuid())
    try:
        with open("/proc/self/loginuid", encoding="ascii") as handle:
            login_uid = int(handle.read().strip())
    except (OSError, ValueError):
        login_uid = -1
    if login_uid in (-1, 0xFFFFFFFF):  # no login session (a service, a container)
        return effective
    login = _user_name(login_uid)
    return login if login == effective else f"{login} as {effective}"


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"

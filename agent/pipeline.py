"""The daemon's reading half: log lines -> Events -> jail Decisions -> bans in the store.

One ``SourceWorker`` thread follows each log source; all of them feed one ``Pipeline``,
which counts events in the jails and records what they decide. Order, per batch of lines:
detect, then (under the pipeline lock) count in the jails and write the batch's events and
bans in one store transaction, then commit the source position. So a crash loses nothing
(the batch is read again; at worst its events count twice) and no ban ever waits for the
firewall: bans are stored pending and a separate thread applies them in batches, so a slow
firewall never slows the reading of logs.

Jail windows survive restarts: the counted events are kept in the store for the longest
window (a jail's ``findtime``, or the addresses' long window), with their confidence, and
replayed into fresh jails at start (decisions from the replay are dropped, so a ban lifted
by hand is not brought back from memory).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from agent.bans import store
from agent.bans.jails import Decision, Jails
from agent.bans.manager import BanManager
from agent.detect.detector import Detector
from agent.detect.events import Event
from agent.sources import LogLine, LogSource

log = logging.getLogger("lappguard")

#: Counted events kept for replay at most (oldest dropped first) under a flood.
MAX_KEPT_EVENTS = 250_000
#: Characters of a line kept with a stored event.
KEPT_EVIDENCE = 300
#: Why a line gives no event although it was read (the detector's counters); own_probes:
#: our own audit's probe from this host (agent.detect.own_probes), never fed to the jails.
SKIP_REASONS = ("garbage", "unparsed", "ambiguous", "no_address", "own_probes")
#: A batch that fails (the store unwritable, a bug) is retried this often, then given up
#: (counted as skipped lines, reason "failed"), so one poison batch cannot stop a log.
BATCH_ATTEMPTS = 3
RETRY_SECONDS = 5.0


@dataclass
class SourceCounters:
    """What one source delivered, for metrics (monotonic counters)."""

    lines: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> lines
    errors: int = 0


class Pipeline:
    """Jails and the ban store behind every source worker (thread-safe)."""

    def __init__(
        self,
        jails: Jails,
        manager: BanManager,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.jails = jails
        self.manager = manager
        self.events_by_rule: Counter[tuple[str, str]] = Counter()  # (rule, jail) -> events
        self.decisions = 0
        #: called (from a reader thread) after decisions were stored: wakes the firewall
        self.listener: Callable[[], None] = lambda: None
        self._clock = clock
        self._lock = threading.Lock()

    def expect(self, rule_ids: Iterable[str]) -> None:
        """Start the per-rule event counts at 0 for these rules (metrics show every series
        from the start, so the first event is an increase)."""
        for rule in rule_ids:
            jail = self.jails.jail_for(rule)
            self.events_by_rule.setdefault((rule, jail.name if jail else "none"), 0)

    def handle(self, events: Sequence[Event]) -> list[Decision]:
        """Count a batch's events in the jails; store the counted ones and the decisions."""
        if not events:
            return []
        with self._lock:
            decisions: list[Decision] = []
            kept: list[tuple[Event, str]] = []
            for event in events:
                jail = self.jails.jail_for(event.rule)
                self.events_by_rule[(event.rule, jail.name if jail else "none")] += 1
                if jail is None:
                    continue
                kept.append((event, jail.name))
                decision = self.jails.observe(event)
                if decision is not None:
                    decisions.append(decision)
            requests = self.manager.requests_for(decisions)
            self.manager.record(requests, events=[_kept(event, jail) for event, jail in kept])
            self.decisions += len(decisions)
        if decisions:
            self.listener()
        return decisions

    def replay(self, horizon: float) -> int:
        """Refill the jail windows from events stored since ``horizon``; how many.

        The kept events are pruned to MAX_KEPT_EVENTS first: the firewall worker prunes only
        every minute, so a restart right after a flood would otherwise replay all of it
        (1M events: 350 MB at start instead of 125)."""
        now = self._clock()
        with self.manager.state.transaction() as conn:
            store.prune_events(conn, horizon, MAX_KEPT_EVENTS)
        with self._lock, self.manager.state.reading() as conn:
            count = 0
            for when, rule, ip, confidence in store.events_since(conn, horizon):
                self.jails.count(rule, ip, when, now, confidence)
                count += 1
        return count


def _kept(event: Event, jail: str) -> store.StoredEvent:
    return store.StoredEvent(event.time, event.rule, jail, event.ip, event.source, event.line,
                             event.evidence[:KEPT_EVIDENCE], event.confidence)  # fmt: skip


class SourceWorker(threading.Thread):
    """Follows one source: read a batch, detect, hand it to the pipeline, commit."""

    def __init__(
        self,
        source: LogSource,
        kind: str,
        detector: Detector,
        pipeline: Pipeline | None,
        *,
        poll: float = 1.0,
    ) -> None:
        super().__init__(name=f"source {source.name}", daemon=True)
        self.source = source
        self.kind = kind
        self.detector = detector
        self.pipeline = pipeline  # set before start() when built ahead of its pipeline
        self.counters = SourceCounters()
        self._poll = poll
        self._stop_event = threading.Event()
        #: monotonic time of the last completed loop: the watchdog's sign of life
        self.heartbeat = time.monotonic()

    def run(self) -> None:
        lines: list[LogLine] = []
        failures = 0
        while not self._stop_event.is_set():
            try:
                lines = lines or self.source.wait(self._poll)
                if lines:
                    self.process(lines)
                    self.source.commit()
                lines, failures = [], 0
            except Exception:  # a full disk, a locked store, a bug: never stop reading
                self.counters.errors += 1
                failures += 1
                if failures >= BATCH_ATTEMPTS:  # a batch that always fails is given up
                    log.exception("source %s: %d lines given up after %d attempts",
                                  self.source.name, len(lines), failures)  # fmt: skip
                    self.counters.skipped["failed"] += len(lines)
                    self.source.commit()
                    lines, failures = [], 0
                else:
                    log.exception("source %s: batch failed; retrying in %g s",
                                  self.source.name, RETRY_SECONDS)  # fmt: skip
                    self._stop_event.wait(RETRY_SECONDS)
            self.heartbeat = time.monotonic()

    def process(self, lines: Sequence[LogLine]) -> list[Decision]:
        counters = self.detector.counters
        before = [getattr(counters, reason) for reason in SKIP_REASONS]
        events: list[Event] = []
        for line in lines:
            events += self.detector.feed(line.data, self.kind, line.source,
                                         line.line_no or None, line.time)  # fmt: skip
        decisions = self.pipeline.handle(events)
        self.counters.lines += len(lines)  # counted once the batch is stored (no retry)
        for reason, was in zip(SKIP_REASONS, before, strict=True):
            if getattr(counters, reason) != was:
                self.counters.skipped[reason] += getattr(counters, reason) - was
        return decisions

    def stop(self) -> None:
        self._stop_event.set()
        self.source.wake()

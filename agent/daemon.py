"""``lappguard run``: the agent, wired together and kept alive under systemd.

Threads: one ``SourceWorker`` per log (read, detect, count, store), one ``FirewallWorker``
(apply pending bans in batches, expire, repair a firewall that lost our bans), one
``AuditWorker`` (the policies on a schedule and when a file they read changes) and the
metrics server. The main thread only handles signals and talks to systemd: READY once the
firewall is synced and the sources are open, STATUS now and then, and WATCHDOG pings only
while every worker shows recent signs of life, so a hung pipeline gets restarted.

SIGHUP reloads config, rules, jails and policies: everything new is built first and
swapped in only when all of it is valid; an invalid config is logged and the running one
stays. SIGTERM stops the readers after their current batch (positions committed) and
leaves the bans in the firewall: stopping the agent must not open the doors.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from agent.audit_worker import AuditWorker
from agent.bans import store
from agent.bans.allowlist import Allowlist
from agent.bans.jails import Jail, Jails
from agent.bans.manager import BanManager
from agent.config import AgentConfig, SourceConfig, load_config
from agent.detect.detector import Detector
from agent.detect.kinds import access_log_format
from agent.detect.logformats import DEBIAN_PG_PREFIX
from agent.detect.rules import Rule, load_rules
from agent.discovery import discover_sources
from agent.firewall import choose_backend, open_firewall
from agent.metrics import registry_for
from agent.metrics_http import MetricsServer, serve_metrics
from agent.notify import Notifier
from agent.pipeline import MAX_KEPT_EVENTS, Pipeline, SourceWorker
from agent.sources import FileSource, JournalSource, LogSource
from agent.state import StateStore
from agent.webconfig import WebConfig, load_web_config

log = logging.getLogger("lappguard")

#: A worker silent for longer than this is hung: the watchdog is no longer fed.
STALL_SECONDS = 60.0
#: How often the firewall worker checks that the firewall still holds our bans.
REPAIR_SECONDS = 2.0
EXPIRE_SECONDS = 5.0
PRUNE_SECONDS = 60.0
#: A whole sync now and then re-asserts timeouts longer than a backend can hold (ipset's
#: 24.8 days) before they lapse in the kernel.
REASSERT_SECONDS = 6 * 3600.0


class FirewallWorker(threading.Thread):
    """Applies pending bans as soon as the pipeline stores them, in batches; expires bans;
    repairs the firewall (debt after a failure, or our bans flushed behind our back)."""

    def __init__(self, manager: BanManager, events_horizon: Callable[[], float]) -> None:
        super().__init__(name="firewall", daemon=True)
        self.manager = manager
        self._events_horizon = events_horizon
        self._wake = threading.Event()
        self._stop_event = threading.Event()
        self.heartbeat = time.monotonic()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop_event.set()
        self._wake.set()

    def run(self) -> None:
        due = {"repair": 0.0, "expire": 0.0, "prune": 0.0,
               "reassert": time.monotonic() + REASSERT_SECONDS}  # fmt: skip
        while not self._stop_event.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            now = time.monotonic()
            try:
                self.manager.flush()
                if now >= due["expire"]:
                    self.manager.expire()
                    due["expire"] = now + EXPIRE_SECONDS
                if now >= due["repair"]:
                    self.manager.repair()
                    due["repair"] = now + REPAIR_SECONDS
                if now >= due["reassert"]:
                    self.manager.sync("reassert")
                    due["reassert"] = now + REASSERT_SECONDS
                if now >= due["prune"]:
                    with self.manager.state.transaction() as conn:
                        store.prune_events(conn, self._events_horizon(), MAX_KEPT_EVENTS)
                    due["prune"] = now + PRUNE_SECONDS
            except Exception:  # the store or a backend bug: log, keep the thread alive
                log.exception("firewall worker: round failed; retrying")
                self._stop_event.wait(1.0)
            self.heartbeat = time.monotonic()
        try:
            self.manager.flush()  # what the readers stored last goes out before we exit
        except Exception:
            log.exception("firewall worker: last flush failed (the next start syncs)")


@dataclass
class Reading:
    """What a config makes of the logs: sources and their detectors, and the jails."""

    workers: list[SourceWorker]
    jails: Jails
    jail_map: dict[str, Jail]
    allowlist: Allowlist
    horizon: float  # the longest window: how far back kept events matter
    rule_ids: list[str]  # the rules the sources' detectors apply


@dataclass
class DaemonStatus:
    """What metrics and STATUS lines read about the running daemon."""

    started: float = field(default_factory=time.time)
    reloads: int = 0
    reload_failures: int = 0


class Daemon:
    """The running agent (see the module docstring)."""

    def __init__(
        self,
        config_path: str | Path | None = None,
        *,
        notifier: Notifier | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config_path = config_path
        self.notifier = notifier or Notifier()
        self._clock = clock
        self.status = DaemonStatus()
        self.config: AgentConfig = load_config(config_path)  # InputError: exit 2, nothing ran
        self.state = StateStore(self.config.state_path, clock=clock)
        self.rules = load_rules()
        self.manager = self._manager(self.config)
        self.reading: Reading | None = None
        self.pipeline: Pipeline | None = None
        self.firewall_worker: FirewallWorker | None = None
        self.audit_worker: AuditWorker | None = None
        self.metrics_server: MetricsServer | None = None
        self._stop = threading.Event()
        self._reload = threading.Event()

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Sync the firewall, open the logs, start every worker, then tell systemd."""
        self.notifier.status("syncing the firewall")
        if not self.manager.sync("start"):
            log.error("firewall %s: initial sync failed; bans stay pending and are retried",
                      self.manager.firewall.name)  # fmt: skip
        self.reading = self._reading(self.config, self.rules)
        self.pipeline = Pipeline(self.reading.jails, self.manager, clock=self._clock)
        self.pipeline.expect(self.reading.rule_ids)
        replayed = self.pipeline.replay(self._clock() - self.reading.horizon)
        self.firewall_worker = FirewallWorker(self.manager, self._events_horizon)
        self.pipeline.listener = self.firewall_worker.wake
        for worker in self.reading.workers:
            worker.pipeline = self.pipeline
            worker.start()
        self.firewall_worker.start()
        self.audit_worker = AuditWorker(self.config.audit, clock=self._clock)
        self.audit_worker.start()
        self.metrics_server = self._serve_metrics(self.config)
        sources = ", ".join(w.source.name for w in self.reading.workers) or "no logs"
        log.info("running: firewall %s, %d rules, reading %s (%d kept events replayed)",
                 self.manager.firewall.name, len(self.rules), sources, replayed)  # fmt: skip
        self.notifier.ready(self._status_line())

    def run(self) -> int:
        """Start, then serve signals until SIGTERM/SIGINT; the exit code."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self._stop.set())
        signal.signal(signal.SIGHUP, lambda *_: self._reload.set())
        self.start()
        ping = self.notifier.watchdog_interval or 5.0
        next_status = 0.0
        while not self._stop.is_set():
            self._stop.wait(min(ping, 1.0))
            if self._reload.is_set():
                self._reload.clear()
                self.reload()
            if self.healthy():
                self.notifier.watchdog()
            if time.monotonic() >= next_status:
                self.notifier.status(self._status_line())
                next_status = time.monotonic() + 10.0
        self.stop()
        return 0

    def healthy(self) -> bool:
        """Every worker looped recently (a hung one starves the systemd watchdog)."""
        now = time.monotonic()
        workers = [
            *(self.reading.workers if self.reading else ()),
            self.firewall_worker,
            self.audit_worker,
        ]
        return all(now - w.heartbeat < STALL_SECONDS for w in workers if w is not None)

    def stop(self) -> None:
        """Stop reading (positions committed), flush pending bans, close everything."""
        self.notifier.stopping()
        for worker in self.reading.workers if self.reading else ():
            worker.stop()
        for worker in self.reading.workers if self.reading else ():
            worker.join(timeout=30)
            worker.source.close()
        if self.firewall_worker is not None:
            self.firewall_worker.stop()
            self.firewall_worker.join(timeout=30)
        if self.audit_worker is not None:
            self.audit_worker.stop()
        if self.metrics_server is not None:
            self.metrics_server.close()
        self.manager.firewall.close()
        self.state.close()
        log.info("stopped")

    def reload(self) -> bool:
        """SIGHUP: build everything from the new config; swap it in only if all is valid."""
        self.notifier.reloading()
        try:
            config = load_config(self.config_path)
            rules = load_rules()
            web = load_web_config(config.metrics.web_config)
            reading = self._reading(config, rules)
            manager = self._manager(config) if config.firewall != self.config.firewall else None
        except Exception as exc:  # InputError, SourceError, a backend that will not open
            self.status.reload_failures += 1
            log.error("reload refused, the running config stays: %s", exc)
            self.notifier.ready(self._status_line())
            return False
        old = self.reading
        for worker in old.workers if old else ():
            worker.stop()
        for worker in old.workers if old else ():
            worker.join(timeout=30)
            worker.source.close()
        if manager is not None:  # a new firewall backend: move the bans over
            self.manager.firewall.remove()
            self.manager = manager
            self.manager.sync("start")
            self.firewall_worker.manager = manager
        self.manager.jails = reading.jail_map
        self.manager.allowlist = reading.allowlist
        self.pipeline.jails = reading.jails
        self.pipeline.expect(reading.rule_ids)
        self.pipeline.replay(self._clock() - reading.horizon)
        for worker in reading.workers:
            worker.pipeline = self.pipeline
            worker.start()
        self._reload_metrics(config, web)
        self.config, self.rules, self.reading = config, rules, reading
        self.audit_worker.reconfigure(config.audit)
        self.status.reloads += 1
        log.info("reloaded %s", config.file or "the default config")
        self.notifier.ready(self._status_line())
        return True

    # -- building -----------------------------------------------------------------------

    def _manager(self, config: AgentConfig) -> BanManager:
        name, warning = choose_backend(config.firewall.backend)
        if warning:
            log.warning("%s", warning.upper())
        firewall = open_firewall(name, config.firewall.options.get(name, {}), config.state_dir)
        jail_config = config.jail_config()
        allowlist = Allowlist((*config.allowlist, *jail_config.allowlist))
        return BanManager(self.state, firewall, allowlist, actor="daemon", clock=self._clock,
                          jails={jail.name: jail for jail in jail_config.jails})  # fmt: skip

    def _reading(self, config: AgentConfig, rules: list[Rule]) -> Reading:
        jail_config = config.jail_config()
        allow = (*config.allowlist, *jail_config.allowlist)
        jails = Jails(jail_config.jails, clock=self._clock, allowlist=allow,
                      evidence=jail_config.evidence)  # fmt: skip
        sources = config.sources if config.sources is not None else discover_sources()
        workers = []
        for source_config in sources:
            source = self._open_source(source_config)
            detector = self._detector(source_config, rules)
            workers.append(SourceWorker(source, source_config.kind, detector, None))
        windows = [jail.findtime for jail in jail_config.jails]
        horizon = max([*windows, jail_config.evidence.findtime])
        kinds = {source.kind for source in sources}
        rule_ids = sorted(rule.id for rule in rules if rule.kind in kinds)
        return Reading(workers, jails, {j.name: j for j in jail_config.jails},
                       Allowlist(allow), horizon, rule_ids)  # fmt: skip

    def _open_source(self, source: SourceConfig) -> LogSource:
        if source.journal_unit is not None:
            return JournalSource([source.journal_unit], self.state, source.journal_directory,
                                 name=source.name)  # fmt: skip
        return FileSource(source.path, self.state, name=source.name)

    def _detector(self, source: SourceConfig, rules: list[Rule]) -> Detector:
        options = source.options
        kind_rules = [rule for rule in rules if rule.kind == source.kind]
        return Detector(
            kind_rules,
            level=options.get("level", "normal"),
            access_log_format=access_log_format(options.get("access_log_format", "combined")),
            trusted_proxies=tuple(options.get("trusted_proxies", ())),
            postgres_prefix=options.get("pg_prefix") or DEBIAN_PG_PREFIX,
            postgres_format=options.get("pg_format", "stderr"),
            tz=ZoneInfo(options["timezone"]) if "timezone" in options else None,
            clock=self._clock,
        )

    def _serve_metrics(self, config: AgentConfig) -> MetricsServer:
        server = serve_metrics(registry_for(self), config.metrics.listen, config.metrics.web_config)
        log.info("metrics on %s", server.url)
        return server

    def _reload_metrics(self, config: AgentConfig, web: WebConfig) -> None:
        server = self.metrics_server
        if server is not None and config.metrics.listen == self.config.metrics.listen:
            server.apply(web)
            return
        if server is not None:
            server.close()
        self.metrics_server = self._serve_metrics(config)

    def _events_horizon(self) -> float:
        return self._clock() - (self.reading.horizon if self.reading else 0.0)

    def _status_line(self) -> str:
        with self.state.reading() as conn:
            active = len(store.active(conn))
            pending = store.pending_count(conn)
        sources = len(self.reading.workers) if self.reading else 0
        text = f"{sources} logs, {active} bans active"
        return text + (f", {pending} pending" if pending else "")

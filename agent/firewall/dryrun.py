"""dry-run backend: records what the firewall would hold and changes nothing.

For trying jails and thresholds on a live host: every change is logged at INFO, and the
would-be content is kept in ``dry-run-firewall.json`` in the state directory, so ``lappguard
bans`` in one process and the daemon in another see the same thing. Writes go to a
temporary file renamed over the old one (a reader never sees half a file), under an
exclusive lock on the state directory (two writers never lose each other's change).
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agent.firewall.base import Entry, Firewall, FirewallError, Network

FILE_NAME = "dry-run-firewall.json"
#: Networks named in one log line before "and N more".
LOGGED = 10

log = logging.getLogger(__name__)


class DryRunFirewall(Firewall):
    """A firewall that exists only as a JSON file: network -> expiry (epoch s, or null)."""

    name = "dry-run"
    options: Mapping[str, tuple[type, Any]] = {}

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def from_options(cls, options: Mapping[str, Any], state_dir: Path) -> DryRunFirewall:
        return cls(state_dir / FILE_NAME)

    def ban(self, entries: Sequence[Entry], now: float) -> None:
        with self._changing() as held:
            held.update((str(entry.network), entry.expires) for entry in entries)
        log.info("dry-run: would ban %s", _names(entry.network for entry in entries))

    def unban(self, networks: Sequence[Network]) -> None:
        with self._changing() as held:
            for network in networks:
                held.pop(str(network), None)
        log.info("dry-run: would unban %s", _names(networks))

    def sync(self, entries: Sequence[Entry], now: float) -> None:
        with self._changing() as held:
            held.clear()
            held.update((str(entry.network), entry.expires) for entry in entries)
        log.info("dry-run: would hold exactly %d networks", len(entries))

    def listed(self) -> set[Network]:
        now = time.time()
        return {
            ipaddress.ip_network(network)
            for network, expires in self._read().items()
            if expires is None or expires > now
        }

    def intact(self) -> bool:
        return self.path.exists()

    def remove(self) -> None:
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            raise FirewallError(f"dry-run: cannot remove {self.path}: {exc.strerror}") from exc
        log.info("dry-run: would remove everything of ours")

    def _read(self) -> dict[str, float | None]:
        try:
            with open(self.path, encoding="utf-8") as f:
                return json.load(f)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise FirewallError(f"dry-run: cannot read {self.path}: {exc}") from exc

    @contextmanager
    def _changing(self) -> Iterator[dict[str, float | None]]:
        """The held networks to change in place, written back atomically when the block ends."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            directory = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise FirewallError(f"dry-run: cannot use {self.path.parent}: {exc.strerror}") from exc
        try:
            fcntl.flock(directory, fcntl.LOCK_EX)
            held = self._read()
            yield held
            temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            with open(temporary, "w", encoding="utf-8") as f:
                json.dump(held, f, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, self.path)
        except OSError as exc:
            raise FirewallError(f"dry-run: cannot write {self.path}: {exc.strerror}") from exc
        finally:
            os.close(directory)  # closing drops the lock


def _names(networks: Iterable[Network]) -> str:
    """A log-sized list of networks."""
    names = [str(network) for network in networks]
    shown = ", ".join(names[:LOGGED])
    return shown if len(names) <= LOGGED else f"{shown} and {len(names) - LOGGED} more"

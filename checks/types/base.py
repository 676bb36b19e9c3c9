"""The contract every check type fulfils: declared parameters in, one Verdict out."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from checks.hosts import CachedHost, PlannedCommand
from checks.params import Param
from checks.result import Verdict

T = TypeVar("T")


@dataclass
class CheckContext:
    """What a running check may use: the (cached) host, the policy's variables and the clock."""

    host: CachedHost
    variables: dict[str, Any] = field(default_factory=dict)
    clock: Callable[[], float] = time.time

    def memo(self, key: tuple, compute: Callable[[], T]) -> T:
        """Share a parsed fact (an sshd config, an Apache tree) between checks of one audit."""
        return self.host.memo(("fact", *key), compute)


class CheckType(ABC):
    """One family of checks. Subclasses declare ``name``, ``schema`` and implement ``run``.

    ``params`` arrive validated and converted (see ``checks.params``), so ``run`` never
    re-checks types. ``run`` may raise: the engine turns any exception into an error result.
    """

    name: ClassVar[str]
    schema: ClassVar[dict[str, Param]]
    #: True for checks that need a running system (sockets, processes, live probes):
    #: they are skipped, with a reason, when auditing a directory tree.
    needs_live_host: ClassVar[bool] = False

    def __init__(self, params: dict[str, Any]):
        self.params = params

    @abstractmethod
    def run(self, ctx: CheckContext) -> Verdict: ...

    def commands(self, ctx: CheckContext) -> Sequence[PlannedCommand]:
        """The commands ``run`` will run on a live host, argv as it passes them: a remote
        host runs them all in one exec beforehand (``Host.prefetch``). Only a hint: a
        command left out runs when asked, one listed and not asked costs only its time."""
        return ()

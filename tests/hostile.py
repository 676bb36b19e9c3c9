"""Helpers for hostile-input tests: a call that must finish, and CPU time of one call.

A regression must fail the test, not hang the suite: ``finishes`` runs the call in a thread
and fails after a generous limit (the pass criterion is only "did not hang"). ``cpu`` is the
CPU time of the calling thread, which other processes on a busy machine do not stretch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

T = TypeVar("T")
HANG = 60.0  # seconds: far above every case here, which takes well under one


def finishes(call: Callable[[], T], limit: float = HANG) -> T:
    """``call()``'s result (or exception), failing the test when it runs past ``limit``."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed back to the test below
            outcome["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(limit)
    if worker.is_alive():
        pytest.fail(f"still running after {limit:g} s: hangs on hostile input")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def cpu(call: Callable[[], object]) -> float:
    """CPU seconds of this thread spent in ``call()``."""
    start = time.thread_time()
    call()
    return time.thread_time() - start

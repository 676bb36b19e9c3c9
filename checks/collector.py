"""Python's cyclic garbage collector, run less often while a fleet is audited.

A fleet audit allocates millions of short-lived objects (parsed files, SFTP messages,
results) while many hosts' long-lived ones sit in memory. At the default threshold (a
collection every 700 net allocations) the collector ran about 20 times per host audited
and took some 20 ms of this machine's CPU per host, a tenth of the auditor's share
(bench/fleet.py). Reference counting frees nearly all of those objects anyway: the
collector only finds cycles, and they can wait a little longer.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

#: Net allocations between two collections of the youngest generation during an audit.
AUDIT_THRESHOLD = 10_000


@contextmanager
def fewer_collections(threshold: int = AUDIT_THRESHOLD) -> Iterator[None]:
    """Collect the youngest generation only every ``threshold`` allocations (never more
    often than before), as before afterwards. The threshold is the process's: one audit
    of a fleet at a time."""
    before = gc.get_threshold()
    gc.set_threshold(max(threshold, before[0]), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)

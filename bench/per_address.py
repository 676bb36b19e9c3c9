"""Decisions per address on low-and-slow access logs: attackers banned, visitors banned,
and requests served to each attacker before its ban.

    .venv/bin/python bench/per_address.py [--attackers 250] [--seeds 3]

The logs are made by tests/slowlog.py: the real access log of ../shared/data (10,000
lines, 1,753 visitors; the 2,500-line sample in tests/fixtures/web when it is absent) with
attackers that send 2 to 6 attack requests, 2 to 30 minutes apart, inside browsing
borrowed from a real visitor. Each log is scanned with the shipped jails and with the same
jails without the long window (all weights 0: the jails before per-address decisions).
Goals: at least 90% of the attacking addresses banned, at most 0.5% of the benign ones, a
median of at most 2 attack requests served before the ban.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # run from a checkout, installed or not

import slowlog  # noqa: E402
import webcorpus  # noqa: E402

from agent.bans import jails as jail_module  # noqa: E402

SHARED_LOG = ROOT.parent / "shared" / "data" / "apache_access" / "elastic_examples_apache_logs.log"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attackers", type=int, default=250)
    parser.add_argument("--seeds", type=int, default=3, help="logs generated (seeds 1..N)")
    args = parser.parse_args()
    source = SHARED_LOG if SHARED_LOG.exists() else webcorpus.WEB / "access_elastic.log"
    benign = source.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    print(f"benign traffic: {source.name} ({len(benign):,} lines)")
    print(f"{'jails':28} {'seed':>4} {'attackers banned':>18} {'benign banned':>15}"
          f" {'attacks served':>15} {'requests served':>16}")  # fmt: skip
    print(f"{'':28} {'':4} {'':>18} {'':>15} {'median  p90':>15} {'median  p90':>16}")
    with tempfile.TemporaryDirectory() as work:
        for seed in range(1, args.seeds + 1):
            log = slowlog.generate(benign, args.attackers, seed=seed)
            for label, unweighted in (("shipped", False), ("without the long window", True)):
                with _without_long_window() if unweighted else _as_shipped():
                    result = slowlog.score(log, Path(work) / "slow.log")
                _row(label, seed, result)
    print("\ngoals: attackers banned >= 90%, benign banned <= 0.5%, attack requests served"
          " median <= 2")  # fmt: skip


def _row(label: str, seed: int, result: slowlog.AddressScore) -> None:
    attackers = f"{result.attackers_banned}/{result.attackers} {result.attacker_rate:6.1%}"
    benign = f"{result.benign_banned}/{result.benign} {result.benign_rate:5.2%}"
    attacks = f"{result.served('attacks', 0.5):6g} {result.served('attacks', 0.9):4g}"
    requests = f"{result.served('requests', 0.5):6g} {result.served('requests', 0.9):4g}"
    print(f"{label:28} {seed:4} {attackers:>18} {benign:>15} {attacks:>15} {requests:>16}")


def _as_shipped():
    return mock.patch.object(slowlog, "load_jails", jail_module.load_jails)


def _without_long_window():
    """The shipped jails with every weight 0: only each jail's own window bans."""

    def load(*args, **kwargs):
        config = jail_module.load_jails(*args, **kwargs)
        silent = jail_module.Evidence(weights=dict.fromkeys(("certain", "likely", "weak"), 0.0))
        jails = tuple(replace(jail, weights={}) for jail in config.jails)
        return jail_module.JailConfig(jails, config.allowlist, silent)

    return mock.patch.object(slowlog, "load_jails", load)


if __name__ == "__main__":
    main()

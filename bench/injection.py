"""Recall and false positives of web-attack detection per corpus, and its throughput.

    .venv/bin/python bench/injection.py [--misses N]

Reads tests/fixtures/web (rebuild with bench/web_fixtures.py) and the hand-written
tests/fixtures/detect/{benign-free-text,scanner-probes}.tsv; the corpora, how lines are
built and what counts as caught are defined in tests/webcorpus.py, which the tests share.
Ends with each family's recall and the false positives of every benign set against the
goals (webcorpus.RECALL_GOAL, FALSE_POSITIVE_GOAL).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # run from a checkout, installed or not

import webcorpus  # noqa: E402

from agent.detect.http import AccessLogParser  # noqa: E402
from agent.detect.injection import clear_verdict_caches, inspect, libinj  # noqa: E402

PASSES = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--misses", type=int, default=0, help="print N misses/hits per set")
    args = parser.parse_args()
    print(
        f"libinjection {libinj.VERSION} (vendored C extension; MySQL double-quote context"
        " only for boolean/UNION/comment/statement fingerprints)\n"
    )
    _throughput()
    print(f"{'attack set':32} {'samples':>8} {'caught':>8} {'recall':>8}  other families")
    attacks = webcorpus.attack_scores()
    for score in attacks:
        accepted = webcorpus.ACCEPTED[score.name.split(":")[1]]
        others = {f: n for f, n in score.families.most_common() if f not in accepted}
        print(f"{score.name:32} {score.total:8} {score.hits:8} {score.rate:8.1%}  {others}")
        for sample in score.misses[: args.misses]:
            print(f"    missed: {sample.origin[:60]}  {_request_of(sample.line)[:100]}")
    print(f"\n{'benign set':32} {'samples':>8} {'flagged':>8} {'FP rate':>8}  families")
    benign = webcorpus.benign_scores()
    for score in benign:
        families = dict(score.families.most_common())
        print(f"{score.name:32} {score.total:8} {score.hits:8} {score.rate:8.2%}  {families}")
        for _, evidence in score.flagged[: args.misses]:
            print(f"    flagged: {evidence[:110]}")
    _goals(attacks, benign)


def _goals(attacks: list[webcorpus.Score], benign: list[webcorpus.Score]) -> None:
    """Each family's recall over the sets it is judged by, and the false positives of
    every benign set and of all together, against the goals."""
    recall_goal, fp_goal = webcorpus.RECALL_GOAL, webcorpus.FALSE_POSITIVE_GOAL
    totals = webcorpus.family_totals({score.name: score for score in attacks})
    print(
        f"\n{'family (goal: recall >= ' + format(recall_goal, '.0%') + ')':32}"
        f" {'samples':>8} {'caught':>8} {'recall':>8}  sets"
    )
    for family, (hits, total) in totals.items():
        mark = "ok" if hits >= recall_goal * total else "BELOW GOAL"
        sets = ", ".join(webcorpus.FAMILY_SETS[family])
        print(f"{family:32} {total:8} {hits:8} {hits / total:8.1%}  {mark:10} {sets}")
    hits, total = sum(h for h, _ in totals.values()), sum(t for _, t in totals.values())
    print(f"{'all families':32} {total:8} {hits:8} {hits / total:8.1%}")
    flagged, samples = sum(s.hits for s in benign), sum(s.total for s in benign)
    worst = max(benign, key=lambda score: score.rate)
    print(
        f"\nfalse positives: {flagged}/{samples} = {flagged / samples:.2%} on all benign sets"
        f" (goal <= {fp_goal:.1%}: {'ok' if flagged <= fp_goal * samples else 'ABOVE GOAL'});"
        f" worst set {worst.name} {worst.rate:.2%}"
        f" ({'ok' if worst.rate <= fp_goal else 'ABOVE GOAL'})"
    )


def _throughput() -> None:
    """Lines per second through parse + inspect: real (mostly benign) lines, then attack
    lines. The best of a few passes, each with the User-Agent/Referer verdict caches
    emptied first, so a busy machine's noise does not hide the figure."""
    benign = [s.line for s in webcorpus.benign_sets()["elastic-access-log"]]
    attacks = [s.line for s in webcorpus.payload_samples()]
    for name, lines in (("real access log", benign), ("attack lines", attacks)):
        rate = _best_rate(lines, inspect_too=True)
        print(f"{name:20} {rate:10,.0f} lines/s (parse + inspect, 1 core, best of {PASSES})")
    print(f"{'parse only':20} {_best_rate(benign, inspect_too=False):10,.0f} lines/s\n")


def _best_rate(lines: list[str], *, inspect_too: bool) -> float:
    best = float("inf")
    for _ in range(PASSES):
        clear_verdict_caches()
        parser = AccessLogParser()
        start = time.perf_counter()
        for line in lines:
            request = parser.parse(line)
            if inspect_too and request is not None:
                inspect(request)
        best = min(best, time.perf_counter() - start)
    return len(lines) / best


def _request_of(line: str) -> str:
    start = line.find('"') + 1
    return line[start : line.find('"', start)]


if __name__ == "__main__":
    main()

"""Wall time of `lappguard audit` of this host against `lynis audit system --quick`.

Prints the median of N runs of each (default 5), measured in the same run on the same host,
and the ratio. Both are run as subprocesses, start-up included, as a sysadmin would run them.

    python bench/audit.py [--runs 5] [--lynis-runs 5] [--lappguard PATH]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def time_command(argv: list[str], runs: int) -> tuple[float, list[float], int]:
    """Median wall time in seconds, every sample, and the last exit code."""
    samples = []
    code = 0
    for _ in range(runs):
        begin = time.perf_counter()
        done = subprocess.run(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        samples.append(time.perf_counter() - begin)
        code = done.returncode
    return statistics.median(samples), samples, code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--lynis-runs", type=int, default=5)
    default_cli = Path(sys.executable).with_name("lappguard")
    parser.add_argument(
        "--lappguard", default=str(default_cli) if default_cli.exists() else "lappguard"
    )
    args = parser.parse_args()

    lappguard = [args.lappguard, "audit", "--format", "json", "--output", os.devnull]
    median, samples, code = time_command(lappguard, args.runs)
    print(
        f"lappguard audit: median {median * 1000:.0f} ms over {args.runs} runs "
        f"(samples {', '.join(f'{s * 1000:.0f}' for s in samples)} ms; exit {code})"
    )

    lynis = shutil.which("lynis", path=os.environ.get("PATH", "") + ":/usr/sbin")
    if lynis is None:
        print("lynis: not installed (apt-get install lynis) - no ratio")
        return 0
    lynis_argv = [lynis, "audit", "system", "--quick", "--no-colors", "--no-log"]
    lynis_median, lynis_samples, _ = time_command(lynis_argv, args.lynis_runs)
    print(
        f"lynis audit system --quick: median {lynis_median * 1000:.0f} ms over {args.lynis_runs} "
        f"runs (samples {', '.join(f'{s * 1000:.0f}' for s in lynis_samples)} ms)"
    )
    print(f"ratio: lappguard is {lynis_median / median:.1f}x faster than lynis")
    return 0


if __name__ == "__main__":
    sys.exit(main())

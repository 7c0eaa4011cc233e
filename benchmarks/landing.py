"""Landing rate from JSONL: `python -m benchmarks.landing --signals 5000000`.

Generates a seeded workload with `tally synth` (cached under benchmarks/work/), then times
`tally ingest` of all its files into a fresh home, repeated `--repeat` times; prints the median,
min and max rate in signals per second (lines read, rejects and duplicates included).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

WORK = Path(__file__).resolve().parent / "work"


def workload(signals: int, days: int, seed: int = 7) -> Path:
    from pipelines.lib.synth import synth

    out = WORK / f"synth-{signals}-{days}-{seed}"
    if not (out / "done").exists():
        shutil.rmtree(out, ignore_errors=True)
        synth(out, signals=signals, days=days, customers=50, seed=seed)
        (out / "done").touch()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--signals", type=int, default=5_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    out = workload(args.signals, args.days)
    files = sorted(str(p) for p in (out / "signals").glob("*.jsonl"))
    size = sum(os.path.getsize(f) for f in files)
    rates = []
    for i in range(args.repeat):
        home = WORK / "landing-home"
        shutil.rmtree(home, ignore_errors=True)
        env = {**os.environ, "TALLY_HOME": str(home)}
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "ingest", *files],
                              env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t
        rates.append(args.signals / wall)
        print(f"run {i + 1}: {wall:.1f} s, {args.signals / wall:,.0f} signals/s "
              f"({size / wall / 1e6:.0f} MB/s) -> {proc.stdout.strip()}", flush=True)
    result = {
        "signals": args.signals, "bytes": size, "median": statistics.median(rates),
        "min": min(rates), "max": max(rates), "cores": os.cpu_count(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

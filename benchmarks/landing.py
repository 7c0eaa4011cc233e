"""Landing rate from JSONL alone: `./dev.sh bench-landing --signals 5000000` (or
`python -m benchmarks.landing`). Times `tally ingest` of a seeded `tally synth` workload's 30 daily
files into a fresh home, `--repeat` times; prints each run and the median, min and max rate in
signals per second (every line read counts: rejects and duplicates included).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics

from benchmarks.harness import WORK, tally, workload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    wl = workload(args.signals)
    days = wl.history
    lines = wl.count(days)
    size = sum(os.path.getsize(p) for p in days)
    rates = []
    for i in range(args.repeat):
        home = WORK / "landing-home"
        shutil.rmtree(home, ignore_errors=True)
        wall, rss, out = tally(home, "ingest", *days)
        rates.append(lines / wall)
        print(
            f"run {i + 1}: {lines:,} signals ({size / 1e9:.2f} GB) in {wall:.1f} s = "
            f"{lines / wall:,.0f} signals/s, peak RSS {rss / 1e9:.2f} GB -> {out.strip()}",
            flush=True,
        )
    print(
        json.dumps(
            {
                "signals": lines,
                "bytes": size,
                "median": round(statistics.median(rates)),
                "min": round(min(rates)),
                "max": round(max(rates)),
                "cores": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()

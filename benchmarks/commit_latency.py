"""Iceberg commit latency of landing: `python -m benchmarks.commit_latency [--batches 60]`.

Lands `--batches` batches of 10 signals into a fresh lake (embedded, or the shared deployment when
TALLY_CATALOG_URI / TALLY_WAREHOUSE_URI are set) and prints the median and 90th percentile of the
Iceberg table commit alone and of the whole landing (index, file, commit), in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from pipelines.landing.ingest import ingest_signals
from pipelines.landing.lake import Lake


def _batch(b: int) -> list[dict]:
    return [
        {
            "eventName": "e",
            "customer": {"externalCustomerId": "c"},
            "attribution": {"externalProductId": "p"},
            "timestamp": "2026-11-03T01:00:00Z",
            "data": {"i": i},
            "idempotencyKey": f"{b}-{i}",
        }
        for i in range(10)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=60)
    args = parser.parse_args()
    lake = Lake(Path(tempfile.mkdtemp(prefix="tally-commit-")) / "lake")
    commits: list[float] = []
    commit = Lake._commit

    def timed(self, *a, **k):
        t = time.perf_counter()
        commit(self, *a, **k)
        commits.append(time.perf_counter() - t)

    Lake._commit = timed  # type: ignore[method-assign]
    ingest_signals(lake, _batch(-1))  # creates the tables
    commits.clear()
    lands = []
    for b in range(args.batches):
        t = time.perf_counter()
        ingest_signals(lake, _batch(b))
        lands.append(time.perf_counter() - t)

    def q(xs: list[float]) -> list[int]:
        return [round(statistics.median(xs) * 1000), round(sorted(xs)[int(len(xs) * 0.9)] * 1000)]

    mode = "embedded" if lake.storage.embedded else "shared"
    print(
        json.dumps(
            {"mode": mode, "commit_ms_median_p90": q(commits), "landing_ms_median_p90": q(lands)}
        )
    )


if __name__ == "__main__":
    main()

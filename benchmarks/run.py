"""The benchmark harness: `./dev.sh bench --size 1m` (sizes: smoke, 1m, 10m, 30m), or
`./dev.sh bench --scaling 1m,10m,30m` for figure 3 (`benchmarks/scaling.py`).

For one seeded `tally synth` workload of N signals over 30 days (+ day 31, held out), each repeat
runs the sections in `SECTIONS`, in order, and each section records its figures (numbered as in
benchmarks/README.md) on the `Bench`:
1. landing: `tally ingest` of the 30 daily files into a fresh home (signals/s), checked complete
   (every line landed or rejected);
2. the full run: `tally run` over everything (wall, peak RSS), its ratio to the JSON floor (DuckDB
   scanning the same landed files while extracting one JSON key per signal), and the fixed
   overhead (a `tally run` that finds nothing to do);
5. breakdowns by a hot key and by an arbitrary data key (warm);
6. peers (`benchmarks/peers.py`): the same pricing and per-customer/day totals by ClickHouse
   (chdb), Polars and plain Python on the same files, checked equal to Tally's;
4. incremental cost (`benchmarks/incremental.py`): the run that adds day 31 to homes holding 30
   days of history and (`--histories`) 0, 1 and 10.
7. HTTP ingest (`benchmarks/http.py`): `tally serve` fed pre-serialized bodies and by the SDK.
Each figure is the median of `--repeat` runs with min and max. Results go to stdout as a table and
to `<results>/<size>.json`, `.md` and `.svg` (`benchmarks/report.py`), with machine information.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from benchmarks import http, incremental, peers, report, scaling
from benchmarks.harness import (
    DAYS,
    HISTORIES,
    RESULTS,
    SIZES,
    WORK,
    Bench,
    Section,
    machine,
    prepare_home,
    tally,
    workload,
)


def lake_counts(home: Path) -> tuple[int, int, list[str]]:
    """(accepted rows landed, duplicates included; rejected rows; the signal files) of `home`."""
    from pipelines.landing.lake import Lake
    from pipelines.landing.schema import REJECTS

    lake = Lake(home / "lake")
    files = lake.files()
    rejected = sum(f.rows for f in lake.files(kind=REJECTS))
    return sum(f.rows for f in files), rejected, [str(f.path) for f in files]


def json_floor(files: list[str]) -> float:
    """DuckDB scanning the landed files while extracting one JSON key from every signal."""
    from pipelines.core.sql import connect

    con = connect()
    t = time.perf_counter()
    con.execute("SELECT sum(length(data->>'$.quantity')) FROM read_parquet($f)", {"f": files})
    con.fetchall()
    return time.perf_counter() - t


def land_and_run(bench: Bench) -> None:
    """Figures 1 and 2: land the 30 days in a fresh home, then the full run and a run with
    nothing to do."""
    wl, home = bench.workload, bench.home
    prepare_home(home, wl)
    lines = wl.count(wl.history)
    wall, _, _ = tally(home, "ingest", *wl.history)
    bench.add("landing", 1, "landing rate (JSONL)", "signals/s", lines / wall)
    landed, rejected, files = lake_counts(home)
    bench.check(
        "landing", landed + rejected == lines, lines=lines, landed=landed, rejected=rejected
    )
    floor = json_floor(files)
    run, rss, _ = tally(home, "run")
    noop, _, _ = tally(home, "run")
    bench.add("floor", 2, "JSON floor (1 key, all signals)", "s", floor)
    bench.add("run", 2, f"full run, {DAYS} days", "s", run)
    bench.add(
        "ratio", 2, "full run / JSON floor (fixed overhead subtracted)", "x", (run - noop) / floor
    )
    bench.add("rss", 2, "full run peak RSS", "GB", rss / 1e9)
    bench.add("noop", 2, "run with nothing to do (fixed overhead)", "s", noop)


def breakdowns(bench: Bench) -> None:
    """Figure 5: a breakdown by a hot key and by an arbitrary data key (best of 3, warm)."""
    from pipelines.warehouse.analytics import breakdown

    for key, name, label in (
        ("hot", "team", "a hot key"),
        ("arbitrary", "$.model", "an arbitrary key"),
    ):
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            breakdown(bench.home / "warehouse.duckdb", [name])
            best = min(best, time.perf_counter() - t)
        bench.add(key, 5, f"breakdown by {label} ({name})", "s", best)
    bench.add(
        "arb_ratio",
        5,
        "arbitrary-key breakdown / JSON floor",
        "x",
        bench.last("arbitrary") / bench.last("floor"),
    )


def http_ingest(bench: Bench) -> None:
    """Figure 7: `tally serve` on homes of its own, fed pre-serialized bodies and by the SDK."""
    signals = min(sum(bench.workload.lines.values()), 200_000)
    rates = http.measure(signals, sdk_signals=min(signals, 50_000))
    bench.add(
        "http_raw", 7, "HTTP ingest, pre-serialized bodies (4 clients)", "signals/s", rates["raw"]
    )
    bench.add("http_sdk", 7, "HTTP ingest, paid-python SDK (4 clients)", "signals/s", rates["sdk"])


# Each repeat runs these in order. Peers read the main home as the full run left it, so they come
# before `incremental`, which lands day 31 in it.
SECTIONS: tuple[Section, ...] = (
    land_and_run,
    breakdowns,
    peers.measure,
    incremental.measure,
    http_ingest,
)


def measure(size: str, repeat: int, work: Path, histories: tuple[int, ...] = HISTORIES) -> dict:
    """Run every section `repeat` times on the `size` workload; the result, ready to write."""
    bench = Bench(size, workload(SIZES[size], work), work, histories)
    for i in range(1, repeat + 1):
        shutil.rmtree(bench.dir, ignore_errors=True)  # the previous repeat's homes
        bench.repeat = i
        for section in SECTIONS:
            section(bench)
        done = ", ".join(f"{k} {f.values[-1]:,.2f}" for k, f in bench.figures.items())
        print(f"repeat {i}/{repeat}: {done}", flush=True)
    shutil.rmtree(bench.dir, ignore_errors=True)
    return {
        "size": size,
        "signals": SIZES[size],
        "landed_lines": bench.workload.count(bench.workload.history),
        "machine": machine(),
        "figures": sorted((f.row(k) for k, f in bench.figures.items()), key=lambda r: r["fig"]),
        "checks": bench.checks,
        "info": bench.info,
    }


def _histories(text: str) -> tuple[int, ...]:
    days = tuple(int(d) for d in text.split(",") if d)
    if any(not 0 <= d < DAYS for d in days):
        raise argparse.ArgumentTypeError(f"days of history must be within 0..{DAYS - 1}")
    return days


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=list(SIZES), default="1m")
    parser.add_argument("--scaling", metavar="SIZES", help="e.g. 1m,10m,30m: figure 3 instead")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--histories",
        type=_histories,
        default=HISTORIES,
        help="figure 4: days of history (< 30) to add day 31 to, besides 30; default 0,1,10",
    )
    parser.add_argument("--work", type=Path, default=WORK, help="workloads and homes")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.scaling:
        sizes = args.scaling.split(",")
        unknown = [s for s in sizes if s not in SIZES]
        if unknown:
            parser.error(f"unknown sizes {unknown}; choose from {', '.join(SIZES)}")
        result = scaling.measure(sizes, args.repeat, args.work)
        report.write_scaling(result, args.results)
    else:
        result = measure(args.size, args.repeat, args.work, args.histories)
        report.write(result, args.results)
    return result


if __name__ == "__main__":
    main()

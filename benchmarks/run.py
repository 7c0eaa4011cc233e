"""The benchmark harness: `./dev.sh bench --size 1m` (sizes: smoke, 1m, 10m, 30m).

For one seeded `tally synth` workload of N signals over 30 days (+1 held-out day) it measures:
- landing: `tally ingest` of the 30 daily files into a fresh home (signals/s);
- the JSON floor: DuckDB scanning the same landed files while extracting one JSON key per signal;
- the full run: `tally run` over everything (wall, peak RSS), its ratio to the JSON floor, and the
  fixed orchestration overhead (a `tally run` that finds nothing to do);
- incremental cost: landing day 31 and running, against a fresh home that processes day 31 alone.
Each figure is the median of `--repeat` runs with min and max. Results go to stdout as a table and
to `benchmarks/results/<size>.json` and `.md` with machine information.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent
WORK = ROOT / "work"
RESULTS = ROOT / "results"
SIZES = {"smoke": 20_000, "1m": 1_000_000, "10m": 10_000_000, "30m": 30_000_000}
DAYS = 30


@dataclass
class Figure:
    name: str
    unit: str
    values: list[float] = field(default_factory=list)

    def row(self) -> dict:
        return {
            "figure": self.name,
            "unit": self.unit,
            "median": statistics.median(self.values),
            "min": min(self.values),
            "max": max(self.values),
            "runs": len(self.values),
        }


def workload(signals: int, seed: int = 7) -> Path:
    """DAYS + 1 days of signals; the last day is held out for the incremental figure."""
    from pipelines.lib.synth import synth

    out = WORK / f"synth-{signals}-{DAYS + 1}-{seed}"
    if not (out / "done").exists():
        shutil.rmtree(out, ignore_errors=True)
        synth(
            out,
            signals=signals * (DAYS + 1) // DAYS,
            days=DAYS + 1,
            customers=max(6, min(200, signals // 50_000)),
            seed=seed,
        )
        (out / "done").touch()
    return out


def tally(home: Path, *args: str) -> tuple[float, int, str]:
    """(wall seconds, peak RSS bytes of the command, stdout) of one `tally` command."""
    env = {**os.environ, "TALLY_HOME": str(home)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args], env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode not in (0, 1):
        raise SystemExit(f"tally {args[0]} failed:\n{proc.stderr[-2000:]}")
    return wall, max(peak, before) * 1024, proc.stdout


def _count_lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 24), b""))


def json_floor(home: Path) -> float:
    """DuckDB scanning the landed files while extracting one JSON key from every signal."""
    from pipelines.lib.lake import Lake
    from pipelines.lib.sql import connect

    files = [str(f.path) for f in Lake(home / "lake").files()]
    con = connect()
    t = time.perf_counter()
    con.execute("SELECT sum(length(data->>'$.quantity')) FROM read_parquet($f)", {"f": files})
    con.fetchall()
    return time.perf_counter() - t


def breakdown_times(home: Path) -> tuple[float, float]:
    """Seconds for a breakdown by a hot key and by an arbitrary data key (best of 3, warm)."""
    from pipelines.lib.analytics import breakdown

    times = []
    for key in ("team", "$.model"):
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            breakdown(home / "warehouse.duckdb", [key])
            best = min(best, time.perf_counter() - t)
        times.append(best)
    return times[0], times[1]


def prepare_home(home: Path, wl: Path) -> None:
    shutil.rmtree(home, ignore_errors=True)
    (home / "config").mkdir(parents=True)
    shutil.copy(wl / "config" / "company.yaml", home / "config" / "company.yaml")


def machine() -> dict:
    import dagster
    import duckdb
    import pyarrow

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(mem / 2**30, 1),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "dagster": dagster.__version__,
        "pyarrow": pyarrow.__version__,
        "platform": platform.platform(),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="1m")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    n = SIZES[args.size]
    wl = workload(n)
    days = sorted((wl / "signals").glob("day-*.jsonl"))
    history, last = [str(p) for p in days[:-1]], str(days[-1])
    figures = {
        k: Figure(*v)
        for k, v in {
            "landing": ("landing rate (JSONL)", "signals/s"),
            "floor": ("JSON floor (1 key, all signals)", "s"),
            "run": (f"full run, {DAYS} days", "s"),
            "ratio": ("full run / JSON floor", "x"),
            "rss": ("full run peak RSS", "GB"),
            "noop": ("run with nothing to do (fixed overhead)", "s"),
            "increment": ("day 31 on top of 30 days", "s"),
            "alone": ("day 31 alone", "s"),
            "inc_ratio": ("day 31 incremental / alone", "x"),
            "hot": ("breakdown by a hot key (team)", "s"),
            "arbitrary": ("breakdown by an arbitrary key ($.model)", "s"),
            "arb_ratio": ("arbitrary-key breakdown / JSON floor", "x"),
        }.items()
    }
    home, solo = WORK / "home", WORK / "home-day31"
    lines = sum(_count_lines(Path(p)) for p in history)
    for i in range(args.repeat):
        prepare_home(home, wl)
        wall, _, _ = tally(home, "ingest", *history)
        landed = lines
        figures["landing"].values.append(landed / wall)
        floor = json_floor(home)
        run, rss, _ = tally(home, "run")
        noop, _, _ = tally(home, "run")
        figures["floor"].values.append(floor)
        figures["run"].values.append(run)
        figures["ratio"].values.append((run - noop) / floor)
        figures["rss"].values.append(rss / 1e9)
        figures["noop"].values.append(noop)
        hot, arbitrary = breakdown_times(home)
        figures["hot"].values.append(hot)
        figures["arbitrary"].values.append(arbitrary)
        figures["arb_ratio"].values.append(arbitrary / floor)
        tally(home, "ingest", last)
        inc, _, _ = tally(home, "run")
        prepare_home(solo, wl)
        tally(solo, "ingest", last)
        alone, _, _ = tally(solo, "run")
        figures["increment"].values.append(inc - noop)
        figures["alone"].values.append(alone - noop)
        figures["inc_ratio"].values.append((inc - noop) / (alone - noop))
        print(
            f"repeat {i + 1}/{args.repeat}: landing {landed / wall:,.0f}/s, run {run:.1f} s, "
            f"floor {floor:.2f} s, noop {noop:.1f} s, day31 {inc:.1f} s vs alone {alone:.1f} s",
            flush=True,
        )
    result = {
        "size": args.size,
        "signals": n,
        "machine": machine(),
        "figures": [f.row() for f in figures.values()],
    }
    write(result)
    return result


def write(result: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    name = result["size"]
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2))
    lines = [
        f"# Tally benchmark: {result['signals']:,} signals ({name})",
        "",
        "machine: " + ", ".join(f"{k} {v}" for k, v in result["machine"].items()),
        "",
        "| figure | median | min | max | unit | runs |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for f in result["figures"]:
        lines.append(
            f"| {f['figure']} | {f['median']:,.2f} | {f['min']:,.2f} | {f['max']:,.2f} "
            f"| {f['unit']} | {f['runs']} |"
        )
    table = "\n".join(lines)
    (RESULTS / f"{name}.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()

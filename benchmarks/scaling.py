"""Figure 3: the full run at several sizes (`./dev.sh bench --scaling 1m,10m,30m`).

For each size, each repeat lands the 30 days of its workload in a fresh home (untimed here; the
landing rate is figure 1) and times `tally run` (wall, peak RSS) and then a run with nothing to do
(the fixed overhead). Growth is linear when the seconds per million signals, fixed overhead
subtracted, stay within ±`TOLERANCE` of the smallest size's.
"""

from __future__ import annotations

import shutil
import statistics
from pathlib import Path

from benchmarks.harness import SIZES, machine, prepare_home, tally, workload

TOLERANCE = 0.25


def _stats(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def run_size(size: str, repeat: int, work: Path) -> dict:
    """One size: the full run's time and peak RSS and the fixed overhead, over the repeats."""
    wl = workload(SIZES[size], work)
    runs, rss, noops = [], [], []
    for i in range(1, repeat + 1):
        home = work / f"scaling-{size}-{i}" / "home"
        prepare_home(home, wl)
        tally(home, "ingest", *wl.history)
        wall, peak, _ = tally(home, "run")
        noop, _, _ = tally(home, "run")
        runs.append(wall)
        rss.append(peak / 1e9)
        noops.append(noop)
        shutil.rmtree(home.parent)
        print(f"{size} repeat {i}/{repeat}: run {wall:.1f} s, {peak / 1e9:.2f} GB", flush=True)
    signals = wl.count(wl.history)
    return {
        "size": size,
        "signals": signals,
        "run": _stats(runs),
        "rss_gb": _stats(rss),
        "noop": _stats(noops),
        "per_million": (statistics.median(runs) - statistics.median(noops)) / (signals / 1e6),
    }


def verdict(rows: list[dict]) -> dict:
    """The rows with `growth` (per-million cost relative to the first size) and the verdict."""
    base = rows[0]["per_million"]
    rows = [{**r, "growth": r["per_million"] / base} for r in rows]
    linear = all(abs(r["growth"] - 1) <= TOLERANCE for r in rows)
    return {"sizes": rows, "linear": linear, "tolerance": TOLERANCE}


def measure(sizes: list[str], repeat: int, work: Path) -> dict:
    rows = [run_size(size, repeat, work) for size in sorted(sizes, key=SIZES.get)]
    return {"machine": machine(), **verdict(rows)}

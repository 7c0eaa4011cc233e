"""Figure 4: the cost of the run that adds one day, by the length of the history it lands on.

The day added is always the workload's day 31 (the same file, late signals for days 26-30
included), so only the history differs: all 30 days (the main home as the full run left it), and,
in homes of their own (landed and run first, untimed, in parallel), the last `Bench.histories`
days: by default 1 and 10, and 0 (day 31 alone). Each figure is the wall time of the run after
day 31 lands, minus the fixed overhead of a run with nothing to do (figure 2's); the ratios compare
10 and 30 days of history with 1 day, and 30 days with none. If adding a day costs only that day,
the ratios stay near 1.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.harness import DAYS, Bench, Workload, prepare_home, tally


def history_home(home: Path, wl: Workload, days: int) -> None:
    """A home holding (and having run) the last `days` days before day 31."""
    prepare_home(home, wl)
    if days:
        tally(home, "ingest", *wl.history[-days:])
        tally(home, "run")


def measure(bench: Bench) -> None:
    wl, noop = bench.workload, bench.last("noop")
    homes = {days: bench.dir / f"home-history-{days}" for days in bench.histories}
    with ThreadPoolExecutor(max(1, len(homes))) as pool:
        list(pool.map(lambda days: history_home(homes[days], wl, days), homes))
    homes[DAYS] = bench.home
    for days, home in homes.items():
        tally(home, "ingest", wl.added)
        wall, _, _ = tally(home, "run")
        name = "day 31 alone (no history)" if days == 0 else f"run adding day 31 to {_days(days)}"
        bench.add(f"increment_{days}", 4, name, "s", wall - noop)
    for days, base in [(d, 1) for d in homes if d > 1] + [(DAYS, 0)]:
        if base in homes:
            bench.add(
                f"increment_ratio_{days}_{base}",
                4,
                f"adding a day: {_days(days)} of history / {_days(base) if base else 'alone'}",
                "x",
                bench.last(f"increment_{days}") / bench.last(f"increment_{base}"),
            )
    bench.info["incremental"] = {
        "added_file": Path(wl.added).name,
        "added_signals": wl.count([wl.added]),
        "histories": sorted(homes),
    }


def _days(n: int) -> str:
    return f"{n} day" if n == 1 else f"{n} days"

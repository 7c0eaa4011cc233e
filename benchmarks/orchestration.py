"""Orchestration cost of `tally run`: wall time against the sum of its Dagster steps' compute.

    python -m benchmarks.orchestration --signals 2000000 [--baseline DIR]

One seeded workload of N signals over 31 days whose first grant starts 30 days before the first
signal (so the ledger spans 60 days of partitions) is landed once, its last day held out; then,
for this code and, with `--baseline DIR`, for another checkout of Tally (e.g.
`git worktree add /tmp/old <commit>`), in the same run and on copies of the same landed home:
- the full `tally run` (wall, and the sum of its steps' durations from Dagster's event log; the
  difference is the orchestration overhead: process start, imports, planning, run launch);
- a `tally run` that finds nothing to do (the fixed cost);
- the daily run: day 31 lands and the clock moves a day; `tally run` (wall, steps, overhead).
Each figure is the median of `--repeat` runs. Prints a table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from benchmarks.harness import WORK

START = date(2026, 10, 2)  # 30 days before the workload's first day (2026-11-01)


def prepare(signals: int, work: Path) -> Path:
    """A landed home (config + lake) for the workload; built once per size."""
    home = work / f"orchestration-{signals}" / "landed"
    if (home / "lake").exists() and (home.parent / "day31.jsonl").exists():
        return home
    shutil.rmtree(home.parent, ignore_errors=True)
    out = home.parent / "workload"
    run_cli(None, ["synth", "--out", str(out), "--signals", str(signals), "--days", "31"])
    (home / "config").mkdir(parents=True)
    text = (out / "config" / "company.yaml").read_text()
    customer = text.split("external_id: ", 2)[1].split()[0]
    text += (
        "\n# a grant 30 days older than the data: the ledger spans 60 days\n"
        f"  - {{id: grant_early, customer: {customer}, currency: credits, amount: 1000,"
        f" starts_at: '{START.isoformat()}T00:00:00Z'}}\n"
    )
    (home / "config" / "company.yaml").write_text(text)
    *files, last = sorted(str(p) for p in (out / "signals").glob("*.jsonl"))
    run_cli(None, ["ingest", *files, "--home", str(home)], ok=(0, 1))
    shutil.copy(last, home.parent / "day31.jsonl")
    return home


def run_cli(code: Path | None, args: list[str], ok=(0,), **env: str) -> float:
    """Wall seconds of `tally ARGS` from checkout `code` (None: this one)."""
    environ = {**os.environ, **env}
    environ.pop("DAGSTER_HOME", None)
    cwd = None
    if code is not None:
        environ["PYTHONPATH"] = str(code)
        cwd = code
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        env=environ,
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t
    if proc.returncode not in ok:
        raise RuntimeError(
            f"tally {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-2000:]}"
        )
    return wall


def settle(code: Path | None, home: Path) -> None:
    """Open the copied lake once, untimed: a copied home first re-registers its files (Iceberg
    metadata holds absolute paths), a one-off that a home in place never pays."""
    script = (
        "try:\n    from pipelines.landing.lake import Lake\n"
        "except ImportError:  # a checkout from before the stage packages\n"
        "    from pipelines.lib.lake import Lake\n"
        f"Lake({str(home / 'lake')!r})"
    )
    environ = {**os.environ, "PYTHONPATH": str(code)} if code is not None else None
    subprocess.run([sys.executable, "-c", script], env=environ, cwd=code, check=True)


def step_seconds(home: Path) -> float:
    """The sum of the durations of every successful step recorded in the home's Dagster."""
    import tempfile

    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    if not (home / "dagster").is_dir():
        raise FileNotFoundError(f"{home} has no Dagster directory: was it run?")
    with tempfile.TemporaryDirectory() as no_config:  # plain SQLite storage in <home>/dagster
        ref = InstanceRef.from_dir(str(home / "dagster"), config_dir=no_config)
        with dg.DagsterInstance.from_ref(ref) as instance:
            total = 0.0
            for record in instance.get_run_records():
                for entry in instance.all_logs(
                    record.dagster_run.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS
                ):
                    total += entry.dagster_event.event_specific_data.duration_ms / 1000
    return total


def measure(code: Path | None, landed: Path, work: Path, repeat: int) -> dict:
    full, steps, noop, daily, daily_steps = [], [], [], [], []
    for i in range(repeat):
        home = work / f"home-{'new' if code is None else 'baseline'}-{i}"
        shutil.rmtree(home, ignore_errors=True)
        shutil.copytree(landed, home)
        # Each code writes its own Dagster instance file (module paths differ between versions).
        (home / "dagster" / "dagster.yaml").unlink(missing_ok=True)
        settle(code, home)
        env = {"TALLY_HOME": str(home), "TALLY_NOW": "2026-12-01T06:00:00Z"}
        full.append(run_cli(code, ["run"], **env))
        steps.append(step_seconds(home))
        noop.append(run_cli(code, ["run"], **env))
        run_cli(code, ["ingest", str(landed.parent / "day31.jsonl")], ok=(0, 1), **env)
        env["TALLY_NOW"] = "2026-12-02T06:00:00Z"
        before = step_seconds(home)
        daily.append(run_cli(code, ["run"], **env))
        daily_steps.append(step_seconds(home) - before)
        shutil.rmtree(home, ignore_errors=True)
    run, step = statistics.median(full), statistics.median(steps)
    day, day_steps = statistics.median(daily), statistics.median(daily_steps)
    return {
        "run": run,
        "steps": step,
        "overhead": run - step,
        "noop": statistics.median(noop),
        "daily": day,
        "daily_overhead": day - day_steps,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--baseline", type=Path, help="another Tally checkout to compare with")
    parser.add_argument("--work", type=Path, default=WORK)
    args = parser.parse_args(argv)
    landed = prepare(args.signals, args.work)
    rows = [("this code", measure(None, landed, landed.parent, args.repeat))]
    if args.baseline:
        rows.append(
            (
                f"baseline {args.baseline}",
                measure(args.baseline, landed, landed.parent, args.repeat),
            )
        )
    print(f"{args.signals:,} signals over 30 days, ledger over 60 days (median of {args.repeat})")
    print(
        "| code | full run (s) | its steps (s) | its overhead (s) | nothing to do (s) "
        "| day 31 run (s) | its overhead (s) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in rows:
        print(
            f"| {name} | {r['run']:.1f} | {r['steps']:.1f} | {r['overhead']:.1f} "
            f"| {r['noop']:.1f} | {r['daily']:.1f} | {r['daily_overhead']:.1f} |"
        )


if __name__ == "__main__":
    main()

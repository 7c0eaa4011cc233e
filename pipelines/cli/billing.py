"""Landing and billing: tally ingest, verify, migrate, run and worker."""

from __future__ import annotations

import os
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from pipelines.cli.common import HomeOpt, app, err, fail, home_config, open_home, out, user_errors
from pipelines.core.home import Home


def billing_run(h: Home, through: str | None = None) -> bool:
    """Bring every billed day through `through` (default yesterday) up to date through the
    Dagster definitions, printing what each asset did."""
    from pipelines.billing import uptodate
    from pipelines.core.clock import now

    default = (now().date() - timedelta(days=1)).isoformat()
    if uptodate.holds(h, through or default):  # Dagster's last answer, and nothing changed
        out.print(f"everything is up to date through {through or default}")
        return True
    from pipelines.defs.billing import plan
    from pipelines.defs.partitions import DAILY

    config = home_config(h)
    today = DAILY.get_last_partition_key() or "-"
    if through is not None:
        try:
            date.fromisoformat(through)
        except ValueError:
            raise fail(f"--through {through!r} is not a date (YYYY-MM-DD)") from None
        if through > today:
            raise fail(f"--through {through} is after today ({today}, UTC): nothing to bill yet")
    days = plan.billed_days(config, through)
    if not days:
        out.print(f"nothing to bill: the first billed day is {DAILY.get_first_partition_key()}")
        return True
    _report_unbilled(h, days[0], days[-1])
    import dagster as dg

    instance = dg.DagsterInstance.get()
    with err.status("asking Dagster what is missing or unsynced"):
        work = plan.compute_work(instance, h, config, days)
    if work.empty:
        uptodate.record(h, through or default)
        out.print(f"everything is up to date through {days[-1]}")
        return True
    ok = True
    with err.status("billing run") as status:
        outcomes = plan.execute(
            work, lambda what: status.update(f"billing run: {what}"), instance=instance
        )
    for outcome in outcomes:
        for asset, partitions in outcome.materialized.items():
            parts = sorted(p for p in partitions if p)
            what = [f"{parts[0]}..{parts[-1]} ({len(parts)} day(s))"] if parts else ["published"]
            what += [f"{outcome.rows[asset]:,} rows"] if asset in outcome.rows else []
            out.print(f"{asset}: {', '.join(what)}", highlight=False)
        for problem in outcome.problems:
            ok = False
            err.print(f"[bold red]error:[/] {problem}", highlight=False, soft_wrap=True)
    if ok:
        out.print(f"done through {work.through}; warehouse at {h.warehouse}", highlight=False)
        if plan.compute_work(instance, h, config, days).empty:
            uptodate.record(h, through or default)  # the next `tally run` answers at once
    return ok


def _report_unbilled(h: Home, first: str, last: str) -> None:
    """Say how many landed signals lie outside the billed days, and why."""
    from pipelines.landing.lake import Lake

    files = Lake(h.lake).files()
    before = sum(f.rows for f in files if f.date < first)
    after = sum(f.rows for f in files if f.date > last)
    if before:
        err.print(
            f"note: {before:,} signal(s) dated before the first billed day {first} are not billed "
            "(set billing.start_date earlier in the configuration to bill them)",
            highlight=False,
            soft_wrap=True,
        )
    if after:
        err.print(
            f"note: {after:,} signal(s) dated after {last} wait for their day to end "
            "(or for tally run --through)",
            highlight=False,
            soft_wrap=True,
        )


@app.command()
def ingest(
    files: Annotated[
        list[Path], typer.Argument(help=".jsonl, .json or .parquet files of signals.")
    ],
    home: HomeOpt = None,
    workers: Annotated[int, typer.Option(help="Validation processes for large JSONL files.")] = 2,
) -> None:
    """Validate and land signal files; prints ingested / duplicates / failed and each bad record."""
    from pipelines.landing.ingest import IngestReport
    from pipelines.landing.lake import Lake
    from pipelines.landing.readers import ingest_files, worker_pool

    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise fail(f"no such file: {', '.join(missing)}")
    h = open_home(home)
    total_bytes = sum(f.stat().st_size for f in files)
    pool = worker_pool(workers) if total_bytes > 8 << 20 and workers > 1 else None
    lake = Lake(h.lake)
    total = IngestReport()

    def show_errors(errors: list[tuple[str, str]]) -> None:
        # One plain write per batch: printing a million rejects through rich took minutes.
        sys.stderr.write("".join(f"{location}: {reason}\n" for location, reason in errors))
        sys.stderr.flush()

    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    ]
    with (
        user_errors(),
        Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as progress,
    ):
        tasks: dict[Path, TaskID] = {}

        def step(f: Path, done: int) -> None:
            if f not in tasks:
                tasks[f] = progress.add_task(f.name, total=f.stat().st_size)
            progress.update(tasks[f], completed=done)

        reports = ingest_files(lake, files, on_errors=show_errors, pool=pool, progress=step)
        for report in reports:
            total.ingested += report.ingested
            total.duplicates += report.duplicates
            total.failed += report.failed
    if pool is not None:
        pool.shutdown()
    out.print(
        f"ingested {total.ingested:,}  duplicates {total.duplicates:,}  failed {total.failed:,}",
        highlight=False,
    )
    if total.failed:
        err.print(
            f"{total.failed:,} signal(s) rejected; kept with reasons in the lake's rejects "
            "table (the warehouse's rejected_signal view)",
            highlight=False,
        )
        raise typer.Exit(1)


@app.command()
def verify(
    home: HomeOpt = None,
    quick: Annotated[
        bool, typer.Option(help="Sizes only (and checksums of files modified since written).")
    ] = False,
) -> None:
    """Check every file of the lake and of the published engine outputs against the size the
    catalog records and the checksum taken when it was written; one line per damaged file."""
    from pipelines.landing.lake import Lake
    from pipelines.landing.schema import REJECTS, SIGNALS
    from pipelines.warehouse import outputs

    h = open_home(home)
    lake = Lake(h.lake)
    with err.status("verifying the lake and the published outputs"):
        files = lake.files(kind=SIGNALS) + lake.files(kind=REJECTS)
        problems = lake.verify(files, deep=not quick)
        count, more = outputs.verify(h, deep=not quick)
    problems += more
    total = len(files) + count
    for line in problems:
        err.print(f"[bold red]damaged:[/] {line}", highlight=False, soft_wrap=True)
    if problems:
        raise fail(f"{len(problems)} of {total:,} files damaged (restore them from a backup)", 1)
    how = "sizes" if quick else "sizes and checksums"
    out.print(f"verified {total:,} files ({how}): all intact", highlight=False)


@app.command()
def migrate(home: HomeOpt = None) -> None:
    """Move a lake of the earlier format (LMDB catalog) into the Iceberg tables, keeping every
    signal, sequence number, duplicate flag, reject and idempotency key; safe to run again."""
    from pipelines.landing.migrate import migrate as move

    h = open_home(home)
    moved = move(h.lake, say=lambda line: err.print(line, highlight=False))
    if not moved:
        out.print("nothing to migrate: the lake already uses the Iceberg tables")
        return
    out.print(
        f"migrated {moved['signals']:,} signals in {moved['files']:,} files and "
        f"{moved['keys']:,} idempotency keys into the Iceberg tables",
        highlight=False,
        soft_wrap=True,
    )


@app.command()
def run(
    home: HomeOpt = None,
    through: Annotated[
        str | None,
        typer.Option(help="Last day to bring up to date (YYYY-MM-DD; default: yesterday, UTC)."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="Run the steps in up to N processes on this machine (Dagster's multiprocess "
            "executor; default: in this process, or as TALLY_EXECUTOR says).",
        ),
    ] = None,
) -> None:
    """Ask Dagster what is missing or unsynced through yesterday and materialize exactly that."""
    from pipelines.billing.workers import EXECUTOR_ENV, WORKERS_ENV, executor_name

    if workers is not None:  # read when the definitions load, below
        os.environ[WORKERS_ENV] = str(workers)
        if os.environ.get(EXECUTOR_ENV, "in_process") in ("", "in_process"):
            os.environ[EXECUTOR_ENV] = "multiprocess"
    from pipelines.billing.shards import shard_count
    from pipelines.core.clock import now

    with user_errors():
        executor_name(), shard_count(), now()  # a bad setting is one line, before anything runs
    if not billing_run(open_home(home), through):
        raise typer.Exit(1)


@app.command()
def worker(
    home: HomeOpt = None,
    concurrency: Annotated[
        int, typer.Option(min=1, help="Steps this worker runs at once (child processes).")
    ] = 1,
    name: Annotated[str | None, typer.Option(help="Worker name (default: tally-PID@HOST).")] = None,
) -> None:
    """Run a Celery worker that executes billing-run steps queued on TALLY_CELERY_BROKER (the
    shared deployment; start one or more on any host that reaches the broker, the Dagster
    storage, the catalog and the bucket)."""
    from pipelines.billing.workers import worker_main

    open_home(home)
    with user_errors():
        worker_main(concurrency, name)

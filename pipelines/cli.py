"""The `tally` command: thin wrappers over `pipelines.lib`, with progress and one-line errors."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from pipelines.lib.home import Home, resolve_home

app = typer.Typer(
    help="Tally: credit metering for AI-agent signals (Paid-compatible).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

HomeOpt = Annotated[
    Path | None,
    typer.Option("--home", help="Data directory (default: $TALLY_HOME or ./data).", show_default=False),
]


class UserError(Exception):
    """A mistake the user can fix: printed as one line, exit code 2."""


def fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def _user_errors():
    from pipelines.lib.signals import IngestError

    try:
        yield
    except (UserError, IngestError) as exc:
        raise fail(str(exc)) from None


def _home(home: Path | None) -> Home:
    return resolve_home(home)


@app.command()
def ingest(
    files: Annotated[list[Path], typer.Argument(help=".jsonl, .json or .parquet files of signals.")],
    home: HomeOpt = None,
    workers: Annotated[int, typer.Option(help="Validation processes for large JSONL files.")] = 2,
) -> None:
    """Validate and land signal files; prints ingested / duplicates / failed and each bad record."""
    from pipelines.lib.lake import Lake
    from pipelines.lib.signals import IngestReport, ingest_file, worker_pool

    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise fail(f"no such file: {', '.join(missing)}")
    h = _home(home)
    total_bytes = sum(f.stat().st_size for f in files)
    pool = worker_pool(workers) if total_bytes > 8 << 20 and workers > 1 else None
    if pool is not None:
        pool.submit(int).result()  # start the workers before the catalog is opened (fork safety)
    lake = Lake(h.lake)
    total = IngestReport()

    def show_errors(errors: list[tuple[str, str]]) -> None:
        for location, reason in errors:
            err.print(f"{location}: {reason}", highlight=False, markup=False, soft_wrap=True)

    columns = [TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TimeRemainingColumn()]
    with _user_errors(), Progress(*columns, console=err, transient=True,
                                  disable=not err.is_terminal) as progress:
        for f in files:
            task = progress.add_task(f.name, total=f.stat().st_size)
            report = ingest_file(
                lake, f, on_errors=show_errors, pool=pool,
                progress=lambda done, task=task: progress.update(task, completed=done),
            )
            progress.update(task, completed=f.stat().st_size)
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
        err.print(f"{total.failed:,} signal(s) rejected; kept with reasons in {h.lake / 'rejects'}",
                  highlight=False)
        raise typer.Exit(1)


@app.command()
def synth(
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for config/ and signals/.")],
    signals: Annotated[int, typer.Option(help="Number of signals.")] = 20_000,
    days: Annotated[int, typer.Option(help="Days of activity.")] = 14,
    customers: Annotated[int, typer.Option(help="Number of customers.")] = 6,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same files).")] = 7,
    start: Annotated[str, typer.Option(help="First day (YYYY-MM-DD).")] = "2026-11-01",
    dirt: Annotated[float, typer.Option(help="Share of realistic bad/odd signals (0-1).")] = 0.02,
) -> None:
    """Write a deterministic synthetic workload: a config directory and daily JSONL signal files."""
    from pipelines.lib.synth import synth as run_synth

    try:
        first = date.fromisoformat(start)
    except ValueError:
        raise fail(f"--start {start!r} is not a date (YYYY-MM-DD)") from None
    with Progress(console=err, transient=True, disable=not err.is_terminal) as progress:
        task = progress.add_task("synth", total=signals)
        result = run_synth(out_dir, signals=signals, days=days, customers=customers, seed=seed,
                           start=first, dirt=dirt,
                           progress=lambda n: progress.update(task, completed=n))
    out.print(f"wrote {result.signals:,} signals in {len(result.signal_files)} files under "
              f"{out_dir / 'signals'} and the config in {result.config_dir}", highlight=False)


@app.command()
def demo(home: HomeOpt = None) -> None:
    """The sample company plus synthetic signals, landed; prints what landed."""
    import shutil
    import tempfile

    from pipelines.lib.lake import Lake
    from pipelines.lib.signals import ingest_file
    from pipelines.lib.synth import synth as run_synth

    h = _home(home)
    with tempfile.TemporaryDirectory(prefix="tally-demo-") as tmp:
        out.print("[bold]1. synth[/] a workload for the sample company (seed 7)")
        result = run_synth(Path(tmp))
        if not (h.config_dir / "company.yaml").exists():
            h.config_dir.mkdir(parents=True, exist_ok=True)
            shutil.copy(result.config_dir / "company.yaml", h.config_dir / "company.yaml")
        out.print(f"   {result.signals:,} signals in {len(result.signal_files)} daily files")
        out.print(f"[bold]2. ingest[/] into {h.lake}")
        lake = Lake(h.lake)
        table = Table("file", "ingested", "duplicates", "failed")
        for f in result.signal_files:
            r = ingest_file(lake, f)
            table.add_row(f.name, f"{r.ingested:,}", f"{r.duplicates:,}", f"{r.failed:,}")
        out.print(table)
        for location, reason in r.errors[:3]:
            out.print(f"   e.g. {Path(location).name}: {reason}", highlight=False, markup=False)
    stats = lake.stats()
    parts = lake.partitions()
    out.print(f"[bold]3. landed[/] {stats['signals']:,} signals in {len(parts)} day partitions, "
              f"{stats['files']} files, {stats['idempotency_keys']:,} idempotency keys")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - one line for people; TALLY_DEBUG=1 for the traceback
        if os.environ.get("TALLY_DEBUG"):
            raise
        err.print(f"[bold red]error:[/] {type(exc).__name__}: {exc} (TALLY_DEBUG=1 shows details)",
                  highlight=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()

"""tally synth (a deterministic workload) and tally demo (the walk-through of the README)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    Progress,
)

from pipelines.cli.billing import billing_run
from pipelines.cli.common import HomeOpt, app, err, fail, open_home, out, print_rows
from pipelines.core.home import Home


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
    from pipelines.synth import synth as run_synth

    try:
        first = date.fromisoformat(start)
    except ValueError:
        raise fail(f"--start {start!r} is not a date (YYYY-MM-DD)") from None
    with Progress(console=err, transient=True, disable=not err.is_terminal) as progress:
        task = progress.add_task("synth", total=signals)
        result = run_synth(
            out_dir,
            signals=signals,
            days=days,
            customers=customers,
            seed=seed,
            start=first,
            dirt=dirt,
            progress=lambda n: progress.update(task, completed=n),
        )
    out.print(
        f"wrote {result.signals:,} signals in {len(result.signal_files)} files under "
        f"{out_dir / 'signals'} and the config in {result.config_dir}",
        highlight=False,
    )


@app.command()
def demo(home: HomeOpt = None) -> None:
    """The sample company, synthetic signals, a full billing run, and a summary."""
    import shutil
    import tempfile

    from pipelines.landing.lake import Lake
    from pipelines.landing.readers import ingest_file
    from pipelines.synth import synth as run_synth

    h = open_home(home)
    with tempfile.TemporaryDirectory(prefix="tally-demo-") as tmp:
        out.print("[bold]1. synth[/] a workload for the sample company (seed 7)")
        result = run_synth(Path(tmp))
        if not (h.config_dir / "company.yaml").exists():
            h.config_dir.mkdir(parents=True, exist_ok=True)
            shutil.copy(result.config_dir / "company.yaml", h.config_dir / "company.yaml")
        out.print(f"   {result.signals:,} signals in {len(result.signal_files)} daily files")
        out.print(f"[bold]2. ingest[/] into {h.lake}")
        lake = Lake(h.lake)
        totals = [0, 0, 0]
        examples = []
        for f in result.signal_files:
            r = ingest_file(lake, f)
            totals = [totals[0] + r.ingested, totals[1] + r.duplicates, totals[2] + r.failed]
            examples += r.errors[:1]
        out.print(f"   ingested {totals[0]:,}  duplicates {totals[1]:,}  failed {totals[2]:,}")
        for location, reason in examples[:3]:
            out.print(
                f"   e.g. rejected {Path(location).name}: {reason}", highlight=False, markup=False
            )
    out.print("[bold]3. run[/] the batch billing run (Dagster: pricing, ledger, checks, warehouse)")
    if not billing_run(h):
        raise typer.Exit(1)
    _demo_summary(h)


def _demo_summary(h: Home) -> None:
    """What the demo's run produced: signals by status and currency, each organization pool over
    the whole period, and the next commands (on this home)."""
    import shlex

    from pipelines.core.sql import connect

    con = connect(h.warehouse, read_only=True)
    rel = con.sql(
        "SELECT status, currency, count(*) AS signals, sum(credits) AS credits FROM fact_signal "
        "GROUP BY status, currency ORDER BY status <> 'priced', signals DESC, currency NULLS LAST"
    )
    print_rows(
        [d[0] for d in rel.description],
        rel.fetchall(),
        "table",
        "Signals by status and currency",
        caption="only priced signals are charged; the others are kept with 0 credits",
    )
    first, day = con.execute(
        "SELECT min(date)::VARCHAR, max(date)::VARCHAR FROM balance_snapshot"
    ).fetchall()[0]
    rel = con.sql(
        "SELECT customer_id AS customer, currency, sum(granted) AS granted, sum(spent) AS spent, "
        "arg_max(closing_balance, date) AS closing, arg_max(overage, date) AS overage "
        "FROM balance_snapshot WHERE recipient_type = 'organization' GROUP BY ALL ORDER BY 1, 2"
    )
    print_rows(
        [d[0] for d in rel.description],
        rel.fetchall(),
        "table",
        f"Organization pools, {first} to {day} (UTC)",
        caption=f"granted and spent over the whole period; closing and overage at the end of "
        f"{day}; seats: tally balances",
        drop=("granted",),
    )
    # The month of the latest signal (the ledger runs on through yesterday, into quiet months).
    month = con.execute("SELECT strftime(max(day), '%Y-%m') FROM fact_signal").fetchall()[0][0]
    con.close()
    month = month or day[:7]
    default = Path("data").resolve()
    at = "" if h.root == default else f" --home {shlex.quote(str(h.root))}"
    tally = "./dev.sh tally" if Path("dev.sh").exists() else "tally"
    out.print(
        "Next:\n"
        f"  {tally} balances{at}   balances per pool and seat\n"
        f"  {tally} statement --customer cus_acme --month {month} --out acme.html{at}\n"
        f"  {tally} report --out report.html{at}   the overview page\n"
        f"  {tally} ui{at}   the Dagster UI\n"
        f"  TALLY_API_TOKENS=secret {tally} serve{at}   the Paid-compatible API\n"
        f"  duckdb -readonly {shlex.quote(str(h.warehouse))}   SQL (docs/schema.md)",
        highlight=False,
        soft_wrap=True,
    )

"""The `tally` command: thin wrappers over `pipelines.lib`, with progress and one-line errors."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
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
    typer.Option(
        "--home", help="Data directory (default: $TALLY_HOME or ./data).", show_default=False
    ),
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


REPO = Path(__file__).resolve().parents[1]


def _home(home: Path | None) -> Home:
    """Resolve the home and point every layer (engine, Dagster) at it."""
    h = resolve_home(home)
    os.environ["TALLY_HOME"] = str(h.root)
    os.environ.setdefault("DAGSTER_HOME", str(REPO))
    os.environ.setdefault("TALLY_DAGSTER_STORAGE", str(h.root / "dagster"))
    return h


def _config(h: Home):
    from pipelines.lib.config import ConfigError, load_config

    try:
        return load_config(h.config_dir)
    except ConfigError as exc:
        extra = f" (and {len(exc.errors) - 1} more problems)" if len(exc.errors) > 1 else ""
        raise fail(f"{exc.errors[0]}{extra}") from None


def _run(h: Home) -> bool:
    """Bring everything up to date through the Dagster definitions; prints what it did."""
    from pipelines.defs.billing.runs import materialize
    from pipelines.lib.engine import make_plan
    from pipelines.lib.lake import Lake

    config = _config(h)
    plan = make_plan(h, config, Lake(h.lake))
    if plan.empty:
        from pipelines.lib.warehouse import is_current, publish

        if not is_current(h):  # the data is checked already; only the views changed
            publish(h, config)
            out.print(f"nothing to process; republished {h.warehouse} with this version's views")
            return True
        out.print("everything is up to date")
        return True
    ledger = (
        f"ledger {plan.ledger_from}..{plan.ledger_to}" if plan.ledger_from else "no ledger days"
    )
    message = f"billing run: price {len(plan.price_days)} day(s), {ledger}, checks, publish"
    with err.status(message):
        ok, problems = materialize(plan)
    for problem in problems:
        err.print(f"[bold red]error:[/] {problem}", highlight=False, soft_wrap=True)
    if ok:
        out.print(f"done: {message}; warehouse at {h.warehouse}", highlight=False)
    return ok


@app.command()
def ingest(
    files: Annotated[
        list[Path], typer.Argument(help=".jsonl, .json or .parquet files of signals.")
    ],
    home: HomeOpt = None,
    workers: Annotated[int, typer.Option(help="Validation processes for large JSONL files.")] = 2,
) -> None:
    """Validate and land signal files; prints ingested / duplicates / failed and each bad record."""
    from pipelines.lib.lake import Lake
    from pipelines.lib.signals import IngestReport, ingest_files, worker_pool

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

    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    ]
    with (
        _user_errors(),
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
            f"{total.failed:,} signal(s) rejected; kept with reasons in {h.lake / 'rejects'}",
            highlight=False,
        )
        raise typer.Exit(1)


@app.command()
def run(home: HomeOpt = None) -> None:
    """Materialize whatever is missing or stale (one Dagster run for the whole range)."""
    if not _run(_home(home)):
        raise typer.Exit(1)


Format = Annotated[str, typer.Option("--format", help="table, csv or json.")]


def _print_rows(
    columns: list[str],
    rows: list[tuple],
    fmt: str,
    title: str | None = None,
    missing: str = "(none)",
) -> None:
    """Rows as a Rich table, CSV or JSON; decimals are exact strings in CSV and JSON."""
    import csv

    import msgspec

    def text(v):
        if isinstance(v, Decimal):  # exact: at least 6 places, more only when the value has them
            return f"{v:.6f}" if v == round(v, 6) else format(v.normalize(), "f")
        return v.isoformat() if hasattr(v, "isoformat") else v

    if fmt == "json":
        payload = [dict(zip(columns, map(text, r), strict=True)) for r in rows]
        sys.stdout.write(msgspec.json.encode(payload).decode() + "\n")
    elif fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[("" if v is None else text(v)) for v in r] for r in rows])
    elif fmt == "table":
        table = Table(*columns, title=title)
        for r in rows:
            table.add_row(*[(missing if v is None else str(text(v))) for v in r])
        out.print(table)
    else:
        raise fail(f"--format must be table, csv or json, not {fmt!r}")


@app.command()
def balances(
    home: HomeOpt = None,
    customer: Annotated[str | None, typer.Option(help="Only this customer (external id).")] = None,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Day (YYYY-MM-DD); default: the last processed day."),
    ] = None,
    fmt: Format = "table",
) -> None:
    """Balances per customer, pool and seat at the end of a day, from the warehouse."""
    import duckdb

    h = _home(home)
    if not h.warehouse.exists():
        raise fail(f"no warehouse at {h.warehouse}: run `tally run` first")
    if as_of is not None:
        try:
            date.fromisoformat(as_of)
        except ValueError:
            raise fail(f"--as-of {as_of!r} is not a date (YYYY-MM-DD)") from None
    con = duckdb.connect(str(h.warehouse), read_only=True)
    day = as_of or con.execute("SELECT max(date)::VARCHAR FROM balance_snapshot").fetchall()[0][0]
    rel = con.execute(
        "SELECT customer_id, recipient_type, recipient_id, currency, opening_balance, granted, "
        "spent, expired, closing_balance, available, overage FROM balance_snapshot "
        "WHERE date = CAST($day AS DATE) AND ($customer IS NULL OR customer_id = $customer) "
        "ORDER BY customer_id, recipient_type, recipient_id, currency",
        {"day": day, "customer": customer},
    )
    columns = [d[0] for d in rel.description]
    rows = rel.fetchall()
    if not rows and fmt == "table":
        raise fail(f"no balances on {day}" + (f" for customer {customer!r}" if customer else ""))
    _print_rows(columns, rows, fmt, title=f"Balances at the end of {day} (UTC)")


@app.command()
def breakdown(
    by: Annotated[
        list[str],
        typer.Option(
            "--by",
            help=(
                'A data path ($.team, a.b, $["a.b"]) or customer, product, event, user, '
                'seat, day, week, month. Repeatable.'
            ),
        ),
    ],
    home: HomeOpt = None,
    from_day: Annotated[
        str | None, typer.Option("--from", help="First day (inclusive), on timestamp.")
    ] = None,
    to_day: Annotated[str | None, typer.Option("--to", help="Last day (exclusive).")] = None,
    customer: Annotated[str | None, typer.Option(help="Only this customer.")] = None,
    product: Annotated[str | None, typer.Option(help="Only this product.")] = None,
    event: Annotated[str | None, typer.Option(help="Only this event name.")] = None,
    fmt: Format = "table",
) -> None:
    """Signals, quantity and credits broken down by any JSON key of the signal data."""
    import msgspec

    from pipelines.lib.analytics import AnalyticsError
    from pipelines.lib.analytics import breakdown as run_breakdown

    h = _home(home)
    try:
        result = run_breakdown(
            h.warehouse,
            by,
            from_day=from_day,
            to_day=to_day,
            customer=customer,
            product=product,
            event=event,
        )
    except AnalyticsError as exc:
        raise fail(str(exc)) from None
    decode = msgspec.json.Decoder(float_hook=Decimal).decode
    rows = []
    for record in result.table.to_pylist():
        row = []
        for key in result.keys:
            value = record[key]
            if key in result.json_keys and value is not None:
                value = decode(value)
                if fmt != "json" and not isinstance(value, str):
                    value = msgspec.json.encode(value).decode()
            row.append(value)
        quantity = record["quantity"]
        row += [
            record["signals"],
            None if quantity is None else quantity.normalize(),
            record["credits"],
        ]
        rows.append(tuple(row))
    _print_rows(
        [*result.keys, "signals", "quantity", "credits"], rows, fmt, title=None, missing="(missing)"
    )


@app.command()
def keys(
    home: HomeOpt = None,
    event: Annotated[str | None, typer.Option(help="Only this event name.")] = None,
    fmt: Format = "table",
) -> None:
    """The JSON paths seen in signal data per event, their types and counts, and spelling drift."""
    from pipelines.lib.analytics import AnalyticsError, data_keys

    h = _home(home)
    try:
        report = data_keys(h.warehouse, event)
    except AnalyticsError as exc:
        raise fail(str(exc)) from None
    columns = ["event_name", "path", "json_type", "signals", "first_seen", "last_seen"]
    _print_rows(
        columns,
        [tuple(r[c] for c in columns) for r in report.rows],
        fmt,
        title="Keys in signal data",
    )
    for warning in report.warnings:
        err.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)


def _write_output(text: str, out_path: Path | None, what: str) -> None:
    """`text` to `out_path` (replaced atomically) or, without one, to stdout."""
    if out_path is None:
        sys.stdout.write(text)
        return
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out_path)
    err.print(f"wrote {what} to {out_path}", highlight=False, soft_wrap=True)


@app.command()
def statement(
    customer: Annotated[str, typer.Option(help="Customer (external id).")],
    month: Annotated[str, typer.Option(help="Month (YYYY-MM, UTC).")],
    home: HomeOpt = None,
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="html, json or csv (default: from --out's suffix, or json)."),
    ] = None,
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Write to this file instead of stdout.")
    ] = None,
) -> None:
    """A customer's monthly statement: final once the month has closed (its end plus
    TALLY_STATEMENT_GRACE_DAYS, default 3), else open. Finalizes the months that are due."""
    from pipelines.lib.closing import statement as get_statement
    from pipelines.lib.render import FORMATS
    from pipelines.lib.statements import Month, StatementError

    suffix = out_path.suffix.lstrip(".").lower() if out_path else ""
    fmt = fmt or (suffix if suffix in FORMATS else "json")
    if fmt not in FORMATS:
        raise fail(f"--format must be html, json or csv, not {fmt!r}")
    h = _home(home)
    try:
        doc = get_statement(h, customer, Month.parse(month))
    except StatementError as exc:
        raise fail(str(exc)) from None
    _write_output(FORMATS[fmt](doc), out_path, f"the {doc['status']} statement of {month}")


@app.command()
def report(
    home: HomeOpt = None,
    out_path: Annotated[
        Path | None,
        typer.Option("--out", help="HTML file to write (default: <home>/reports/report.html)."),
    ] = None,
    days: Annotated[int, typer.Option(help="Days of consumption and data quality shown.")] = 30,
) -> None:
    """One self-contained HTML overview: balances and burn rates, pools and seats nearing zero
    or in overage, expiring credits, and data-quality exceptions."""
    from pipelines.lib.report import ReportError, write

    h = _home(home)
    target = out_path or h.root / "reports" / "report.html"
    try:
        built = write(h, target, days)
    except ReportError as exc:
        raise fail(str(exc)) from None
    out.print(
        f"wrote the report as of {built.as_of} to {target}: {built.pools} pool(s), "
        f"{built.attention} nearing zero or in overage, {built.expiring} expiring grant(s), "
        f"{built.exceptions:,} uncharged signal(s)",
        highlight=False,
        soft_wrap=True,
    )


@app.command()
def ui(
    home: HomeOpt = None,
    port: Annotated[int, typer.Option(help="Port of the Dagster UI.")] = 3000,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
) -> None:
    """Start the Dagster UI (and its daemon: schedule and sensor) on this project."""
    import subprocess

    _home(home)
    cmd = [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        "-m",
        "pipelines.definitions",
        "-h",
        host,
        "-p",
        str(port),
    ]
    out.print(f"Dagster UI on http://{host}:{port} (Ctrl-C to stop)")
    raise typer.Exit(subprocess.call(cmd, cwd=REPO))


def _tokens(token_file: Path | None) -> list[str]:
    """API tokens from `--token-file` (one per line) and `$TALLY_API_TOKENS` (comma-separated)."""
    tokens = [t.strip() for t in os.environ.get("TALLY_API_TOKENS", "").split(",")]
    if token_file is not None:
        try:
            tokens += [line.strip() for line in token_file.read_text().splitlines()]
        except OSError as exc:
            raise fail(f"cannot read --token-file {token_file}: {exc.strerror}") from None
    tokens = [t for t in tokens if t and not t.startswith("#")]
    if not tokens:
        raise fail("no API tokens: set TALLY_API_TOKENS=tok1,tok2 or pass --token-file FILE")
    return tokens


@app.command()
def serve(
    home: HomeOpt = None,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    token_file: Annotated[
        Path | None, typer.Option(help="File of bearer tokens, one per line.")
    ] = None,
    run_every: Annotated[
        float,
        typer.Option(help="Seconds between billing runs when something changed (0: never)."),
    ] = 60.0,
    max_body_mb: Annotated[int, typer.Option(help="Largest request body, in MiB.")] = 32,
) -> None:
    """The Paid-compatible HTTP API: point `Paid(base_url="http://HOST:PORT/api/v2")` here."""
    import uvicorn

    from pipelines.api.app import create_app

    h = _home(home)
    tokens = _tokens(token_file)
    h.config_dir.mkdir(parents=True, exist_ok=True)
    application = create_app(h, tokens, max_body_mb << 20, run_every or None)
    runs = f"billing run every {run_every:g} s when needed" if run_every else "no billing runs"
    out.print(
        f"Tally API on http://{host}:{port}/api/v2 for {h.root} ({len(tokens)} token(s); {runs})",
        highlight=False,
    )
    uvicorn.run(application, host=host, port=port, log_level="warning", access_log=False)


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

    import duckdb

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
    if not _run(h):
        raise typer.Exit(1)
    con = duckdb.connect(str(h.warehouse), read_only=True)
    rel = con.sql(
        "SELECT status, count(*) AS signals, sum(credits) AS credits FROM fact_signal "
        "GROUP BY 1 ORDER BY 2 DESC"
    )
    _print_rows([d[0] for d in rel.description], rel.fetchall(), "table", "Signals by status")
    day = con.execute("SELECT max(date)::VARCHAR FROM balance_snapshot").fetchall()[0][0]
    rel = con.sql(
        "SELECT customer_id AS customer, currency, spent, closing_balance AS closing, overage "
        "FROM balance_snapshot WHERE date = (SELECT max(date) FROM balance_snapshot) "
        "AND recipient_type = 'organization' ORDER BY 1, 2"
    )
    _print_rows(
        [d[0] for d in rel.description],
        rel.fetchall(),
        "table",
        f"Organization pools at the end of {day} (seats: tally balances)",
    )
    month = day[:7]
    out.print(
        "Next:\n"
        "  ./dev.sh tally balances                  balances per pool and seat\n"
        f"  ./dev.sh tally statement --customer cus_acme --month {month} --out acme.html\n"
        "  ./dev.sh tally report --out report.html  the overview page\n"
        "  ./dev.sh tally ui                        the Dagster UI\n"
        "  TALLY_API_TOKENS=secret ./dev.sh tally serve   the Paid-compatible API\n"
        f"  duckdb -readonly {h.warehouse}",
        highlight=False,
    )


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - one line for people; TALLY_DEBUG=1 for the traceback
        if os.environ.get("TALLY_DEBUG"):
            raise
        err.print(
            f"[bold red]error:[/] {type(exc).__name__}: {exc} (TALLY_DEBUG=1 shows details)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()

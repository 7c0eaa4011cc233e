"""The `tally` command: thin wrappers over `pipelines.lib`, with progress and one-line errors."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from datetime import UTC, date, timedelta
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
    from pipelines.lib.clock import ClockError
    from pipelines.lib.lake import LandingError, LegacyLakeError
    from pipelines.lib.shards import ShardError
    from pipelines.lib.signals import IngestError
    from pipelines.lib.workers import WorkerError

    try:
        yield
    except (
        UserError,
        IngestError,
        LegacyLakeError,
        LandingError,
        WorkerError,
        ShardError,
        ClockError,
    ) as exc:
        raise fail(str(exc)) from None


def _home(home: Path | None) -> Home:
    """Resolve the home and point every layer (engine, Dagster) at it: Dagster's instance lives
    in `<home>/dagster` (created with its dagster.yaml on first use)."""
    from pipelines.lib.home import ensure_instance

    h = resolve_home(home)
    os.environ["TALLY_HOME"] = str(h.root)
    # `TALLY_DAGSTER_HOME` names another instance directory (e.g. one on PostgreSQL); a
    # DAGSTER_HOME set for other projects is never used.
    chosen = os.environ.get("TALLY_DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = chosen or str(ensure_instance(h.root))
    return h


def _config(h: Home):
    from pipelines.lib.config import ConfigError, load_config

    try:
        return load_config(h.config_dir)
    except ConfigError as exc:
        extra = f" (and {len(exc.errors) - 1} more problems)" if len(exc.errors) > 1 else ""
        raise fail(f"{exc.errors[0]}{extra}") from None


def _run(h: Home, through: str | None = None) -> bool:
    """Bring every billed day through `through` (default yesterday) up to date through the
    Dagster definitions, printing what each asset did."""
    from pipelines.lib import uptodate
    from pipelines.lib.clock import now

    default = (now().date() - timedelta(days=1)).isoformat()
    if uptodate.holds(h, through or default):  # Dagster's last answer, and nothing changed
        out.print(f"everything is up to date through {through or default}")
        return True
    from pipelines.defs.billing import plan
    from pipelines.defs.partitions import DAILY

    config = _config(h)
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
    from pipelines.lib.lake import Lake

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
    from pipelines.lib import outputs
    from pipelines.lib.lake import REJECTS, SIGNALS, Lake

    h = _home(home)
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
    from pipelines.lib.migrate import migrate as move

    h = _home(home)
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
    from pipelines.lib.workers import EXECUTOR_ENV, WORKERS_ENV, executor_name

    if workers is not None:  # read when the definitions load, below
        os.environ[WORKERS_ENV] = str(workers)
        if os.environ.get(EXECUTOR_ENV, "in_process") in ("", "in_process"):
            os.environ[EXECUTOR_ENV] = "multiprocess"
    from pipelines.lib.clock import now
    from pipelines.lib.shards import shard_count

    with _user_errors():
        executor_name(), shard_count(), now()  # a bad setting is one line, before anything runs
    if not _run(_home(home), through):
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
    from pipelines.lib.workers import worker_main

    h = _home(home)
    with _user_errors():
        worker_main(concurrency, name, config_dir=h.root / "dagster" / "celery")


Format = Annotated[str, typer.Option("--format", help="table, csv or json.")]


def _cell_text(v):
    """A value as CSV, JSON and tables show it; decimals are exact strings."""
    if isinstance(v, Decimal):  # exact: at least 6 places, more only when the value has them
        return f"{v:.6f}" if v == round(v, 6) else format(v.normalize(), "f")
    return v.isoformat() if hasattr(v, "isoformat") else v


def _print_rows(
    columns: list[str],
    rows: list[tuple],
    fmt: str,
    title: str | None = None,
    missing: str = "(none)",
    *,
    caption: str | None = None,
    short: dict[str, str] | None = None,
    drop: tuple[str, ...] = (),
    group: str | None = None,
) -> None:
    """Rows as a Rich table, CSV or JSON; decimals are exact strings in CSV and JSON.

    A table uses the terminal's whole width and fits in it: when it is too narrow, headers take
    their `short` names, the `group` column becomes a heading row per value, then the `drop`
    columns are left out in order (the caption says which; `--format csv` has them all), and
    long text wraps instead of being cut."""
    import csv

    import msgspec

    if fmt == "json":
        payload = [dict(zip(columns, map(_cell_text, r), strict=True)) for r in rows]
        sys.stdout.write(msgspec.json.encode(payload).decode() + "\n")
    elif fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[("" if v is None else _cell_text(v)) for v in r] for r in rows])
    elif fmt == "table":
        _print_table(columns, rows, title, missing, caption, short or {}, drop, group)
    else:
        raise fail(f"--format must be table, csv or json, not {fmt!r}")


def _print_table(columns, rows, title, missing, caption, short, drop, group) -> None:
    from rich import box
    from rich.text import Text

    cells = [[(missing if v is None else str(_cell_text(v))) for v in r] for r in rows]
    numeric = [
        bool(rows) and all(isinstance(r[i], int | float | Decimal) or r[i] is None for r in rows)
        for i in range(len(columns))
    ]
    heads = list(columns)
    keep = list(range(len(columns)))

    def need() -> int:  # SIMPLE_HEAD box: padding and separators around each column
        widths = [max([len(heads[i])] + [len(c[i]) for c in cells]) for i in keep]
        return sum(widths) + 3 * len(widths) + 1 + (2 if grouped else 0)

    width = out.width
    grouped = False
    notes = [caption] if caption else []
    if need() > width:
        heads = [short.get(c, c) for c in columns]
    if need() > width and group in columns and len(keep) > 1:
        keep.remove(columns.index(group))
        grouped = True
    dropped = []
    for name in drop:
        if need() <= width:
            break
        if name in columns and columns.index(name) in keep:
            keep.remove(columns.index(name))
            dropped.append(name)
    if dropped:
        notes.append(
            f"{', '.join(dropped)} left out to fit {width} columns "
            "(a wider terminal or --format csv shows them)"
        )
    table = Table(
        title=title,
        caption="\n".join(notes) or None,
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        caption_justify="left",
    )
    for i in keep:
        if numeric[i]:
            table.add_column(heads[i], justify="right", no_wrap=True)
        else:
            table.add_column(heads[i], overflow="fold")
    current = object()
    g = columns.index(group) if grouped else None
    for r, c in zip(rows, cells, strict=True):
        if g is not None and r[g] != current:
            current = r[g]
            table.add_row(Text(c[g], style="bold"), *[""] * (len(keep) - 1))
        indent = "  " if g is not None else ""
        table.add_row(*[Text(indent + c[i] if n == 0 else c[i]) for n, i in enumerate(keep)])
    out.print(table, highlight=False)


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
    from pipelines.lib.sql import connect

    h = _home(home)
    if not h.warehouse.exists():
        raise fail(f"no warehouse at {h.warehouse}: run `tally run` first")
    if as_of is not None:
        try:
            date.fromisoformat(as_of)
        except ValueError:
            raise fail(f"--as-of {as_of!r} is not a date (YYYY-MM-DD)") from None
    con = connect(h.warehouse, read_only=True)
    day = as_of or con.execute("SELECT max(date)::VARCHAR FROM balance_snapshot").fetchall()[0][0]
    rel = con.execute(  # balances_as_of: the one end-of-day definition (balance_end_of_day.sql)
        "SELECT customer_id, recipient_type, recipient_id, currency, opening_balance, granted, "
        "spent, expired, closing_balance, available, overage FROM balances_as_of($day) "
        "WHERE $customer IS NULL OR customer_id = $customer "
        "ORDER BY customer_id, recipient_type, recipient_id, currency",
        {"day": day, "customer": customer},
    )
    columns = [d[0] for d in rel.description]
    rows = rel.fetchall()
    if not rows and fmt == "table":
        raise fail(f"no balances on {day}" + (f" for customer {customer!r}" if customer else ""))
    if fmt != "table":
        _print_rows(columns, rows, fmt)
        return
    # A table people read: one recipient column (the pool or the seat), short names when narrow.
    table_rows = [(r[0], "pool" if r[1] == "organization" else r[2], *r[3:]) for r in rows]
    _print_rows(
        ["customer", "recipient", *columns[3:]],
        table_rows,
        fmt,
        title=f"Balances at the end of {day} (UTC)",
        caption="closing = opening + granted - spent - expired = available - overage",
        short={
            "opening_balance": "opening",
            "closing_balance": "closing",
            "currency": "cur.",
        },
        drop=("opening_balance", "granted", "expired", "spent"),
        group="customer",
    )


@app.command()
def breakdown(
    by: Annotated[
        list[str],
        typer.Option(
            "--by",
            help=(
                'A data path ($.team, a.b, $["a.b"]) or customer, product, event, user, '
                "seat, recipient, currency, status, day, week, month (UTC). Repeatable; "
                "figures are always per currency."
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
    status: Annotated[
        str | None,
        typer.Option(help="Only this pricing status (priced, unpriced, ...; default: all)."),
    ] = None,
    fmt: Format = "table",
) -> None:
    """Signals, quantity and credits per currency, broken down by any JSON key of the signal
    data (days are UTC)."""
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
            status=status,
        )
    except AnalyticsError as exc:
        raise fail(str(exc)) from None
    decode = msgspec.json.Decoder(float_hook=Decimal).decode
    keys = result.columns[:-3]  # the --by keys and currency
    rows = []
    for record in result.table.to_pylist():
        row = []
        for key in keys:
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
        [*keys, "signals", "quantity", "credits"],
        rows,
        fmt,
        title=None,
        missing="(missing)",
        caption=result.note,
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
    rows = [tuple(r[c] for c in columns) for r in report.rows]
    if fmt == "table":  # instants to the minute, UTC: they fit and never wrap mid-string
        rows = [
            (*r[:4], *(t.astimezone(UTC).strftime("%Y-%m-%d %H:%MZ") for t in r[4:])) for r in rows
        ]
    _print_rows(
        columns,
        rows,
        fmt,
        title="Keys in signal data",
        short={
            "event_name": "event",
            "json_type": "type",
            "first_seen": "first",
            "last_seen": "last",
        },
        drop=("first_seen", "last_seen"),
        group="event_name",
    )
    for warning in report.warnings:
        err.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)


@app.command()
def schema(
    home: HomeOpt = None,
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Write the page to this file.")
    ] = None,
) -> None:
    """The warehouse's tables, views, columns and macros with what they mean (Markdown, from the
    comments in warehouse.duckdb; docs/schema.md is the sample company's)."""
    from pipelines.lib.warehouse import schema_markdown

    h = _home(home)
    if not h.warehouse.exists():
        raise fail(f"no warehouse at {h.warehouse}: run `tally run` first")
    _write_output(schema_markdown(h.warehouse), out_path, "the schema page")


def _write_output(text: str, out_path: Path | None, what: str) -> None:
    """`text` to `out_path` (replaced atomically) or, without one, to stdout."""
    if out_path is None:
        sys.stdout.write(text)
        return
    from pipelines.lib.files import write_bytes_atomic

    write_bytes_atomic(text.encode(), out_path)
    err.print(f"wrote {what} to {out_path}", highlight=False, soft_wrap=True)


@app.command()
def statement(
    customer: Annotated[str, typer.Option(help="Customer (external id).")],
    month: Annotated[str, typer.Option(help="Month (YYYY-MM, UTC).")],
    home: HomeOpt = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="html, json, csv or pdf (default: from --out's suffix, else json).",
        ),
    ] = None,
    out_path: Annotated[
        Path | None,
        typer.Option("--out", help="Write to this file (.html, .json, .csv or .pdf)."),
    ] = None,
) -> None:
    """A customer's monthly statement: final once the month has closed (its end plus
    TALLY_STATEMENT_GRACE_DAYS, default 3) and the ledger has processed it, else open (and it
    says why). Finalizes the months that are due. PDF through headless Chromium."""
    from pipelines.lib.clock import ClockError
    from pipelines.lib.closing import statement as get_statement
    from pipelines.lib.render import FORMATS, SUFFIXES, RenderError, html_to_pdf, statement_html
    from pipelines.lib.statements import Month, StatementError

    kinds = "html, json, csv or pdf"
    if fmt is not None and fmt not in (*FORMATS, "pdf"):
        raise fail(f"--format must be {kinds}, not {fmt!r}")
    if out_path is not None:
        suffix = out_path.suffix.lstrip(".").lower()
        if suffix not in SUFFIXES:
            raise fail(
                f"--out {out_path}: unknown suffix {out_path.suffix or '(none)'!r}; "
                "use .html, .json, .csv or .pdf"
            )
        if fmt is not None and fmt != SUFFIXES[suffix]:
            raise fail(f"--format {fmt} does not match --out {out_path}")
        fmt = SUFFIXES[suffix]
    fmt = fmt or "json"
    if fmt == "pdf" and out_path is None:
        raise fail("a PDF needs --out FILE.pdf")
    h = _home(home)
    try:
        doc = get_statement(h, customer, Month.parse(month))
    except (StatementError, ClockError) as exc:
        raise fail(str(exc)) from None
    what = f"the {doc['status']} statement of {month}"
    if fmt in ("html", "pdf"):
        page = statement_html(doc, source=str(h.warehouse))
        if fmt == "pdf":
            try:
                html_to_pdf(page, out_path)
            except RenderError as exc:
                raise fail(str(exc)) from None
            err.print(f"wrote {what} to {out_path}", highlight=False, soft_wrap=True)
            return
        _write_output(page, out_path, what)
        return
    _write_output(FORMATS[fmt](doc), out_path, what)


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
    """Start the Dagster UI and its daemon (schedule, sensor) on this home; Ctrl-C stops both."""
    import signal
    import subprocess
    import time

    h = _home(home)
    dagster_home = Path(os.environ["DAGSTER_HOME"])
    cmd = [sys.executable, "-m", "dagster", "dev", "-w", str(_workspace(dagster_home))]
    cmd += ["-h", host, "-p", str(port)]
    out.print(f"Dagster UI on http://{host}:{port} for {h.root} (Ctrl-C to stop)")
    # Its own process group, so that stopping `tally ui` stops the webserver and the daemon.
    child = subprocess.Popen(cmd, cwd=dagster_home, start_new_session=True)
    stopping: list[float] = []

    def stop(signum, _frame) -> None:
        if not stopping:
            stopping.append(time.monotonic())
            _signal_group(child.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while child.poll() is None:
        time.sleep(0.2)
        if stopping and time.monotonic() - stopping[0] > 15:  # asked nicely; now for sure
            _signal_group(child.pid, signal.SIGKILL)
    _signal_group(child.pid, signal.SIGKILL)  # anything of the group that outlived dagster dev
    code = child.returncode
    raise typer.Exit(0 if stopping or code == 0 else code)


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        pass


def _workspace(dagster_home: Path) -> Path:
    """A workspace naming the code location `tally` (the installed `pipelines` package)."""
    path = dagster_home / "workspace.yaml"
    path.write_text(
        "load_from:\n"
        "  - python_module:\n"
        "      module_name: pipelines.definitions\n"
        "      location_name: tally\n"
    )
    return path


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
    from pipelines.api.app import create_app
    from pipelines.api.server import serve as serve_app

    h = _home(home)
    tokens = _tokens(token_file)
    h.config_dir.mkdir(parents=True, exist_ok=True)
    application = create_app(h, tokens, max_body_mb << 20, run_every or None)
    runs = f"billing run every {run_every:g} s when needed" if run_every else "no billing runs"
    out.print(
        f"Tally API on http://{host}:{port}/api/v2 for {h.root} ({len(tokens)} token(s); {runs})",
        highlight=False,
    )
    serve_app(application, host, port)  # with read deadlines (pipelines/api/server.py)


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

    from pipelines.lib.lake import Lake
    from pipelines.lib.signals import ingest_file
    from pipelines.synth import synth as run_synth

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
    _demo_summary(h)


def _demo_summary(h: Home) -> None:
    """What the demo's run produced: signals by status and currency, each organization pool over
    the whole period, and the next commands (on this home)."""
    import shlex

    from pipelines.lib.sql import connect

    con = connect(h.warehouse, read_only=True)
    rel = con.sql(
        "SELECT status, currency, count(*) AS signals, sum(credits) AS credits FROM fact_signal "
        "GROUP BY status, currency ORDER BY status <> 'priced', signals DESC, currency NULLS LAST"
    )
    _print_rows(
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
    _print_rows(
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


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - one line for people; TALLY_DEBUG=1 for the traceback
        if os.environ.get("TALLY_DEBUG"):
            raise
        from pipelines.lib.lake import LegacyLakeError

        if isinstance(exc, LegacyLakeError):  # raised from deep inside a run: still a user error
            err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            sys.exit(2)
        err.print(
            f"[bold red]error:[/] {type(exc).__name__}: {exc} (TALLY_DEBUG=1 shows details)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()

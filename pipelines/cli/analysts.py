"""For analysts and finance: tally balances, breakdown, keys, schema, statement and report."""

from __future__ import annotations

from datetime import UTC, date
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer

from pipelines.cli.common import (
    Format,
    HomeOpt,
    app,
    err,
    fail,
    open_home,
    out,
    print_rows,
    write_output,
)


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
    from pipelines.core.sql import connect

    h = open_home(home)
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
        print_rows(columns, rows, fmt)
        return
    # A table people read: one recipient column (the pool or the seat), short names when narrow.
    table_rows = [(r[0], "pool" if r[1] == "organization" else r[2], *r[3:]) for r in rows]
    print_rows(
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

    from pipelines.warehouse.analytics import AnalyticsError
    from pipelines.warehouse.analytics import breakdown as run_breakdown

    h = open_home(home)
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
    print_rows(
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
    from pipelines.warehouse.analytics import AnalyticsError, data_keys

    h = open_home(home)
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
    print_rows(
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
    from pipelines.warehouse.publish import schema_markdown

    h = open_home(home)
    if not h.warehouse.exists():
        raise fail(f"no warehouse at {h.warehouse}: run `tally run` first")
    write_output(schema_markdown(h.warehouse), out_path, "the schema page")


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
    from pipelines.core.clock import ClockError
    from pipelines.statements.closing import statement as get_statement
    from pipelines.statements.render import (
        FORMATS,
        SUFFIXES,
        RenderError,
        html_to_pdf,
        statement_html,
    )
    from pipelines.statements.statement import Month, StatementError

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
    h = open_home(home)
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
        write_output(page, out_path, what)
        return
    write_output(FORMATS[fmt](doc), out_path, what)


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
    from pipelines.statements.report import ReportError, write

    h = open_home(home)
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

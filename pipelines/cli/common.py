"""What every command shares: the Typer app, the consoles, the home option, one-line errors, the
table printer and atomic output files."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipelines.core.home import Home, resolve_home

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
def user_errors():
    from pipelines.billing.shards import ShardError
    from pipelines.billing.workers import WorkerError
    from pipelines.core.clock import ClockError
    from pipelines.landing.errors import LandingError, LegacyLakeError
    from pipelines.landing.readers import IngestError

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


def open_home(home: Path | None) -> Home:
    """Resolve the home and point every layer (engine, Dagster) at it: Dagster's instance lives
    in `<home>/dagster` (created with its dagster.yaml on first use)."""
    from pipelines.core.home import ensure_instance

    h = resolve_home(home)
    os.environ["TALLY_HOME"] = str(h.root)
    # `TALLY_DAGSTER_HOME` names another instance directory (e.g. one on PostgreSQL); a
    # DAGSTER_HOME set for other projects is never used.
    chosen = os.environ.get("TALLY_DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = chosen or str(ensure_instance(h.root))
    return h


def home_config(h: Home):
    from pipelines.pricing.config import ConfigError, load_config

    try:
        return load_config(h.config_dir)
    except ConfigError as exc:
        extra = f" (and {len(exc.errors) - 1} more problems)" if len(exc.errors) > 1 else ""
        raise fail(f"{exc.errors[0]}{extra}") from None


Format = Annotated[str, typer.Option("--format", help="table, csv or json.")]


def _cell_text(v):
    """A value as CSV, JSON and tables show it; decimals are exact strings."""
    if isinstance(v, Decimal):  # exact: at least 6 places, more only when the value has them
        return f"{v:.6f}" if v == round(v, 6) else format(v.normalize(), "f")
    return v.isoformat() if hasattr(v, "isoformat") else v


def print_rows(
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


def write_output(text: str, out_path: Path | None, what: str) -> None:
    """`text` to `out_path` (replaced atomically) or, without one, to stdout."""
    if out_path is None:
        sys.stdout.write(text)
        return
    from pipelines.storage.files import write_bytes_atomic

    write_bytes_atomic(text.encode(), out_path)
    err.print(f"wrote {what} to {out_path}", highlight=False, soft_wrap=True)

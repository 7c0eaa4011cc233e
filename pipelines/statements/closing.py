"""Period close: a month's statements become final after a grace period, and never change again.

A month closes `grace` days after it ends (`TALLY_STATEMENT_GRACE_DAYS`, default 3): November
closes on December 4th at 00:00 UTC. The first statement request (`tally statement`, the
`monthly_statements` asset and its schedule) at or after that instant, once the ledger has
processed the month's last day, finalizes it: every customer's statement of that month is
computed from the warehouse and written, once, to `<home>/statements/final/YYYY-MM.json`
(written beside and renamed, under a lock; an existing file is never replaced). Months are
finalized in order, so each final statement knows what the previous ones said.

What a final statement said is also kept as `statement_line` rows
(`<home>/statements/line/date=YYYY-MM-01/data.parquet`, derived from the final file): per
recipient and currency the month's granted, spent and expired, plus the adjustment lines it
carried. When the ledger later says something else for a closed month (a late signal, a
backdated grant: the engine recomputes the ledger), the difference is an adjustment line of the
first open month (sql/statement_adjustment.sql), and the warehouse view `statement_adjustment`
shows it (`pending`, then `final` once that month is final). The open month's opening balance
is the ledger's, so it already includes the adjustments: previous statement's closing balance +
adjustments = opening balance.

"Now" is the project's clock (`pipelines.core.clock`: `TALLY_NOW`, an RFC 3339 instant or a date,
when set), so tests and re-issues can pin it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.core.clock import now
from pipelines.core.home import Home
from pipelines.core.sql import connect
from pipelines.statements.statement import Month, StatementError, compute, decode, encode, time_text
from pipelines.storage.files import fsync_dir, write_bytes_atomic, write_parquet_atomic

GRACE_ENV = "TALLY_STATEMENT_GRACE_DAYS"
DEFAULT_GRACE_DAYS = 3
_CREDITS = pa.decimal128(38, 6)
LINE_SCHEMA = pa.schema(
    [
        ("month", pa.date32()),
        ("adjusted_month", pa.date32()),
        ("kind", pa.string()),
        ("customer_id", pa.string()),
        ("recipient_type", pa.string()),
        ("recipient_id", pa.string()),
        ("currency", pa.string()),
        ("granted", _CREDITS),
        ("spent", _CREDITS),
        ("expired", _CREDITS),
    ]
)


def grace_days() -> int:
    """The grace period in days after a month's end before it closes."""
    text = os.environ.get(GRACE_ENV, "").strip()
    if not text:
        return DEFAULT_GRACE_DAYS
    if not text.isdigit():
        raise StatementError(f"{GRACE_ENV}={text!r} is not a number of days")
    return int(text)


def closes_at(month: Month, grace: int) -> datetime:
    return datetime.combine(month.end + timedelta(days=grace), time(), UTC)


def statements_dir(home: Home) -> Path:
    return home.root / "statements"


def final_path(home: Home, month: Month) -> Path:
    return statements_dir(home) / "final" / f"{month}.json"


def open_path(home: Home, month: Month) -> Path:
    return statements_dir(home) / "open" / f"{month}.json"


def _line_path(home: Home, month: Month) -> Path:
    return statements_dir(home) / "line" / f"date={month.start.isoformat()}" / "data.parquet"


def final_months(home: Home) -> list[Month]:
    return sorted(Month.parse(p.stem) for p in (statements_dir(home) / "final").glob("*.json"))


def read_final(home: Home, month: Month) -> dict | None:
    path = final_path(home, month)
    return decode(path.read_bytes()) if path.exists() else None


def write_json_atomic(payload: dict, path: Path, *, replace: bool = True) -> None:
    """Write `payload` to `path` durably; with `replace=False` never overwrite (FileExistsError)."""
    write_bytes_atomic(encode(payload), path, replace=replace)
    fsync_dir(path.parent)


def _lines_of(final: dict) -> pa.Table:
    """The statement_line rows of a final month: its own figures and the adjustments it carried."""
    month = Month.parse(final["month"]).start
    rows = []
    for customer_id, doc in final["statements"].items():
        for b in doc["balances"]:
            figures = [Decimal(b[k]) for k in ("granted", "spent", "expired")]
            rows.append((month, month, "statement", customer_id, *_recipient(b), *figures))
        for a in doc["adjustments"]:
            adjusted = Month.parse(a["adjusted_month"][:7]).start
            figures = [Decimal(a[k]) for k in ("granted", "spent", "expired")]
            rows.append((month, adjusted, "adjustment", customer_id, *_recipient(a), *figures))
    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in LINE_SCHEMA]
    return pa.Table.from_arrays(
        [pa.array(c, f.type) for c, f in zip(columns, LINE_SCHEMA, strict=True)],
        schema=LINE_SCHEMA,
    )


def _recipient(row: dict) -> tuple[str, str, str]:
    return row["recipient_type"], row["recipient_id"], row["currency"]


def _register_lines(con: duckdb.DuckDBPyConnection, home: Home) -> None:
    """`statement_line` on `con`: what every final statement said (shadows the warehouse view)."""
    files = sorted((statements_dir(home) / "line").glob("date=*/data.parquet"))
    tables = [pq.read_table(f, schema=LINE_SCHEMA) for f in files]
    con.register(
        "statement_line", pa.concat_tables(tables) if tables else LINE_SCHEMA.empty_table()
    )


def _repair_lines(home: Home) -> None:
    """Every final month has its statement_line file (a crash between the two writes)."""
    for month in final_months(home):
        if not _line_path(home, month).exists():
            write_parquet_atomic(_lines_of(read_final(home, month)), _line_path(home, month))


@contextmanager
def _locked(home: Home) -> Iterator[None]:
    path = statements_dir(home) / ".lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextmanager
def warehouse(home: Home) -> Iterator[duckdb.DuckDBPyConnection]:
    """The published warehouse, read-only, with `statement_line` registered."""
    if not home.warehouse.exists():
        raise StatementError(f"no warehouse at {home.warehouse}: run `tally run` first")
    con = connect(home.warehouse, read_only=True)
    try:
        _register_lines(con, home)
        yield con
    finally:
        con.close()


def _ledger_span(con: duckdb.DuckDBPyConnection):
    return con.execute("SELECT min(date), max(date) FROM balance_snapshot").fetchall()[0]


def _due(home: Home, con: duckdb.DuckDBPyConnection, at: datetime, grace: int) -> Month | None:
    """The next month to finalize: after the last final one, closed by `at`, and processed by
    the ledger through its last day."""
    first, last = _ledger_span(con)
    if last is None:
        return None
    finals = final_months(home)
    month = finals[-1].next if finals else Month.of(first)
    return month if closes_at(month, grace) <= at and month.last_day <= last else None


def next_due(home: Home, at: datetime, grace: int) -> Month | None:
    """The month that the next statement request would finalize (for the schedule)."""
    with warehouse(home) as con:
        return _due(home, con, at, grace)


def _finalize(
    home: Home, con: duckdb.DuckDBPyConnection, month: Month, at: datetime, grace: int
) -> None:
    """Write every customer's final statement of `month`, then what they said (its lines)."""
    header = {
        "status": "final",
        "closes_at": time_text(closes_at(month, grace)),
        "finalized_at": time_text(at),
        "open_because": None,
    }
    final = {
        "month": str(month),
        "finalized_at": time_text(at),
        "grace_days": grace,
        "ledger_last_day": _ledger_span(con)[1].isoformat(),
        "statements": compute(con, month, None, header=header),
    }
    write_json_atomic(final, final_path(home, month), replace=False)
    write_parquet_atomic(_lines_of(final), _line_path(home, month))
    _register_lines(con, home)


def close_due(home: Home, at: datetime, grace: int) -> list[Month]:
    """Finalize, in order, every month due by `at`; returns the months finalized now."""
    done: list[Month] = []
    with _locked(home), warehouse(home) as con:
        _repair_lines(home)
        while (month := _due(home, con, at, grace)) is not None:
            _finalize(home, con, month, at, grace)
            done.append(month)
    return done


@dataclass(frozen=True)
class MonthStatements:
    """Every customer's statement of one month, final or open (a draft)."""

    month: Month
    status: str
    docs: dict[str, dict]


def month_statements(
    home: Home, month: Month, customer: str | None = None, *, at: datetime | None = None
) -> MonthStatements:
    """The statements of `month` (of one customer, or all): the final ones once the month is
    closed, else computed from the ledger now. Finalizes due months first."""
    at = at or now()
    grace = grace_days()
    close_due(home, at, grace)
    final = read_final(home, month)
    if final is not None:
        docs = final["statements"]
        if customer is not None:
            docs = {customer: docs[customer]} if customer in docs else {}
        return MonthStatements(month, "final", docs)
    with warehouse(home) as con:
        _check_open(home, con, month, at)
        header = {
            "status": "open",
            "closes_at": time_text(closes_at(month, grace)),
            "finalized_at": None,
            "open_because": open_because(home, month, at, grace, _ledger_span(con)[1]),
        }
        return MonthStatements(month, "open", compute(con, month, customer, header=header))


def _month_name(month: Month) -> str:
    return month.start.strftime("%B %Y")


def open_because(home: Home, month: Month, at: datetime, grace: int, ledger_last) -> str:
    """Exactly why `month` is not final at `at`: its close is still ahead, the ledger has not
    processed its last day yet, or an earlier month is not final yet (months close in order)."""
    closes = closes_at(month, grace)
    name = _month_name(month)
    reasons = []
    if ledger_last is None or ledger_last < month.last_day:
        through = (
            f"the ledger has processed through {ledger_last.isoformat()}"
            if ledger_last is not None
            else "the ledger has processed no day yet"
        )
        reasons.append(f"{through}, not {month.last_day.isoformat()}, the last day of {name}")
    if at < closes:
        reasons.append(
            f"{name} closes after {(closes - timedelta(days=1)).date().isoformat()} "
            f"({grace} day(s) after the month ends; now is {at:%Y-%m-%d %H:%M} UTC)"
        )
    finals = final_months(home)
    first_open = finals[-1].next if finals else None
    if first_open is not None and first_open < month:
        reasons.append(f"months become final in order and {_month_name(first_open)} is not yet")
    if not reasons:  # closed and processed: the next statement request finalizes it
        reasons.append(f"{name} is due to become final at the next statement request")
    return "; ".join(reasons)


def _check_open(home: Home, con: duckdb.DuckDBPyConnection, month: Month, at: datetime) -> None:
    first, _ = _ledger_span(con)
    finals = final_months(home)
    if finals and month < finals[-1]:
        raise StatementError(
            f"{month} was closed before it had ledger data; its figures are adjustments in "
            f"the statement of {finals[-1].next}"
        )
    if first is None or month.end <= first:
        raise StatementError(f"no ledger data for {month} (the ledger starts {first or 'later'})")
    if Month.of(at.date()) < month:
        raise StatementError(f"{month} has not started yet (now is {time_text(at)})")


def statement(home: Home, customer: str, month: Month, *, at: datetime | None = None) -> dict:
    """One customer's statement of `month` (final once closed, else open)."""
    found = month_statements(home, month, customer, at=at)
    if customer in found.docs:
        return found.docs[customer]
    with warehouse(home) as con:
        known = con.execute(
            "SELECT count(*) FROM dim_customer WHERE customer_id = $c", {"c": customer}
        ).fetchall()[0][0]
    if known:  # added to the configuration after the month was final
        raise StatementError(f"{month} was final before customer {customer!r} existed")
    raise StatementError(f"unknown customer {customer!r}")

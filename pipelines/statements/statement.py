"""Monthly statements: what one customer's month says, read from the ledger in the warehouse.

A statement covers one UTC calendar month of one customer: per recipient (the organization pool
and each seat) and currency the opening balance, grants, consumption, expirations, closing
balance, available credits and overage; the month's grants and expirations; consumption by
product and event, by user and seat, and the top values of the hot breakdown keys; the ledger's
days (for the charts); and the adjustment lines it carries for closed months (see closing.py).

Every figure comes from the warehouse's ledger outputs (`balance_snapshot`,
`fact_credit_transaction`, priced `fact_signal` rows), through the `sql/statement_*.sql` files,
for one customer or for every customer at once. A statement is a plain JSON-ready dict: credits
are decimal strings with 6 places, so the same document is printed, persisted when final, and
rendered (render.py) without ever going through a float.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import duckdb
import msgspec

from pipelines.core.sql import load_sql

TOP_VALUES = 10  # values shown per hot key
RECIPIENT = ("recipient_type", "recipient_id", "currency")
BALANCE_FIGURES = (
    "opening_balance",
    "adjustments",
    "granted",
    "spent",
    "expired",
    "closing_balance",
    "available",
    "overage",
)
_DECODER = msgspec.json.Decoder(float_hook=Decimal)  # JSON numbers keep every digit
_ENCODER = msgspec.json.Encoder(decimal_format="number")


class StatementError(ValueError):
    """A statement that cannot be given (one line for people)."""


@dataclass(frozen=True, order=True)
class Month:
    """A UTC calendar month, [start, end)."""

    start: date

    @classmethod
    def parse(cls, text: str) -> Month:
        try:
            day = datetime.strptime(text, "%Y-%m").date()
        except ValueError:
            raise StatementError(f"month {text!r} is not YYYY-MM") from None
        return cls(day)

    @classmethod
    def of(cls, day: date) -> Month:
        return cls(day.replace(day=1))

    @property
    def end(self) -> date:
        return (self.start + timedelta(days=32)).replace(day=1)

    @property
    def next(self) -> Month:
        return Month(self.end)

    @property
    def last_day(self) -> date:
        return self.end - timedelta(days=1)

    def __str__(self) -> str:
        return self.start.strftime("%Y-%m")


def encode(doc: dict) -> bytes:
    """A statement (or a month of them) as indented JSON; hot-key numbers keep their digits."""
    return msgspec.json.format(_ENCODER.encode(doc), indent=1) + b"\n"


def decode(data: bytes | str) -> dict:
    return _DECODER.decode(data)


def credits_text(value: Decimal | None) -> str:
    """Credits as an exact decimal string with 6 places."""
    return f"{Decimal(value or 0):.6f}"


def _quantity_text(value: Decimal | None) -> str:
    if value is None:
        return "0"
    text = format(value.normalize(), "f")
    return text if text != "-0" else "0"


def time_text(value: datetime | None) -> str | None:
    """A UTC instant as RFC 3339 with Z."""
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _text(column: str, value):
    """One SQL value as it appears in a statement document."""
    if isinstance(value, Decimal):
        return _quantity_text(value) if column == "quantity" else credits_text(value)
    if isinstance(value, datetime):
        return time_text(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def _rows(con: duckdb.DuckDBPyConnection, name: str, params: dict) -> dict[str, list[dict]]:
    """The rows of sql/<name>.sql as documents, grouped by customer_id (dropped from the rows)."""
    rel = con.execute(load_sql(name), params)
    columns = [d[0] for d in rel.description]
    out: dict[str, list[dict]] = defaultdict(list)
    for row in rel.fetchall():
        record = {c: _text(c, v) for c, v in zip(columns, row, strict=True)}
        out[record.pop("customer_id")].append(record)
    return out


def _top_keys(con: duckdb.DuckDBPyConnection) -> dict[str, list[dict]]:
    if not con.execute("SELECT count(*) FROM dim_hot_key").fetchall()[0][0]:
        return {}
    found = _rows(con, "statement_top_keys", {"top": TOP_VALUES})
    for rows in found.values():
        for row in rows:
            del row["position"]
            row["value"] = None if row["value"] is None else _DECODER.decode(row["value"])
    return found


def _adjustment_line(row: dict) -> dict:
    """A pending adjustment as a statement line: the closed month it corrects and the deltas."""
    figures = ("granted", "spent", "expired", "net")
    return {
        "adjusted_month": row["adjusted_month"][:7],
        **{k: row[k] for k in (*RECIPIENT, *figures)},
    }


def _totals(balances: list[dict], adjustments: list[dict]) -> list[dict]:
    """Per currency, the sum of the recipients' figures (adjustments: of the adjustment lines)."""
    sums: dict[str, dict[str, Decimal]] = {}
    for row in balances:
        figures = sums.setdefault(row["currency"], defaultdict(Decimal))
        for name in BALANCE_FIGURES:
            if name != "adjustments":
                figures[name] += Decimal(row[name])
    for line in adjustments:
        sums.setdefault(line["currency"], defaultdict(Decimal))["adjustments"] += Decimal(
            line["net"]
        )
    return [
        {"currency": currency, **{n: credits_text(figures[n]) for n in BALANCE_FIGURES}}
        for currency, figures in sorted(sums.items())
    ]


def _with_adjustments(balances: list[dict], adjustments: list[dict]) -> list[dict]:
    """Each balance line with the net of its adjustment lines (already in its opening balance)."""
    net: dict[tuple, Decimal] = defaultdict(Decimal)
    for line in adjustments:
        net[tuple(line[k] for k in RECIPIENT)] += Decimal(line["net"])
    out = []
    for row in balances:
        row = {**row, "adjustments": credits_text(net[tuple(row[k] for k in RECIPIENT)])}
        out.append({k: row[k] for k in (*RECIPIENT, *BALANCE_FIGURES)})
    return out


def compute(
    con: duckdb.DuckDBPyConnection,
    month: Month,
    customer: str | None,
    *,
    header: dict,
) -> dict[str, dict]:
    """The statements of `month` for `customer` (None: every customer in dim_customer), keyed by
    customer id. `con` is the warehouse with `statement_line` registered (closing.py); `header`
    holds the status fields (status, closes_at, finalized_at) shared by every statement."""
    params = {"month_start": month.start, "month_end": month.end, "customer": customer}
    signals = load_sql("statement_signal")
    con.execute(f"CREATE OR REPLACE TEMP TABLE month_signal AS {signals}", params)
    ledger_last = con.execute("SELECT max(date) FROM balance_snapshot").fetchall()[0][0]
    as_of = None
    if ledger_last is not None and ledger_last >= month.start:
        as_of = min(ledger_last, month.last_day)
    sections = {
        "balances": _rows(con, "statement_balance", params),
        "grants": _rows(con, "statement_grant", params),
        "expirations": _rows(con, "statement_expiration", params),
        "consumption_by_product": _rows(con, "statement_by_product", {}),
        "consumption_by_user": _rows(con, "statement_by_user", {}),
        "top_keys": _top_keys(con),
        "daily": _rows(con, "statement_daily", params),
        "seats": _rows(con, "statement_seat", params),
    }
    adjustments = _rows(con, "statement_adjustment", {})
    customers = con.execute(
        "SELECT customer_id, name FROM dim_customer "
        "WHERE $customer IS NULL OR customer_id = $customer ORDER BY customer_id",
        {"customer": customer},
    ).fetchall()
    docs = {}
    for customer_id, name in customers:
        lines = [
            _adjustment_line(line)
            for line in adjustments.get(customer_id, [])
            if line["month"] == month.start.isoformat() and line["status"] == "pending"
        ]
        balances = sections["balances"].get(customer_id, [])
        docs[customer_id] = {
            "customer_id": customer_id,
            "customer_name": name,
            "month": str(month),
            "period_start": month.start.isoformat(),
            "period_end": month.end.isoformat(),
            **header,
            "as_of": None if as_of is None else as_of.isoformat(),
            "totals": _totals(balances, lines),
            "balances": _with_adjustments(balances, lines),
            "adjustments": lines,
            **{k: rows.get(customer_id, []) for k, rows in sections.items() if k != "balances"},
        }
    return docs

"""`tally report`: one self-contained HTML overview of the warehouse for finance and ops.

As of the ledger's last day: balances and burn rates per pool, the customers and seats in
overage or nearing zero, credits about to expire, consumption per day, and the data-quality
exceptions of the last `days` days (uncharged signals by cause, duplicate and rejection rates,
data keys spelled two ways). Figures come from `sql/report_*.sql` over the published warehouse.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb

from pipelines.core.clock import now
from pipelines.core.home import Home
from pipelines.core.sql import connect, load_sql
from pipelines.statements import charts, render
from pipelines.statements.statement import time_text
from pipelines.storage.files import write_bytes_atomic
from pipelines.warehouse.analytics import data_keys

BURN_DAYS = 7  # burn rate: average daily consumption over this many ledger days
NEAR_ZERO_DAYS = 14  # "nearing zero": available credits last fewer days than this
EXPIRY_HORIZON_DAYS = 30  # "expiring": grants with credits left that expire this soon
TOP_EXCEPTIONS = 15  # rows per kind of exception


class ReportError(ValueError):
    """A report that cannot be built (one line for people)."""


@dataclass(frozen=True)
class Report:
    """The rendered page and the figures it shows."""

    html: str
    sections: dict

    @property
    def as_of(self) -> date:
        return self.sections["as_of"]

    @property
    def pools(self) -> int:
        return len(self.sections["pools"])

    @property
    def attention(self) -> int:
        return len(self.sections["attention"])

    @property
    def expiring(self) -> int:
        return len(self.sections["expiring"])

    @property
    def exceptions(self) -> int:
        return sum(r["signals"] for r in self.sections["statuses"] if r["status"] != "priced")


def _records(con: duckdb.DuckDBPyConnection, name: str, params: dict) -> list[dict]:
    rel = con.execute(load_sql(name), params)
    columns = [d[0] for d in rel.description]
    return [dict(zip(columns, row, strict=True)) for row in rel.fetchall()]


def _daily_charts(rows: list[dict], first: date, last: date) -> list:
    """Credits consumed per day and currency, from the first day with data in the window."""
    used = [r["date"] for r in rows if r["spent"]] or [r["date"] for r in rows]
    first = max(first, min(used, default=first))
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    by_currency: dict[str, dict[date, Decimal]] = defaultdict(dict)
    for row in rows:
        by_currency[row["currency"]][row["date"]] = row["spent"]
    return [
        charts.bar_chart(
            f"Credits consumed per day, all customers ({currency})",
            [(d.isoformat(), spent.get(d, Decimal(0))) for d in days],
        )
        for currency, spent in sorted(by_currency.items())
    ]


def _duplicates(rows: list[dict]) -> dict:
    landed = sum(r["landed"] for r in rows)
    duplicates = sum(r["duplicates"] for r in rows)
    rate = f"{100 * duplicates / landed:.2f}%" if landed else "0.00%"
    return {"days": rows, "landed": landed, "duplicates": duplicates, "rate": rate}


def _query(con: duckdb.DuckDBPyConnection, as_of: date, first: date) -> dict:
    """Every section's rows, as of `as_of`, with data quality over [first, as_of]."""
    window = {"from_day": first, "as_of": as_of}
    balances = _records(
        con, "report_balance", {"as_of": as_of, "burn_days": BURN_DAYS, "near_days": NEAR_ZERO_DAYS}
    )
    return {
        "pools": [b for b in balances if b["recipient_type"] == "organization"],
        "attention": sorted(
            (b for b in balances if b["in_overage"] or b["nearing_zero"]),
            key=lambda b: (not b["in_overage"], -b["overage"], b["days_left"] or 0),
        ),
        "expiring": _records(
            con, "report_expiring", {"as_of": as_of, "horizon": EXPIRY_HORIZON_DAYS}
        ),
        "daily_charts": _daily_charts(_records(con, "report_daily", window), first, as_of),
        "statuses": _records(con, "report_status", window),
        "exceptions": _records(con, "report_exception", {**window, "top": TOP_EXCEPTIONS}),
        "duplicates": _duplicates(_records(con, "report_duplicate", window)),
        "rejected": _records(con, "report_rejected", {"from_day": first}),
    }


def build(home: Home, days: int = 30) -> Report:
    """The report over the published warehouse of `home` (`days`: the data-quality window)."""
    if not home.warehouse.exists():
        raise ReportError(f"no warehouse at {home.warehouse}: run `tally run` first")
    if days < 1:
        raise ReportError("--days must be at least 1")
    con = connect(home.warehouse, read_only=True)
    try:
        as_of = con.execute("SELECT max(date) FROM balance_snapshot").fetchall()[0][0]
        if as_of is None:
            raise ReportError("the ledger has no days yet: land signals and run `tally run`")
        first = as_of - timedelta(days=days - 1)
        sections = _query(con, as_of, first)
    finally:
        con.close()
    keys = data_keys(home.warehouse, from_ts=first, to_ts=as_of + timedelta(days=1))
    context = {
        "as_of": as_of,
        "first": first,
        "days": days,
        "generated_at": time_text(now()),
        "warehouse": str(home.warehouse),
        "thresholds": {
            "burn_days": BURN_DAYS,
            "near_days": NEAR_ZERO_DAYS,
            "horizon": EXPIRY_HORIZON_DAYS,
        },
        **sections,
        "drift": keys.warnings,
    }
    return Report(html=render.html("report.html.j2", **context), sections=context)


def write(home: Home, out: Path, days: int = 30) -> Report:
    """Build the report and write it to `out` (replaced atomically)."""
    report = build(home, days)
    write_bytes_atomic(report.html.encode(), out)
    return report

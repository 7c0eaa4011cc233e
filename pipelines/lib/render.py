"""Statements and reports as files people read: self-contained HTML (jinja2 templates in
pipelines/templates, inline CSS and SVG charts, nothing fetched), CSV and JSON."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import UTC, date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import jinja2

from pipelines.lib import charts
from pipelines.lib.statements import BALANCE_FIGURES, encode

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
CSV_COLUMNS = (
    "customer_id",
    "month",
    "status",
    "section",
    "currency",
    "recipient_type",
    "recipient_id",
    "item",
    "detail",
    "signals",
    "quantity",
    "credits",
)


def amount(text: str | Decimal | None) -> str:
    """An exact decimal with thousands separators ("12345.500000" -> "12,345.500000")."""
    if text is None:
        return ""
    whole, _, fraction = str(text).partition(".")
    sign = "-" if whole.startswith("-") else ""
    grouped = f"{int(whole.lstrip('-') or 0):,}"
    return f"{sign}{grouped}.{fraction}" if fraction else f"{sign}{grouped}"


def money(text: str | Decimal | None, places: int = 2) -> str:
    """An amount as people read it: `places` decimals, rounded half away from zero, thousands
    separators ("12345.675000" -> "12,345.68"). Documents (JSON, CSV) keep all 6 places."""
    if text is None or text == "":
        return ""
    value = Decimal(str(text)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    if value == 0:
        value = abs(value)  # no "-0.00"
    return f"{value:,.{places}f}"


def key_value(value) -> str:
    """A hot-key value as people read it: strings bare, other JSON as JSON, null as (missing)."""
    if value is None:
        return "(missing)"
    return value if isinstance(value, str) else encode(value).decode().strip()


def instant(value) -> str:
    """A timestamp as people read it: 2026-11-14 18:40:58Z (UTC, whole seconds)."""
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["amount"] = amount
    env.filters["money"] = money
    env.filters["key_value"] = key_value
    env.filters["instant"] = instant
    return env


_ENV = _environment()


def html(template: str, **context) -> str:
    return _ENV.get_template(template).render(**context)


# ------------------------------------------------------------------------------ statements


def _days(first: str, last: str) -> list[str]:
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def statement_charts(doc: dict) -> dict:
    """Daily consumption per currency, and a burn-down (closing balance per day) per pool and
    seat, over the month's ledger days."""
    if doc["as_of"] is None:
        return {"daily": [], "pools": [], "seats": []}
    days = _days(doc["period_start"], doc["as_of"])
    spent: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    closing: dict[tuple, dict[str, str]] = defaultdict(dict)
    for row in doc["daily"]:
        spent[row["currency"]][row["date"]] += Decimal(row["spent"])
        closing[(row["recipient_type"], row["recipient_id"], row["currency"])][row["date"]] = row[
            "closing_balance"
        ]
    daily = [
        charts.bar_chart(f"Credits consumed per day ({currency})", [(d, by_day[d]) for d in days])
        for currency, by_day in sorted(spent.items())
    ]
    pools, seats = [], []
    for (rtype, rid, currency), by_day in sorted(closing.items()):
        points, last = [], None
        for d in days:
            last = by_day.get(d, last)
            if last is not None:
                points.append((d, last))
        if rtype == "organization":
            pools.append(charts.line_chart(f"Pool {rid} balance ({currency})", points))
        else:
            seats.append(
                charts.line_chart(f"Seat {rid} ({currency})", points, width=310, height=150)
            )
    return {"daily": daily, "pools": pools, "seats": seats}


def statement_html(doc: dict) -> str:
    return html("statement.html.j2", s=doc, charts=statement_charts(doc))


def statement_json(doc: dict) -> str:
    return encode(doc).decode()


# Sections with several figures per document row, one CSV row each: (document list, the field
# that names the row or None, figures). The figure goes in `item`, or in `detail` after the name.
_CSV_FIGURES = {
    "balance": ("balances", None, BALANCE_FIGURES),
    "adjustment": ("adjustments", "adjusted_month", ("granted", "spent", "expired", "net")),
    "daily": ("daily", "date", ("spent", "closing_balance")),
}
# Sections with one CSV row per document row: (document list, item, detail, signals, quantity,
# credits) fields; None leaves the cell empty.
_CSV_LISTS = {
    "grant": ("grants", "grant_id", "expires_at", None, None, "amount"),
    "expiration": ("expirations", "grant_id", "expired_at", None, None, "amount"),
    "product_event": (
        "consumption_by_product",
        "product_id",
        "event_name",
        "signals",
        "quantity",
        "credits",
    ),
    "user_seat": ("consumption_by_user", "user_id", "user_name", "signals", None, "credits"),
    "top_key": ("top_keys", "key", "value", "signals", None, "credits"),
}


def _cell(row: dict, field: str | None):
    if field == "value":
        return key_value(row["value"])
    value = None if field is None else row.get(field)
    return "" if value is None else value


def _csv_rows(doc: dict):
    """(section, currency, recipient_type, recipient_id, item, detail, signals, quantity,
    credits) for every figure of a statement."""
    for section, (name, item, figures) in _CSV_FIGURES.items():
        for row in doc[name]:
            recipient = (row["currency"], row["recipient_type"], row["recipient_id"])
            for figure in figures:
                named = (row[item], figure) if item else (figure, "")
                yield (section, *recipient, *named, "", "", row[figure])
    for section, (name, *fields) in _CSV_LISTS.items():
        for row in doc[name]:
            recipient = (_cell(row, "recipient_type"), _cell(row, "recipient_id"))
            yield (section, row["currency"], *recipient, *(_cell(row, f) for f in fields))


def statement_csv(doc: dict) -> str:
    """One row per figure (long format), headed by CSV_COLUMNS."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in _csv_rows(doc):
        writer.writerow((doc["customer_id"], doc["month"], doc["status"], *row))
    return buffer.getvalue()


FORMATS = {"html": statement_html, "json": statement_json, "csv": statement_csv}

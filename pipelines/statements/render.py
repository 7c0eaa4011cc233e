"""Statements and reports as files people read: self-contained HTML (jinja2 templates in
pipelines/templates, inline CSS and SVG charts, nothing fetched), CSV and JSON."""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import jinja2
from markupsafe import Markup, escape

from pipelines.statements import charts
from pipelines.statements.statement import BALANCE_FIGURES, encode

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
    if value is None or value == "":
        return ""
    if isinstance(value, str):  # RFC 3339 text of a statement document
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


_SEPARATED = re.compile(r"(?<=[_\-./:@])")
_LONGEST_UNBROKEN = 16


def breakable(value) -> Markup:
    """An identifier that may wrap after its separators (`_ - . / : @`), and every 16 characters
    of a longer run, but nowhere else: `seat_allowance` wraps as `seat_` + `allowance`, never
    as `seat_allowanc` + `e` (cells of ids use `overflow-wrap: break-word`, see base.html.j2)."""
    text = "" if value is None else str(value)
    pieces = []
    for part in _SEPARATED.split(text):
        run = [part[i : i + _LONGEST_UNBROKEN] for i in range(0, len(part), _LONGEST_UNBROKEN)]
        pieces.extend(str(escape(chunk)) for chunk in run)
    return Markup("<wbr>".join(pieces))


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
    env.filters["breakable"] = breakable
    return env


_ENV = _environment()


def html(template: str, **context) -> str:
    return _ENV.get_template(template).render(**context)


# ------------------------------------------------------------------------------ statements


def _days(first: str, last: str) -> list[str]:
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def statement_charts(doc: dict) -> dict:
    """Daily consumption per currency, and a burn-down (closing balance per day) per organization
    pool, over the month's ledger days (seats are rows of the balances table, not charts: a
    customer may have hundreds)."""
    if doc["as_of"] is None:
        return {"daily": [], "pools": []}
    days = _days(doc["period_start"], doc["as_of"])
    spent: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    closing: dict[tuple, dict[str, str]] = defaultdict(dict)
    for row in doc["daily"]:
        spent[row["currency"]][row["date"]] += Decimal(row["spent"])
        if row["recipient_type"] == "organization":
            key = (row["recipient_id"], row["currency"])
            closing[key][row["date"]] = row["closing_balance"]
    daily = [
        charts.bar_chart(f"Credits consumed per day ({currency})", [(d, by_day[d]) for d in days])
        for currency, by_day in sorted(spent.items())
    ]
    pools = []
    for (rid, currency), by_day in sorted(closing.items()):
        points, last = [], None
        for d in days:
            last = by_day.get(d, last)
            if last is not None:
                points.append((d, last))
        pools.append(charts.line_chart(f"Pool {rid} balance ({currency})", points))
    return {"daily": daily, "pools": pools}


USER_ROWS = 25  # consumption-by-user rows per currency in the HTML (all in JSON and CSV)


def top_users(doc: dict, per_currency: int = USER_ROWS) -> list[dict]:
    """The largest consumption-by-user lines of each currency (the document lists them by
    currency, then credits, largest first)."""
    shown: dict[str, int] = defaultdict(int)
    out = []
    for row in doc["consumption_by_user"]:
        if shown[row["currency"]] < per_currency:
            shown[row["currency"]] += 1
            out.append(row)
    return out


def seat_users(doc: dict) -> dict[str, str]:
    """Each seat's users during the month, as people read them ("Jane Doe, Max Roe")."""
    names: dict[str, list[str]] = defaultdict(list)
    for row in doc.get("seats", []):
        name = row["user_name"] or row["user_id"]
        if name not in names[row["seat_id"]]:
            names[row["seat_id"]].append(name)
    return {seat: ", ".join(users) for seat, users in names.items()}


def _summary(doc: dict) -> list[dict]:
    """Per currency: the balance totals, the month's grants (count, credits) and consumption
    (priced signals, credits) for the first page."""
    grants: dict[str, list] = defaultdict(lambda: [0, Decimal(0)])
    for g in doc["grants"]:
        grants[g["currency"]][0] += 1
        grants[g["currency"]][1] += Decimal(g["amount"])
    signals: dict[str, int] = defaultdict(int)
    for c in doc["consumption_by_product"]:
        signals[c["currency"]] += c["signals"]
    return [
        {
            **t,
            "grant_count": grants[t["currency"]][0],
            "signals": signals[t["currency"]],
            "pools": sum(
                1
                for b in doc["balances"]
                if b["currency"] == t["currency"] and b["recipient_type"] == "organization"
            ),
            "seats": sum(
                1
                for b in doc["balances"]
                if b["currency"] == t["currency"] and b["recipient_type"] == "seat"
            ),
        }
        for t in doc["totals"]
    ]


def statement_html(doc: dict, source: str | None = None) -> str:
    """The statement as a self-contained page: a one-page summary, then the details. `source`
    names the warehouse the figures were read from (the footer)."""
    return html(
        "statement.html.j2",
        s=doc,
        charts=statement_charts(doc),
        seat_users=seat_users(doc),
        summary=_summary(doc),
        user_rows=USER_ROWS,
        users=top_users(doc),
        source=source,
    )


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


def _csv_totals(doc: dict):
    """Per currency: the statement's totals (section `total`) and the sums of its consumption
    lists (`product_event_total`, `user_seat_total`), so a spreadsheet needs no formula."""
    for t in doc["totals"]:
        for figure in BALANCE_FIGURES:
            yield ("total", t["currency"], "", "", figure, "", "", "", t[figure])
    for section, name in (
        ("product_event_total", "consumption_by_product"),
        ("user_seat_total", "consumption_by_user"),
    ):
        sums: dict[str, list] = defaultdict(lambda: [0, Decimal(0), Decimal(0)])
        for row in doc[name]:
            sums[row["currency"]][0] += row["signals"]
            sums[row["currency"]][1] += Decimal(row.get("quantity") or 0)
            sums[row["currency"]][2] += Decimal(row["credits"])
        for currency, (signals, quantity, credits) in sorted(sums.items()):
            shown = "" if section == "user_seat_total" else format(quantity.normalize(), "f")
            yield (section, currency, "", "", "total", "", signals, shown, f"{credits:.6f}")


def statement_csv(doc: dict) -> str:
    """One row per figure (long format), headed by CSV_COLUMNS, then the totals per currency.
    Credits keep 6 decimal places."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in (*_csv_rows(doc), *_csv_totals(doc)):
        writer.writerow((doc["customer_id"], doc["month"], doc["status"], *row))
    return buffer.getvalue()


CHROMIUM_ENV = "TALLY_CHROMIUM"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-pdf-header-footer",
)


class RenderError(RuntimeError):
    """A file that cannot be rendered (one line for people)."""


def chromium() -> str:
    """The headless browser that prints PDFs: $TALLY_CHROMIUM, else chromium on the PATH."""
    found = os.environ.get(CHROMIUM_ENV) or next(
        (
            p
            for name in ("chromium", "chromium-browser", "google-chrome")
            if (p := shutil.which(name))
        ),
        None,
    )
    if not found:
        raise RenderError(
            "writing a PDF needs Chromium: install it (apt-get install chromium) or set "
            f"{CHROMIUM_ENV} to a Chromium or Chrome executable"
        )
    return found


def html_to_pdf(page: str, target: Path) -> None:
    """Print an HTML page to `target` (A4, the page's print styles) with headless Chromium."""
    import subprocess
    import tempfile

    browser = chromium()
    with tempfile.TemporaryDirectory(prefix="tally-pdf-") as tmp:
        source = Path(tmp) / "page.html"
        source.write_text(page, encoding="utf-8")
        pdf = Path(tmp) / "page.pdf"
        command = [
            browser,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={Path(tmp) / 'profile'}",
            f"--print-to-pdf={pdf}",
            source.as_uri(),
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RenderError(f"{browser} could not print the PDF: {exc}") from None
        if done.returncode != 0 or not pdf.exists() or not pdf.read_bytes().startswith(b"%PDF"):
            detail = (done.stderr.strip().splitlines() or ["no PDF written"])[-1]
            raise RenderError(f"{browser} could not print the PDF: {detail}")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp_target = target.with_name(target.name + ".tmp")
        shutil.copyfile(pdf, tmp_target)
        tmp_target.replace(target)


FORMATS = {"html": statement_html, "json": statement_json, "csv": statement_csv}
SUFFIXES = {"html": "html", "htm": "html", "json": "json", "csv": "csv", "pdf": "pdf"}

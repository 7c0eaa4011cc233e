"""Breakdowns by any JSON key and key discovery, over the published warehouse (docs/warehouse.md).

A KEY is a data path (any syntax of pipelines/pricing/paths.py) or one of the built-in dimensions
below. Paths reach SQL only as bound JSON pointers; a path that is a configured hot key reads its
pre-extracted column instead of parsing `data` again.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from pipelines.core.sql import connect, load_sql, render
from pipelines.pricing.paths import format_path, parse_path, to_json_pointer

# The built-in keys on signal_rollup (one row per UTC day and dimension values, see
# sql/signal_rollup.sql): a breakdown that only needs these and hot keys reads the rollup.
_RECIPIENT = "CASE WHEN recipient_id IS NOT NULL THEN recipient_type || ':' || recipient_id END"
ROLLUP = {
    "customer": "customer_id",
    "product": "product_id",
    "event": "event_name",
    "user": "user_id",
    "seat": "seat_id",
    "currency": "currency",
    "status": "status",
    "recipient": _RECIPIENT,
    "day": "day",
    "week": "CAST(date_trunc('week', day) AS DATE)",
    "month": "CAST(date_trunc('month', day) AS DATE)",
}
# The same on the priced signals; days are UTC days whatever the session's TimeZone.
_UTC_DAY = "CAST(timezone('UTC', timestamp) AS DATE)"
BUILTIN = {
    **ROLLUP,
    "seat": "CASE WHEN recipient_type = 'seat' THEN recipient_id END",
    "day": _UTC_DAY,
    "week": f"CAST(date_trunc('week', {_UTC_DAY}) AS DATE)",
    "month": f"CAST(date_trunc('month', {_UTC_DAY}) AS DATE)",
}
STATUSES = (
    "priced",
    "unknown_customer",
    "unattributed",
    "unknown_product",
    "unpriced",
    "invalid_quantity",
)


JSON_TYPES = {
    "UBIGINT": "integer",
    "BIGINT": "integer",
    "DOUBLE": "number",
    "VARCHAR": "string",
    "BOOLEAN": "boolean",
    "OBJECT": "object",
    "ARRAY": "array",
    "NULL": "null",
}


class AnalyticsError(ValueError):
    """A breakdown or key request that cannot be answered (one line for people)."""


def _open(warehouse: Path) -> duckdb.DuckDBPyConnection:
    if not warehouse.exists():
        raise AnalyticsError(f"no warehouse at {warehouse}: run `tally run` first")
    return connect(warehouse, read_only=True)


def _day(value: str | date | None, option: str) -> str | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise AnalyticsError(f"{option} {value!r} is not a date (YYYY-MM-DD)") from None


@dataclass(frozen=True)
class Breakdown:
    """The result: one column per key (as given), `currency` (unless a key), then signals,
    quantity, credits. Figures are never added across currencies."""

    keys: list[str]
    table: pa.Table
    json_keys: set[str]  # keys whose values are JSON text (data paths)
    note: str = ""  # which statuses the counts include

    @property
    def columns(self) -> list[str]:
        return self.table.column_names


def _rollup_is_current(con: duckdb.DuckDBPyConnection) -> bool:
    """Rollup parts written before it had currency and status cannot answer per currency."""
    return not con.execute(
        "SELECT count(*) FROM internal.signal_rollup_part WHERE status IS NULL"
    ).fetchall()[0][0]


def breakdown(
    warehouse: Path,
    by: list[str],
    *,
    from_day: str | date | None = None,
    to_day: str | date | None = None,
    customer: str | None = None,
    product: str | None = None,
    event: str | None = None,
    status: str | None = None,
    force_signals: bool = False,
) -> Breakdown:
    """Signals, quantity and credits by `by` and currency (`from_day` inclusive, `to_day`
    exclusive, UTC days); `status` keeps one pricing status (default: every accepted signal;
    the ones not priced have no currency and 0 credits).

    Keys that are all built-in dimensions or hot keys are answered from `signal_rollup`;
    `force_signals` reads fact_signal instead (the same numbers, slower; used by tests).
    """
    if not by:
        raise AnalyticsError("give at least one --by KEY")
    if len(set(by)) != len(by):
        raise AnalyticsError("each --by KEY may appear once")
    if status is not None and status not in STATUSES:
        raise AnalyticsError(f"--status must be one of {', '.join(STATUSES)}, not {status!r}")
    con = _open(warehouse)
    hot = {
        format_path(parse_path(path)): position
        for position, path in con.execute("SELECT position, path FROM dim_hot_key").fetchall()
    }
    terms, params, json_keys = [], {}, set()
    segments_of = {}
    for key in by:
        if key not in BUILTIN:
            try:
                segments_of[key] = parse_path(key)
            except ValueError as exc:
                raise AnalyticsError(f"--by {key!r}: {exc}") from None
    use_rollup = (
        all(format_path(s) in hot for s in segments_of.values())
        and not force_signals
        and _rollup_is_current(con)
    )
    dims = ROLLUP if use_rollup else BUILTIN
    for n, key in enumerate(by):
        alias = f'"k{n}"'
        if key in BUILTIN:
            terms.append(f"{dims[key]} AS {alias}")
            continue
        segments = segments_of[key]
        json_keys.add(key)
        position = hot.get(format_path(segments))
        if position is not None:
            terms.append(f"hot_key_{int(position)} AS {alias}")
        else:
            params[f"k{n}"] = to_json_pointer(segments)
            # One JSON parse per signal; JSON null groups with a missing key.
            terms.append(f"nullif(json_extract(data, $k{n}), 'null'::JSON) AS {alias}")
    columns = list(by)
    if "currency" not in by:
        terms.append('currency AS "currency"')
        columns.append("currency")
    params.update(
        from_ts=_day(from_day, "--from"),
        to_ts=_day(to_day, "--to"),
        customer=customer,
        product=product,
        event=event,
        status=status,
    )
    name = "breakdown_rollup" if use_rollup else "breakdown"
    sql = render(name, key_terms=",\n    ".join(terms))
    table = con.sql(sql, params=params).to_arrow_table()
    con.close()
    table = table.rename_columns([*columns, "signals", "quantity", "credits"])
    if status is not None:
        note = f"signals: status {status} only"
    elif "status" in by:
        note = "signals: every accepted signal, by status"
    else:
        note = (
            "signals: every accepted signal, whatever its status (only priced ones have "
            "credits): --by status shows them apart, --status priced counts the charged ones"
        )
    return Breakdown(keys=by, table=table, json_keys=json_keys, note=note)


@dataclass(frozen=True)
class KeyReport:
    rows: list[dict]
    warnings: list[str]


def _style(key: str) -> str:
    """A key with case and separators removed: `externalUserId` ~ `external_user_id`."""
    return re.sub(r"[^0-9a-z]", "", key.lower())


def data_keys(
    warehouse: Path,
    event: str | None = None,
    from_ts: datetime | None = None,
    to_ts: datetime | None = None,
) -> KeyReport:
    """Every data path per event with types, counts, first/last seen, plus spelling warnings;
    optionally only signals with `from_ts <= timestamp < to_ts`."""
    con = _open(warehouse)
    params = {"event": event, "from_ts": from_ts, "to_ts": to_ts}
    rel = con.execute(load_sql("data_keys"), params)
    columns = [d[0] for d in rel.description]
    rows = [dict(zip(columns, r, strict=True)) for r in rel.fetchall()]
    con.close()
    for row in rows:
        row["path"] = format_path(row.pop("keys"))
        row["json_type"] = JSON_TYPES.get(row["json_type"], row["json_type"].lower())
    # Keys at the same place that differ only in case or separators split breakdowns.
    spellings: dict[tuple, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for row in rows:
        segments = parse_path(row["path"])
        parent, leaf = segments[:-1], segments[-1]
        if isinstance(leaf, str):
            place = (tuple(_style(s) if isinstance(s, str) else s for s in parent), _style(leaf))
            counts = spellings[place][row["path"]]
            counts[row["event_name"]] = counts.get(row["event_name"], 0) + row["signals"]
    warnings = []
    for variants in spellings.values():
        if len(variants) > 1:
            parts = [
                f"{path} ({', '.join(f'{e}: {n:,}' for e, n in sorted(events.items()))})"
                for path, events in sorted(variants.items(), key=lambda kv: -sum(kv[1].values()))
            ]
            warnings.append(
                "keys differ only in spelling, which splits breakdowns: " + " vs ".join(parts)
            )
    return KeyReport(rows=rows, warnings=warnings)

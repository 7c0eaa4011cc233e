"""What the API reads: balances and transactions from the published warehouse (the last billing
run), signals from the lake (everything acknowledged), and read-only analytics SQL.

Balances and transactions reflect the last billing run only (`asOf` in the responses says which
day); signals landed since then are not added on top, so nothing is ever counted twice. Signals
listed by `GET signals/` are everything landed, the moment it is acknowledged.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import duckdb
import msgspec

from pipelines.api.errors import ApiError
from pipelines.core.home import Home
from pipelines.core.sql import connect, load_sql
from pipelines.landing.lake import Lake

QUERY_ROW_CAP = 10_000
QUERY_TIMEOUT_S = 30.0
QUERY_BYTE_CAP = 16 << 20  # JSON bytes of `rows`; past it the result is truncated like the row cap
QUERY_MEMORY = os.environ.get("TALLY_ANALYTICS_MEMORY", "1GB")  # DuckDB memory_limit, no spilling
_encode = msgspec.json.Encoder(decimal_format="number").encode


@contextmanager
def warehouse(home: Home) -> Iterator[duckdb.DuckDBPyConnection | None]:
    """A read-only connection to the published warehouse, or None before the first run."""
    if not home.warehouse.exists():
        yield None
        return
    con = connect(home.warehouse, read_only=True)
    try:
        yield con
    finally:
        con.close()


def rows(rel: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in rel.description]
    return [dict(zip(names, r, strict=True)) for r in rel.fetchall()]


def balance_rows(home: Home, customer: str) -> list[dict[str, Any]]:
    """Pools and their grants (sql/api_balances.sql): one row per grant, or per pool without any."""
    with warehouse(home) as con:
        if con is None:
            return []
        return rows(con.execute(load_sql("api_balances"), {"customer": customer}))


def transactions(home: Home, **filters: Any) -> tuple[list[dict[str, Any]], int]:
    with warehouse(home) as con:
        if con is None:
            return [], 0
        out = rows(con.execute(load_sql("api_transactions"), filters))
        if out or not filters.get("offset"):
            return out, (out[0]["total"] if out else 0)
        # A page past the end: the total still counts every match.
        first = rows(con.execute(load_sql("api_transactions"), filters | {"offset": 0}))
    return out, (first[0]["total"] if first else 0)


FILTERS = (
    "seq",
    "name",
    "customer_id",
    "external_customer_id",
    "product_id",
    "external_product_id",
    "from_ts",
    "to_ts",
)


def signals(
    lake: Lake, limit: int = 100, offset: int = 0, **filters: Any
) -> tuple[list[dict[str, Any]], int]:
    """Landed signals newest first, filtered by any of FILTERS (absent = any); `seq` narrows
    the scan to the one file that holds it."""
    params: dict[str, Any] = dict.fromkeys(FILTERS) | filters | {"limit": limit, "offset": offset}
    files = lake.files()
    if params["seq"] is not None:
        files = [f for f in files if f.min_seq <= params["seq"] <= f.max_seq]
    if not files:
        return [], 0
    params["files"] = [str(f.path) for f in files]
    con = connect()
    try:
        out = rows(con.execute(load_sql("api_signals"), params))
        if not out and offset:  # a page past the end: the total still counts every match
            first = rows(con.execute(load_sql("api_signals"), params | {"offset": 0, "limit": 1}))
            return out, (first[0]["total"] if first else 0)
    finally:
        con.close()
    return out, (out[0]["total"] if out else 0)


# ----------------------------------------------------------------------------------- analytics
def _json_cell(value: Any, type_name: str) -> Any:
    """64-bit integers as strings (as the Paid API does); decimals stay exact JSON numbers."""
    if value is None:
        return None
    if type_name in ("BIGINT", "UBIGINT", "HUGEINT", "UHUGEINT"):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, (int, float, str, bool, Decimal)):
        return value
    if isinstance(value, (list, tuple)):
        return [_json_cell(v, "") for v in value]
    if isinstance(value, dict):
        return {str(k): _json_cell(v, "") for k, v in value.items()}
    return str(value)


def _sandbox(home: Home) -> duckdb.DuckDBPyConnection:
    """Read-only warehouse connection that can read the home's Parquet and nothing else, within
    QUERY_MEMORY and without spilling to disk. It is an instance of its own (see
    `pipelines.core.sql.connect`), so locking its configuration affects no other reader."""
    con = connect(home.warehouse, read_only=True)
    allowed = [str(d) + "/" for d in (home.engine_dir, home.lake, home.root / "statements")]
    con.execute("SET allowed_directories = $dirs", {"dirs": allowed})
    con.execute("SET memory_limit = $m", {"m": QUERY_MEMORY})
    con.execute("SET temp_directory = ''")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def analytics_query(home: Home, query: str) -> dict[str, Any]:
    """Run one SELECT (or WITH ... SELECT) read-only, capped at 10,000 rows and 30 seconds."""
    if not home.warehouse.exists():
        raise ApiError(400, "there is no warehouse yet: run the billing run first", "no_warehouse")
    con = _sandbox(home)
    timer = threading.Timer(QUERY_TIMEOUT_S, con.interrupt)
    try:
        try:
            statements = con.extract_statements(query)
        except duckdb.Error as exc:
            raise ApiError(400, f"the query does not parse: {exc}", "invalid_query") from None
        if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
            raise ApiError(400, "the query must be one SELECT statement", "invalid_query")
        started = datetime.now()
        timer.start()
        try:
            rel = con.execute(query)
            fetched = rel.fetchmany(QUERY_ROW_CAP + 1)
        except duckdb.InterruptException:
            raise ApiError(
                408, f"the query ran over {QUERY_TIMEOUT_S:.0f} s", "query_timeout"
            ) from None
        except duckdb.OutOfMemoryException:
            raise ApiError(
                400,
                f"the query needs more than the {QUERY_MEMORY} memory limit of analytics queries",
                "query_out_of_memory",
            ) from None
        except duckdb.Error as exc:
            raise ApiError(400, f"the query failed: {exc}", "invalid_query") from None
        elapsed = (datetime.now() - started).total_seconds() * 1000
        types = [str(d[1]) for d in rel.description]
        columns = [{"name": d[0], "type": t} for d, t in zip(rel.description, types, strict=True)]
        truncated = len(fetched) > QUERY_ROW_CAP
        data, size = [], 0
        for r in fetched[:QUERY_ROW_CAP]:
            row = [_json_cell(v, t) for v, t in zip(r, types, strict=True)]
            size += len(_encode(row)) + 1  # the row and its comma
            if size > QUERY_BYTE_CAP:
                truncated = True
                break
            data.append(row)
        return {
            "columns": columns,
            "rows": data,
            "meta": {
                "rowCount": len(data),
                "elapsedMs": round(elapsed, 3),
                "truncated": truncated,
            },
        }
    finally:
        timer.cancel()
        con.close()


VIEW_COMMENTS = {
    "fact_signal": "every accepted, de-duplicated signal with its status, credits and recipient",
    "fact_credit_transaction": "grants (+), spends (-) and expiries (-) per recipient",
    "balance_snapshot": "one row per UTC day and pool or seat: opening, granted, spent, expired, "
    "closing, available, overage",
    "raw_signal": "everything landed, duplicates included (flagged)",
    "rejected_signal": "signals that failed validation, as received, with the reason",
    "dim_credit_grant": "grants with used, expired and remaining credits after the last day",
}


def schema(home: Home) -> dict[str, Any]:
    with warehouse(home) as con:
        if con is None:
            return {"views": []}
        cols = rows(
            con.execute(
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'main' AND (table_name LIKE 'dim\\_%' ESCAPE '\\' "
                "OR table_name LIKE 'fact\\_%' ESCAPE '\\' OR table_name IN "
                "('balance_snapshot', 'raw_signal', 'rejected_signal', 'signal_rollup')) "
                "ORDER BY table_name, ordinal_position"
            )
        )
    views: dict[str, list] = {}
    for c in cols:
        views.setdefault(c["table_name"], []).append(
            {"name": c["column_name"], "type": c["data_type"], "comment": ""}
        )
    return {
        "views": [
            {"name": name, "comment": VIEW_COMMENTS.get(name, ""), "columns": columns}
            for name, columns in views.items()
        ]
    }

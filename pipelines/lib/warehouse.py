"""Publish `warehouse.duckdb`: views over the engine's Parquet plus the dimension tables.

The file is built beside the old one and renamed over it, so publishing never waits for readers
and readers never see a half-published warehouse (PRODUCT.md §5, ARCHITECTURE.md rule 7).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import duckdb
import pyarrow as pa

from pipelines.lib.config import Config
from pipelines.lib.home import Home
from pipelines.lib.lake import REJECT_SCHEMA, SIGNAL_SCHEMA, write_parquet_atomic
from pipelines.lib.pricing import hot_key_pointers
from pipelines.lib.sql import connect, load_sql


def sql_literal(text: str) -> str:
    """A SQL string literal (for the home's own directories in view definitions)."""
    return "'" + text.replace("'", "''") + "'"


def _sources(home: Home, config: Config) -> dict[str, str]:
    """Each view's file glob as a SQL literal; an empty file of the right schema if none exist."""
    from pipelines.lib.closing import LINE_SCHEMA, statements_dir
    from pipelines.lib.ledger import BALANCE_SCHEMA, EVENT_SCHEMA, GRANT_SCHEMA
    from pipelines.lib.pricing import empty_fact_signal, empty_rollup

    sources = {
        "fact_signal": (home.engine_dir / "fact_signal", empty_fact_signal),
        "signal_rollup": (home.engine_dir / "signal_rollup", empty_rollup),
        "balance_snapshot": (home.engine_dir / "balance_snapshot", BALANCE_SCHEMA.empty_table),
        "grant_balance": (home.engine_dir / "grant_balance", GRANT_SCHEMA.empty_table),
        "credit_event": (home.engine_dir / "credit_event", EVENT_SCHEMA.empty_table),
        "signals": (home.lake / "signals", SIGNAL_SCHEMA.empty_table),
        "rejects": (home.lake / "rejects", REJECT_SCHEMA.empty_table),
        "statement_line": (statements_dir(home) / "line", LINE_SCHEMA.empty_table),
    }
    # Months are finalized between publishes: an empty file keeps the statement_line glob valid
    # from the start, so the view lists final statements at query time, not as of the publish.
    lines_anchor = statements_dir(home) / "line" / "date=none" / "data.parquet"
    if not lines_anchor.exists():
        write_parquet_atomic(LINE_SCHEMA.empty_table(), lines_anchor)
    out = {}
    for name, (directory, empty) in sources.items():
        if any(directory.glob("date=*/*.parquet")):
            out[name] = sql_literal(str(directory / "date=*" / "*.parquet"))
        else:
            placeholder = home.engine_dir / "_empty" / f"{name}.parquet"
            table = empty(config) if name in ("fact_signal", "signal_rollup") else empty()
            write_parquet_atomic(table, placeholder)
            out[name] = sql_literal(str(placeholder))
    return out


def _version() -> str:
    """Changes whenever the published views or macros do (their SQL)."""
    text = load_sql("warehouse") + load_sql("statement_adjustment")
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def is_current(home: Home) -> bool:
    """False when the published warehouse was built by an older Tally (other views): republish
    it, even when there is no new data to process."""
    if not home.warehouse.exists():
        return True
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        return con.execute("SELECT schema_version FROM tally_meta").fetchall() == [(_version(),)]
    except duckdb.CatalogException:
        return False
    finally:
        con.close()


def publish(home: Home, config: Config) -> Path:
    """Write the warehouse for `home` and atomically replace the published file."""
    target = home.warehouse
    tmp = target.with_name(target.name + ".tmp")
    for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
        leftover.unlink(missing_ok=True)
    con = connect(tmp)
    try:
        tables = config.tables()
        tables["credit_grant_config"] = tables.pop("dim_credit_grant")
        tables["dim_hot_key"] = pa.table(
            {
                "position": pa.array(range(1, len(config.hot_keys) + 1), pa.int32()),
                "path": pa.array(config.hot_keys, pa.string()),
                "pointer": pa.array(hot_key_pointers(config), pa.string()),
            }
        )
        for name, table in tables.items():
            con.register("_incoming", table)
            con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM _incoming')
            con.unregister("_incoming")
        script = load_sql("warehouse").replace(
            "{statement_adjustment_sql}", load_sql("statement_adjustment")
        )
        for name, literal in _sources(home, config).items():
            script = script.replace("{" + name + "}", literal)
        con.execute(script)
        con.execute("CREATE TABLE tally_meta AS SELECT $v AS schema_version", {"v": _version()})
        con.execute("CHECKPOINT")
    finally:
        con.close()
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, target)
    return target

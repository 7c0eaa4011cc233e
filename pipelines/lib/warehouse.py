"""Publish `warehouse.duckdb`: views over the engine's Parquet plus the dimension tables.

The file is built beside the old one and renamed over it, so publishing never waits for readers
and readers never see a half-published warehouse (PRODUCT.md §5, ARCHITECTURE.md rule 7).
"""

from __future__ import annotations

import os
from pathlib import Path

from pipelines.lib.config import Config
from pipelines.lib.home import Home
from pipelines.lib.sql import connect, load_sql


def sql_literal(text: str) -> str:
    """A SQL string literal (for the home's own directories in view definitions)."""
    return "'" + text.replace("'", "''") + "'"


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
        for name, table in tables.items():
            con.register("_incoming", table)
            con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM _incoming')
            con.unregister("_incoming")
        script = load_sql("warehouse").format(
            engine=sql_literal(str(home.engine_dir)), lake=sql_literal(str(home.lake))
        )
        con.execute(script)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, target)
    return target

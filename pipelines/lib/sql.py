"""Load the pipeline's SQL from `sql/` by name; open DuckDB connections one way everywhere."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import duckdb

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"


@functools.cache
def load_sql(name: str) -> str:
    """The statement in `sql/<name>.sql` (parameters are `$named`, always bound, never pasted)."""
    return (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")


def connect(
    database: str | Path = ":memory:", *, read_only: bool = False
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with Tally's settings (memory cap, threads, UTC)."""
    config = {
        "memory_limit": os.environ.get("TALLY_DUCKDB_MEMORY", "1500MB"),
        "preserve_insertion_order": "false",
    }
    threads = os.environ.get("TALLY_DUCKDB_THREADS")
    if threads:
        config["threads"] = threads
    con = duckdb.connect(str(database), read_only=read_only, config=config)
    con.execute("SET TimeZone = 'UTC'")
    return con

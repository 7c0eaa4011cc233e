"""Load the pipeline's SQL from `sql/` by name; open DuckDB connections one way everywhere."""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

import duckdb

import pipelines


def _sql_dir() -> Path:
    """Where the SQL files are: `pipelines/sql/` in an installed wheel (setup.py maps the
    top-level `sql/` there), the top-level `sql/` beside the package in a source checkout."""
    package = Path(pipelines.__file__).resolve().parent
    for candidate in (package / "sql", package.parent / "sql"):
        if (candidate / "warehouse.sql").is_file():
            return candidate
    raise RuntimeError(
        f"Tally's SQL files are missing: neither {package / 'sql'} nor the top-level sql/"
    )


SQL_DIR = _sql_dir()


@functools.cache
def load_sql(name: str) -> str:
    """The statement in `sql/<name>.sql` (parameters are `$named`, always bound, never pasted)."""
    return (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")


_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def render(name: str, **fills: str) -> str:
    """A template, `sql/<name>.sql` with `{placeholder}`s: the one way Tally writes SQL text.

    Placeholders take only SQL that Tally builds itself (identifiers through
    `warehouse.quote_identifier`, literals through `warehouse.sql_literal`, integers); values a
    user sends are always `$named` parameters. Every placeholder must be filled, and only those.
    """
    lines = []  # (code, comment): braces in `--` comments are prose, not placeholders
    for line in load_sql(name).splitlines(keepends=True):
        cut = line.find("--")
        lines.append((line, "") if cut < 0 else (line[:cut], line[cut:]))
    wanted = {found for code, _ in lines for found in _PLACEHOLDER.findall(code)}
    if wanted != set(fills):
        raise ValueError(f"sql/{name}.sql has placeholders {sorted(wanted)}, given {sorted(fills)}")
    return "".join(
        _PLACEHOLDER.sub(lambda m: fills[m.group(1)], code) + comment for code, comment in lines
    )


@functools.cache
def _s3():
    """The S3 filesystem of a shared lake (endpoint and credentials from the `AWS_*` variables)."""
    import s3fs

    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    return s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint} if endpoint else None)


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
    if read_only and str(database) != ":memory:":
        # Every read-only open is an instance of its own with the file attached: DuckDB shares
        # one instance per file within a process, so a second open with other settings fails
        # ("same database file with a different configuration") and an open while an older
        # connection lives would see the file that publishing has since replaced.
        con = duckdb.connect(":memory:", config=config)
        name = '"' + Path(database).stem.replace('"', '""') + '"'
        path = "'" + str(database).replace("'", "''") + "'"
        con.execute(f"ATTACH {path} AS {name} (READ_ONLY)")
        con.execute(f"USE {name}")
    else:
        con = duckdb.connect(str(database), read_only=read_only, config=config)
    con.execute("SET TimeZone = 'UTC'")
    if os.environ.get("TALLY_WAREHOUSE_URI", "").startswith("s3://"):
        con.register_filesystem(_s3())  # the shared lake's files (DuckDB reads them via fsspec)
    if str(database) != ":memory:":  # the warehouse's views read files relative to its home
        home = Path(database).resolve().parent
        con.execute("SET VARIABLE tally_home = $home", {"home": str(home)})
    return con

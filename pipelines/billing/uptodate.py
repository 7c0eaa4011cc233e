"""A memo of Dagster's last "everything is up to date" answer, so that asking again when nothing
changed costs milliseconds instead of loading Dagster.

The answer is a function of the inputs (the lake, the configuration, the SQL, the warehouse file,
the day billed through) and of Dagster's records. The memo keeps a stamp of each, taken when
Dagster answered "nothing to do"; it holds only while every stamp is unchanged, and any event
Dagster records since (a run from the UI, an observation) changes its stamp. Without the memo,
or with Dagster's storage elsewhere than `<home>/dagster` (PostgreSQL), Dagster is asked.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path

from pipelines.billing.shards import MAPPING, SHARDS_ENV
from pipelines.core.home import DAGSTER_STORAGE_ENV, Home
from pipelines.core.sql import SQL_DIR
from pipelines.storage.files import write_bytes_atomic

MEMO = "up-to-date.json"


def _stat(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_mtime_ns, st.st_size]


def _dagster_events(dagster_dir: Path) -> int | None:
    """The id of the last event in the home's own (SQLite) Dagster storage; None otherwise."""
    index = dagster_dir / "history" / "runs" / "index.db"
    elsewhere = os.environ.get("TALLY_DAGSTER_HOME") or os.environ.get(DAGSTER_STORAGE_ENV)
    if elsewhere or not index.exists():
        return None
    try:
        with sqlite3.connect(f"file:{index}?mode=ro", uri=True) as con:
            return con.execute("SELECT max(id) FROM event_logs").fetchone()[0] or 0
    except sqlite3.Error:
        return None


def _lake_version(home: Home) -> list:
    """What changes whenever anything lands. Embedded: the catalog and index files, whose every
    commit changes them (a stat, no catalog to open: the no-op run stays fast); shared: the
    tables' current metadata."""
    from pipelines.storage.catalog import storage

    if storage(home.lake).embedded:
        return [_stat(home.lake / "catalog.db"), _stat(home.lake / "_index" / "data.mdb")]
    from pipelines.landing.lake import Lake

    return list(Lake(home.lake).version())


def stamps(home: Home, through: str) -> dict | None:
    """The stamps of everything the answer depends on (None: no memo possible)."""
    events = _dagster_events(home.root / "dagster")
    if events is None:
        return None
    sql = hashlib.sha256()
    for path in sorted(SQL_DIR.glob("*.sql")):
        sql.update(path.read_bytes())
    return {
        "through": through,
        "dagster_events": events,
        "lake": _lake_version(home),
        "config": sorted([p.name, *(_stat(p) or [])] for p in home.config_dir.glob("*.yaml")),
        "sql": sql.hexdigest(),
        "shards": [os.environ.get(SHARDS_ENV, ""), MAPPING],
        "warehouse": _stat(home.warehouse),
        "home": str(home.root),
    }


def holds(home: Home, through: str) -> bool:
    """Whether Dagster answered "up to date through `through`" and nothing changed since."""
    now = stamps(home, through)
    try:
        return now is not None and json.loads((home.root / "dagster" / MEMO).read_text()) == now
    except (OSError, ValueError):
        return False


def record(home: Home, through: str) -> None:
    """Remember that Dagster just answered "up to date through `through`"."""
    now = stamps(home, through)
    path = home.root / "dagster" / MEMO
    if now is None:
        path.unlink(missing_ok=True)
        return
    write_bytes_atomic(json.dumps(now).encode(), path)

"""The lake as Iceberg tables, in both deployments (embedded SQLite + directory, and PostgreSQL +
S3): what lands is what any Iceberg reader sees, writers on several processes keep "first copy
wins", compaction and snapshot expiry keep every row."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from pyiceberg.catalog.sql import SqlCatalog

from pipelines.core.sql import connect
from pipelines.landing.ingest import ingest_signals
from pipelines.landing.lake import Lake, release, snapshot_retention
from pipelines.storage.catalog import s3_properties, storage


def sig(key: str | None, day: int = 3, **extra) -> dict:
    return {
        "eventName": "email_sent",
        "customer": {"externalCustomerId": "cus_1"},
        "attribution": {"externalProductId": "prod_1"},
        "timestamp": f"2026-11-{day:02d}T10:00:00Z",
        "data": {"n": 1, **extra},
        "idempotencyKey": key,
    }


@pytest.fixture()
def shared_lake(tmp_path: Path, storage_mode: str):
    lake = Lake(tmp_path / "lake")
    yield lake
    release(lake.root)


def test_what_lands_is_what_another_iceberg_reader_sees(shared_lake: Lake, storage_mode: str):
    lake = shared_lake
    first = ingest_signals(lake, [sig("a"), sig("b", day=4), sig("a"), sig(None)])
    assert (first.ingested, first.duplicates) == (3, 1)
    bad = ingest_signals(lake, [sig("c"), b'{"eventName": 1}'])
    assert (bad.ingested, bad.failed) == (1, 1)

    # A reader that did not write it: a fresh pyiceberg catalog on the same storage, its own scan
    # into Polars (what Trino or Spark would do through the same catalog).
    where = storage(lake.root)
    props = {"uri": where.catalog_uri, "warehouse": where.warehouse_uri}
    if not where.local:
        props |= s3_properties()
    other = SqlCatalog("tally", **props)
    signals = pl.from_arrow(other.load_table(f"{where.namespace}.signals").scan().to_arrow()).sort(
        "seq"
    )
    assert signals["idempotency_key"].to_list() == ["a", "b", "a", None, "c"]
    dup = signals.filter(pl.col("is_duplicate"))
    assert dup.height == 1 and dup["duplicate_of"][0] == "sig_0000000000000001"
    assert signals.filter(pl.col("idempotency_key") == "b")["timestamp"][0].day == 4
    rejects = other.load_table(f"{where.namespace}.rejects").scan().to_arrow()
    assert rejects.num_rows == 1 and "eventName" in rejects["reason"][0].as_py()

    # Tally's own readers (DuckDB over the listed files) see the same rows.
    con = connect()
    files = [f.path for f in lake.files()]
    assert con.execute("SELECT count(*) FROM read_parquet($f)", {"f": files}).fetchone()[0] == 5
    assert sorted(lake.partitions()) == ["2026-11-03", "2026-11-04"]
    assert lake.first_copies(["a", "c", "zz"]) == {"a": 1, "c": 5}


WRITER = r"""
import sys
from pathlib import Path
from pipelines.landing.lake import Lake
from pipelines.landing.ingest import ingest_signals
lake = Lake(Path(sys.argv[1]))
who = sys.argv[2]
for b in range(15):
    batch = [
        {"eventName": "e", "customer": {"externalCustomerId": "c"},
         "attribution": {"externalProductId": "p"}, "timestamp": "2026-11-03T00:00:00Z",
         "data": {"who": who}, "idempotencyKey": f"k{b}-{i}"}
        for i in range(20)
    ]
    ingest_signals(lake, batch)
"""


def test_writers_in_several_processes_keep_first_copy_wins(shared_lake: Lake):
    """Two processes land the same keys at once: each key has exactly one first copy."""
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(shared_lake.root), who])
        for who in ("x", "y")
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    rows = pl.concat([pl.from_arrow(shared_lake.read(f)) for f in shared_lake.files()])
    assert rows.height == 2 * 15 * 20
    firsts = rows.filter(~pl.col("is_duplicate"))
    assert firsts.height == 15 * 20 and firsts["idempotency_key"].n_unique() == 15 * 20
    assert rows["seq"].n_unique() == rows.height  # no sequence number handed out twice
    dups = rows.filter(pl.col("is_duplicate")).join(
        firsts.select("idempotency_key", pl.col("signal_id").alias("first")), on="idempotency_key"
    )
    assert (dups["duplicate_of"] == dups["first"]).all()


def test_compaction_and_snapshot_expiry_keep_every_row(shared_lake: Lake, monkeypatch):
    lake = shared_lake
    for b in range(24):
        ingest_signals(lake, [sig(f"{b}-{i}") for i in range(3)])
    assert len(lake.files()) <= 6  # size tiers merged, one replace commit each
    monkeypatch.setattr("pipelines.landing.lake.GC_GRACE_SECONDS", 0.0)
    expired = lake.maintain(retention=timedelta(0), keep=1)
    assert expired["signals"] > 0
    assert len(lake.table("signals").metadata.snapshots) == 1
    rows = pl.concat([pl.from_arrow(lake.read(f)) for f in lake.files()])
    assert rows.height == 72 and rows["seq"].n_unique() == 72
    assert lake.table("signals").scan().to_arrow().num_rows == 72


def test_storage_settings_are_checked(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("TALLY_CATALOG_URI", "mysql://x")
    with pytest.raises(ValueError, match="TALLY_CATALOG_URI must be"):
        storage(tmp_path)
    monkeypatch.setenv("TALLY_CATALOG_URI", "postgresql://u:secret@h/db")
    monkeypatch.setenv("TALLY_WAREHOUSE_URI", "gs://bucket")
    with pytest.raises(ValueError, match="TALLY_WAREHOUSE_URI must be"):
        storage(tmp_path)
    monkeypatch.setenv("TALLY_WAREHOUSE_URI", "s3://bucket/x/")
    where = storage(tmp_path)
    assert where.catalog_uri.startswith("postgresql+psycopg2://") and where.shared
    assert where.warehouse_uri == "s3://bucket/x" and not where.local
    assert os.environ["TALLY_CATALOG_URI"]  # unchanged


def test_the_scheduled_maintenance_expires_old_snapshots(tmp_path: Path, monkeypatch):
    from pipelines.defs.landing.maintenance import daily_lake_maintenance, lake_maintenance
    from pipelines.defs.resources import TallyHome

    lake = Lake(tmp_path / "home" / "lake")
    for b in range(30):
        ingest_signals(lake, [sig(f"m{b}")])
    assert len(lake.table("signals").metadata.snapshots) > 30
    monkeypatch.setenv("TALLY_SNAPSHOT_RETENTION_HOURS", "0")
    result = lake_maintenance.execute_in_process(
        resources={"tally": TallyHome(home=str(tmp_path / "home"))}
    )
    assert result.success
    assert len(lake.table("signals").metadata.snapshots) == 10  # the newest are always kept
    assert lake.table("signals").scan().to_arrow().num_rows == 30
    assert daily_lake_maintenance.cron_schedule == "30 3 * * *"
    monkeypatch.setenv("TALLY_SNAPSHOT_RETENTION_HOURS", "a week")
    with pytest.raises(ValueError, match="number of hours"):
        snapshot_retention()

"""`tally migrate`: a home whose lake was written by the earlier format (Parquet files listed by an
LMDB catalog), migrated, gives exactly the warehouse that home had.

`tests/data/legacy_lake/` was made by the code before the Iceberg lake (commit 3f0655c):
`tally synth --signals 3000 --days 5 --customers 3`, every day file ingested, the first one twice
(duplicates), three bad lines (rejects), then `tally run` with TALLY_NOW=2026-11-20T06:00:00Z;
`expected/` holds every warehouse table and view that run published, via `snapshot` below.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import tally

from pipelines.core.home import Home
from pipelines.core.sql import connect
from pipelines.landing.errors import LegacyLakeError
from pipelines.landing.lake import Lake

DATA = Path(__file__).parent / "data" / "legacy_lake"
NOW = "2026-11-20T06:00:00Z"


def snapshot(warehouse: Path) -> dict[str, pa.Table]:
    """Every analysts' table and view of a warehouse, rows sorted (a stable comparison)."""
    con = connect(warehouse, read_only=True)  # reads an S3 lake's files too
    names = [
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
            "ORDER BY 1"
        ).fetchall()
    ]
    out = {}
    for name in names:
        table = con.sql(f'SELECT * FROM "{name}"').to_arrow_table()
        keys = [
            (c, "ascending")
            for c in table.column_names
            if not pa.types.is_nested(table.schema.field(c).type)
        ]
        out[name] = table.sort_by(keys)
    con.close()
    return out


def test_a_migrated_home_gives_the_warehouse_it_had(tmp_path: Path, storage_mode: str):
    home = Home(tmp_path / "home")
    shutil.copytree(DATA / "home", home.root)
    with pytest.raises(LegacyLakeError, match="tally migrate"):
        Lake(home.lake)
    refused = tally("run", home=home, check=False, TALLY_NOW=NOW)
    assert refused.returncode != 0 and "tally migrate" in refused.stderr

    done = tally("migrate", home=home)
    assert "migrated 3,197 signals" in done.stdout, done.stdout
    assert not (home.lake / "_catalog").exists() and not (home.lake / "signals").exists()
    assert "nothing to migrate" in tally("migrate", home=home).stdout

    tally("run", home=home, TALLY_NOW=NOW)
    got = snapshot(home.warehouse)
    expected = {p.stem: pq.read_table(p) for p in sorted((DATA / "expected").glob("*.parquet"))}
    assert sorted(got) == sorted(expected)
    for name, table in expected.items():
        assert got[name].num_rows == table.num_rows, name
        assert got[name].to_pylist() == table.to_pylist(), name

    # Landing goes on where the old lake stopped: sequence numbers and "first copy wins".
    lake = Lake(home.lake)
    assert lake.stats()["signals"] == 3197
    assert lake.first_copies(["definitely-not-a-key"]) == {}
    keys = lake.read(lake.files()[0])["idempotency_key"].drop_null().to_pylist()[:3]
    assert set(lake.first_copies(keys)) == set(keys)

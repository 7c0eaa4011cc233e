"""Customer shards (`TALLY_SHARDS`): each shard prices and runs the ledger for its own customers,
into files of its own, and the numbers are the same to the last micro-credit as with one shard,
from scratch and incrementally (late signals, a changed shard count)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import tally, tally_env

from pipelines.billing.engine import run_engine
from pipelines.billing.shards import Shard, ShardError, ensure_layout, shard_count, shard_of
from pipelines.core.home import Home
from pipelines.core.sql import connect
from pipelines.landing.lake import Lake, release
from pipelines.landing.schema import SIGNALS, shard_key, shard_keys
from pipelines.pricing.price import landed_view

NOW = {"TALLY_NOW": "2026-11-10T06:00:00Z"}
LEGACY = Path(__file__).parent / "data" / "legacy_lake"  # see tests/test_migrate.py
LEGACY_NOW = "2026-11-20T06:00:00Z"
OUTPUTS = ("fact_signal", "signal_rollup", "balance_snapshot", "grant_balance", "credit_event")


def test_shard_of_is_a_stable_hash_of_the_customer_id():
    # Pinned: a different function would silently move customers between shards' files.
    assert (
        shard_key("cus_acme") == 48567 == int.from_bytes(hashlib.sha256(b"cus_acme").digest()[:2])
    )
    assert [shard_of(c, 4) for c in ("cus_acme", "cus_globex", "cus_initech")] == [2, 1, 0]
    assert shard_of("cus_acme", 7) == 5 == 48567 * 7 // 65536
    assert shard_key(None) == 0 and shard_of(None, 4) == 0 and shard_of("anything", 1) == 0
    spread = {shard_of(f"cus_{i}", 8) for i in range(200)}
    assert spread == set(range(8))


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 32, 255, 256])
def test_each_shard_holds_one_contiguous_range_of_shard_keys(count: int):
    # The lake's files are sorted by shard key; a shard reads the rows of its range alone, so the
    # ranges must partition 0..65535 exactly as shard_of assigns the keys.
    ranges = [Shard(i, count).keys for i in range(count)]
    assert ranges[0][0] == 0 and ranges[-1][1] == 65535
    assert all(a[1] + 1 == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    for i, (first, last) in enumerate(ranges):
        assert first * count // 65536 == i == last * count // 65536
    customers = [f"cus_{i}" for i in range(300)] + [None]
    keys = shard_keys(pa.array(customers, pa.string())).to_pylist()
    assert keys == [shard_key(c) for c in customers]
    for c, k in zip(customers, keys, strict=True):
        first, last = Shard(shard_of(c, count), count).keys
        assert first <= k <= last


def test_shard_count_setting(monkeypatch):
    assert shard_count() == 1
    monkeypatch.setenv("TALLY_SHARDS", "16")
    assert shard_count() == 16
    for bad in ("0", "257", "four"):
        monkeypatch.setenv("TALLY_SHARDS", bad)
        with pytest.raises(ShardError, match="TALLY_SHARDS"):
            shard_count()


def test_changing_the_shard_count_clears_the_engine_files(tmp_path: Path):
    engine = tmp_path / "engine"
    (engine / "fact_signal" / "date=2026-11-01").mkdir(parents=True)
    assert ensure_layout(engine, 1) is False  # a home from before shards keeps its files
    assert (engine / "fact_signal").exists()
    assert ensure_layout(engine, 4) is True and not (engine / "fact_signal").exists()
    assert ensure_layout(engine, 4) is False
    assert (engine / "SHARDS").read_text() == "4 key16\n"
    # files of several shards written under the earlier mapping (SHA-256 modulo the count)
    (engine / "SHARDS").write_text("4\n")
    (engine / "fact_signal" / "date=2026-11-01").mkdir(parents=True)
    assert ensure_layout(engine, 4) is True and not (engine / "fact_signal").exists()


def workload_home(tmp_path: Path, name: str) -> tuple[Home, list[Path]]:
    synth = tmp_path / "synth"
    if not synth.exists():
        tally("synth", "--out", str(synth), "--signals", "4000", "--days", "4", home=tmp_path / "x")
    home = Home(tmp_path / name)
    home.config_dir.mkdir(parents=True)
    for f in (synth / "config").glob("*.yaml"):
        (home.config_dir / f.name).write_text(f.read_text())
    return home, sorted((synth / "signals").glob("*.jsonl"))


def engine_rows(home: Home) -> dict[str, list]:
    con = duckdb.connect()
    out = {}
    for name in OUTPUTS:
        files = sorted(str(p) for p in (home.engine_dir / name).glob("date=*/*.parquet"))
        if name == "signal_rollup":  # the groups of one day split by shard: sum them
            out[name] = con.execute(
                "SELECT * EXCLUDE (signals, quantity, credits), sum(signals), sum(quantity), "
                "sum(credits) FROM read_parquet($f) GROUP BY ALL ORDER BY ALL",
                {"f": files},
            ).fetchall()
        else:
            exclude = " EXCLUDE (received_at)" if name == "fact_signal" else ""
            out[name] = con.execute(
                f"SELECT *{exclude} FROM read_parquet($f) ORDER BY ALL", {"f": files}
            ).fetchall()
    return out


def test_the_engine_with_shards_equals_one_shard(tmp_path: Path, monkeypatch):
    one, days = workload_home(tmp_path, "one")
    tally("ingest", *map(str, days), home=one, check=False)
    run_engine(one)
    release(one.lake)
    expected = engine_rows(one)
    assert len(expected["fact_signal"]) > 3000 and len(expected["balance_snapshot"]) > 0

    monkeypatch.setenv("TALLY_SHARDS", "3")
    three, _ = workload_home(tmp_path, "three")
    tally("ingest", *map(str, days), home=three, check=False)
    run_engine(three)
    release(three.lake)
    assert engine_rows(three) == expected
    # Each shard's files hold its own customers only, and every shard did some of the work.
    con = duckdb.connect()
    for name in ("fact_signal", "balance_snapshot"):
        for index in range(3):
            shard = Shard(index, 3)
            files = [
                str(p) for p in (three.engine_dir / name).glob("date=*/*.parquet") if shard.owns(p)
            ]
            customers = {
                c
                for (c,) in con.execute(
                    "SELECT DISTINCT customer_id FROM read_parquet($f)", {"f": files}
                ).fetchall()
            }
            assert customers and all(c is None or shard.holds(c) for c in customers), name


def warehouse(home: Home) -> dict[str, list]:
    con = connect(home.warehouse, read_only=True)
    try:
        return {
            "fact_signal": con.execute(
                "SELECT * EXCLUDE (received_at) FROM fact_signal ORDER BY ALL"
            ).fetchall(),
            "balance_snapshot": con.execute(
                "SELECT * FROM balance_snapshot ORDER BY ALL"
            ).fetchall(),
            "fact_credit_transaction": con.execute(
                "SELECT * FROM fact_credit_transaction ORDER BY ALL"
            ).fetchall(),
        }
    finally:
        con.close()


def test_tally_run_with_shards_day_by_day_equals_one_shard(tmp_path: Path):
    one, days = workload_home(tmp_path, "one")
    tally("ingest", *map(str, days), home=one, check=False)
    tally("run", home=one, **NOW)

    sharded, _ = workload_home(tmp_path, "sharded")
    env = {"TALLY_SHARDS": "3", **NOW}
    tally("ingest", *map(str, days[:2]), home=sharded, check=False)
    tally("run", home=sharded, **env)
    tally("ingest", *map(str, days[2:]), home=sharded, check=False)  # and day 1's late signals
    tally("run", home=sharded, **env)
    assert warehouse(sharded) == warehouse(one)
    assert sorted(p.name for p in (sharded.engine_dir / "fact_signal").glob("date=*/*"))[0] == (
        "data-s000.parquet"
    )
    # Another shard count recomputes every day with the new layout, to the same numbers.
    tally("run", home=sharded, **{**env, "TALLY_SHARDS": "2"})
    assert warehouse(sharded) == warehouse(one)
    assert (sharded.engine_dir / "SHARDS").read_text() == "2 key16\n"
    names = {p.name for p in (sharded.engine_dir / "balance_snapshot").glob("date=*/*")}
    assert names == {"data-s000.parquet", "data-s001.parquet"}


def test_lake_files_are_sorted_by_shard_key_so_a_shard_skips_the_others_row_groups(
    tmp_path: Path,
):
    """Landing stores each signal's shard key and sorts a day's file by it in row groups of
    32,768: the row groups' key ranges are disjoint and ordered, so a shard's range condition
    reads only its own (DuckDB skips a row group by its statistics)."""
    home = Home(tmp_path / "home")
    home.config_dir.mkdir(parents=True)
    lines = [
        json.dumps(
            {
                "eventName": "email_sent",
                "customer": {"externalCustomerId": f"cus_{i % 997}"},
                "timestamp": "2026-11-02T10:00:00Z",
                "data": {},
            }
        )
        for i in range(100_000)
    ]
    (tmp_path / "day.jsonl").write_text("\n".join(lines) + "\n")
    tally("ingest", str(tmp_path / "day.jsonl"), home=home)
    lake = Lake(home.lake)
    (lf,) = lake.files()
    assert lf.keyed and lf.rows == 100_000
    meta = pq.ParquetFile(lf.path).metadata
    column = meta.schema.to_arrow_schema().get_field_index("shard_key")
    groups = [meta.row_group(g) for g in range(meta.num_row_groups)]
    assert [g.num_rows for g in groups] == [32768, 32768, 32768, 1696]
    bounds = [(g.column(column).statistics.min, g.column(column).statistics.max) for g in groups]
    assert all(a[1] <= b[0] for a, b in zip(bounds, bounds[1:], strict=False)), bounds
    rows = lake.read(lf).select(["shard_key", "seq", "external_customer_id"]).to_pylist()
    assert [(r["shard_key"], r["seq"]) for r in rows] == sorted(
        (r["shard_key"], r["seq"]) for r in rows
    )
    assert all(r["shard_key"] == shard_key(r["external_customer_id"]) for r in rows)
    # Shard 2 of 4's view reads the row groups holding its keys, and exactly its customers' rows.
    con = connect()
    shard = Shard(2, 4)
    landed_view(con, [lf], shard)
    plan = con.sql("EXPLAIN ANALYZE SELECT count(*) FROM landed").fetchall()[0][1]
    scanned = re.search(r"Row Groups Scanned: (\d+) / 4", plan)
    assert scanned and int(scanned[1]) <= 2, plan
    ((n,),) = con.sql("SELECT count(*) FROM landed").fetchall()
    assert n == sum(1 for r in rows if shard.holds(r["external_customer_id"])) > 0
    release(home.lake)


def test_a_lake_from_before_shard_keys_gives_the_same_numbers_on_shards(tmp_path: Path):
    """A lake landed before shard keys (here: migrated from the earlier format) gains the column
    in its table schema; its files, and days that mix them with new ones, are priced on shards
    by hashing customer ids; compaction rewrites them with keys. Every step equals one shard."""
    homes = [Home(tmp_path / name) for name in ("one", "three")]
    for home in homes:
        shutil.copytree(LEGACY / "home", home.root)
        tally("migrate", home=home)
    lake = Lake(homes[1].lake)
    table = lake.table(SIGNALS)
    assert table.schema().find_field("shard_key").field_id == 16
    assert "shard_key" in table.properties["schema.name-mapping.default"]
    old = lake.files(date="2026-11-01")
    assert len(old) == 2 and not any(f.keyed for f in old)
    copies = [r for r in lake.read(old[0]).to_pylist() if not r["is_duplicate"]][:150]
    release(homes[1].lake)

    def run_both() -> None:
        tally("run", home=homes[0], TALLY_NOW=LEGACY_NOW)
        tally("run", home=homes[1], TALLY_NOW=LEGACY_NOW, TALLY_SHARDS="3")
        assert warehouse(homes[1]) == warehouse(homes[0])

    for n in range(2):
        batch = tmp_path / f"more-{n}.jsonl"
        batch.write_text(
            "".join(
                json.dumps(
                    {
                        "eventName": r["event_name"],
                        "customer": {"externalCustomerId": r["external_customer_id"]},
                        "attribution": {"externalProductId": r["external_product_id"]},
                        "timestamp": r["timestamp"].isoformat(),
                        "data": json.loads(r["data"]),
                    }
                )
                + "\n"
                for r in copies
            )
        )
        for home in homes:
            tally("ingest", str(batch), home=home)
        lake = Lake(homes[1].lake)
        day = lake.files(date="2026-11-01")
        if n == 0:  # a day mixing files with and without keys (the other days: without)
            assert [f.keyed for f in day] == [False, False, True]
            # Another engine reads the table through its name mapping (old files: no key).
            scanned = lake.table(SIGNALS).scan(selected_fields=("seq", "shard_key")).to_arrow()
            assert scanned.num_rows == 3197 + 150
            assert scanned["shard_key"].null_count == 3197
        else:  # four files of one size tier: compaction merged them into one, with keys
            (merged,) = day
            assert merged.keyed and merged.rows == 207 + 200 + 300
            rows = lake.read(merged).to_pylist()
            assert all(
                r["shard_key"] == shard_key(r["customer_id"] or r["external_customer_id"])
                for r in rows
            )
        release(homes[1].lake)
        run_both()
    con = connect(homes[1].warehouse, read_only=True)
    columns = [r[0] for r in con.sql("DESCRIBE raw_signal").fetchall()]
    assert "shard_key" not in columns and "seq" not in columns
    assert con.sql("SELECT count(*) FROM raw_signal").fetchall() == [(3197 + 300,)]
    con.close()


def test_the_code_location_has_an_asset_per_shard(tmp_path: Path):
    """With several shards, each shard's pricing and ledger are assets of their own (in a
    concurrency pool of their own), each with its checks; the warehouse waits for all of them."""
    code = """
import json
from pipelines.definitions import defs
graph = defs().resolve_asset_graph()
out = {}
for key in graph.get_all_asset_keys():
    if key.path[0] in ("fact_signal", "balance_snapshot", "warehouse"):
        node = graph.get(key)
        out[key.to_user_string()] = {
            "checks": sorted(c.name for c in node.check_keys),
            "pools": sorted(node.pools or []),
            "parents": sorted(p.to_user_string() for p in node.parent_entity_keys),
        }
print(json.dumps(out))
"""
    found = subprocess.run(
        [sys.executable, "-c", code],
        env=tally_env(tmp_path / "home", TALLY_SHARDS="3"),
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assets = json.loads(found.stdout.splitlines()[-1])
    shards = ["s000", "s001", "s002"]
    pricing = [f"fact_signal/{s}" for s in shards]
    ledger = [f"balance_snapshot/{s}" for s in shards]
    assert sorted(assets) == sorted([*pricing, *ledger, "warehouse"])
    for i, s in enumerate(shards):
        assert assets[f"fact_signal/{s}"]["checks"] == [
            "idempotency_charged_once",
            "one_status_per_signal",
        ]
        assert assets[f"balance_snapshot/{s}"]["checks"] == ["conservation"]
        assert assets[f"fact_signal/{s}"]["pools"] == [f"tally_shard_{i:03d}"]
        assert assets[f"balance_snapshot/{s}"]["pools"] == [f"tally_shard_{i:03d}"]
        assert f"fact_signal/{s}" in assets[f"balance_snapshot/{s}"]["parents"]
    assert set(assets["warehouse"]["parents"]) == {*pricing, *ledger}

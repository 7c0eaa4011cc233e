"""Customer shards (`TALLY_SHARDS`): each shard prices and runs the ledger for its own customers,
into files of its own, and the numbers are the same to the last micro-credit as with one shard,
from scratch and incrementally (late signals, a changed shard count)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from conftest import tally, tally_env

from pipelines.billing.engine import run_engine
from pipelines.billing.shards import Shard, ShardError, ensure_layout, shard_count, shard_of
from pipelines.core.home import Home
from pipelines.core.sql import connect
from pipelines.landing.lake import release

NOW = {"TALLY_NOW": "2026-11-10T06:00:00Z"}
OUTPUTS = ("fact_signal", "signal_rollup", "balance_snapshot", "grant_balance", "credit_event")


def test_shard_of_is_a_stable_hash_of_the_customer_id():
    # Pinned: a different function would silently move customers between shards' files.
    assert [shard_of(c, 4) for c in ("cus_acme", "cus_globex", "cus_initech")] == [1, 2, 2]
    assert shard_of("cus_acme", 7) == 3
    digest = hashlib.sha256(b"cus_acme").digest()
    assert shard_of("cus_acme", 1000) == int.from_bytes(digest[:8], "big") % 1000
    assert shard_of(None, 4) == 0 and shard_of("anything", 1) == 0
    spread = {shard_of(f"cus_{i}", 8) for i in range(200)}
    assert spread == set(range(8))


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
    assert (engine / "SHARDS").read_text() == "4\n"


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
    assert (sharded.engine_dir / "SHARDS").read_text() == "2\n"
    names = {p.name for p in (sharded.engine_dir / "balance_snapshot").glob("date=*/*")}
    assert names == {"data-s000.parquet", "data-s001.parquet"}


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

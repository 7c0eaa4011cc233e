"""The invariants that gate publishing (PRODUCT.md §6), as plain functions returning offenders.

Each check reads only the days it is given (plus small per-recipient snapshots), so checking a
day's run costs what that day costs.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.lib.config import Config
from pipelines.lib.home import Home
from pipelines.lib.lake import Lake
from pipelines.lib.sql import connect, load_sql


def _files(engine_dir: Path, output: str, days: list[str]) -> list[str]:
    return [
        str(p) for d in days if (p := engine_dir / output / f"date={d}" / "data.parquet").exists()
    ]


def conservation(home: Home, config: Config, last_day: str) -> list[tuple]:
    con = connect()
    con.register("dim_credit_grant", config.tables()["dim_credit_grant"])
    balance = sorted((home.engine_dir / "balance_snapshot").glob("date=*/data.parquet"))
    state = home.engine_dir / "grant_balance" / f"date={last_day}" / "data.parquet"
    if not balance or not state.exists():
        return []
    con.read_parquet([str(p) for p in balance]).create_view("balance")
    con.read_parquet(str(state)).create_view("grant_state")
    return con.sql(load_sql("check_conservation")).fetchall()


def signal_status(home: Home, days: list[str]) -> list[tuple]:
    lake = Lake(home.lake)
    landed = [str(f.path) for d in days for f in lake.files(date=d)]
    fact = _files(home.engine_dir, "fact_signal", days)
    if not landed and not fact:
        return []
    con = connect()
    if not landed or not fact:
        return [(None, f"{len(landed)} landed files but {len(fact)} fact_signal files")]
    con.read_parquet(landed).create_view("landed")
    con.read_parquet(fact).create_view("fact")
    return con.sql(load_sql("check_signal_status")).fetchall()


def idempotency(home: Home, days: list[str]) -> list[tuple]:
    fact = _files(home.engine_dir, "fact_signal", days)
    if not fact:
        return []
    con = connect()
    con.read_parquet(fact).create_view("fact")
    offenders = con.sql(load_sql("check_idempotency")).fetchall()
    # Each charged key must be the first copy the lake ever received (its index says which).
    # Keys are read in sorted order (the index's order) and in batches: bounded memory.
    lake = Lake(home.lake)
    charged = con.sql(
        "SELECT idempotency_key, seq FROM fact WHERE idempotency_key IS NOT NULL "
        "ORDER BY idempotency_key"
    ).to_arrow_reader(200_000)
    for batch in charged:
        keys, seqs = batch.column(0).to_pylist(), batch.column(1).to_pylist()
        first = lake.first_copies(keys)
        offenders += [
            (k, "charged copy is not the first received")
            for k, q in zip(keys, seqs, strict=True)
            if first.get(k) != q
        ]
    return offenders

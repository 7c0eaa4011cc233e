"""The ledger: balance snapshots, grant balances and credit transactions, day by day."""

from pathlib import Path

import dagster as dg

from pipelines.billing import engine
from pipelines.billing.shards import Shard
from pipelines.core.sql import connect, load_sql
from pipelines.defs.billing import plan
from pipelines.defs.landing.assets import credit_grants
from pipelines.defs.partitions import DAILY, START
from pipelines.defs.resources import TallyHome
from pipelines.ledger.burndown import output_files


def first_day_to_redo(instance: dg.DagsterInstance, before: str, shard: Shard) -> str | None:
    """The shard's first ledger day before `before` that is missing or unsynced (None: all
    current)."""
    days = engine.day_range(START, before)[:-1]
    if not days:
        return None
    broken = plan.ledger_unsynced(instance, days, [shard])
    return min(broken, default=None)


def _day_metadata(engine_dir: Path, days: list[str], shard: Shard) -> dict[str, dict]:
    """Per day: balance rows, closing balance and overage per currency, the 5 lowest balances."""
    files = [str(f) for d in days for f in output_files(engine_dir, "balance_snapshot", d, [shard])]
    out: dict[str, dict] = {
        d: {"row_count": 0, "closing": {}, "overage": {}, "lowest": []} for d in days
    }
    if not files:
        return out
    con = connect()
    for day, currency, rows, closing, overage in con.execute(
        load_sql("ledger_day_totals"), {"files": files}
    ).fetchall():
        m = out[day.isoformat()]
        m["row_count"] += rows
        m["closing"][currency] = str(closing)
        m["overage"][currency] = str(overage)
    for day, *row in con.execute(load_sql("ledger_day_lowest"), {"files": files}).fetchall():
        out[day.isoformat()]["lowest"].append(row)
    return out


def checkpoints(engine_dir: Path, days: list[str], shard: Shard) -> dict[str, str]:
    """Per day: a fingerprint of the balances and grant balances at its end (the state the next
    day starts from)."""
    out = {}
    for name in ("balance_snapshot", "grant_balance"):
        files = [str(f) for d in days for f in output_files(engine_dir, name, d, [shard])]
        if not files:
            continue
        for day, digest in (
            connect().execute(load_sql(f"{name}_fingerprint"), {"files": files}).fetchall()
        ):
            out[day.isoformat()] = out.get(day.isoformat(), "") + digest[:16]
    return {d: out.get(d, "empty") for d in days}


def _balance_snapshot(shard: Shard) -> dg.AssetsDefinition:
    key = plan.shard_key("balance_snapshot", shard)
    priced_key = plan.shard_key("fact_signal", shard)
    name, priced_name = key.to_user_string(), priced_key.to_user_string()

    @dg.asset(
        key=key,
        partitions_def=DAILY,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[priced_key, credit_grants],
        group_name="ledger",
        kinds={"duckdb", "parquet"},
        pool=plan.shard_pool(shard),
        description=DESCRIPTION
        + ("" if shard.count == 1 else f" This asset holds the customers of shard {shard}."),
    )
    def balance_snapshot(
        context: dg.AssetExecutionContext, tally: TallyHome
    ) -> dg.MaterializeResult:
        home, config = tally.resolve(), tally.config()
        first, last = context.partition_key_range.start, context.partition_key_range.end
        redo = first_day_to_redo(context.instance, first, shard)
        if redo is not None:
            raise dg.Failure(
                f"{name} {first} starts from the balances of the day before, which are "
                f"missing or unsynced: materialize {name} from {redo} through {last}"
            )
        priced = context.instance.get_materialized_partitions(priced_key)
        unpriced = [d for d in engine.day_range(first, last) if d not in priced]
        if unpriced:
            raise dg.Failure(
                f"{priced_name} {unpriced[0]} was never materialized: materialize {priced_name} "
                f"{unpriced[0]}..{unpriced[-1]} first"
            )
        failed = plan.unchecked(
            context.instance, priced_key, plan.PRICING_CHECKS, engine.day_range(first, last)
        )
        if failed:
            day, check = next(iter(failed.items()))
            raise dg.Failure(
                f"{priced_name} {day} has not passed its check {check}: the ledger does not "
                "build on it"
            )
        engine.ledger(home, config, first, last, START.isoformat(), shards=[shard])
        days = engine.day_range(first, last)
        previous = engine.day_range(START, first)[-2:-1]  # the day before `first`, if billed
        states = checkpoints(home.engine_dir, previous + days, shard)
        for day, m in _day_metadata(home.engine_dir, days, shard).items():
            lowest = ["| recipient | currency | closing | overage |", "|---|---|---:|---:|"]
            lowest += [f"| {t} {i} | {c} | {b} | {o} |" for t, i, c, b, o in m["lowest"]]
            context.add_asset_metadata(
                {
                    "row_count": m["row_count"],
                    "closing_balance": dg.MetadataValue.json(m["closing"]),
                    "overage": dg.MetadataValue.json(m["overage"]),
                    "lowest_balances": dg.MetadataValue.md(
                        "\n".join(lowest) if m["lowest"] else "no active recipient"
                    ),
                    "checkpoint": states[day],
                    "starts_from": states.get(engine.day_range(START, day)[-2], "")
                    if day > START.isoformat()
                    else "",
                },
                partition_key=day,
            )
        context.log.info(f"ledger {first}..{last} (shard {shard})")
        return dg.MaterializeResult()

    return balance_snapshot


DESCRIPTION = (
    "Daily balances per recipient and currency (opening, granted, spent, expired, closing, "
    "available, overage) from the exact event-by-event burn-down of grants by priced spends, "
    "plus each grant's used/expired/remaining and the day's credit transactions. A chain of "
    "days: each day starts from the balances at the end of the day before, so a day can only "
    "be materialized once every earlier day is current."
)
# One asset per customer shard (just `balance_snapshot` with one shard).
balance_snapshot_shards = [_balance_snapshot(shard) for shard in plan.SHARDS]

"""Priced signals: one daily partition per billed UTC day."""

from pathlib import Path

import dagster as dg

from pipelines.billing import engine
from pipelines.billing.shards import Shard
from pipelines.core.sql import connect
from pipelines.defs.billing import plan
from pipelines.defs.landing.assets import pricing_config, signals
from pipelines.defs.partitions import DAILY
from pipelines.defs.resources import TallyHome
from pipelines.pricing.price import PricedDay, fact_signal_files


def day_metadata(con, engine_dir: Path, p: PricedDay, shard: Shard) -> dict:
    """What the UI shows for one priced day (of one shard): counts, credits per currency,
    statuses, 5 rows."""
    files = [str(f) for f in fact_signal_files(engine_dir, p.day, shard)]
    rows = ["| signal_id | event | customer | status | credits |", "|---|---|---|---|---:|"]
    if files:
        for row in con.execute(PREVIEW, {"files": files}).fetchall():
            rows.append("| " + " | ".join("" if v is None else str(v) for v in row) + " |")
    return {
        "row_count": p.rows,
        "credits": dg.MetadataValue.json({c: str(v) for c, v in p.credits_by_currency.items()}),
        "statuses": dg.MetadataValue.json(dict(sorted(p.statuses.items()))),
        "preview": dg.MetadataValue.md("\n".join(rows) if files else "no signals this day"),
    }


PREVIEW = (
    "SELECT signal_id, event_name, customer_id, status, credits || ' ' || coalesce(currency, '') "
    "FROM read_parquet($files) LIMIT 5"
)


INCREMENTAL = "tally/incremental"  # run tag of the billing runs that tally run and the sensor start


def _incremental(context, days: list[str], versions: dict[str, str]) -> dict[str, int]:
    """Days whose last pricing still holds (same pricing version, and its checks passed): only
    the signals landed since (`priced_seq`) are priced. A run from the UI prices days whole."""
    since = {}
    for day, mat in plan.latest_materializations(
        context.instance, context.assets_def.key, days
    ).items():
        seq, version = mat.metadata.get("priced_seq"), mat.metadata.get("pricing_version")
        if seq is None or version is None or version.value != versions[day]:
            continue
        if plan.passed_last(context.instance, context.assets_def.key, plan.PRICING_CHECKS, day):
            since[day] = int(seq.value)
    return since


def _fact_signal(shard: Shard) -> dg.AssetsDefinition:
    @dg.asset(
        key=plan.shard_key("fact_signal", shard),
        partitions_def=DAILY,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[signals, pricing_config],
        group_name="pricing",
        kinds={"duckdb", "parquet"},
        pool=plan.shard_pool(shard),
        description=DESCRIPTION
        + ("" if shard.count == 1 else f" This asset prices the customers of shard {shard}."),
    )
    def fact_signal(context: dg.AssetExecutionContext, tally: TallyHome) -> dg.MaterializeResult:
        home, config = tally.resolve(), tally.config()
        days = list(context.partition_keys)
        versions = engine.pricing_versions(config, days)
        incremental = context.run.tags.get(INCREMENTAL)
        since = _incremental(context, days, versions) if incremental else {}
        con = connect()
        for p in engine.price(home, config, days, since=since, shards=[shard]):
            metadata = day_metadata(con, home.engine_dir, p, shard)
            metadata |= {"priced_seq": p.max_seq, "pricing_version": versions[p.day]}
            context.add_asset_metadata(metadata, partition_key=p.day)
        context.log.info(f"priced {len(days)} day(s) {days[0]}..{days[-1]} (shard {shard})")
        return dg.MaterializeResult()

    return fact_signal


DESCRIPTION = (
    "Every accepted, de-duplicated signal of the day with its status, quantity, credits and "
    "recipient. Materializing a day prices all of that day's signals again (a day without "
    "signals becomes an empty partition); the billing runs of `tally run` and the sensor price "
    "only the signals landed since, when nothing else about the day changed."
)
# One asset per customer shard (just `fact_signal` with one shard).
fact_signal_shards = [_fact_signal(shard) for shard in plan.SHARDS]

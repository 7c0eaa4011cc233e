"""Priced signals: one daily partition per UTC day of signal time."""

import dagster as dg

from pipelines.defs.partitions import DAILY, TallyHome
from pipelines.lib import engine
from pipelines.lib.lake import Lake


@dg.asset(
    partitions_def=DAILY,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="pricing",
    kinds={"duckdb", "parquet"},
    pool="tally_writer",
)
def fact_signal(context: dg.AssetExecutionContext, tally: TallyHome) -> dg.MaterializeResult:
    """Every accepted, de-duplicated signal of the day with its status, quantity, credits and
    recipient (PRODUCT.md §4). Days whose signals and pricing configuration did not change since
    they were last priced are kept as they are."""
    home, config = tally.resolve(), tally.config()
    wanted = set(context.partition_keys)
    plan = engine.make_plan(home, config, Lake(home.lake))
    days = [d for d in plan.price_days if d in wanted]
    priced = engine.price(home, config, days)
    context.log.info(
        f"priced {len(priced)} day(s): {days[0] if days else '-'}..{days[-1] if days else '-'}"
    )
    statuses: dict[str, int] = {}
    for p in priced:
        for status, n in p.statuses.items():
            statuses[status] = statuses.get(status, 0) + n
    preview = "\n".join(
        ["| day | signals | credits |", "|---|---:|---:|"]
        + [f"| {p.day} | {p.rows:,} | {p.credits} |" for p in priced[:31]]
    )
    return dg.MaterializeResult(
        metadata={
            "days_priced": len(priced),
            "row_count": sum(p.rows for p in priced),
            "credits": dg.MetadataValue.text(str(sum((p.credits for p in priced), start=0))),
            "statuses": dg.MetadataValue.json(statuses),
            "preview": dg.MetadataValue.md(preview),
        }
    )

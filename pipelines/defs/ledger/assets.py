"""The ledger: balance snapshots, grant balances and credit events per day."""

import dagster as dg

from pipelines.defs.partitions import DAILY, TallyHome
from pipelines.defs.pricing.assets import fact_signal
from pipelines.lib import engine
from pipelines.lib.lake import Lake


@dg.asset(
    partitions_def=DAILY,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[fact_signal],
    group_name="ledger",
    kinds={"duckdb", "parquet"},
    pool="tally_writer",
)
def balance_snapshot(context: dg.AssetExecutionContext, tally: TallyHome) -> dg.MaterializeResult:
    """Daily balances per recipient and currency (opening, granted, spent, expired, closing,
    available, overage), from the exact event-by-event burn-down of PRODUCT.md §5. Each day
    starts from the previous day's checkpoint, so the run goes forward from the first stale day
    to the last day of the requested range."""
    home, config = tally.resolve(), tally.config()
    plan = engine.make_plan(home, config, Lake(home.lake))
    first = plan.ledger_from or context.partition_key_range.start
    last = max(plan.ledger_to or first, context.partition_key_range.end)
    result = engine.ledger(home, config, first, last, plan.first_day or first)
    return dg.MaterializeResult(
        metadata={
            "days": len(result.days),
            "from": first,
            "to": last,
            "row_count": result.balance_rows,
            "credit_events": result.events,
        }
    )

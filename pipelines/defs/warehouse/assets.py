"""Publishing the analysts' warehouse (`<home>/warehouse.duckdb`)."""

import dagster as dg

from pipelines.core.sql import connect
from pipelines.defs.billing import plan
from pipelines.defs.partitions import DAILY
from pipelines.defs.resources import TallyHome
from pipelines.warehouse.publish import publish


@dg.asset(
    deps=[*plan.FACT_SIGNALS, *plan.BALANCE_SNAPSHOTS],
    group_name="warehouse",
    kinds={"duckdb"},
    pool="tally_writer",
)
def warehouse(context: dg.AssetExecutionContext, tally: TallyHome) -> dg.MaterializeResult:
    """`warehouse.duckdb`: fact_signal, fact_credit_transaction, balance_snapshot, raw_signal and
    the dim_* tables over every billed day, replaced atomically so that readers never block or
    break. Runs only after the blocking checks of the days it publishes pass."""
    days = DAILY.get_partition_keys()
    for keys, names in (
        (plan.FACT_SIGNALS, plan.PRICING_CHECKS),
        (plan.BALANCE_SNAPSHOTS, plan.LEDGER_CHECKS),
    ):
        failed = plan.unchecked_any(context.instance, keys, names, days)
        if failed:
            day, (key, check) = next(iter(failed.items()))
            raise dg.Failure(
                f"not published: {key.to_user_string()} {day} has not passed its check {check}"
            )
    home = tally.resolve()
    path = publish(home, tally.config())  # publishes the outputs as Iceberg tables first
    con = connect(path, read_only=True)  # reads a shared lake's files too
    try:
        # Cheap figures only (Parquet footers and the last day): publishing costs what a day costs.
        rows = con.execute("SELECT count(*) FROM fact_signal").fetchall()[0][0]
        through = con.execute("SELECT max(date) FROM balance_snapshot").fetchall()[0][0]
    finally:
        con.close()
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "row_count": rows,
            "ledger_through": str(through) if through else "-",
        }
    )

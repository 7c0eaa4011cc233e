"""Publishing the analysts' warehouse (data/warehouse.duckdb)."""

import dagster as dg
import duckdb

from pipelines.defs.ledger.assets import balance_snapshot
from pipelines.defs.partitions import DAILY, TallyHome
from pipelines.lib.warehouse import publish


@dg.asset(
    partitions_def=DAILY,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[balance_snapshot],
    group_name="warehouse",
    kinds={"duckdb"},
    pool="tally_writer",
)
def warehouse(context: dg.AssetExecutionContext, tally: TallyHome) -> dg.MaterializeResult:
    """`warehouse.duckdb`: fact_signal, fact_credit_transaction, balance_snapshot, raw_signal and
    the dim_* tables, replaced atomically so that readers never block or break the pipeline.
    Runs only after the ledger's blocking checks pass."""
    home = tally.resolve()
    path = publish(home, tally.config())
    con = duckdb.connect(str(path), read_only=True)
    try:
        # Cheap figures only (Parquet footers and the last day): publishing costs what a day costs.
        rows = con.execute("SELECT count(*) FROM fact_signal").fetchall()[0][0]
        latest = con.execute(
            "SELECT recipient_type, recipient_id, currency, closing_balance, overage "
            "FROM balance_snapshot WHERE date = (SELECT max(date) FROM grant_balance) "
            "ORDER BY 4 LIMIT 10"
        ).fetchall()
    finally:
        con.close()
    table = "\n".join(
        ["| recipient | currency | closing | overage |", "|---|---|---:|---:|"]
        + [f"| {t} {i} | {c} | {b} | {o} |" for t, i, c, b, o in latest]
    )
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "row_count": rows,
            "lowest_balances": dg.MetadataValue.md(table),
        }
    )

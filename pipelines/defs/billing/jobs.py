"""The batch billing run: price, ledger (checked), publish."""

import dagster as dg

from pipelines.billing.workers import executor

billing_run = dg.define_asset_job(
    "billing_run",
    selection=dg.AssetSelection.groups("pricing", "ledger", "warehouse"),
    description="Price days, run the ledger forward over them, check both, publish the warehouse.",
    executor_def=executor(),
)

"""The batch billing run: price, ledger (checked), publish — for a range of days, in one run."""

import dagster as dg

billing_run = dg.define_asset_job(
    "billing_run",
    selection=dg.AssetSelection.groups("pricing", "ledger", "warehouse"),
    description="Price the stale days, run the ledger forward, check it, publish the warehouse.",
)

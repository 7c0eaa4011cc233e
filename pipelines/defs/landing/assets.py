"""The graph's first nodes: the lake and the billing configuration, as observable sources.

Each is partitioned by billed day, and its data version for a day changes only when that day's
input does: the signals the lake holds for it, the configuration that prices it, the grants its
balances depend on. Observing them (the UI's "Observe sources", the `billing_sensor` and
`tally run` do) makes exactly the affected partitions of `fact_signal` and `balance_snapshot`
unsynced.
"""

import dagster as dg

from pipelines.defs.billing import plan
from pipelines.defs.partitions import DAILY
from pipelines.defs.resources import TallyHome


def _observe(key: dg.AssetKey, context, tally: TallyHome) -> dg.DataVersionsByPartition:
    days = list(context.partition_keys) if context.has_partition_key_range else None
    days = days or DAILY.get_partition_keys()
    versions = plan.source_versions(tally.resolve(), tally.config(), days)[key]
    return dg.DataVersionsByPartition({d: dg.DataVersion(v) for d, v in versions.items()})


@dg.observable_source_asset(partitions_def=DAILY, group_name="landing", kinds={"parquet"})
def signals(context, tally: TallyHome) -> dg.DataVersionsByPartition:
    """Accepted signals in the lake, by UTC day of their timestamp. A day's data version is the
    landing batch that last changed it (`empty` for a day without signals)."""
    return _observe(plan.SIGNALS, context, tally)


@dg.observable_source_asset(partitions_def=DAILY, group_name="landing", kinds={"yaml"})
def pricing_config(context, tally: TallyHome) -> dg.DataVersionsByPartition:
    """The configuration that prices a day: customers, products, users, seats, hot keys, and the
    pricing rules, seat assignments and seat grants in force that day."""
    return _observe(plan.PRICING_CONFIG, context, tally)


@dg.observable_source_asset(partitions_def=DAILY, group_name="landing", kinds={"yaml"})
def credit_grants(context, tally: TallyHome) -> dg.DataVersionsByPartition:
    """Every grant started by the end of a day (balances carry them forward, so a backdated
    grant changes its start day and every day after it)."""
    return _observe(plan.CREDIT_GRANTS, context, tally)

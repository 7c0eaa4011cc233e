"""Blocking check on each ledger day: the warehouse is published only when it passes."""

import dagster as dg

from pipelines.billing import checks
from pipelines.billing.shards import Shard
from pipelines.defs.billing import plan
from pipelines.defs.partitions import DAILY
from pipelines.defs.pricing.checks import per_day
from pipelines.defs.resources import TallyHome


def _conservation(shard: Shard) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=plan.shard_key("balance_snapshot", shard), blocking=True, partitions_def=DAILY
    )
    def conservation(
        context: dg.AssetCheckExecutionContext, tally: TallyHome
    ) -> dg.AssetCheckResult:
        """Through the checked days, per recipient and currency: granted = funded spend +
        expired + remaining; per day: closing = opening + granted - spent - expired = available
        - overage; per grant: amount = used + expired + remaining."""
        home = tally.resolve()
        last = context.partition_key_range.end
        by_day: dict[str, list[tuple]] = {}
        for row in checks.conservation(home, tally.config(), last, shard):
            scope, at = row[0], row[4]
            # A day's own identities name their day; the cumulative ones hold at the last day.
            day = at if scope == "day" and at in context.partition_keys else last
            by_day.setdefault(day, []).append(row)
        return per_day(context, by_day, "unbalanced")

    return conservation


# The check of each customer shard's balance_snapshot asset.
ledger_checks = [_conservation(shard) for shard in plan.SHARDS]

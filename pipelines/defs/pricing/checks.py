"""Blocking checks on each priced day: the ledger and the warehouse wait for them."""

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from pipelines.billing import checks
from pipelines.billing.shards import Shard
from pipelines.defs.billing import plan
from pipelines.defs.partitions import DAILY
from pipelines.defs.resources import TallyHome


def _metadata(offenders: list[tuple], what: str) -> dict:
    return {
        "offenders": len(offenders),
        "sample": dg.MetadataValue.md(
            "\n".join(f"- {what}: {row}" for row in offenders[:20]) or "none"
        ),
    }


def by_day(check, home, context: dg.AssetCheckExecutionContext) -> dict[str, list[tuple]]:
    """A check's offenders per day: one pass over the whole range (what a run costs when all is
    well); only when something is wrong, a pass per day says which days."""
    days = list(context.partition_keys)
    if not check(home, days):
        return {}
    return {d: check(home, [d]) for d in days}


def per_day(
    context: dg.AssetCheckExecutionContext, offenders_by_day: dict[str, list[tuple]], what: str
) -> dg.AssetCheckResult:
    """Record one evaluation per checked day (so each partition shows passed or failed, whatever
    range the run covered), and return the result of the whole range."""
    key = context.check_specs[0].key
    days = list(context.partition_keys)
    pointers = plan.materialization_pointers(context.instance, key.asset_key, days)
    for day in days:
        offenders = offenders_by_day.get(day, [])
        target = pointers.get(day)
        context.op_execution_context.log_event(
            dg.AssetCheckEvaluation(
                asset_key=key.asset_key,
                check_name=key.name,
                passed=not offenders,
                partition=day,
                severity=dg.AssetCheckSeverity.ERROR,
                blocking=True,
                metadata=_metadata(offenders, what),
                target_materialization_data=(
                    AssetCheckEvaluationTargetMaterializationData(
                        storage_id=target[0], run_id=target[1], timestamp=target[2]
                    )
                    if target
                    else None
                ),
            )
        )
    everything = [row for rows in offenders_by_day.values() for row in rows]
    return dg.AssetCheckResult(
        passed=not everything,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata=_metadata(everything, what),
    )


def _pricing_checks(shard: Shard) -> list[dg.AssetChecksDefinition]:
    key = plan.shard_key("fact_signal", shard)

    @dg.asset_check(asset=key, blocking=True, partitions_def=DAILY)
    def one_status_per_signal(
        context: dg.AssetCheckExecutionContext, tally: TallyHome
    ) -> dg.AssetCheckResult:
        """Every accepted, de-duplicated signal of the day is in fact_signal exactly once, with
        exactly one known status (priced, unknown_customer, unattributed, unknown_product,
        unpriced, invalid_quantity)."""

        def check(home, days):
            return checks.signal_status(home, days, shard)

        return per_day(context, by_day(check, tally.resolve(), context), "signal")

    @dg.asset_check(asset=key, blocking=True, partitions_def=DAILY)
    def idempotency_charged_once(
        context: dg.AssetCheckExecutionContext, tally: TallyHome
    ) -> dg.AssetCheckResult:
        """No idempotency key is charged twice, and the charged copy of a key is the first copy
        the lake ever received."""

        def check(home, days):
            return checks.idempotency(home, days, shard)

        return per_day(context, by_day(check, tally.resolve(), context), "key")

    return [one_status_per_signal, idempotency_charged_once]


# The checks of each customer shard's fact_signal asset.
pricing_checks = [c for shard in plan.SHARDS for c in _pricing_checks(shard)]

"""Blocking checks on each priced day: the ledger and the warehouse wait for them."""

import dagster as dg

from pipelines.defs.partitions import DAILY
from pipelines.defs.pricing.assets import fact_signal
from pipelines.defs.resources import TallyHome
from pipelines.lib import checks


def result(offenders: list[tuple], what: str) -> dg.AssetCheckResult:
    """Passed when there is no offender; otherwise the count and the first 20 of them."""
    return dg.AssetCheckResult(
        passed=not offenders,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "offenders": len(offenders),
            "sample": dg.MetadataValue.md(
                "\n".join(f"- {what}: {row}" for row in offenders[:20]) or "none"
            ),
        },
    )


@dg.asset_check(asset=fact_signal, blocking=True, partitions_def=DAILY)
def one_status_per_signal(
    context: dg.AssetCheckExecutionContext, tally: TallyHome
) -> dg.AssetCheckResult:
    """Every accepted, de-duplicated signal of the day is in fact_signal exactly once, with
    exactly one known status (priced, unknown_customer, unattributed, unknown_product, unpriced,
    invalid_quantity)."""
    return result(checks.signal_status(tally.resolve(), list(context.partition_keys)), "signal")


@dg.asset_check(asset=fact_signal, blocking=True, partitions_def=DAILY)
def idempotency_charged_once(
    context: dg.AssetCheckExecutionContext, tally: TallyHome
) -> dg.AssetCheckResult:
    """No idempotency key is charged twice, and the charged copy of a key is the first copy the
    lake ever received."""
    return result(checks.idempotency(tally.resolve(), list(context.partition_keys)), "key")

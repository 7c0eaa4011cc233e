"""Blocking checks on the ledger: publishing waits for them (PRODUCT.md §6)."""

import dagster as dg

from pipelines.defs.ledger.assets import balance_snapshot
from pipelines.defs.partitions import DAILY, TallyHome
from pipelines.lib import checks
from pipelines.lib.engine import State


def _result(offenders: list[tuple], what: str) -> dg.AssetCheckResult:
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


@dg.asset_check(asset=balance_snapshot, blocking=True, partitions_def=DAILY)
def conservation(context: dg.AssetCheckExecutionContext, tally: TallyHome) -> dg.AssetCheckResult:
    """Per recipient and currency: granted = spent_funded + expired + remaining; per day:
    closing = opening + granted - spent - expired = available - overage; per grant:
    amount = used + expired + remaining."""
    home = tally.resolve()
    last = State.load(home.engine_dir / "state.json").ledger_last or context.partition_key_range.end
    return _result(checks.conservation(home, tally.config(), last), "unbalanced")


@dg.asset_check(asset=balance_snapshot, blocking=True, partitions_def=DAILY)
def one_status_per_signal(
    context: dg.AssetCheckExecutionContext, tally: TallyHome
) -> dg.AssetCheckResult:
    """Every accepted, de-duplicated signal of the run's days is in fact_signal exactly once,
    with exactly one status."""
    days = list(context.partition_keys)
    return _result(checks.signal_status(tally.resolve(), days), "signal")


@dg.asset_check(asset=balance_snapshot, blocking=True, partitions_def=DAILY)
def idempotency_charged_once(
    context: dg.AssetCheckExecutionContext, tally: TallyHome
) -> dg.AssetCheckResult:
    """No idempotency key is charged twice: within the run's days, and across all days (the
    charged copy is the first copy the lake received)."""
    days = list(context.partition_keys)
    return _result(checks.idempotency(tally.resolve(), days), "key")

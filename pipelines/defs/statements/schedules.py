"""The monthly statement run: finalizes each month's statements once its grace period is over."""

import dagster as dg

from pipelines.core.home import resolve_home
from pipelines.defs.statements.assets import monthly_statements
from pipelines.statements import closing

statement_run = dg.define_asset_job(
    "statement_run",
    selection=[monthly_statements],
    description="Compute (and, once the month has closed, finalize) a month's statements.",
)


DESCRIPTION = (
    "Checks daily at 01:00 UTC (after the billing run) and runs once per month: when the "
    "oldest month without final statements has closed (its end + the grace period) and the "
    "ledger has processed its last day, materializes that month's partition, which finalizes "
    "it."
)


@dg.schedule(
    job=statement_run,
    cron_schedule="0 1 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description=DESCRIPTION,
)
def monthly_statements_schedule(context: dg.ScheduleEvaluationContext):
    """Checks daily at 01:00 UTC (after the billing run) and runs once per month: when the
    oldest month without final statements has closed (its end + the grace period) and the
    ledger has processed its last day, materializes that month's partition, which finalizes it."""
    home = resolve_home()
    if not home.warehouse.exists():
        return dg.SkipReason("no warehouse yet: nothing to state")
    month = closing.next_due(home, context.scheduled_execution_time, closing.grace_days())
    if month is None:
        return dg.SkipReason("no month is due for its final statements")
    return dg.RunRequest(run_key=str(month), partition_key=str(month))

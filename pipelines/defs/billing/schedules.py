"""The scheduled daily batch billing run."""

import dagster as dg

from pipelines.defs.billing.jobs import billing_run
from pipelines.defs.billing.runs import planned_run_request


@dg.schedule(
    job=billing_run,
    cron_schedule="15 0 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def daily_billing(context: dg.ScheduleEvaluationContext):
    """Every day at 00:15 UTC: bring every stale day, and the ledger up to yesterday, up to date."""
    request = planned_run_request(run_key=context.scheduled_execution_time.date().isoformat())
    return request or dg.SkipReason("everything is up to date")

"""The scheduled daily batch billing run."""

import dagster as dg

from pipelines.defs.billing.jobs import billing_run
from pipelines.defs.landing.sensors import next_billing_run
from pipelines.defs.resources import TallyHome

DESCRIPTION = (
    "Every day at 00:15 UTC: bills the day that just ended (prices it, runs the ledger "
    "through it, checks, publishes), with whatever else became missing or unsynced."
)


@dg.schedule(
    job=billing_run,
    cron_schedule="15 0 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description=DESCRIPTION,
)
def daily_billing(context: dg.ScheduleEvaluationContext, tally: TallyHome):
    """Every day at 00:15 UTC: bills the day that just ended (prices it, runs the ledger through
    it, checks, publishes), with whatever else became missing or unsynced."""
    request = next_billing_run(context.instance, tally, "schedule")
    if isinstance(request, dg.RunRequest):
        key = context.scheduled_execution_time.date().isoformat()
        return request.with_replaced_attrs(run_key=f"daily-{key}")
    return request

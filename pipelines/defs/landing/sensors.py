"""Keeps billing current: observes the sources and runs what became missing or unsynced."""

import dagster as dg

from pipelines.defs.billing import plan
from pipelines.defs.billing.jobs import billing_run
from pipelines.defs.resources import TallyHome


def next_billing_run(
    instance: dg.DagsterInstance, tally: TallyHome, reason: str
) -> dg.RunRequest | dg.SkipReason:
    """The next run that brings the billed days (through yesterday, UTC) up to date, or why
    none is needed. One run at a time: while a billing run is queued or running, wait for it."""
    active = instance.get_run_records(
        dg.RunsFilter(
            job_name=billing_run.name,
            statuses=[
                dg.DagsterRunStatus.QUEUED,
                dg.DagsterRunStatus.NOT_STARTED,
                dg.DagsterRunStatus.STARTING,
                dg.DagsterRunStatus.STARTED,
            ],
        ),
        limit=1,
    )
    if active:
        return dg.SkipReason(f"billing run {active[0].dagster_run.run_id} is still in progress")
    home, config = tally.resolve(), tally.config()
    work = plan.compute_work(instance, home, config, plan.billed_days(config))
    request = plan.run_request(work, reason)
    return request or dg.SkipReason("every billed day is up to date")


DESCRIPTION = (
    "Every minute: records the days whose signals or configuration changed (late signals, a "
    "backdated grant, a price change) as new source versions, and runs exactly the partitions "
    "that became missing or unsynced, one run at a time. Nothing when nothing changed."
)


@dg.sensor(
    job=billing_run,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=DESCRIPTION,
)
def billing_sensor(context: dg.SensorEvaluationContext, tally: TallyHome):
    """Every minute: records the days whose signals or configuration changed (late signals, a
    backdated grant, a price change) as new source versions, and runs exactly the partitions
    that became missing or unsynced, one run at a time. Nothing when nothing changed."""
    return next_billing_run(context.instance, tally, "sensor")

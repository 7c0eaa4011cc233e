"""Lake maintenance on a schedule: expire old Iceberg snapshots and delete the files that only
they listed (docs/storage.md)."""

import dagster as dg

from pipelines.defs.resources import TallyHome
from pipelines.landing.lake import Lake, snapshot_retention


@dg.op(description="Expire lake snapshots older than the retention; delete replaced files.")
def expire_lake_snapshots(context: dg.OpExecutionContext, tally: TallyHome) -> None:
    retention = snapshot_retention()
    expired = Lake(tally.resolve().lake).maintain(retention)
    context.log.info(
        f"expired {expired['signals']} signals and {expired['rejects']} rejects snapshot(s) "
        f"older than {retention}"
    )
    context.add_output_metadata({f"expired_{k}": v for k, v in expired.items()})


@dg.job(description="Expire old lake snapshots and collect replaced files.")
def lake_maintenance():
    expire_lake_snapshots()


@dg.schedule(
    job=lake_maintenance,
    cron_schedule="30 3 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every day at 03:30 UTC: expire lake snapshots older than the retention "
    "(TALLY_SNAPSHOT_RETENTION_HOURS, default 168) and delete the files only they listed.",
)
def daily_lake_maintenance(context: dg.ScheduleEvaluationContext):
    return dg.RunRequest(run_key=f"maintain-{context.scheduled_execution_time.date()}")

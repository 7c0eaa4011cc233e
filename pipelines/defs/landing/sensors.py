"""Notices newly landed (including late) signals and configuration changes."""

import dagster as dg

from pipelines.defs.billing.jobs import billing_run
from pipelines.defs.billing.runs import planned_run_request


@dg.sensor(
    job=billing_run, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING
)
def new_signals(context: dg.SensorEvaluationContext):
    """Requests a billing run over the partitions that received new or late signals (and
    whatever the ledger must recompute after them)."""
    request = planned_run_request()
    return request or dg.SkipReason("no new signals or configuration changes")

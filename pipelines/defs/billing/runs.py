"""The engine's plan as Dagster runs (for the sensor, the schedule and `tally run`)."""

from __future__ import annotations

import dagster as dg

from pipelines.defs.partitions import DAILY, RANGE_END, RANGE_START
from pipelines.lib import engine
from pipelines.lib.config import load_config
from pipelines.lib.home import resolve_home
from pipelines.lib.lake import Lake


def plan_now() -> engine.Plan:
    home = resolve_home()
    return engine.make_plan(home, load_config(home.config_dir), Lake(home.lake))


def partition_range(plan: engine.Plan) -> tuple[str, str] | None:
    """The one contiguous partition range that covers the plan (clamped to existing partitions)."""
    keys = DAILY.get_partition_keys()
    days = [d for d in plan.partitions if keys and keys[0] <= d <= keys[-1]]
    return (days[0], days[-1]) if days else None


def planned_run_request(run_key: str | None = None) -> dg.RunRequest | None:
    plan = plan_now()
    span = None if plan.empty else partition_range(plan)
    if span is None:
        return None
    return dg.RunRequest(
        run_key=run_key or f"{span[0]}..{span[1]}:{plan.price_days[-1:] or plan.ledger_to}",
        tags={RANGE_START: span[0], RANGE_END: span[1]},
    )


def materialize(plan: engine.Plan) -> tuple[bool, list[str]]:
    """Run `billing_run` in-process over the plan's partition range; (success, failure lines)."""
    from pipelines.definitions import defs

    span = partition_range(plan)
    if span is None:
        return True, []
    job = defs().resolve_job_def("billing_run")
    result = job.execute_in_process(
        instance=dg.DagsterInstance.get(),
        tags={RANGE_START: span[0], RANGE_END: span[1]},
        run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
        raise_on_error=False,
    )
    problems = []
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            problems.append(f"{event.step_key}: {event.event_specific_data.error.message.strip()}")
        elif event.event_type_value == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            if not evaluation.passed:
                problems.append(f"check {evaluation.check_name} failed (publishing was blocked)")
    return result.success and not problems, problems

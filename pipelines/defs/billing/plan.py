"""What is missing or unsynced, asked of Dagster's own records; shared by the sensor, the schedule
and `tally run`.

1. **Observe** the three sources (`signals`, `pricing_config`, `credit_grants`): compute each
   billed day's version and record, as Dagster observations, the days whose version differs from
   the last one recorded.
2. **Compare**, the way Dagster's staleness does: a partition is unsynced when one of its inputs
   has a newer observation or materialization, with another data version, than the one it was
   computed from (the `dagster/input_event_pointer/...` tag of its materialization). The ledger is
   a chain of days: a day is also unsynced when the day before was materialized after it.
3. **Work**: the fact_signal days to price, the first ledger day to recompute (through the last
   billed day), and whether the warehouse must be published. Nothing when nothing changed.
"""

from __future__ import annotations

import os
import re
import socket
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import dagster as dg
from dagster._core.definitions.data_version import (
    DATA_VERSION_IS_USER_PROVIDED_TAG,
    DATA_VERSION_TAG,
)
from dagster._core.events import (
    AssetObservationData,
    DagsterEvent,
    DagsterEventBatchMetadata,
    DagsterEventType,
    generate_event_batch_id,
)
from dagster._core.instance.utils import RUNLESS_JOB_NAME, RUNLESS_RUN_ID

from pipelines.billing import engine, workers
from pipelines.billing.shards import Shard, all_shards
from pipelines.core.home import Home
from pipelines.landing.lake import Lake
from pipelines.pricing.config import Config

SIGNALS = dg.AssetKey("signals")
PRICING_CONFIG = dg.AssetKey("pricing_config")
CREDIT_GRANTS = dg.AssetKey("credit_grants")
WAREHOUSE = dg.AssetKey("warehouse")

# Customer shards (`TALLY_SHARDS`, read when the code loads): one fact_signal and one
# balance_snapshot asset per shard, each in a concurrency pool of its own, so that one day's
# shards run side by side on as many processes or workers as the executor has.
SHARDS = all_shards()


def shard_key(name: str, shard: Shard) -> dg.AssetKey:
    """`fact_signal` with one shard; `fact_signal/s002` (the third of several) otherwise."""
    return dg.AssetKey(name) if shard.count == 1 else dg.AssetKey([name, f"s{shard.index:03d}"])


def shard_pool(shard: Shard) -> str:
    return "tally_writer" if shard.count == 1 else f"tally_shard_{shard.index:03d}"


FACT_SIGNALS = [shard_key("fact_signal", s) for s in SHARDS]
BALANCE_SNAPSHOTS = [shard_key("balance_snapshot", s) for s in SHARDS]
EMPTY = "empty"  # the version of a day with no landed signals

_OBS = DagsterEventType.ASSET_OBSERVATION
_MAT = DagsterEventType.ASSET_MATERIALIZATION


def _pointer_tag(key: dg.AssetKey) -> str:
    return f"dagster/input_event_pointer/{key.to_user_string()}"


def source_versions(home: Home, config: Config, days: list[str]) -> dict[dg.AssetKey, dict]:
    """The current version of each source for each of `days`."""
    landed = engine.signal_versions(Lake(home.lake))
    return {
        SIGNALS: {d: landed.get(d, EMPTY) for d in days},
        PRICING_CONFIG: engine.pricing_versions(config, days),
        CREDIT_GRANTS: engine.grant_versions(config, days),
    }


def _latest(instance: dg.DagsterInstance, key, event, days, tags, before=None) -> dict:
    return instance.event_log_storage.get_latest_tags_by_partition(
        key, event, tags, asset_partitions=days, before_cursor=before
    )


def observe(instance: dg.DagsterInstance, home: Home, config: Config, days: list[str]) -> int:
    """Record an observation for every (source, day) whose version changed; how many. They are
    runless events, as `instance.report_runless_asset_event` records them, written as one batch."""
    events = []
    for key, versions in source_versions(home, config, days).items():
        known = _latest(instance, key, _OBS, days, [DATA_VERSION_TAG])
        for day, version in versions.items():
            if known.get(day, {}).get(DATA_VERSION_TAG) != version:
                tags = {DATA_VERSION_TAG: version, DATA_VERSION_IS_USER_PROVIDED_TAG: "true"}
                observation = dg.AssetObservation(asset_key=key, partition=day, tags=tags)
                events.append(
                    DagsterEvent(
                        event_type_value=_OBS.value,
                        event_specific_data=AssetObservationData(observation),
                        job_name=RUNLESS_JOB_NAME,
                    )
                )
    batch = generate_event_batch_id()
    for i, event in enumerate(events):
        end = DagsterEventBatchMetadata(batch, i == len(events) - 1)
        instance.report_dagster_event(event, run_id=RUNLESS_RUN_ID, batch_metadata=end)
    return len(events)


def _updated_since(instance, dep: dg.AssetKey, event, pointers: dict[str, int], days) -> set[str]:
    """Days whose latest `dep` event has another data version than the one at its pointer."""
    now = _latest(instance, dep, event, days, [DATA_VERSION_TAG])
    by_pointer: dict[int, list[str]] = defaultdict(list)
    for day in days:
        by_pointer[pointers.get(day, 0)].append(day)
    updated = set()
    for pointer, group in by_pointer.items():
        then = _latest(instance, dep, event, group, [DATA_VERSION_TAG], before=pointer + 1)
        for day in group:
            latest = now.get(day, {}).get(DATA_VERSION_TAG)
            if latest is not None and latest != then.get(day, {}).get(DATA_VERSION_TAG):
                updated.add(day)
    return updated


def _latest_records(instance: dg.DagsterInstance, key: dg.AssetKey, days: list[str]) -> dict:
    """Each day's latest materialization record of `key` (days never materialized: none)."""
    ids = instance.get_latest_storage_id_by_partition(key, _MAT, partitions=set(days))
    out = {}
    todo = sorted(ids.values())
    for i in range(0, len(todo), 500):
        batch = todo[i : i + 500]
        for record in instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, storage_ids=batch), limit=len(batch)
        ).records:
            out[record.partition_key] = record
    return out


def latest_materializations(
    instance: dg.DagsterInstance, key: dg.AssetKey, days: list[str]
) -> dict[str, dg.AssetMaterialization]:
    """Each day's latest materialization of `key` (days never materialized: none)."""
    records = _latest_records(instance, key, days)
    return {day: record.asset_materialization for day, record in records.items()}


def materialization_pointers(
    instance: dg.DagsterInstance, key: dg.AssetKey, days: list[str]
) -> dict[str, tuple[int, str, float]]:
    """Per day: (storage id, run id, timestamp) of the latest materialization of `key`."""
    records = _latest_records(instance, key, days)
    return {day: (r.storage_id, r.run_id, r.timestamp) for day, r in records.items()}


def _unsynced(instance, key: dg.AssetKey, deps: dict[dg.AssetKey, object], days) -> set[str]:
    """Days of `key` never materialized, or with an input updated since."""
    tags = {d: dict(m.tags or {}) for d, m in latest_materializations(instance, key, days).items()}
    out = {d for d in days if d not in tags}
    done = [d for d in days if d in tags]
    for dep, event in deps.items():
        pointers = {}
        for d in done:
            raw = tags[d].get(_pointer_tag(dep), "")
            pointers[d] = int(raw) if raw.isdigit() else 0
        out |= _updated_since(instance, dep, event, pointers, done)
    return out


def _text(metadata: dict, name: str) -> str | None:
    value = metadata.get(name)
    return None if value is None else str(getattr(value, "value", value))


def _chain_breaks(instance, key: dg.AssetKey, days: list[str]) -> set[str]:
    """Ledger days (of the shard's asset `key`) that started from other balances than the day
    before them holds now: each day records the fingerprint of its closing state (`checkpoint`)
    and of the state it started from (`starts_from`). A day recomputed with the same result
    breaks nothing after it."""
    mats = latest_materializations(instance, key, days)
    breaks = set()
    for prev, day in zip(days, days[1:], strict=False):
        if prev not in mats or day not in mats:
            continue  # a missing day is unsynced by itself
        holds = _text(mats[prev].metadata, "checkpoint")
        started = _text(mats[day].metadata, "starts_from")
        if holds is None or started is None or holds != started:
            breaks.add(day)
    return breaks


PRICING_CHECKS = ("one_status_per_signal", "idempotency_charged_once")
LEDGER_CHECKS = ("conservation",)


def unchecked_any(
    instance: dg.DagsterInstance, keys: list[dg.AssetKey], checks: tuple[str, ...], days
) -> dict[str, tuple[dg.AssetKey, str]]:
    """`unchecked` over several (shard) assets: {day: (the first such asset, its check)}."""
    out: dict[str, tuple[dg.AssetKey, str]] = {}
    for key in keys:
        for day, check in unchecked(instance, key, checks, days).items():
            out.setdefault(day, (key, check))
    return dict(sorted(out.items()))


def unchecked(
    instance: dg.DagsterInstance, key: dg.AssetKey, checks: tuple[str, ...], days: list[str]
) -> dict[str, str]:
    """Materialized days of `key` whose latest materialization has not passed every one of
    `checks` (failed, or not checked since): {day: the first such check}."""
    from dagster._core.storage.asset_check_execution_record import (
        AssetCheckExecutionRecordStatus as Status,
    )

    done = instance.get_latest_storage_id_by_partition(key, _MAT, partitions=set(days))
    keys = [dg.AssetCheckKey(key, name) for name in checks]
    passed: dict[str, set[str]] = defaultdict(set)
    for info in instance.event_log_storage.get_asset_check_partition_info(
        keys, partition_keys=list(done)
    ):
        if info.latest_execution_status == Status.SUCCEEDED and info.is_current:
            passed[info.partition_key].add(info.check_key.name)
    return {
        d: next(c for c in checks if c not in passed[d])
        for d in sorted(done)
        if passed[d] != set(checks)
    }


def passed_last(
    instance: dg.DagsterInstance, key: dg.AssetKey, checks: tuple[str, ...], day: str
) -> bool:
    """Whether the last completed evaluation of each of `checks` on `day` passed (evaluations
    a running run has only planned do not count)."""
    from dagster._core.event_api import PartitionKeyFilter
    from dagster._core.storage.asset_check_execution_record import (
        AssetCheckExecutionRecordStatus as Status,
    )

    for name in checks:
        records = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(key, name),
            limit=1,
            status={Status.SUCCEEDED, Status.FAILED},
            partition_filter=PartitionKeyFilter(key=day),
        )
        if not records or records[0].status != Status.SUCCEEDED:
            return False
    return True


def ledger_unsynced(
    instance: dg.DagsterInstance, days: list[str], shards: list[Shard] | None = None
) -> set[str]:
    """Ledger days missing, computed from older priced signals or grants, or computed before the
    day before them was (re)computed, in any of `shards` (default: all)."""
    out: set[str] = set()
    for shard in shards or SHARDS:
        key = shard_key("balance_snapshot", shard)
        deps = {shard_key("fact_signal", shard): _MAT, CREDIT_GRANTS: _OBS}
        out |= _unsynced(instance, key, deps, days) | _chain_breaks(instance, key, days)
    return out


@dataclass
class Work:
    """What a billing run must do to bring every billed day through `through` up to date."""

    through: str
    price_days: list[str] = field(default_factory=list)
    ledger_from: str | None = None
    publish: bool = False

    @property
    def empty(self) -> bool:
        return not self.price_days and self.ledger_from is None and not self.publish

    @property
    def ledger_days(self) -> list[str]:
        return engine.day_range(self.ledger_from, self.through) if self.ledger_from else []

    def runs(self) -> list[tuple[list[dg.AssetKey], tuple[str, str] | None]]:
        """The runs, in order: (assets, partition range). Priced days that the ledger range
        covers exactly go in one run with it; otherwise each block of consecutive days to price
        is a run of its own, followed by the ledger and the warehouse."""
        runs: list[tuple[list[dg.AssetKey], tuple[str, str] | None]] = []
        ledger = self.ledger_days
        if self.price_days and self.price_days == ledger:
            return [([*FACT_SIGNALS, *BALANCE_SNAPSHOTS, WAREHOUSE], (ledger[0], ledger[-1]))]
        for block in _blocks(self.price_days):
            runs.append(([*FACT_SIGNALS], (block[0], block[-1])))
        if ledger:
            runs.append(([*BALANCE_SNAPSHOTS, WAREHOUSE], (ledger[0], ledger[-1])))
        elif self.publish or runs:
            runs.append(([WAREHOUSE], None))
        return runs


def _blocks(days: list[str]) -> list[list[str]]:
    blocks: list[list[str]] = []
    for day in days:
        if blocks and engine.day_range(blocks[-1][-1], day)[1:] == [day]:
            blocks[-1].append(day)
        else:
            blocks.append([day])
    return blocks


def compute_work(instance: dg.DagsterInstance, home: Home, config: Config, days: list[str]) -> Work:
    """Observe the sources, then ask Dagster's records what is missing or unsynced in `days`
    (the billed days through the last one to bring up to date)."""
    from pipelines.warehouse.publish import is_current

    work = Work(through=days[-1] if days else "")
    if not days:
        return work
    observe(instance, home, config, days)
    price: set[str] = set()
    for key in FACT_SIGNALS:  # a day unsynced in one shard is priced in all: each costs its part
        price |= _unsynced(instance, key, {SIGNALS: _OBS, PRICING_CONFIG: _OBS}, days)
    # A day whose blocking checks failed is priced again (and fails again until it is fixed):
    # its files are never built upon.
    price |= set(unchecked_any(instance, FACT_SIGNALS, PRICING_CHECKS, days))
    work.price_days = sorted(price)
    ledger = ledger_unsynced(instance, days) | set(work.price_days)
    ledger |= set(unchecked_any(instance, BALANCE_SNAPSHOTS, LEDGER_CHECKS, days))
    work.ledger_from = min(ledger, default=None)
    published = instance.fetch_materializations(WAREHOUSE, limit=1).records
    ledger_ids = [
        max(instance.get_latest_storage_id_by_partition(key, _MAT).values(), default=0)
        for key in BALANCE_SNAPSHOTS
    ]
    work.publish = (
        not published
        or not home.warehouse.exists()
        or not is_current(home)
        or max(ledger_ids, default=0) > published[0].storage_id
    )
    return work


def billed_days(config: Config, through: str | None = None) -> list[str]:
    """The daily partitions through `through` (default: yesterday, the last closed day)."""
    from pipelines.core.clock import now
    from pipelines.defs.partitions import DAILY

    last = through or (now().date() - timedelta(days=1)).isoformat()
    return [d for d in DAILY.get_partition_keys() if d <= last]


def run_request(work: Work, reason: str) -> dg.RunRequest | None:
    """The first run of `work` as a request (the sensor asks again once it has finished)."""
    runs = work.runs()
    if not runs:
        return None
    assets, span = runs[0]
    tags = {"tally/reason": reason, "tally/incremental": "true"}
    if span:
        tags |= {
            "dagster/asset_partition_range_start": span[0],
            "dagster/asset_partition_range_end": span[1],
        }
    return dg.RunRequest(job_name="billing_run", asset_selection=assets, tags=tags)


ProgressFn = Callable[[str], None]


@dataclass
class RunOutcome:
    """What one billing run did: per asset, the partitions it materialized; what failed."""

    assets: list[dg.AssetKey]
    span: tuple[str, str] | None
    materialized: dict[str, list[str]] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def release_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """A `tally run` killed mid-run (kill -9, a crash, a full disk) leaves its run STARTED and
    its concurrency slot taken, and every later run would wait for that slot forever: mark the
    runs this host started whose process is gone as failed, and free their slots."""
    host = socket.gethostname()
    released = []
    for record in instance.get_run_records(
        filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.NOT_STARTED],
            tags={"tally/host": host},
        )
    ):
        run = record.dagster_run
        pid = int(run.tags.get("tally/pid", "0"))
        if pid and pid != os.getpid() and not _alive(pid):
            instance.report_run_failed(run, f"its process ({host} pid {pid}) is gone")
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
            released.append(run.run_id)
    return released


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def execute(
    work: Work,
    progress: ProgressFn | None = None,
    instance: dg.DagsterInstance | None = None,
) -> list[RunOutcome]:
    """Run `work` in this process through the `billing_run` job, run after run, stopping at the
    first run that fails or whose blocking checks fail (nothing downstream of them runs)."""
    from pipelines.definitions import defs

    job = defs().resolve_job_def("billing_run")
    instance = instance or dg.DagsterInstance.get()
    release_dead_runs(instance)
    outcomes = []
    for assets, span in work.runs():
        what = ", ".join(a.to_user_string() for a in assets)
        if progress:
            progress(f"{what} {span[0]}..{span[1]}" if span else what)
        tags = {
            "tally/reason": "tally run",
            "tally/incremental": "true",
            "tally/host": socket.gethostname(),
            "tally/pid": str(os.getpid()),
        }
        if span:
            tags |= {
                "dagster/asset_partition_range_start": span[0],
                "dagster/asset_partition_range_end": span[1],
            }
        # Tally reports failures itself, one line each; the run's logs stay in the UI.
        quiet = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
        if workers.out_of_process():  # steps in other processes, on this host or on workers
            result = dg.execute_job(
                workers.recon_job("billing_run"),
                instance=instance,
                asset_selection=assets,
                tags=tags,
                run_config=quiet,
                raise_on_error=False,
            )
        else:
            result = job.execute_in_process(
                instance=instance,
                asset_selection=assets,
                tags=tags,
                run_config=quiet,
                raise_on_error=False,
            )
        outcome = RunOutcome(assets, span)
        failed_checks: dict[str, list[str]] = {}
        for event in result.all_events:
            kind = event.event_type_value
            if kind == "ASSET_MATERIALIZATION":
                mat = event.event_specific_data.materialization
                name = mat.asset_key.path[0]  # the shards of an asset count as one
                days = outcome.materialized.setdefault(name, [])
                if (mat.partition or "") not in days:
                    days.append(mat.partition or "")
                rows = mat.metadata.get("row_count")
                if rows is not None:
                    outcome.rows[name] = outcome.rows.get(name, 0) + int(rows.value)
            elif kind == "ASSET_CHECK_EVALUATION":
                evaluation = event.event_specific_data
                if not evaluation.passed:
                    days = failed_checks.setdefault(evaluation.check_name, [])
                    if evaluation.partition:  # per day; the range's own result adds nothing
                        days.append(evaluation.partition)
            elif kind == "STEP_FAILURE":
                error = event.event_specific_data.error
                # Dagster's wrappers hold the error raised in the step: say that one (not its
                # own causes: a WriteError's one line is what a person needs, not its OSError).
                while error.cause is not None and (error.cls_name or "").startswith("Dagster"):
                    if error.cls_name == "DagsterAssetCheckFailedError":
                        break
                    error = error.cause
                if error.cls_name == "DagsterAssetCheckFailedError":
                    continue  # said below, per check
                message = (error.message or "").strip().splitlines() or [error.cls_name or ""]
                # Tally's own errors are sentences already: without "pipelines.x.SomeError: ".
                said = re.sub(r"^pipelines(\.\w+)+: ", "", message[-1].strip())
                outcome.problems.append(f"{event.step_key}: {said}")
        for name, days in failed_checks.items():
            where = f" on {', '.join(days)}" if days else ""
            outcome.problems.append(
                f"check {name} failed{where}: nothing downstream of it ran "
                "(the warehouse was not published)"
            )
        if not result.success and not outcome.problems:
            outcome.problems.append("the billing run failed (see the Dagster UI for its logs)")
        outcomes.append(outcome)
        if outcome.problems:
            break
    return outcomes

"""Dagster is the orchestrator: the billing runs it plans equal a from-scratch run, and do no
more than what changed.

A synthetic workload is landed file by file, like `tally ingest` does, into a home whose clock is
pinned (`TALLY_NOW`) so that its partitions end on the workload's last day. The code location is
loaded fresh on that home, Dagster's records say what is missing or unsynced
(`plan.compute_work`), and the runs execute in-process through the `billing_run` job, as
`tally run` does. Then something changes (a late signal, a duplicate resend, backdated grants, a
new day, a changed pricing rule) and only the affected partitions become unsynced. Every output
under `<home>/engine` is compared, row for row, with a fresh home that landed the same signals in
the same order and ran once from scratch (`run_engine`, no Dagster); only `received_at` (the wall
clock of landing) is left out.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml

from pipelines.billing.engine import run_engine
from pipelines.core.home import Home, ensure_instance
from pipelines.landing import lake as lake_module
from pipelines.landing.ingest import ingest_signals
from pipelines.landing.lake import Lake
from pipelines.landing.readers import ingest_file
from pipelines.pricing.config import load_config
from pipelines.synth import synth

START = date(2026, 11, 1)
SEED = 23


def day(n: int) -> str:
    """Day n of the workload (1-based) as YYYY-MM-DD."""
    return (START + timedelta(days=n - 1)).isoformat()


def days(first: int, last: int) -> list[str]:
    return [day(n) for n in range(first, last + 1)]


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory):
    """3000 signals over 10 days (config/company.yaml, signals/day-*.jsonl), generated once."""
    return synth(
        tmp_path_factory.mktemp("w"), signals=3000, days=10, customers=3, seed=SEED, start=START
    )


@pytest.fixture(scope="module")
def workload11(tmp_path_factory: pytest.TempPathFactory):
    """The same kind of workload over 11 days (for adding an 11th day to 10 processed ones)."""
    return synth(
        tmp_path_factory.mktemp("w11"), signals=3300, days=11, customers=3, seed=SEED, start=START
    )


@pytest.fixture()
def new_home(tmp_path: Path) -> Iterator:
    """`new_home(name, config_dir)`: a fresh home with a copy of the YAML files of config_dir."""
    made: list[Home] = []

    def make(name: str, config_dir: Path) -> Home:
        home = Home(tmp_path / name)
        home.config_dir.mkdir(parents=True)
        for path in sorted(Path(config_dir).glob("*.yaml")):
            shutil.copy(path, home.config_dir / path.name)
        made.append(home)
        return home

    yield make
    for home in made:  # the lake module caches one LMDB environment per path: close them
        lake_module.release(home.lake)


def land_files(home: Home, files) -> None:
    lake = Lake(home.lake)
    for path in files:
        ingest_file(lake, path)


def land(home: Home, signals: list[dict | bytes]) -> None:
    report = ingest_signals(Lake(home.lake), signals)
    assert report.failed == 0, report.errors


# ------------------------------------------------------------------------------ comparison


OUTPUTS = ("fact_signal", "signal_rollup", "balance_snapshot", "grant_balance", "credit_event")


def outputs(home: Home) -> dict[str, list[tuple]]:
    """Every engine output table: its partitions (dates, empty ones included) and its rows."""
    con = duckdb.connect()
    out: dict[str, list[tuple]] = {}
    try:
        for table_dir in sorted(p for p in home.engine_dir.iterdir() if p.name in OUTPUTS):
            files = sorted(table_dir.glob("date=*/*.parquet"))
            partitions = sorted({f.parent.name for f in files})  # a day may hold late parts
            out[f"{table_dir.name} partitions"] = [tuple(partitions)]
            if not files:
                continue
            rel = con.read_parquet(
                [str(f) for f in files], hive_partitioning=True, union_by_name=True
            )
            columns = [c for c in rel.columns if c != "received_at"]  # the wall clock of landing
            rows = rel.select(*[duckdb.ColumnExpression(c) for c in columns]).fetchall()
            if table_dir.name == "signal_rollup":  # late parts split a day's groups: sum them
                rel.create_view("rollup_parts", replace=True)
                rows = con.sql(
                    "SELECT * EXCLUDE (signals, quantity, credits), sum(signals), sum(quantity), "
                    "sum(credits) FROM rollup_parts GROUP BY ALL"
                ).fetchall()
            out[table_dir.name] = sorted(rows, key=repr)
    finally:
        con.close()
    return out


def assert_same_outputs(incremental: Home, scratch: Home) -> None:
    got, want = outputs(incremental), outputs(scratch)
    assert sorted(got) == sorted(want)
    for name in want:
        if got[name] != want[name]:
            extra = [r for r in got[name] if r not in want[name]][:5]
            missing = [r for r in want[name] if r not in got[name]][:5]
            pytest.fail(
                f"{name} differs from a from-scratch run: "
                f"{len(got[name])} vs {len(want[name])} rows\n"
                f"only incremental: {extra}\nonly from scratch: {missing}"
            )
    assert any(
        want[t] for t in ("fact_signal", "balance_snapshot", "grant_balance", "credit_event")
    )


def _late_changes(home: Home, workload) -> tuple[list[dict | bytes], str]:
    """A late signal for day 3 charged to a seat, a resend of a day-5 signal (a duplicate), and
    backdated grants starting on day 3 (YAML appended to the config); returns the signals to land
    and the backdated YAML."""
    config = load_config(home.config_dir)
    at = datetime.fromisoformat(f"{day(3)}T14:30:00+00:00")
    seat, user = next(
        (s, a.user_id)
        for s in config.seats
        for a in s.assignments
        if (a.valid_from is None or a.valid_from <= at)
        and (a.valid_until is None or at < a.valid_until)
    )
    late = {
        "eventName": "chat_message",
        "customer": {"externalCustomerId": seat.customer_id},
        "attribution": {"externalProductId": "chatbot"},
        "timestamp": f"{day(3)}T14:30:00Z",
        "data": {"external_user_id": user, "usage": {"tokens_k": "2.5"}, "team": "late"},
        "idempotencyKey": "late-signal-day-3",
    }
    resend = next(
        line
        for line in (workload.config_dir.parent / "signals" / f"day-{day(5)}.jsonl")
        .read_bytes()
        .splitlines()
        if b'"idempotencyKey"' in line and json.loads(line).get("timestamp", "").startswith(day(5))
    )
    backdated = f"""
grants:
  - id: grant_backdated_pool
    customer: {seat.customer_id}
    seat: null
    currency: credits
    amount: 50
    starts_at: '{day(3)}T00:00:00Z'
    priority: 5
  - id: grant_backdated_seat
    customer: {seat.customer_id}
    seat: {seat.id}
    currency: credits
    amount: 7.5
    starts_at: '{day(3)}T12:00:00Z'
    expires_at: '{day(6)}T00:00:00Z'
    priority: 1
"""
    return [late, resend], backdated


# ------------------------------------------------------------------------------ Dagster


@pytest.fixture()
def dagster_on(monkeypatch: pytest.MonkeyPatch):
    """`dagster_on(home, last_day)`: the code location loaded fresh on `home`, with the clock
    pinned to the day after `last_day` (so yesterday, the last partition, is `last_day`)."""

    def load(home: Home, last_day: str):
        now = (date.fromisoformat(last_day) + timedelta(days=1)).isoformat() + "T06:00:00Z"
        monkeypatch.setenv("TALLY_HOME", str(home.root))
        monkeypatch.setenv("TALLY_NOW", now)
        monkeypatch.setenv("DAGSTER_HOME", str(ensure_instance(home.root)))
        for name in list(sys.modules):
            if name.startswith("pipelines.defs") or name == "pipelines.definitions":
                del sys.modules[name]
        from pipelines.definitions import defs
        from pipelines.defs.billing import plan

        return defs(), plan

    return load


def bill(home: Home, plan) -> tuple[object, list]:
    """What `tally run` does: plan from Dagster's records, execute; (work, outcomes)."""
    config = load_config(home.config_dir)
    instance = dg.DagsterInstance.get()
    work = plan.compute_work(instance, home, config, plan.billed_days(config))
    outcomes = plan.execute(work)
    assert all(not o.problems for o in outcomes), [o.problems for o in outcomes]
    return work, outcomes


def pending(home: Home, plan):
    config = load_config(home.config_dir)
    return plan.compute_work(dg.DagsterInstance.get(), home, config, plan.billed_days(config))


def scratch_of(new_home, workload, home: Home, name: str, extra: list | None = None) -> Home:
    """A fresh home with `home`'s configuration, the workload landed in order, then `extra`."""
    scratch = new_home(name, home.config_dir)
    land_files(scratch, workload.signal_files)
    if extra:
        land(scratch, extra)
    return scratch


def test_a_run_then_nothing_then_exactly_the_late_day(workload, new_home, dagster_on) -> None:
    home = new_home("dagster", workload.config_dir)
    land_files(home, workload.signal_files)
    _, plan = dagster_on(home, day(10))
    work, _ = bill(home, plan)
    assert work.price_days == days(1, 10) and work.ledger_from == day(1)
    assert pending(home, plan).empty  # a second run has nothing to do

    late, backdated = _late_changes(home, workload)
    land(home, late[:1])  # one late signal for day 3
    work = pending(home, plan)
    assert work.price_days == [day(3)] and work.ledger_from == day(3)
    assert [(a, s) for a, s in work.runs()] == [
        ([plan.FACT_SIGNALS[0]], (day(3), day(3))),
        ([plan.BALANCE_SNAPSHOTS[0], plan.WAREHOUSE], (day(3), day(10))),
    ]
    bill(home, plan)
    assert pending(home, plan).empty
    # Only the late signal was priced, into a part of its own beside the day's rows.
    parts = sorted(p.name for p in (home.engine_dir / "fact_signal" / f"date={day(3)}").iterdir())
    assert parts[0] == "data.parquet" and parts[1].startswith("late-") and len(parts) == 2
    scratch = scratch_of(new_home, workload, home, "scratch", late[:1])
    run_engine(scratch, until=date.fromisoformat(day(10)))
    assert_same_outputs(home, scratch)


def test_backdated_grants_rerun_the_ledger_and_reprice_only_the_seats_days(
    workload, new_home, dagster_on
) -> None:
    home = new_home("dagster", workload.config_dir)
    land_files(home, workload.signal_files)
    _, plan = dagster_on(home, day(10))
    bill(home, plan)
    late, backdated = _late_changes(home, workload)
    with open(home.config_dir / "backdated.yaml", "w") as fh:
        fh.write(backdated)
    work = pending(home, plan)
    # The seat grant (day 3 noon to day 6) decides recipients on days 3..5; the ledger reruns
    # from day 3, the first day whose grants changed.
    assert work.price_days == days(3, 5) and work.ledger_from == day(3)
    bill(home, plan)
    assert pending(home, plan).empty
    scratch = scratch_of(new_home, workload, home, "scratch")
    run_engine(scratch, until=date.fromisoformat(day(10)))
    assert_same_outputs(home, scratch)


def test_a_changed_price_reprices_only_the_days_it_covers(workload, new_home, dagster_on) -> None:
    home = new_home("dagster", workload.config_dir)
    land_files(home, workload.signal_files)
    _, plan = dagster_on(home, day(10))
    bill(home, plan)
    path = home.config_dir / "company.yaml"
    document = yaml.safe_load(path.read_text())
    product = next(p for p in document["products"] if p.get("pricing"))
    product["pricing"].append(
        {
            "event": "never_sent_event",
            "currency": product["pricing"][0]["currency"],
            "credit_cost": 1,
            "from": f"{day(4)}T00:00:00Z",
            "until": f"{day(6)}T00:00:00Z",
        }
    )
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    work = pending(home, plan)
    assert work.price_days == days(4, 5) and work.ledger_from == day(4)


def _own_day_lines(path: Path, d: str) -> list[bytes]:
    """The lines of a day's file dated that day (the file also carries late signals)."""
    out = []
    for line in path.read_bytes().splitlines():
        try:
            stamp = json.loads(line).get("timestamp") or ""
        except (ValueError, AttributeError):
            continue
        if isinstance(stamp, str) and stamp.startswith(d):
            out.append(line)
    return out


def test_a_new_day_is_billed_alone(workload11, new_home, dagster_on) -> None:
    *ten, eleventh = workload11.signal_files
    own = _own_day_lines(eleventh, day(11))
    assert len(own) > 100
    home = new_home("dagster", workload11.config_dir)
    land_files(home, ten)
    _, plan = dagster_on(home, day(10))
    bill(home, plan)
    land(home, own)
    _, plan = dagster_on(home, day(11))  # the next day: day 11 is over and becomes a partition
    work = pending(home, plan)
    assert work.price_days == [day(11)] and work.ledger_from == day(11)
    assert [a for a, _ in work.runs()] == [
        [plan.FACT_SIGNALS[0], plan.BALANCE_SNAPSHOTS[0], plan.WAREHOUSE]
    ]
    bill(home, plan)
    assert pending(home, plan).empty
    scratch = new_home("scratch", workload11.config_dir)
    land_files(scratch, ten)
    land(scratch, own)
    run_engine(scratch, until=date.fromisoformat(day(11)))
    assert_same_outputs(home, scratch)


def test_single_partitions_empty_days_and_rematerialization(workload, new_home, dagster_on) -> None:
    """What the UI's Materialize button does: exactly the partitions asked for, each with its own
    metadata; a day without signals is an empty partition; the ledger refuses a broken chain."""
    home = new_home("dagster", workload.config_dir)
    land_files(home, workload.signal_files)
    defs, plan = dagster_on(home, day(12))  # days 11 and 12 have no signals
    instance = dg.DagsterInstance.get()
    job = defs.resolve_job_def("billing_run")

    def materialize(keys, partition):
        return job.execute_in_process(
            instance=instance, asset_selection=keys, partition_key=partition, raise_on_error=False
        )

    result = materialize([plan.FACT_SIGNALS[0]], day(11))
    assert result.success
    (mat,) = result.asset_materializations_for_node("fact_signal")
    assert mat.partition == day(11) and mat.metadata["row_count"].value == 0

    result = materialize([plan.FACT_SIGNALS[0]], day(4))
    (mat,) = result.asset_materializations_for_node("fact_signal")
    con = duckdb.connect()
    landed = con.execute(
        "SELECT count(*) FROM read_parquet($f) WHERE NOT is_duplicate",
        {"f": [str(f.path) for f in Lake(home.lake).files(date=day(4))]},
    ).fetchall()[0][0]
    assert mat.partition == day(4) and mat.metadata["row_count"].value == landed > 0
    assert sum(mat.metadata["statuses"].value.values()) == landed
    again = materialize([plan.FACT_SIGNALS[0]], day(4))  # a force: the day is priced again
    (mat2,) = again.asset_materializations_for_node("fact_signal")
    assert mat2.metadata["row_count"].value == landed

    broken = materialize([plan.BALANCE_SNAPSHOTS[0]], day(5))
    assert not broken.success
    failure = next(e for e in broken.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.event_specific_data.error.message
    assert f"materialize balance_snapshot from {day(1)} through {day(5)}" in message
    assert "Traceback" not in message


def test_sensor_and_schedule_request_exactly_the_missing_runs(
    workload, new_home, dagster_on
) -> None:
    from pipelines.defs.resources import TallyHome

    home = new_home("dagster", workload.config_dir)
    land_files(home, workload.signal_files)
    defs, plan = dagster_on(home, day(10))
    instance = dg.DagsterInstance.get()
    sensor = defs.resolve_sensor_def("billing_sensor")
    schedule = defs.resolve_schedule_def("daily_billing")
    assert sensor.description and schedule.description

    context = dg.build_sensor_context(instance=instance, resources={"tally": TallyHome()})
    (request,) = sensor.evaluate_tick(context).run_requests
    assert request.tags["dagster/asset_partition_range_start"] == day(1)
    assert request.tags["dagster/asset_partition_range_end"] == day(10)
    when = datetime.fromisoformat(f"{day(11)}T00:15:00+00:00")
    context = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=when, resources={"tally": TallyHome()}
    )
    (request,) = schedule.evaluate_tick(context).run_requests
    assert request.run_key == f"daily-{day(11)}"

    bill(home, plan)
    context = dg.build_sensor_context(instance=instance, resources={"tally": TallyHome()})
    tick = sensor.evaluate_tick(context)
    assert not tick.run_requests and "up to date" in tick.skip_message


def test_blocking_checks_stop_the_run_before_publishing(
    workload, new_home, dagster_on, monkeypatch
) -> None:
    """A pricing bug that drops a signal, or charges a key twice, fails its check: the ledger
    and the warehouse do not run."""
    from pipelines.billing import engine

    home = new_home("dagster", workload.config_dir)
    land_files(home, workload.signal_files)
    _, plan = dagster_on(home, day(10))
    real_price = engine.price

    def tamper(sql: str):
        def price(home_, config, days_, progress=None, since=None, shards=None):
            out = real_price(home_, config, days_, progress, shards=shards)  # whole days
            for f in home_.engine_dir.glob(f"fact_signal/date={day(2)}/*.parquet"):
                con = duckdb.connect()
                con.execute(f"COPY ({sql.format(f=str(f))}) TO '{f}.t' (FORMAT parquet)")
                Path(f"{f}.t").replace(f)
            return out

        return price

    for check, sql in (
        ("one_status_per_signal", "SELECT * FROM read_parquet('{f}') OFFSET 1"),
        (
            "idempotency_charged_once",
            "SELECT * FROM read_parquet('{f}') UNION ALL "
            "(SELECT * FROM read_parquet('{f}') WHERE idempotency_key IS NOT NULL "
            "AND status = 'priced' LIMIT 1)",
        ),
    ):
        monkeypatch.setattr(engine, "price", tamper(sql))
        config = load_config(home.config_dir)
        work = plan.compute_work(dg.DagsterInstance.get(), home, config, days(1, 10))
        outcomes = plan.execute(work)
        problems = [p for o in outcomes for p in o.problems]
        assert any(check in p for p in problems), problems
        assert not home.warehouse.exists()
        assert "balance_snapshot" not in {k for o in outcomes for k in o.materialized}
    # Fixed (the real pricing again): the failed day is priced again and the rest follows.
    monkeypatch.setattr(engine, "price", real_price)
    work = pending(home, plan)
    assert day(2) in work.price_days and work.ledger_from == day(1)
    bill(home, plan)
    assert home.warehouse.exists() and pending(home, plan).empty


def test_rematerializing_a_day_with_the_same_result_starts_no_catch_up(
    workload, new_home, dagster_on
) -> None:
    """The UI's Materialize on one day of the whole billing job recomputes that day; the days
    after it started from the same balances, so nothing else becomes due."""
    home = new_home("dagster", workload.config_dir)
    land_files(home, workload.signal_files)
    defs, plan = dagster_on(home, day(10))
    bill(home, plan)
    job = defs.resolve_job_def("billing_run")
    result = job.execute_in_process(
        instance=dg.DagsterInstance.get(),
        asset_selection=[plan.FACT_SIGNALS[0], plan.BALANCE_SNAPSHOTS[0], plan.WAREHOUSE],
        partition_key=day(4),
    )
    assert result.success
    assert pending(home, plan).empty
    # Changed balances on day 4 (a grant starting that day) make the days after it due.
    customer = load_config(home.config_dir).customers[0].external_id
    (home.config_dir / "more.yaml").write_text(
        f"grants:\n  - {{id: g_more, customer: {customer}, currency: credits, amount: 5,"
        f" starts_at: '{day(4)}T06:00:00Z'}}\n"
    )
    work = pending(home, plan)
    assert work.price_days == [] and work.ledger_from == day(4)


def test_the_up_to_date_memo_holds_only_while_nothing_changed(
    workload, new_home, dagster_on
) -> None:
    """`tally run` remembers Dagster's "nothing to do"; any input or any Dagster event since
    (a run from the UI) makes it ask Dagster again."""
    from pipelines.billing import uptodate

    home = new_home("dagster", workload.config_dir)
    land_files(home, workload.signal_files[:3])
    defs, plan = dagster_on(home, day(3))
    bill(home, plan)
    assert pending(home, plan).empty
    uptodate.record(home, day(3))
    assert uptodate.holds(home, day(3)) and not uptodate.holds(home, day(4))
    job = defs.resolve_job_def("billing_run")
    job.execute_in_process(
        instance=dg.DagsterInstance.get(),
        asset_selection=[plan.FACT_SIGNALS[0]],
        partition_key=day(2),
    )
    assert not uptodate.holds(home, day(3))  # Dagster recorded something since
    uptodate.record(home, day(3))
    land_files(home, workload.signal_files[3:4])
    assert not uptodate.holds(home, day(3))  # the lake changed
    uptodate.record(home, day(3))
    (home.config_dir / "company.yaml").write_text(
        (home.config_dir / "company.yaml").read_text() + "\n"
    )
    assert not uptodate.holds(home, day(3))  # the configuration changed
    uptodate.record(home, day(3))
    home.warehouse.unlink()
    assert not uptodate.holds(home, day(3))  # the warehouse is gone

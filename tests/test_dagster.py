"""Incremental engine runs equal a from-scratch run (PRODUCT.md §5, late signals and backdated
configuration), and recompute no more than what changed.

A synthetic workload (`pipelines.lib.synth`) is landed day by day, file by file, exactly like
`tally ingest` does, and processed by `run_engine`. Then something changes (a late signal, a
duplicate resend, backdated grants, a new day, a changed or added pricing rule) and the engine runs
again. Every output table under `<home>/engine` is then compared, row for row, with a second, fresh
home that landed the same signals in the same order, with the final configuration, and ran once.
Landing in the same order gives the same `seq`/`signal_id`; only `received_at` (the wall clock of
landing) is left out of the comparison.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from pipelines.lib import lake as lake_module
from pipelines.lib.config import load_config
from pipelines.lib.engine import RunResult, run_engine
from pipelines.lib.home import Home
from pipelines.lib.lake import Lake
from pipelines.lib.signals import ingest_file, ingest_signals
from pipelines.lib.synth import synth

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
        env = lake_module._ENVS.pop(home.lake / "_catalog", None)
        if env is not None:
            env.close()


def land_files(home: Home, files) -> None:
    lake = Lake(home.lake)
    for path in files:
        ingest_file(lake, path)


def land(home: Home, signals: list[dict | bytes]) -> None:
    report = ingest_signals(Lake(home.lake), signals)
    assert report.failed == 0, report.errors


# ------------------------------------------------------------------------------ comparison


def outputs(home: Home) -> dict[str, list[tuple]]:
    """Every engine output table: its partitions (dates, empty ones included) and its rows."""
    con = duckdb.connect()
    out: dict[str, list[tuple]] = {}
    try:
        for table_dir in sorted(p for p in home.engine_dir.iterdir() if p.is_dir()):
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


def priced_days(result: RunResult) -> list[str]:
    return [p.day for p in result.priced]


def ledger_days(result: RunResult) -> list[str]:
    return [] if result.ledger is None else list(result.ledger.days)


def mtimes(home: Home) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in home.engine_dir.rglob("*.parquet")}


# ------------------------------------------------------------------------------ tests


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


def test_late_signal_and_backdated_grants_equal_a_from_scratch_run(workload, new_home) -> None:
    home = new_home("incremental", workload.config_dir)
    land_files(home, workload.signal_files)
    first = run_engine(home)
    assert priced_days(first) == days(1, 10)
    assert ledger_days(first) == days(1, 10)

    signals, backdated = _late_changes(home, workload)
    land(home, signals)
    (home.config_dir / "backdated.yaml").write_text(backdated)
    second = run_engine(home)
    # The late signal re-prices day 3, the resend lands in (and re-prices) day 5, the seat grant
    # (in force on days 3-5) may change recipients there; days 1-2 and 6-10 keep their prices.
    assert day(3) in priced_days(second)
    assert set(priced_days(second)) <= set(days(3, 5))
    assert ledger_days(second) == days(3, 10)  # everything downstream of day 3, nothing before

    scratch = new_home("scratch", home.config_dir)  # the final configuration, both files
    land_files(scratch, workload.signal_files)
    land(scratch, signals)
    once = run_engine(scratch)
    assert priced_days(once) == days(1, 10)
    assert_same_outputs(home, scratch)

    # the late signal is there, charged to the seat whose grant was backdated
    seat = next(
        g.seat_id for g in load_config(home.config_dir).grants if g.id == "grant_backdated_seat"
    )
    rel = duckdb.read_parquet(str(home.engine_dir / "fact_signal" / "*" / "*.parquet"))
    row = (
        rel.filter("idempotency_key = 'late-signal-day-3'")
        .select("status, credits, recipient_type, recipient_id")
        .fetchall()
    )
    assert row == [("priced", Decimal("0.625"), "seat", seat)]  # 0.25 x "2.5"


def test_a_new_day_recomputes_only_that_day_and_a_rerun_does_nothing(workload11, new_home) -> None:
    *ten, eleventh = workload11.signal_files
    assert eleventh.name == f"day-{day(11)}.jsonl"
    # Day 11's file also carries late signals for earlier days: keep only day 11's own.
    own = [
        line
        for line in eleventh.read_bytes().splitlines()
        if line.strip() and _timestamp(line).startswith(day(11))
    ]
    assert len(own) > 100

    home = new_home("incremental", workload11.config_dir)
    land_files(home, ten)
    assert ledger_days(run_engine(home)) == days(1, 10)
    land(home, own)
    result = run_engine(home)
    assert priced_days(result) == [day(11)]
    assert ledger_days(result) == [day(11)]

    before = mtimes(home)
    again = run_engine(home)
    assert priced_days(again) == [] and again.ledger is None
    assert mtimes(home) == before  # not a single output rewritten

    scratch = new_home("scratch", workload11.config_dir)
    land_files(scratch, ten)
    land(scratch, own)
    run_engine(scratch)
    assert_same_outputs(home, scratch)


def _timestamp(line: bytes) -> str:
    try:
        doc = json.loads(line)
    except ValueError:
        return ""
    value = doc.get("timestamp") if isinstance(doc, dict) else None
    return value if isinstance(value, str) else ""


def test_a_changed_pricing_rule_reprices_only_the_days_it_covers(workload, new_home) -> None:
    home = new_home("incremental", workload.config_dir)
    land_files(home, workload.signal_files)
    run_engine(home)

    # 1. A new price for a rule in force from some day on: those days (and no others) re-price.
    config = load_config(home.config_dir)
    rule = next(
        r
        for p in config.products
        for r in p.pricing
        if r.valid_from is not None and r.valid_until is None
    )
    from_day = rule.valid_from.date()
    assert day(2) <= from_day.isoformat() <= day(9)
    path = home.config_dir / "company.yaml"
    text = path.read_text()
    cost_line = f"credit_cost: {rule.credit_cost.normalize():f}"
    assert text.count(cost_line) == 1, cost_line
    path.write_text(text.replace(cost_line, "credit_cost: 1.333333"))
    covered = [d for d in days(1, 10) if d >= from_day.isoformat()]
    result = run_engine(home)
    assert priced_days(result) == covered
    assert ledger_days(result) == covered

    # 2. A new rule for an event that was never priced (outreach's `email_opened`), in force on
    # days 7-8 only: those two days re-price.
    text = path.read_text()
    anchor = "  - external_id: outreach\n    name: Outreach agent\n    pricing:\n"
    assert text.count(anchor) == 1
    rule_line = (
        f"      - {{event: email_opened, currency: credits, credit_cost: 0.01, "
        f"from: '{day(7)}T00:00:00Z', until: '{day(9)}T00:00:00Z'}}\n"
    )
    path.write_text(text.replace(anchor, anchor + rule_line))
    result = run_engine(home)
    assert priced_days(result) == days(7, 8)
    assert ledger_days(result) == days(7, 10)

    scratch = new_home("scratch", home.config_dir)
    land_files(scratch, workload.signal_files)
    run_engine(scratch)
    assert_same_outputs(home, scratch)
    ((n, lo, hi),) = (
        duckdb.read_parquet(str(home.engine_dir / "fact_signal" / "*" / "*.parquet"))
        .filter("event_name = 'email_opened' AND status = 'priced'")
        .aggregate("count(*), min(timestamp)::DATE::VARCHAR, max(timestamp)::DATE::VARCHAR")
        .fetchall()
    )
    assert n > 0 and lo >= day(7) and hi <= day(8)


def test_backdated_grants_alone_rerun_the_ledger_and_reprice_a_seats_days(
    workload, new_home
) -> None:
    """No new signal at all: a backdated pool grant re-runs the ledger from its first day; a
    backdated grant of a seat that had none moves its users' signals of the days it covers (and
    only those days) from the organization pool to the seat."""
    home = new_home("incremental", workload.config_dir)
    land_files(home, workload.signal_files)
    run_engine(home)
    config = load_config(home.config_dir)

    (home.config_dir / "backdated.yaml").write_text(f"""
grants:
  - {{id: grant_backdated_pool, customer: {config.customers[0].external_id}, seat: null,
     currency: credits, amount: 25.5, starts_at: '{day(4)}T06:00:00Z', priority: 1}}
""")
    result = run_engine(home)
    assert priced_days(result) == []
    assert ledger_days(result) == days(4, 10)

    with_grants = {g.seat_id for g in config.grants if g.seat_id is not None}
    seat = next(s for s in config.seats if s.id not in with_grants and s.assignments)
    with (home.config_dir / "backdated.yaml").open("a") as fh:
        fh.write(f"""  - {{id: grant_backdated_seat, customer: {seat.customer_id}, seat: {seat.id},
     currency: credits, amount: 3, starts_at: '{day(3)}T00:00:00Z',
     expires_at: '{day(9)}T00:00:00Z'}}
""")
    result = run_engine(home)
    assert priced_days(result) and set(priced_days(result)) <= set(days(3, 8))
    assert ledger_days(result) == days(3, 10)

    scratch = new_home("scratch", home.config_dir)
    land_files(scratch, workload.signal_files)
    run_engine(scratch)
    assert_same_outputs(home, scratch)
    ((charged,),) = (
        duckdb.read_parquet(str(scratch.engine_dir / "fact_signal" / "*" / "*.parquet"))
        .filter(f"recipient_id = '{seat.id}'")
        .aggregate("count(*)")
        .fetchall()
    )
    assert charged > 0  # the seat grant did move signals: the re-pricing was needed


def test_late_signals_are_priced_alone_into_bounded_late_parts(workload, new_home) -> None:
    """Days that only receive late signals price just those, into parts of their own; after
    MAX_LATE_FILES parts the day is priced whole again. Every step equals a from-scratch run."""
    from pipelines.lib.pricing import MAX_LATE_FILES, fact_signal_files

    home = new_home("incremental", workload.config_dir)
    land_files(home, workload.signal_files)
    run_engine(home)
    customer = load_config(home.config_dir).customers[0].external_id
    sent: list[dict] = []
    counts = []
    for batch in range(MAX_LATE_FILES + 2):
        late = [
            {
                "eventName": "email_sent",
                "customer": {"externalCustomerId": customer},
                "attribution": {"externalProductId": "outreach"},
                "timestamp": f"{day(d)}T10:00:0{batch % 10}Z",
                "idempotencyKey": f"late-{batch}-{d}",
            }
            for d in (3, 4)
        ]
        land(home, late)
        sent += late
        result = run_engine(home)
        assert priced_days(result) == [day(3), day(4)]
        assert ledger_days(result) == days(3, 10)
        counts.append(len(fact_signal_files(home.engine_dir, day(3))))
    # one late part per run, until the day is priced whole again
    assert counts == [*range(2, MAX_LATE_FILES + 2), 1, 2]
    scratch = new_home("scratch", home.config_dir)
    land_files(scratch, workload.signal_files)
    land(scratch, sent)
    run_engine(scratch)
    assert_same_outputs(home, scratch)

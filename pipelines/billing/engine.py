"""Billing days: which UTC days are billed, what each day was computed from, and computing days.

Dagster owns the orchestration (which days are missing or unsynced, and running them); this
module holds the plain functions under it:
- the first billed day: `billing.start_date` (configuration), else the first grant's day;
- a version per day of each input: the signals the lake holds for the day, the configuration
  that prices the day, and the grants that the day's balances depend on;
- pricing days and running the ledger over a range of days;
- `run_engine`, a from-scratch run without Dagster (tests, property tests and benchmarks).

A version changes only for the days a change affects: a new signal dated day D changes D's signal
version; a price change from D changes the pricing version of the days its rule covers; a grant
starting on D (or changed, or removed) changes the grant version of D and of every later day,
because balances carry forward.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from pipelines.billing.shards import MAPPING, Shard, all_shards, ensure_layout, shard_count
from pipelines.core.home import Home
from pipelines.core.sql import connect, load_sql
from pipelines.landing.errors import IntegrityError
from pipelines.landing.lake import Lake
from pipelines.ledger.burndown import LedgerDays, checkpoint_exists, output_files, run_ledger
from pipelines.pricing.config import Config, load_config
from pipelines.pricing.price import PricedDay, fact_signal_files, merge, prepare, price_day
from pipelines.storage.files import file_digest
from pipelines.storage.integrity import verify_files

_ENC = msgspec.json.Encoder(decimal_format="number", order="sorted")


def _fp(value: Any) -> str:
    return hashlib.sha256(_ENC.encode(value)).hexdigest()[:16]


def _day(t: datetime) -> date:
    return t.astimezone(UTC).date()


# ------------------------------------------------------------------------------ the billed span
def billing_start(config: Config, lake_days: Iterable[str] = ()) -> date | None:
    """The first billed day: `billing.start_date` when configured, else the earliest of the day
    the first grant starts and the given lake days (None when there is neither)."""
    if config.billing_start is not None:
        return config.billing_start
    days = [_day(g.starts_at) for g in config.grants]
    days += [date.fromisoformat(d) for d in lake_days]
    return min(days, default=None)


def day_range(first: date | str, last: date | str) -> list[str]:
    first = date.fromisoformat(first) if isinstance(first, str) else first
    last = date.fromisoformat(last) if isinstance(last, str) else last
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


# ------------------------------------------------------------------------------ input versions
def signal_versions(lake: Lake) -> dict[str, str]:
    """Per day with landed signals: the lake's version of that day (the last batch changing it)."""
    return {day: f"lake-{version}" for day, version in lake.partitions().items()}


def _span(start: datetime | None, end: datetime | None) -> tuple[str | None, str | None]:
    first = None if start is None else _day(start).isoformat()
    last = None if end is None else _day(end - timedelta(microseconds=1)).isoformat()
    return first, last


def pricing_versions(config: Config, days: list[str]) -> dict[str, str]:
    """Per day: a fingerprint of everything that prices that day's signals (the pricing SQL;
    customers, products, users, seats and hot keys; the rules, seat assignments and seat grants
    in force that day)."""
    everything = _fp(
        {
            # The pricing SQL itself: a new version of Tally that prices differently reprices.
            "sql": [load_sql("priced_signal"), load_sql("signal_rollup")],
            "customers": [c.external_id for c in config.customers],
            "products": [p.external_id for p in config.products],
            "users": [(u.customer_id, u.external_id) for u in config.users],
            "seats": [(s.id, s.customer_id) for s in config.seats],
            "hot_keys": list(config.hot_keys),
            # files are per shard: another count or mapping prices every day again (1: as
            # before shards)
            **({"shards": [shard_count(), MAPPING]} if shard_count() > 1 else {}),
        }
    )
    spans: list[tuple[str | None, str | None, str]] = []
    for p in config.products:
        for r in p.pricing:
            spans.append((*_span(r.valid_from, r.valid_until), _fp(asdict(r))))
    for s in config.seats:
        for a in s.assignments:
            spans.append((*_span(a.valid_from, a.valid_until), _fp(asdict(a))))
    for g in config.grants:
        if g.seat_id is not None:  # seat grants decide recipients; their amounts do not
            shape = (g.id, g.seat_id, g.currency, g.starts_at, g.expires_at)
            spans.append((*_span(g.starts_at, g.expires_at), _fp(shape)))
    out = {}
    for day in days:
        inside = sorted(
            fp
            for first, last, fp in spans
            if (first is None or first <= day) and (last is None or day <= last)
        )
        out[day] = "cfg-" + _fp([everything, inside])
    return out


def grant_versions(config: Config, days: list[str]) -> dict[str, str]:
    """Per day: a fingerprint of every grant started by the end of that day (cumulative, since a
    day's balances carry every earlier grant forward)."""
    ordered = sorted(config.grants, key=lambda g: (g.starts_at, g.id))
    running, i, out = hashlib.sha256(b"grants"), 0, {}
    if shard_count() > 1:  # the ledger's files are per shard: another count recomputes it all
        running.update(f"shards={shard_count()} {MAPPING}".encode())
    for day in sorted(days):
        while i < len(ordered) and _day(ordered[i].starts_at).isoformat() <= day:
            running.update(_fp(asdict(ordered[i])).encode())
            i += 1
        out[day] = "grants-" + running.hexdigest()[:16]
    return out


# ------------------------------------------------------------------------------ computing days
PRICING_THREADS = int(os.environ.get("TALLY_PRICING_THREADS", "2"))


def price(
    home: Home,
    config: Config,
    days: list[str],
    progress: Callable[[str], None] | None = None,
    since: dict[str, int] | None = None,
    shards: list[Shard] | None = None,
) -> list[PricedDay]:
    """Price each of `days` (a day without signals becomes an empty partition): whole, or, for a
    day in `since` (its last landing sequence number priced, with its configuration unchanged
    since), only the signals landed after it, as a late part. A few days run at a time: DuckDB
    prices them in parallel, outside the GIL."""
    since = since or {}
    lake = Lake(home.lake)
    shards = shards or all_shards()
    ensure_layout(home.engine_dir, shards[0].count)
    local = threading.local()

    def one(task: tuple[str, Shard]) -> PricedDay:
        day, shard = task
        if not hasattr(local, "con"):
            local.con = connect()
            local.prepared = prepare(local.con, config)
        priced = price_day(
            local.con, lake, home.engine_dir, day, local.prepared, since.get(day), shard
        )
        if progress and shard == shards[-1]:
            progress(day)
        return priced

    tasks = [(day, shard) for day in days for shard in shards]
    with ThreadPoolExecutor(max_workers=max(1, PRICING_THREADS)) as pool:
        parts = list(pool.map(one, tasks))
    priced = [merge(parts[i : i + len(shards)]) for i in range(0, len(parts), len(shards))]
    record_outputs(lake, [f for day in days for f in _priced_files(home, day, shards)])
    return priced


LEDGER_OUTPUTS = ("balance_snapshot", "grant_balance", "credit_event")


def _priced_files(home: Home, day: str, shards: list[Shard]) -> list[Path]:
    rollups = sorted((home.engine_dir / "signal_rollup" / f"date={day}").glob("*.parquet"))
    priced = fact_signal_files(home.engine_dir, day) + rollups
    return [p for p in priced if any(s.owns(p) for s in shards)]


def _ledger_files(home: Home, day: str, shards: list[Shard] | None = None) -> list[Path]:
    """The ledger's outputs of `day`, of `shards` (default: every shard's)."""
    return [p for name in LEDGER_OUTPUTS for p in output_files(home.engine_dir, name, day, shards)]


def record_outputs(lake: Lake, paths: list[Path]) -> None:
    """Record the size and checksum of engine outputs just written (`check_outputs` compares)."""
    rows = []
    for path in paths:
        if path.exists():
            st = path.stat()
            rows.append((str(path), st.st_size, st.st_mtime_ns, file_digest(path)))
    lake.index.record_sums(rows)


def check_outputs(lake: Lake, paths: list[Path]) -> None:
    """Before the ledger reads engine outputs: each must be what the engine wrote (its size
    always; its checksum if it was modified since). Raise on the first damaged one."""
    recorded = lake.index.sums([str(p) for p in paths])
    problems = verify_files(
        lake.index, [(p, size) for p, (size, _, _) in recorded.items()], lake.objects, deep=False
    )
    if problems:
        raise IntegrityError(
            f"damaged engine output {problems[0]}; nothing derived from it is published "
            "(materialize that day again, which rewrites it; tally verify checks everything)"
        )


class ChainError(Exception):
    """The ledger cannot start at a day whose previous day has no balances."""


def ledger(
    home: Home,
    config: Config,
    first: str,
    last: str,
    start: str,
    shards: list[Shard] | None = None,
) -> LedgerDays:
    """Run the ledger of `shards` (default: all) over `first..last`: from nothing when `first`
    is the first billed day (`start`), else from the balances at the end of the day before
    `first`."""
    if first < start:
        raise ChainError(f"{first} is before the first billed day {start}")
    checkpoint = first > start
    previous = (date.fromisoformat(first) - timedelta(days=1)).isoformat()
    shards = shards or all_shards()
    ensure_layout(home.engine_dir, shards[0].count)
    if checkpoint and not all(checkpoint_exists(home.engine_dir, previous, s) for s in shards):
        raise ChainError(
            f"the ledger of {first} starts from the balances of {previous}, which were never "
            f"computed: materialize balance_snapshot from {start} (or the first missing day) on"
        )
    lake = Lake(home.lake)
    days = day_range(date.fromisoformat(first), last)
    reads = [
        f
        for day in days
        for f in fact_signal_files(home.engine_dir, day)
        if any(s.owns(f) for s in shards)
    ]
    resumed = _ledger_files(home, previous, shards) if checkpoint else []
    check_outputs(lake, reads + resumed)
    con = connect()
    prepare(con, config)
    # Each shard's recipients run forward on their own: nothing of one shard reads another's.
    parts = [
        run_ledger(
            con,
            home.engine_dir,
            config,
            date.fromisoformat(first),
            date.fromisoformat(last),
            checkpoint=checkpoint,
            shard=shard,
        )
        for shard in shards
    ]
    record_outputs(lake, [f for day in days for f in _ledger_files(home, day, shards)])
    return LedgerDays(
        days=parts[0].days,
        balance_rows=sum(p.balance_rows for p in parts),
        events=sum(p.events for p in parts),
    )


@dataclass
class RunResult:
    priced: list[PricedDay] = field(default_factory=list)
    ledger: LedgerDays | None = None


def run_engine(home: Home, config: Config | None = None, until: date | None = None) -> RunResult:
    """Price every billed day and run the ledger over all of them, from scratch, without Dagster
    (tests, property tests and benchmarks of the engine itself). The span runs from the first
    billed day through the last day with signals or `until`, whichever is later."""
    config = config or load_config(home.config_dir)
    lake_days = sorted(Lake(home.lake).partitions())
    start = billing_start(config, lake_days)
    if start is None:
        return RunResult()
    last = max([start.isoformat(), *lake_days, *([until.isoformat()] if until else [])])
    days = day_range(start, last)
    result = RunResult(priced=price(home, config, days))
    result.ledger = ledger(home, config, days[0], days[-1], days[0])
    return result

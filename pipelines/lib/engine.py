"""What needs computing, and computing it: the plan behind `tally run`, the sensor and the schedule.

The engine keeps, in `<home>/engine/state.json`, what each output was computed from:
- per day, the lake version of the signals that `fact_signal` priced;
- the pricing-relevant configuration (customers, products, users, rules, seat assignments and
  seat grants) and the grants the ledger used;
- the ledger's first and last day.

`plan` compares that with the lake and the configuration now, and answers with the days to price
and the first ledger day to recompute (the ledger runs forward from there to the last day, because
every day's balances depend on the day before). A late signal for day 3 re-prices day 3 and
re-runs the ledger from day 3; a backdated grant starting on day 3 re-runs the ledger from day 3;
a changed pricing rule re-prices the days it covers. The result equals a from-scratch run.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from pipelines.lib.config import Config, load_config
from pipelines.lib.home import Home
from pipelines.lib.lake import Lake
from pipelines.lib.ledger import LedgerDays, run_ledger
from pipelines.lib.pricing import PricedDay, prepare, price_day
from pipelines.lib.sql import connect

_ENC = msgspec.json.Encoder(decimal_format="number", order="sorted")


def _fp(value: Any) -> str:
    return hashlib.sha256(_ENC.encode(value)).hexdigest()[:16]


def _day(t: datetime | None) -> date | None:
    return None if t is None else t.astimezone(UTC).date()


@dataclass(frozen=True)
class _Entity:
    fingerprint: str
    first: str | None  # first day the entity can affect (None: unbounded)
    last: str | None  # last day (None: unbounded)


def _span(start: datetime | None, end: datetime | None) -> tuple[str | None, str | None]:
    last = None
    if end is not None:
        last = (end - timedelta(microseconds=1)).astimezone(UTC).date().isoformat()
    first = _day(start)
    return (None if first is None else first.isoformat(), last)


def pricing_inputs(config: Config) -> tuple[str, dict[str, _Entity]]:
    """(fingerprint of what affects every day, time-bounded entities) for pricing."""
    global_part = {
        "customers": [c.external_id for c in config.customers],
        "products": [p.external_id for p in config.products],
        "users": [(u.customer_id, u.external_id) for u in config.users],
        "seats": [(s.id, s.customer_id) for s in config.seats],
        "hot_keys": list(config.hot_keys),
    }
    entities: dict[str, _Entity] = {}
    for p in config.products:
        for r in p.pricing:
            entities[f"rule:{r.rule_id}"] = _Entity(
                _fp(asdict(r)), *_span(r.valid_from, r.valid_until)
            )
    for s in config.seats:
        for a in s.assignments:
            key = f"assignment:{a.seat_id}:{a.user_id}:{a.valid_from}"
            entities[key] = _Entity(_fp(asdict(a)), *_span(a.valid_from, a.valid_until))
    for g in config.grants:
        if g.seat_id is not None:  # seat grants decide recipients; amounts do not matter here
            shape = (g.seat_id, g.currency, g.starts_at, g.expires_at)
            entities[f"seatgrant:{g.id}"] = _Entity(_fp(shape), *_span(g.starts_at, g.expires_at))
    return _fp(global_part), entities


def ledger_inputs(config: Config) -> dict[str, _Entity]:
    return {
        g.id: _Entity(_fp(asdict(g)), _day(g.starts_at).isoformat(), None) for g in config.grants
    }


@dataclass
class State:
    """What the engine's outputs were computed from (persisted as engine/state.json)."""

    # day -> [lake version, generation, last landing sequence number priced]
    priced: dict[str, list[int]] = field(default_factory=dict)
    generation: int = 0  # bumped every time a day is priced
    ledger_seen: dict[str, int] = field(default_factory=dict)  # day -> generation the ledger used
    pricing_global: str = ""
    pricing_entities: dict[str, list] = field(default_factory=dict)
    ledger_grants: dict[str, list] = field(default_factory=dict)
    ledger_first: str | None = None
    ledger_last: str | None = None

    @classmethod
    def load(cls, path: Path) -> State:
        if not path.exists():
            return cls()
        return cls(**json.loads(path.read_text()))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1, sort_keys=True))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)


@dataclass(frozen=True)
class Plan:
    """Days to price, and the ledger range to recompute (empty when up to date)."""

    price_days: list[str]
    ledger_from: str | None
    ledger_to: str | None
    first_day: str | None

    @property
    def empty(self) -> bool:
        return not self.price_days and self.ledger_from is None

    @property
    def partitions(self) -> list[str]:
        """Every day this plan touches (what a Dagster run materializes), in order."""
        days = set(self.price_days)
        if self.ledger_from and self.ledger_to:
            d, end = date.fromisoformat(self.ledger_from), date.fromisoformat(self.ledger_to)
            while d <= end:
                days.add(d.isoformat())
                d += timedelta(days=1)
        return sorted(days)


def _changed_days(old: dict[str, list], new: dict[str, _Entity]) -> tuple[bool, set[tuple]]:
    """Spans of entities added, removed or changed between two states."""
    spans: set[tuple] = set()
    for key in set(old) | set(new):
        before = old.get(key)
        after = new.get(key)
        if before is not None and after is not None and before[0] == after.fingerprint:
            continue
        if before is not None:
            spans.add((before[1], before[2]))
        if after is not None:
            spans.add((after.first, after.last))
    return bool(spans), spans


def _overlaps(day: str, span: tuple) -> bool:
    first, last = span
    return (first is None or first <= day) and (last is None or day <= last)


def make_plan(home: Home, config: Config, lake: Lake, until: date | None = None) -> Plan:
    state = State.load(home.engine_dir / "state.json")
    parts = lake.partitions()
    grant_days = [g.starts_at.astimezone(UTC).date().isoformat() for g in config.grants]
    candidates = sorted(parts) + sorted(grant_days)
    if not candidates:
        return Plan([], None, None, None)
    first = min(candidates)
    last = max([*parts, *(d for d in grant_days if not parts)], default=first)
    if until is not None:
        last = max(last, until.isoformat())
    if state.ledger_last:
        last = max(last, state.ledger_last)

    pricing_global, pricing_entities = pricing_inputs(config)
    everything = pricing_global != state.pricing_global
    _, spans = _changed_days(state.pricing_entities, pricing_entities)
    price_days = sorted(
        d
        for d, version in parts.items()
        if everything
        or state.priced.get(d, [None])[0] != version
        or any(_overlaps(d, s) for s in spans)
    )
    # Days that were priced but have no signals any more cannot exist (the lake only grows).

    ledger_from: str | None = None
    if state.ledger_first != first or state.ledger_last is None:
        ledger_from = first
    else:
        changed = list(price_days) + [
            d for d, (_, gen, *_) in state.priced.items() if state.ledger_seen.get(d) != gen
        ]
        _, grant_spans = _changed_days(state.ledger_grants, ledger_inputs(config))
        changed += [s[0] for s in grant_spans if s[0] is not None]
        if state.ledger_last < last:
            changed.append((date.fromisoformat(state.ledger_last) + timedelta(days=1)).isoformat())
        if changed:
            ledger_from = max(min(changed), first)
    return Plan(price_days, ledger_from, last if ledger_from else None, first)


@dataclass
class RunResult:
    priced: list[PricedDay] = field(default_factory=list)
    ledger: LedgerDays | None = None


PRICING_THREADS = int(os.environ.get("TALLY_PRICING_THREADS", "2"))


def price(
    home: Home, config: Config, days: list[str], progress: Callable[[str], None] | None = None
) -> list[PricedDay]:
    """Price `days` (a few at a time: DuckDB runs them in parallel, outside the GIL) and record
    what they were priced from. State is saved once, after every day is written."""
    lake = Lake(home.lake)
    state = State.load(home.engine_dir / "state.json")
    versions = lake.partitions()
    local = threading.local()
    pricing_global, entities = pricing_inputs(config)
    _, spans = _changed_days(state.pricing_entities, entities)
    config_same = pricing_global == state.pricing_global

    def since(day: str) -> int | None:
        """The last sequence number priced for `day`, if only new signals arrived since."""
        known = state.priced.get(day, [])
        if config_same and len(known) == 3 and not any(_overlaps(day, s) for s in spans):
            return known[2]
        return None

    def one(day: str) -> PricedDay:
        if not hasattr(local, "con"):
            local.con = connect()
            local.prepared = prepare(local.con, config)
        return price_day(local.con, lake, home.engine_dir, day, local.prepared, since(day))

    with ThreadPoolExecutor(max_workers=max(1, PRICING_THREADS)) as pool:
        out = list(pool.map(one, days))
    for day, priced in zip(days, out, strict=True):
        state.generation += 1
        state.priced[day] = [versions.get(day, 0), state.generation, priced.max_seq]
        if progress:
            progress(day)
    state.pricing_global = pricing_global
    state.pricing_entities = {k: [e.fingerprint, e.first, e.last] for k, e in entities.items()}
    state.save(home.engine_dir / "state.json")
    return out


def ledger(home: Home, config: Config, first: str, last: str, ledger_first: str) -> LedgerDays:
    """Run the ledger over `first..last` (from the previous day's checkpoint, if any)."""
    con = connect()
    prepare(con, config)
    result = run_ledger(
        con,
        home.engine_dir,
        config,
        date.fromisoformat(first),
        date.fromisoformat(last),
        checkpoint=first > ledger_first,
    )
    state = State.load(home.engine_dir / "state.json")
    state.ledger_first = ledger_first
    state.ledger_seen = {d: gen for d, (_, gen, *_) in state.priced.items()}
    state.ledger_last = last
    state.ledger_grants = {
        k: [e.fingerprint, e.first, e.last] for k, e in ledger_inputs(config).items()
    }
    state.save(home.engine_dir / "state.json")
    return result


def run_engine(home: Home, config: Config | None = None, until: date | None = None) -> RunResult:
    """Plan and compute everything that is missing or stale, without Dagster (tests, property
    tests and benchmarks of the engine itself; `tally run` goes through Dagster)."""
    config = config or load_config(home.config_dir)
    plan = make_plan(home, config, Lake(home.lake), until)
    result = RunResult()
    if plan.price_days:
        result.priced = price(home, config, plan.price_days)
    if plan.ledger_from and plan.ledger_to and plan.first_day:
        result.ledger = ledger(home, config, plan.ledger_from, plan.ledger_to, plan.first_day)
    return result

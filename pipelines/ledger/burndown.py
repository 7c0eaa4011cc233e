"""The ledger: grants burned down by priced spends, day by day, exactly (docs/concepts.md).

Per (recipient, currency), in time order; at one instant: expiries, then grant starts (in burn
order), then spends. A grant is in force on [starts_at, expires_at); when it starts it first repays
its recipient's outstanding overage. A spend draws from the grants in force with credits left, in
burn order (priority, expires_at with never-expiring last, starts_at, id); what none can fund is
overage. At expires_at a grant's remaining credits are forfeited.

Spends are summed in DuckDB between ledger boundaries (`sql/ledger_segment.sql`); this module burns
those few segments down with exact integer micro-credits. A day's state is checkpointed
(`balance_snapshot` and `grant_balance` of that day), so processing day N+1 starts from day N's
checkpoint and costs what day N+1's data costs.

Outputs per day D, under `<home>/engine/`:
- `balance_snapshot/date=D`: one row per active recipient (from its first grant or spend on);
- `grant_balance/date=D`: every started grant's used / expired / remaining at the end of D;
- `credit_event/date=D`: the `grant` and `expire` transactions of D (spends are priced signals).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.billing.shards import ONE, Shard
from pipelines.core.sql import load_sql
from pipelines.pricing.config import Config, Grant
from pipelines.pricing.price import fact_signal_files
from pipelines.storage.files import ENGINE_KEPT, write_parquet_atomic

MICRO = 10**6
DAY_US = 86_400 * MICRO
_CREDITS = pa.decimal128(38, 6)
_TIME = pa.timestamp("us", tz="UTC")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

BALANCE_SCHEMA = pa.schema(
    [
        ("date", pa.date32()),
        ("customer_id", pa.string()),
        ("recipient_type", pa.string()),
        ("recipient_id", pa.string()),
        ("currency", pa.string()),
        ("opening_balance", _CREDITS),
        ("granted", _CREDITS),
        ("spent", _CREDITS),
        ("expired", _CREDITS),
        ("closing_balance", _CREDITS),
        ("available", _CREDITS),
        ("overage", _CREDITS),
    ]
)
GRANT_SCHEMA = pa.schema(
    [
        ("date", pa.date32()),
        ("grant_id", pa.string()),
        ("used", _CREDITS),
        ("expired", _CREDITS),
        ("remaining", _CREDITS),
    ]
)
EVENT_SCHEMA = pa.schema(
    [
        ("type", pa.string()),
        ("customer_id", pa.string()),
        ("recipient_type", pa.string()),
        ("recipient_id", pa.string()),
        ("currency", pa.string()),
        ("amount", _CREDITS),
        ("occurred_at", _TIME),
        ("grant_id", pa.string()),
    ]
)
OUTPUTS = ("balance_snapshot", "grant_balance", "credit_event")

Recipient = tuple[str, str, str, str]  # (customer_id, recipient_type, recipient_id, currency)


def micros(value: Decimal) -> int:
    """Credits as an exact integer number of millionths."""
    return int(value.scaleb(6))


def credits(value: int) -> Decimal:
    return Decimal(value).scaleb(-6)


def _us(t: datetime) -> int:
    return (t - _EPOCH) // timedelta(microseconds=1)


def day_start_us(day: date) -> int:
    return _us(datetime(day.year, day.month, day.day, tzinfo=UTC))


def recipient_of(g: Grant) -> Recipient:
    if g.seat_id is None:
        return (g.customer_id, "organization", g.customer_id, g.currency)
    return (g.customer_id, "seat", g.seat_id, g.currency)


def burn_key(g: Grant) -> tuple:
    """Burn order: priority, expiry (never-expiring last), start, id."""
    never = g.expires_at is None
    return (g.priority, never, g.expires_at or _EPOCH, g.starts_at, g.id)


@dataclass
class _GrantState:
    grant: Grant
    amount: int
    start_us: int
    expire_us: int | None
    used: int = 0
    expired: int = 0

    @property
    def remaining(self) -> int:
        return self.amount - self.used - self.expired


@dataclass
class _RecipientState:
    balance: int = 0
    overage: int = 0
    active: bool = False
    grants: list[_GrantState] = field(default_factory=list)  # in force, in burn order
    started: list[_GrantState] = field(default_factory=list)  # every started grant


@dataclass(frozen=True)
class LedgerDays:
    days: list[str]
    balance_rows: int
    events: int


def ledger_dir(engine_dir: Path, output: str, day: str) -> Path:
    """The directory of one ledger output's files of `day` (one file per shard)."""
    return engine_dir / output / f"date={day}"


def output_files(
    engine_dir: Path, output: str, day: str, shards: list[Shard] | None = None
) -> list[Path]:
    """A ledger output's files of `day`: every shard's, or those of `shards`."""
    found = sorted(ledger_dir(engine_dir, output, day).glob("*.parquet"))
    return found if shards is None else [p for p in found if any(s.owns(p) for s in shards)]


def _path(engine_dir: Path, output: str, day: str, shard: Shard) -> Path:
    return ledger_dir(engine_dir, output, day) / f"data{shard.suffix}.parquet"


def checkpoint_exists(engine_dir: Path, day: str, shard: Shard = ONE) -> bool:
    """Whether the shard's balances at the end of `day` were computed (its next day can start
    there)."""
    names = ("balance_snapshot", "grant_balance")
    return all(_path(engine_dir, name, day, shard).exists() for name in names)


def _load_checkpoint(
    engine_dir: Path,
    day: date,
    grants: dict[str, _GrantState],
    recipients: dict[Recipient, _RecipientState],
    shard: Shard,
) -> None:
    """Restore the shard's state at the end of `day` from its balance_snapshot and
    grant_balance."""
    iso = day.isoformat()
    balances = pq.read_table(_path(engine_dir, "balance_snapshot", iso, shard))
    for row in balances.to_pylist():
        key = (row["customer_id"], row["recipient_type"], row["recipient_id"], row["currency"])
        recipients[key] = _RecipientState(
            balance=micros(row["closing_balance"]), overage=micros(row["overage"]), active=True
        )
    for row in pq.read_table(_path(engine_dir, "grant_balance", iso, shard)).to_pylist():
        state = grants.get(row["grant_id"])
        if state is None:
            continue  # removed from the configuration: the planner reruns from its start
        state.used, state.expired = micros(row["used"]), micros(row["expired"])
        recipient = recipients.setdefault(recipient_of(state.grant), _RecipientState())
        recipient.started.append(state)
        if state.expire_us is None or state.expire_us >= day_start_us(day) + DAY_US:
            recipient.grants.append(state)
    for recipient in recipients.values():
        recipient.grants.sort(key=lambda s: burn_key(s.grant))


def run_ledger(
    con: duckdb.DuckDBPyConnection,
    engine_dir: Path,
    config: Config,
    first: date,
    last: date,
    *,
    checkpoint: bool,
    shard: Shard = ONE,
) -> LedgerDays:
    """Recompute days `first..last` for the customers of `shard`, from the checkpoint of the day
    before when `checkpoint`.

    The caller guarantees that nothing before `first` changed since that checkpoint was written.
    Expects `dim_credit_grant` registered on `con` (see pricing.prepare).
    """
    grants = {
        g.id: _GrantState(
            g,
            micros(g.amount),
            _us(g.starts_at),
            None if g.expires_at is None else _us(g.expires_at),
        )
        for g in config.grants
        if shard.holds(g.customer_id)
    }
    recipients: dict[Recipient, _RecipientState] = {}
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    start_us = day_start_us(first)
    end_us = start_us + len(days) * DAY_US
    out: dict[str, dict[str, list[tuple]]] = {name: defaultdict(list) for name in OUTPUTS}
    if checkpoint:
        _load_checkpoint(engine_dir, first - timedelta(days=1), grants, recipients, shard)
    else:
        # Grants that started before the first billed day: their starts and expiries happen
        # before any billed spend; their transactions are recorded with the first day's.
        earlier = _grant_events(grants.values(), None, start_us)
        for key in sorted(earlier):
            state = recipients.setdefault(key, _RecipientState())
            for event in sorted(earlier[key], key=lambda e: e[:3]):
                _apply(key, state, event, out["credit_event"][first.isoformat()])
            state.balance = sum(g.remaining for g in state.grants) - state.overage
    events = _grant_events(grants.values(), start_us, end_us)
    for key, event in _spend_events(con, engine_dir, days, shard):
        events[key].append(event)

    for key in sorted(set(events) | set(recipients)):
        state = recipients.setdefault(key, _RecipientState())
        _burn(key, state, sorted(events.get(key, ()), key=lambda e: e[:3]), days, start_us, out)
    for day in days:
        iso = day.isoformat()
        for name, schema in zip(OUTPUTS, (BALANCE_SCHEMA, GRANT_SCHEMA, EVENT_SCHEMA), strict=True):
            write_parquet_atomic(
                _table(schema, out[name][iso]), _path(engine_dir, name, iso, shard), ENGINE_KEPT
            )
    if not checkpoint:
        _drop_days_before(engine_dir, days[0].isoformat())
    return LedgerDays(
        days=[d.isoformat() for d in days],
        balance_rows=sum(len(v) for v in out["balance_snapshot"].values()),
        events=sum(len(v) for v in out["credit_event"].values()),
    )


def _drop_days_before(engine_dir: Path, first: str) -> None:
    """A ledger that starts from nothing at the first billed day owns no earlier day: remove
    outputs of days before it (e.g. after the billing start moved later)."""
    for name in OUTPUTS:
        for part in (engine_dir / name).glob("date=*"):
            if part.name.removeprefix("date=") < first:
                for f in part.glob("*"):
                    f.unlink()
                part.rmdir()


def _grant_events(grants, start_us: int | None, end_us: int) -> dict[Recipient, list[tuple]]:
    """Grant starts and expiries inside [start_us, end_us) by recipient (None: since ever)."""
    events: dict[Recipient, list[tuple]] = defaultdict(list)

    def inside(t: int) -> bool:
        return (start_us is None or start_us <= t) and t < end_us

    for state in grants:
        key = recipient_of(state.grant)
        if inside(state.start_us):
            events[key].append((state.start_us, 1, burn_key(state.grant), "start", state))
        if state.expire_us is not None and inside(state.expire_us):
            events[key].append((state.expire_us, 0, burn_key(state.grant), "expire", state))
    return events


def _spend_events(con: duckdb.DuckDBPyConnection, engine_dir: Path, days: list[date], shard):
    """(recipient, spend event) per ledger segment of the shard's priced signals of the days."""
    files = [str(p) for d in days for p in fact_signal_files(engine_dir, d.isoformat(), shard)]
    if not files:
        return
    con.read_parquet(files).create_view("fact", replace=True)
    for cust, rtype, rid, cur, seg_start, spent, _n in con.sql(
        load_sql("ledger_segment")
    ).fetchall():
        yield (cust, rtype, rid, cur), (_us(seg_start), 2, (), "spend", micros(spent))


def _apply(key: Recipient, state: _RecipientState, event: tuple, credit_events: list) -> tuple:
    """Apply one event to a recipient's state; (granted, spent, expired) micro-credits."""
    t, _, _, kind, payload = event
    state.active = True
    if kind == "expire":
        lost = payload.remaining
        payload.expired += lost
        state.grants.remove(payload)
        credit_events.append(("expire", *key, -lost, t, payload.grant.id))
        return 0, 0, lost
    if kind == "start":
        repay = min(state.overage, payload.amount)
        state.overage -= repay
        payload.used += repay
        state.grants.append(payload)
        state.grants.sort(key=lambda s: burn_key(s.grant))
        state.started.append(payload)
        credit_events.append(("grant", *key, payload.amount, t, payload.grant.id))
        return payload.amount, 0, 0
    left = payload
    for g in state.grants:
        if not left:
            break
        take = min(g.remaining, left)
        g.used += take
        left -= take
    state.overage += left
    return 0, payload, 0


def _burn(
    key: Recipient,
    state: _RecipientState,
    timeline: list[tuple],
    days: list[date],
    start_us: int,
    out: dict[str, dict[str, list[tuple]]],
) -> None:
    """Apply one recipient's events day by day and emit its rows (the event-by-event semantics)."""
    i = 0
    for d_index, day in enumerate(days):
        iso = day.isoformat()
        day_end = start_us + (d_index + 1) * DAY_US
        opening = state.balance
        granted = spent = expired = 0
        while i < len(timeline) and timeline[i][0] < day_end:
            g, s, e = _apply(key, state, timeline[i], out["credit_event"][iso])
            granted, spent, expired = granted + g, spent + s, expired + e
            i += 1
        state.balance = opening + granted - spent - expired
        if not state.active:
            continue
        available = sum(g.remaining for g in state.grants)
        if state.balance != available - state.overage:  # cannot happen: a bug, stop loudly
            raise AssertionError(f"ledger does not balance for {key} on {iso}")
        out["balance_snapshot"][iso].append(
            (day, *key, opening, granted, spent, expired, state.balance, available, state.overage)
        )
        for g in state.started:
            out["grant_balance"][iso].append((day, g.grant.id, g.used, g.expired, g.remaining))


def _table(schema: pa.Schema, rows: list[tuple]) -> pa.Table:
    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in schema]
    arrays = []
    for f, values in zip(schema, columns, strict=True):
        if f.type == _CREDITS:
            values = [credits(v) for v in values]
        elif f.type == _TIME:
            values = [_EPOCH + timedelta(microseconds=v) for v in values]
        arrays.append(pa.array(values, f.type))
    return pa.Table.from_arrays(arrays, schema=schema)

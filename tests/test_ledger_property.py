"""The engine (pricing + ledger) against a small, obviously correct reference model.

The reference model below implements the pricing and ledger rules of docs/concepts.md literally:
it walks every signal one by one, in time order, and moves credits between grants with plain Python
`Decimal` arithmetic. It shares no code with the engine (no SQL, no segments, no checkpoints).

Hypothesis generates small companies (two customers, three seats, pricing rules with time ranges,
seat assignments that change over time, grants with every kind of priority/expiry/start tie) and a
few signals on 2-3 days whose instants are drawn from a small pool, so that grant starts, expiries,
spends, rule boundaries and assignment boundaries often coincide. Signals are landed in one or more
batches (later batches hold late signals), the engine runs after each batch, and some grants, seat
assignments and rules only appear in the configuration of the last run (backdated configuration),
while a transient grant may exist only in the earlier runs. The final outputs must equal the
reference exactly: per signal status, quantity, credits, currency and recipient; per grant and day
used/expired/remaining; per recipient and day every `balance_snapshot` column; the grant/expire
credit events.

Three edge cases found by this test (a JSON `-0.0` quantity, credits of 10^20 or more, a ledger
whose first day moves later) are pinned by the regression tests at the bottom.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext
from pathlib import Path

import duckdb
import pytest
from hypothesis import event as hyp_event
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.billing.engine import run_engine
from pipelines.core.home import Home
from pipelines.landing import lake as lake_module
from pipelines.landing.ingest import ingest_signals
from pipelines.landing.lake import Lake

# ------------------------------------------------------------------------------ the company

BASE = datetime(2026, 3, 1, tzinfo=UTC)
STEP = timedelta(hours=6)  # the instant grid: 4 points a day, midnights included
US = timedelta(microseconds=1)
SIX = Decimal("0.000001")
DEFAULT_PRIORITY = 50

CURRENCIES = ("credits", "tokens")
USERS = {"cus_a": ("u1", "u2", "u3"), "cus_b": ("u1", "u4")}  # u1 exists in both customers
SEATS = {"seat_a1": "cus_a", "seat_a2": "cus_a", "seat_b1": "cus_b"}
# (product, event) -> quantity path choices; None = fixed cost. ev_none has no rule at all.
QUANTITY_PATHS = {
    ("prod_x", "ev_q"): ("$.quantity", "quantity"),
    ("prod_x", "ev_fixed"): (None,),
    ("prod_y", "ev_n"): ("usage.n", "$.usage.n", '$["a.b"]', '"a.b"', "a.b"),
}
# the segments of every path above, parsed by hand (keys are literal)
PATH_SEGMENTS = {
    "$.quantity": ("quantity",),
    "quantity": ("quantity",),
    "usage.n": ("usage", "n"),
    "$.usage.n": ("usage", "n"),
    '$["a.b"]': ("a.b",),
    '"a.b"': ("a.b",),
    "a.b": ("a", "b"),
}
EVENTS = {"prod_x": ("ev_q", "ev_fixed", "ev_none"), "prod_y": ("ev_n", "ev_q")}
MISSING = object()


@dataclass(frozen=True)
class Rule:
    product: str
    event: str
    currency: str
    cost: Decimal
    path: str | None
    valid_from: datetime | None
    valid_until: datetime | None


@dataclass(frozen=True)
class Assignment:
    seat: str
    user: str
    valid_from: datetime | None
    valid_until: datetime | None


@dataclass(frozen=True)
class Grant:
    id: str
    customer: str
    seat: str | None
    currency: str
    amount: Decimal
    starts_at: datetime
    expires_at: datetime | None
    priority: int | None  # None: omitted from the YAML (the default, 50)

    @property
    def recipient(self) -> tuple[str, str, str, str]:
        if self.seat is None:
            return (self.customer, "organization", self.customer, self.currency)
        return (self.customer, "seat", self.seat, self.currency)


@dataclass(frozen=True)
class Signal:
    customer_field: str  # externalCustomerId | customerId
    customer: str
    attribution: tuple[str, str] | str  # (field, product) | "absent" | "null" | "empty"
    event: str
    timestamp: datetime
    data: str | None  # the JSON text of `data`, sent exactly like this; None = absent
    key: str | None


@dataclass(frozen=True)
class Config:
    rules: tuple[Rule, ...] = ()
    assignments: tuple[Assignment, ...] = ()
    grants: tuple[Grant, ...] = ()


@dataclass(frozen=True)
class Scenario:
    final: Config
    signals: tuple[Signal, ...]
    batches: tuple[int, ...]  # end (exclusive) of each landing batch; the last: len(signals)
    early: Config  # the configuration of every run but the last
    notes: list[str] = field(default_factory=list, compare=False)


# ------------------------------------------------------------------------------ YAML and JSON


def rfc3339(t: datetime) -> str:
    fraction = f".{t.microsecond:06d}" if t.microsecond else ""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


def _q(value: object) -> str:
    """A YAML scalar: JSON text is valid YAML flow text (strings quoted, null as null)."""
    if isinstance(value, datetime):
        value = rfc3339(value)
    if isinstance(value, Decimal):
        value = format(value, "f")
    return json.dumps(value)


def config_yaml(config: Config) -> str:
    lines = [
        "currencies:",
        *(f"  - {{key: {c}, name: {c.title()}}}" for c in CURRENCIES),
        "customers:",
        *(f"  - {{external_id: {c}, name: {c}}}" for c in USERS),
        "products:",
    ]
    for product in ("prod_x", "prod_y"):
        lines += [f"  - external_id: {product}", "    pricing:"]
        rules = [r for r in config.rules if r.product == product]
        if not rules:
            lines[-1] = "    pricing: []"
        for r in rules:
            parts = [f"event: {r.event}", f"currency: {r.currency}", f"credit_cost: {_q(r.cost)}"]
            if r.path is not None:
                parts.append(f"quantity_path: {_q(r.path)}")
            if r.valid_from is not None:
                parts.append(f"from: {_q(r.valid_from)}")
            parts.append(f"until: {_q(r.valid_until)}")
            lines.append("      - {" + ", ".join(parts) + "}")
    lines.append("users:")
    for customer, users in USERS.items():
        lines += [f"  - {{customer: {customer}, external_id: {u}}}" for u in users]
    lines.append("seats:")
    for seat, customer in SEATS.items():
        assignments = [a for a in config.assignments if a.seat == seat]
        lines += [f"  - id: {seat}", f"    customer: {customer}"]
        lines.append("    assignments:" if assignments else "    assignments: []")
        for a in assignments:
            lines.append(
                f"      - {{user: {a.user}, from: {_q(a.valid_from)}, until: {_q(a.valid_until)}}}"
            )
    lines.append("grants:" if config.grants else "grants: []")
    for g in config.grants:
        parts = [
            f"id: {g.id}",
            f"customer: {g.customer}",
            f"seat: {_q(g.seat)}",
            f"currency: {g.currency}",
            f"amount: {_q(g.amount)}",
            f"starts_at: {_q(g.starts_at)}",
        ]
        if g.expires_at is not None:
            parts.append(f"expires_at: {_q(g.expires_at)}")
        if g.priority is not None:
            parts.append(f"priority: {g.priority}")
        lines.append("  - {" + ", ".join(parts) + "}")
    return "\n".join(lines) + "\n"


def signal_json(s: Signal) -> bytes:
    parts = [
        f'"eventName": {json.dumps(s.event)}',
        f'"customer": {{{json.dumps(s.customer_field)}: {json.dumps(s.customer)}}}',
    ]
    if s.attribution == "null":
        parts.append('"attribution": null')
    elif s.attribution == "empty":
        parts.append('"attribution": {}')
    elif isinstance(s.attribution, tuple):
        parts.append(
            f'"attribution": {{{json.dumps(s.attribution[0])}: {json.dumps(s.attribution[1])}}}'
        )
    parts.append(f'"timestamp": {json.dumps(rfc3339(s.timestamp))}')
    if s.data is not None:
        parts.append(f'"data": {s.data}')
    if s.key is not None:
        parts.append(f'"idempotencyKey": {json.dumps(s.key)}')
    return ("{" + ", ".join(parts) + "}").encode()


# ------------------------------------------------------------------------------ reference model


def day_of(t: datetime) -> date:
    return t.astimezone(UTC).date()


def midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def in_range(t: datetime, lo: datetime | None, hi: datetime | None) -> bool:
    return (lo is None or lo <= t) and (hi is None or t < hi)


def reference_quantity(value: object) -> Decimal | None:
    """The quantity rule: the quantity, or None when it is invalid."""
    if value is MISSING or value is None:
        return Decimal(1)
    if isinstance(value, bool):
        return None
    if isinstance(value, int | Decimal):
        number = Decimal(value)
    elif isinstance(value, str):
        if not re.fullmatch(r"[0-9]+(\.[0-9]+)?", value):
            return None
        number = Decimal(value)
    else:
        return None  # object, array
    if not number.is_finite() or number < 0 or number >= Decimal(10) ** 18:
        return None
    exponent = number.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > 12:
        return None
    return number


def lookup(data: object, segments: tuple[str, ...]) -> object:
    for key in segments:
        if not isinstance(data, dict) or key not in data:
            return MISSING
        data = data[key]
    return data


@dataclass
class Priced:
    seq: int
    timestamp: datetime
    status: str
    credits: Decimal = Decimal(0)
    quantity: Decimal | None = None
    currency: str | None = None
    recipient: tuple[str, str, str, str] | None = None  # (customer, type, id, currency)


def reference_pricing(config: Config, signals: tuple[Signal, ...]) -> dict[int, Priced]:
    """Idempotency and pricing, one signal at a time; keyed by landing order (seq)."""
    out: dict[int, Priced] = {}
    seen_keys: set[str] = set()
    for seq, s in enumerate(signals, start=1):
        if s.key is not None:
            if s.key in seen_keys:
                continue  # a later copy: kept for audit, never priced, not in fact_signal
            seen_keys.add(s.key)
        t = s.timestamp
        if s.customer not in USERS:
            out[seq] = Priced(seq, t, "unknown_customer")
            continue
        if not isinstance(s.attribution, tuple):
            out[seq] = Priced(seq, t, "unattributed")
            continue
        product = s.attribution[1]
        if product not in EVENTS:
            out[seq] = Priced(seq, t, "unknown_product")
            continue
        rules = [
            r
            for r in config.rules
            if r.product == product
            and r.event == s.event
            and in_range(t, r.valid_from, r.valid_until)
        ]
        assert len(rules) <= 1
        if not rules:
            out[seq] = Priced(seq, t, "unpriced")
            continue
        rule = rules[0]
        data = None if s.data is None else json.loads(s.data, parse_float=Decimal)
        value = MISSING if rule.path is None else lookup(data, PATH_SEGMENTS[rule.path])
        quantity = Decimal(1) if rule.path is None else reference_quantity(value)
        if quantity is None:
            out[seq] = Priced(seq, t, "invalid_quantity", currency=rule.currency)
            continue
        with localcontext(prec=100):
            credits = (rule.cost * quantity).quantize(SIX, rounding=ROUND_HALF_UP)
        # The recipient: the user's seat at t, if that seat has a seat grant in the rule's
        # currency in force at t (exhausted or not); otherwise the organization pool.
        recipient = (s.customer, "organization", s.customer, rule.currency)
        user = data.get("external_user_id") if isinstance(data, dict) else None
        if isinstance(user, str) and user in USERS[s.customer]:
            for a in config.assignments:
                if (
                    SEATS[a.seat] == s.customer
                    and a.user == user
                    and in_range(t, a.valid_from, a.valid_until)
                    and any(
                        g.seat == a.seat
                        and g.currency == rule.currency
                        and in_range(t, g.starts_at, g.expires_at)
                        for g in config.grants
                    )
                ):
                    recipient = (s.customer, "seat", a.seat, rule.currency)
        out[seq] = Priced(seq, t, "priced", credits, quantity, rule.currency, recipient)
    return out


def burn_order(g: Grant) -> tuple:
    """Burn order: priority asc, expires_at asc (never-expiring last), starts_at asc, id asc."""
    never = g.expires_at is None
    priority = DEFAULT_PRIORITY if g.priority is None else g.priority
    return (priority, never, g.expires_at or datetime.max.replace(tzinfo=UTC), g.starts_at, g.id)


@dataclass
class Ledger:
    balances: list[tuple]  # balance_snapshot rows
    grant_rows: list[tuple]  # grant_balance rows (date, grant_id, used, expired, remaining)
    events: list[tuple]  # (type, customer, rtype, rid, currency, amount, occurred_at, grant_id)


def reference_ledger(
    grants: tuple[Grant, ...], priced: dict[int, Priced], first: date, last: date
) -> Ledger:
    """Event by event: per (recipient, currency), in time order; at one instant expiries,
    then grant starts (several starting together: in burn order), then spends."""
    end = midnight(last + timedelta(days=1))
    timeline: dict[tuple, list[tuple]] = defaultdict(list)
    for g in grants:
        if g.starts_at < end:
            timeline[g.recipient].append((g.starts_at, 1, burn_order(g), "start", g))
        if g.expires_at is not None and g.expires_at < end:
            timeline[g.recipient].append((g.expires_at, 0, burn_order(g), "expire", g))
    for p in priced.values():
        if p.status == "priced":
            timeline[p.recipient].append((p.timestamp, 2, (p.seq,), "spend", p.credits))

    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    out = Ledger([], [], [])
    for recipient, events in timeline.items():
        events.sort(key=lambda e: e[:3])
        used: dict[str, Decimal] = {}
        expired: dict[str, Decimal] = {}
        in_force: list[Grant] = []
        started: list[Grant] = []
        overage = closing = Decimal(0)
        active = False

        def remaining(g: Grant, used=used, expired=expired) -> Decimal:
            return g.amount - used[g.id] - expired[g.id]

        i = 0
        for day in days:
            opening = closing
            granted = spent = forfeited = Decimal(0)
            while i < len(events) and events[i][0] < midnight(day + timedelta(days=1)):
                t, _, _, kind, payload = events[i]
                assert t >= midnight(first), "an event before the first processed day"
                i += 1
                active = True
                if kind == "expire":
                    lost = remaining(payload)
                    expired[payload.id] += lost
                    forfeited += lost
                    in_force.remove(payload)
                    out.events.append(("expire", *recipient, -lost, t, payload.id))
                elif kind == "start":
                    used[payload.id] = min(overage, payload.amount)  # repays overage first
                    expired[payload.id] = Decimal(0)
                    overage -= used[payload.id]
                    granted += payload.amount
                    in_force.append(payload)
                    started.append(payload)
                    out.events.append(("grant", *recipient, payload.amount, t, payload.id))
                else:
                    spent += payload
                    left = payload
                    for g in sorted(in_force, key=burn_order):
                        take = min(remaining(g), left)
                        used[g.id] += take
                        left -= take
                    overage += left
            closing = opening + granted - spent - forfeited
            if not active:
                continue
            available = sum((remaining(g) for g in in_force), Decimal(0))
            assert closing == available - overage  # the model balances, by construction
            out.balances.append(
                (day, *recipient, opening, granted, spent, forfeited, closing, available, overage)
            )
            for g in started:
                out.grant_rows.append((day, g.id, used[g.id], expired[g.id], remaining(g)))
    return out


# ------------------------------------------------------------------------------ the harness


@pytest.fixture(autouse=True, scope="module")
def _one_duckdb_thread():
    """The examples are tiny: one DuckDB thread per connection makes each run ~35% faster."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TALLY_DUCKDB_THREADS", "1")
        yield


def close_lake(root: Path) -> None:
    """Close the LMDB environment the lake module caches per path (one per example otherwise
    accumulates hundreds of 256 GiB mappings)."""
    lake_module.release(root)


# Every landing and every engine output is fsync'd: on a RAM disk the examples run ~40% faster.
SCRATCH = "/dev/shm" if Path("/dev/shm").is_dir() and os.access("/dev/shm", os.W_OK) else None
_READER: list[duckdb.DuckDBPyConnection] = []


def _rows(home: Home, table: str, columns: str) -> list[tuple]:
    """Every row of one engine output, all partitions (a DuckDB connection costs ~20 ms: reuse)."""
    if not list((home.engine_dir / table).glob("*/*.parquet")):
        return []
    if not _READER:
        _READER.append(duckdb.connect())
    glob = home.engine_dir / table / "*" / "*.parquet"
    return _READER[0].sql(f"SELECT {columns} FROM read_parquet('{glob}')").fetchall()


def _sorted(rows: list[tuple]) -> list[tuple]:
    return sorted(rows, key=lambda r: tuple(str(x) for x in r))


def run_scenario(scenario: Scenario) -> None:
    """Land the signals batch by batch, run the engine after each, compare with the reference."""
    final = scenario.final
    with tempfile.TemporaryDirectory(dir=SCRATCH) as tmp:
        home = Home(Path(tmp))
        home.config_dir.mkdir(parents=True)
        lake = Lake(home.lake)
        try:
            start = 0
            for n, end in enumerate(scenario.batches):
                config = final if n == len(scenario.batches) - 1 else scenario.early
                (home.config_dir / "company.yaml").write_text(config_yaml(config))
                batch = [signal_json(s) for s in scenario.signals[start:end]]
                report = ingest_signals(lake, batch)
                assert report.failed == 0, report.errors
                start = end
                run_engine(home)
            facts = _rows(
                home,
                "fact_signal",
                "seq, status, credits, quantity, currency, customer_id, "
                "recipient_type, recipient_id",
            )
            balances = _rows(
                home,
                "balance_snapshot",
                "date, customer_id, recipient_type, recipient_id, currency, "
                "opening_balance, granted, spent, expired, closing_balance, "
                "available, overage",
            )
            grant_rows = _rows(home, "grant_balance", "date, grant_id, used, expired, remaining")
            events = _rows(
                home,
                "credit_event",
                "type, customer_id, recipient_type, recipient_id, currency, amount, "
                "occurred_at, grant_id",
            )
        finally:
            close_lake(home.lake)

    # The ledger covers the days make_plan chooses: from the first landed day or grant start to
    # the last day with landed signals (every batch is non-empty, so no run ends elsewhere).
    landed_days = {day_of(s.timestamp) for s in scenario.signals}
    first = min(landed_days | {day_of(g.starts_at) for g in final.grants})
    last = max(landed_days)

    priced = reference_pricing(final, scenario.signals)
    expected_facts = {}
    for p in priced.values():
        ok = p.status == "priced"
        expected_facts[p.seq] = (
            p.status,
            p.credits,
            p.quantity if ok else None,
            p.currency if ok else None,
            p.recipient[1:3] if ok else None,
        )
    actual_facts = {
        seq: (
            status,
            credits,
            quantity,
            currency if status == "priced" else None,
            (rtype, rid) if status == "priced" else None,
        )
        for seq, status, credits, quantity, currency, _c, rtype, rid in facts
    }
    assert actual_facts == expected_facts, scenario.notes

    ledger = reference_ledger(final.grants, priced, first, last)
    assert _sorted(balances) == _sorted(ledger.balances), scenario.notes
    assert _sorted(grant_rows) == _sorted(ledger.grant_rows), scenario.notes
    # An expiry that forfeits nothing may or may not be recorded as a 0 transaction.
    nonzero = [e for e in events if not (e[0] == "expire" and e[5] == 0)]
    expected_events = [e for e in ledger.events if not (e[0] == "expire" and e[5] == 0)]
    assert _sorted(nonzero) == _sorted(expected_events), scenario.notes


# ------------------------------------------------------------------------------ generators

VALID_NUMBERS = (
    "0",
    "-0",
    "1",
    "3",
    "7",
    "2.5",
    "0.5",
    "2.50",
    "1.5E2",
    "25e-1",
    "1e0",
    "0e5",
    "0.1",
    "0.000000000001",
    "1e-12",
    "3.14159",
    "123456789012.123456789012",
    "999999999999999999",
    "12345678901234567890e-5",
    "100000000000000000",
    "0.333333333333",
    "10.000000000000",
    "-0.0",
    "-0.000",
    "-0e3",
)
INVALID_NUMBERS = (
    "-1",
    "-0.5",
    "1e18",
    "1000000000000000000",
    "0.0000000000001",
    "1e-13",
    "1.0000000000001",
    "99999999999999999999",
    "-1e-3",
)
VALID_STRINGS = (
    '"2.5"',
    '"0"',
    '"10"',
    '"0.000001"',
    '"123456789012345678"',
    '"0.123456789012"',
    '"0.5"',
    '"3"',
)
INVALID_OTHER = (
    '"0.1234567890123"',
    '"1234567890123456789"',
    '"abc"',
    '"-1"',
    '"1e3"',
    '""',
    '"2.5.1"',
    "true",
    "false",
    "{}",
    "[]",
    "[1]",
    '{"value": 2}',
)

COSTS = (
    "0",
    "0.000001",
    "0.000003",
    "1",
    "1.5",
    "2",
    "0.333333",
    "12.345678",
    "0.25",
    "99.999999",
    "0.5",
)
HUGE_COSTS = tuple(map(Decimal, ("1000", "1000000000000", "9999999999999.999999")))
AMOUNTS = ("0.000001", "0.5", "1", "2.5", "10", "0.000003")
# weighted towards one pool, so that grants compete for the same spends
RECIPIENTS = (
    (("cus_a", None),) * 4
    + (("cus_a", "seat_a1"),) * 2
    + (("cus_a", "seat_a2"), ("cus_b", None), ("cus_b", None), ("cus_b", "seat_b1"))
)


def quantity_texts() -> st.SearchStrategy[str | None]:
    small = st.decimals(min_value=0, max_value=20, places=3)
    few = st.integers(0, 8).map(str)  # spends of the size of grants: partial burns
    fine = st.builds(
        lambda digits, places: format(Decimal(digits).scaleb(-places), "f"),
        st.integers(0, 10**8),
        st.integers(0, 12),
    )
    return st.one_of(
        st.none(),
        st.just("null"),
        st.sampled_from(VALID_NUMBERS),
        st.sampled_from(VALID_STRINGS),
        st.sampled_from(INVALID_NUMBERS),
        st.sampled_from(INVALID_OTHER),
        small.map(lambda d: format(d.copy_abs(), "f")),
        few,
        few,
        few,
        fine,
        fine.map(json.dumps),  # the same as a JSON string: "2.5"
        st.integers(0, 10**18 - 1).map(str),
    )


def decimal_texts(choices: tuple[str, ...], max_value: str) -> st.SearchStrategy[Decimal]:
    return st.one_of(
        st.sampled_from(choices).map(Decimal),
        st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(max_value), places=6),
    )


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    n_days = draw(st.integers(2, 3))
    grid_hi = 4 * n_days  # grid index of the midnight after the last day

    def at(k: int, eps: int = 0) -> datetime:
        return BASE + k * STEP + eps * US

    # A small pool of grid instants most times come from, so that things coincide.
    pool = draw(st.lists(st.integers(-2, grid_hi), min_size=2, max_size=5, unique=True))
    eps = st.sampled_from((0, 0, 0, 0, 1, -1))

    def instant(lo: int, hi: int) -> datetime:
        inside = [k for k in pool if lo <= k <= hi]
        if inside and draw(st.integers(0, 3)):
            k = draw(st.sampled_from(inside))
        else:
            k = draw(st.integers(lo, hi))
        return at(k, draw(eps))

    def breakpoints(lo: int, hi: int, most: int) -> list[datetime]:
        points = {instant(lo, hi) for _ in range(draw(st.integers(0, most)))}
        return sorted(points)

    # pricing rules: consecutive, non-overlapping spans per (product, event)
    rules: list[Rule] = []
    for (product, event), paths in QUANTITY_PATHS.items():
        # the fixed-cost rule is always there (signals aimed at seats use it); the others
        # change over time and have gaps
        cuts = breakpoints(0, grid_hi, 2) if paths != (None,) else []
        edges = [None, *cuts, None]
        for lo, hi in zip(edges, edges[1:], strict=False):
            if paths == (None,) or draw(st.integers(0, 4)):
                rules.append(
                    Rule(
                        product,
                        event,
                        draw(st.sampled_from(("credits",) * 3 + ("tokens",))),
                        draw(
                            st.sampled_from(HUGE_COSTS)
                            if draw(st.integers(0, 15)) == 0
                            else decimal_texts(COSTS, "5")
                        ),
                        draw(st.sampled_from(paths)),
                        lo,
                        hi,
                    )
                )

    # seat assignments: per time slot, a matching of users to seats (merged when unchanged)
    cuts = breakpoints(-1, grid_hi + 1, 3)
    edges = [None, *cuts, None]
    assignments: list[Assignment] = []
    open_: dict[str, Assignment | None] = dict.fromkeys(SEATS)
    for lo, hi in zip(edges, edges[1:], strict=False):
        taken: set[tuple[str, str]] = set()
        for seat, customer in SEATS.items():
            free = [u for u in USERS[customer] if (customer, u) not in taken]
            user = draw(st.sampled_from([None, None, *free]))
            if user is not None:
                taken.add((customer, user))
            current = open_[seat]
            if current is not None and current.user == user:
                open_[seat] = Assignment(seat, user, current.valid_from, hi)
                continue
            if current is not None:
                assignments.append(current)
            open_[seat] = None if user is None else Assignment(seat, user, lo, hi)
    assignments += [a for a in open_.values() if a is not None]

    # grants
    n_grants = draw(st.integers(0, 7))
    ids = draw(st.permutations([f"g{i}" for i in range(n_grants)]))
    grants: list[Grant] = []
    for gid in ids:
        customer, seat = draw(st.sampled_from(RECIPIENTS))
        currency = draw(st.sampled_from(("credits",) * 4 + ("tokens",)))
        start = instant(-2, grid_hi)
        if grants and draw(st.integers(0, 2)) == 0:
            # a twin: same recipient, starting with an earlier grant or when it expires
            twin = draw(st.sampled_from(grants))
            customer, seat, currency = twin.customer, twin.seat, twin.currency
            start = draw(st.sampled_from([twin.starts_at, twin.expires_at or twin.starts_at]))
        expires = None
        if draw(st.booleans()):
            later = [k for k in pool if at(k) - US > start]
            if later and draw(st.booleans()):
                expires = at(draw(st.sampled_from(later)), draw(eps))
            else:
                k = (start - BASE) // STEP + draw(st.integers(1, 6))
                expires = at(k, draw(eps))
            expires = max(expires, start + US)
        grants.append(
            Grant(
                gid,
                customer,
                seat,
                currency,
                draw(decimal_texts(AMOUNTS, "30")),
                start,
                expires,
                draw(st.sampled_from((None, 10, 50, 90))),
            )
        )

    # signals; some aimed at a seat: its user, at the instant its seat grant or the assignment
    # begins or ends (a tie), or inside
    lo_t, hi_t = at(0), at(grid_hi)
    seat_windows = []
    for a in assignments:
        for g in grants:
            if g.seat == a.seat:
                begin = max(a.valid_from or lo_t, g.starts_at, lo_t)
                end = min(a.valid_until or hi_t, g.expires_at or hi_t, hi_t)
                if begin < end:
                    seat_windows.append((a, begin, end))
    signals: list[Signal] = []
    keys: list[str] = []
    for _ in range(draw(st.integers(1, 12))):
        aim = (
            draw(st.sampled_from(seat_windows))
            if seat_windows and draw(st.integers(0, 2)) == 0
            else None
        )
        customer = draw(st.sampled_from(("cus_a",) * 4 + ("cus_b",) * 3 + ("cus_zzz",)))
        if aim is not None:
            customer = SEATS[aim[0].seat]
        product = draw(st.sampled_from(("prod_x",) * 5 + ("prod_y",) * 2 + ("prod_zzz", "none")))
        if product == "none":
            attribution: tuple[str, str] | str = draw(st.sampled_from(("absent", "null", "empty")))
            event = draw(st.sampled_from(("ev_q", "ev_fixed")))
        else:
            field_ = draw(st.sampled_from(("externalProductId", "productId")))
            attribution = (field_, product)
            event = draw(st.sampled_from(EVENTS.get(product, ("ev_q",)) + ("ev_q", "ev_n")))
        if aim is not None:
            attribution, event = (
                ("externalProductId", "prod_x"),
                draw(st.sampled_from(("ev_q", "ev_fixed", "ev_fixed"))),
            )
        data = None
        if aim is not None or draw(st.integers(0, 5)):
            parts = []
            user = draw(
                st.sampled_from(
                    (
                        None,
                        '"u1"',
                        '"u1"',
                        '"u1"',
                        '"u2"',
                        '"u2"',
                        '"u3"',
                        '"u4"',
                        '"u4"',
                        '"ux"',
                        "7",
                        "null",
                    )
                )
            )
            if aim is not None:
                user = json.dumps(aim[0].user)
            if user is not None:
                parts.append(f'"external_user_id": {user}')
            if draw(st.integers(0, 5)) == 0:
                parts.append('"externalUserId": "u2"')  # another spelling: not a user
            for slot in ("quantity", "usage", "a.b", "a"):
                q = draw(quantity_texts())
                if q is None:
                    continue
                if slot == "usage" or slot == "a":
                    inner = "n" if slot == "usage" else "b"
                    parts.append(f'"{slot}": {{"{inner}": {q}}}')
                else:
                    parts.append(f'"{slot}": {q}')
            data = "{" + ", ".join(parts) + "}"
        choice = draw(st.integers(0, 3))
        if choice == 0 and keys:
            key: str | None = draw(st.sampled_from(keys))  # a resend: a duplicate
        elif choice == 1:
            key = f"k{len(keys)}"
            keys.append(key)
        else:
            key = None
        t = instant(0, grid_hi - 1)
        if aim is not None:  # at the window's start, inside it, at its last or its first
            # instant after (where the assignment or the seat grant has just ended)
            _, begin, end = aim
            t = draw(st.sampled_from((begin, min(begin + STEP, end - US), end - US, end)))
            t = min(t, hi_t - US)
        signals.append(
            Signal(
                draw(st.sampled_from(("externalCustomerId", "externalCustomerId", "customerId"))),
                customer,
                attribution,
                event,
                t,
                data,
                key,
            )
        )

    # landing batches (each non-empty) and the configuration of the earlier runs
    n = len(signals)
    batch_count = min(n, draw(st.sampled_from((1, 1, 2, 2, 3))))
    if batch_count > 1 and draw(st.booleans()):
        signals.sort(key=lambda s: s.timestamp)  # landed in time order, like daily runs
    ends = draw(st.permutations(range(1, n)))[: batch_count - 1]
    batches = (*sorted(ends), n)
    final = Config(tuple(rules), tuple(assignments), tuple(grants))
    early = final
    notes: list[str] = []
    if len(batches) > 1:
        keep = st.integers(0, 2).map(bool)
        early_grants = []
        for g in grants:
            if not draw(keep):
                continue  # a backdated grant: only the last run knows it
            if draw(st.integers(0, 3)) == 0:  # changed since: amount, priority, start, expiry
                notes.append(f"{g.id} changed")
                starts = g.starts_at - draw(st.sampled_from((0, 0, 1, 4))) * STEP
                g = replace(
                    g,
                    amount=draw(decimal_texts(AMOUNTS, "30")),
                    priority=draw(st.sampled_from((None, 10, 90))),
                    starts_at=starts,
                    expires_at=draw(st.sampled_from((None, g.starts_at + STEP))),
                )
            early_grants.append(g)
        if draw(st.booleans()):  # a grant that only the earlier runs know about
            # (when it starts before everything else, the ledger's first day moves later)
            customer, seat = draw(st.sampled_from(RECIPIENTS))
            early_grants.append(
                Grant(
                    "g_transient",
                    customer,
                    seat,
                    "credits",
                    draw(decimal_texts(AMOUNTS, "30")),
                    instant(-6, grid_hi),
                    None,
                    draw(st.sampled_from((None, 10, 90))),
                )
            )
            notes.append("transient grant")
        if draw(st.booleans()):  # only grants differ: nothing else forces a re-pricing
            early = Config(tuple(rules), tuple(assignments), tuple(early_grants))
        else:
            early = Config(
                tuple(r for r in rules if draw(keep)),
                tuple(a for a in assignments if draw(keep)),
                tuple(early_grants),
            )
    return Scenario(final, tuple(signals), batches, early, notes)


@settings(max_examples=200)  # deadline and health checks: the shared profile in conftest.py
@given(scenarios())
def test_engine_matches_reference_model(scenario: Scenario) -> None:
    check_against_reference_model(scenario)


@pytest.mark.slow
@given(scenarios())
def test_engine_matches_reference_model_at_length(scenario: Scenario) -> None:
    """The same property with the slow profile's example count (`./dev.sh test -m slow`)."""
    check_against_reference_model(scenario)


def check_against_reference_model(scenario: Scenario) -> None:
    priced = reference_pricing(scenario.final, scenario.signals)
    for status in sorted({p.status for p in priced.values()}):
        hyp_event(f"status {status}")
    if any(p.recipient and p.recipient[1] == "seat" for p in priced.values()):
        hyp_event("a seat recipient")
    instants = [g.starts_at for g in scenario.final.grants]
    instants += [g.expires_at for g in scenario.final.grants if g.expires_at]
    if any(p.timestamp in instants for p in priced.values() if p.status == "priced"):
        hyp_event("a spend at a grant start or expiry")
    hyp_event(f"{len(scenario.batches)} landing batches")
    run_scenario(scenario)


# ------------------------------------------------------------------------------ hand-made cases


def _at(day: int, hour: int = 0, us: int = 0) -> datetime:
    return BASE + timedelta(days=day, hours=hour, microseconds=us)


def _signal(
    t: datetime,
    data: str | None = None,
    *,
    event: str = "ev_q",
    product: str = "prod_x",
    customer: str = "cus_a",
    key: str | None = None,
) -> Signal:
    return Signal(
        "externalCustomerId", customer, ("externalProductId", product), event, t, data, key
    )


def _rule(
    event: str,
    currency: str,
    cost: str,
    path: str | None,
    product: str = "prod_x",
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
) -> Rule:
    return Rule(product, event, currency, Decimal(cost), path, valid_from, valid_until)


def _grant(
    gid: str,
    amount: str,
    starts: datetime,
    expires: datetime | None = None,
    *,
    seat: str | None = None,
    currency: str = "credits",
    priority: int | None = None,
    customer: str = "cus_a",
) -> Grant:
    return Grant(gid, customer, seat, currency, Decimal(amount), starts, expires, priority)


def _scenario(config: Config, signals: list[Signal]) -> Scenario:
    return Scenario(config, tuple(signals), (len(signals),), config)


def test_rounding_half_away_from_zero_and_quantities() -> None:
    config = Config(
        rules=(
            _rule("ev_q", "credits", "0.000001", "$.quantity"),
            _rule("ev_n", "credits", "0.000003", "usage.n", product="prod_y"),
            _rule("ev_fixed", "tokens", "1.5", None),
        )
    )
    signals = [
        _signal(_at(0, 1), '{"quantity": 0.5}'),  # 0.0000005 -> 0.000001
        _signal(_at(0, 2), '{"usage": {"n": 0.5}}', event="ev_n", product="prod_y"),  # 0.000002
        _signal(_at(0, 3), '{"quantity": "2.5"}'),  # 0.0000025 -> 0.000003
        _signal(_at(0, 4), '{"quantity": 0.49}'),  # 0.00000049 -> 0
        _signal(_at(0, 5), '{"quantity": 0}'),  # priced, 0 credits
        _signal(_at(1, 1), '{"quantity": 99}', event="ev_fixed"),  # fixed cost: 1.5
        _signal(_at(1, 2), '{"quantity": 0.1234567890123}'),  # 13 dp: invalid
        _signal(_at(1, 3), '{"quantity": 1e18}'),  # too large: invalid
        _signal(_at(1, 4), '{"quantity": "1e3"}'),  # not a plain decimal string: invalid
        _signal(_at(1, 5), '{"quantity": 12345678901234567890e-5}'),  # x 10^-6, exactly
        _signal(_at(1, 6), None, event="ev_none"),  # no rule: unpriced
    ]
    priced = reference_pricing(config, tuple(signals))
    assert [(p.status, p.credits) for p in priced.values()] == [
        ("priced", Decimal("0.000001")),
        ("priced", Decimal("0.000002")),
        ("priced", Decimal("0.000003")),
        ("priced", Decimal("0")),
        ("priced", Decimal("0")),
        ("priced", Decimal("1.5")),
        ("invalid_quantity", 0),
        ("invalid_quantity", 0),
        ("invalid_quantity", 0),
        ("priced", Decimal("123456789.012346")),
        ("unpriced", 0),
    ]
    run_scenario(_scenario(config, signals))


def test_ties_at_one_instant() -> None:
    """At 12:00 on day 0 a grant expires, three grants start (one of them a seat grant) and
    spends happen; overage from before is repaid by the grants starting, in burn order."""
    noon, next_day = _at(0, 12), _at(1)
    config = Config(
        rules=(
            _rule("ev_q", "credits", "1", "$.quantity"),
            _rule("ev_fixed", "tokens", "0.5", None),
        ),
        assignments=(Assignment("seat_a1", "u1", noon, None),),
        grants=(
            _grant("g_old", "5", _at(0), noon),
            _grant("g_new_b", "3", noon),
            _grant("g_new_a", "0.5", noon),
            _grant("g_seat", "1", noon, next_day, seat="seat_a1"),
            _grant("g_ta", "3", noon, currency="tokens"),
            _grant("g_tb", "2", noon, currency="tokens", priority=10),
            _grant("g_late", "10", _at(1, 6)),
        ),
    )
    u1 = '"external_user_id": "u1"'
    signals = [
        _signal(_at(0, 6), '{"quantity": 3}'),  # g_old 3 of 5
        _signal(_at(0, 7), None, event="ev_fixed"),  # tokens: 0.5 of overage
        _signal(_at(0, 8), None, event="ev_fixed"),  # tokens: 1 of overage, repaid by g_tb
        _signal(noon - US, f'{{{u1}, "quantity": 0.25}}'),  # no seat grant yet: org, g_old
        _signal(noon, '{"quantity": 4}'),  # g_old is gone: g_new_a 0.5, g_new_b 3, 0.5 overage
        _signal(noon, f'{{{u1}, "quantity": 1.5}}'),  # the seat: 1 from g_seat, 0.5 overage
        _signal(noon, None, event="ev_fixed"),  # tokens: 0.5 more from g_tb
        _signal(next_day, f'{{{u1}, "quantity": 1}}'),  # g_seat expired: org, overage
        _signal(_at(1, 6), '{"quantity": 0}'),  # g_late starts first, repays 1.5
    ]
    priced = reference_pricing(config, tuple(signals))
    assert [p.recipient[2] for p in priced.values()] == [
        "cus_a",
        "cus_a",
        "cus_a",
        "cus_a",
        "cus_a",
        "seat_a1",
        "cus_a",
        "cus_a",
        "cus_a",
    ]
    ledger = reference_ledger(config.grants, priced, _at(0).date(), _at(1).date())
    last = {row[1]: row[2:] for row in ledger.grant_rows if row[0] == _at(1).date()}
    assert last == {
        "g_old": (Decimal("3.25"), Decimal("1.75"), Decimal(0)),
        "g_new_a": (Decimal("0.5"), Decimal(0), Decimal(0)),
        "g_new_b": (Decimal("3"), Decimal(0), Decimal(0)),
        "g_seat": (Decimal("1"), Decimal(0), Decimal(0)),
        "g_tb": (Decimal("1.5"), Decimal(0), Decimal("0.5")),  # priority 10: repays, burns
        "g_ta": (Decimal(0), Decimal(0), Decimal("3")),
        "g_late": (Decimal("1.5"), Decimal(0), Decimal("8.5")),
    }
    run_scenario(_scenario(config, signals))


# --------------------------------------------------------------- regressions found by this test


def _tiny_home(tmp: str, config: Config) -> Home:
    home = Home(Path(tmp))
    home.config_dir.mkdir(parents=True)
    (home.config_dir / "company.yaml").write_text(config_yaml(config))
    return home


def test_negative_zero_quantity_is_zero(tmp_path: Path) -> None:
    config = Config(rules=(_rule("ev_q", "credits", "1", "$.quantity"),))
    run_scenario(_scenario(config, [_signal(_at(0, 1), '{"quantity": -0.0}')]))


def test_large_credits_do_not_abort_pricing() -> None:
    config = Config(rules=(_rule("ev_q", "credits", "1000", "$.quantity"),))
    run_scenario(_scenario(config, [_signal(_at(0, 1), '{"quantity": 100000000000000000}')]))


def test_removed_early_grant_leaves_no_ledger_rows() -> None:
    early = Config(
        rules=(_rule("ev_q", "credits", "1", None),), grants=(_grant("g_gone", "5", _at(0)),)
    )
    final = replace(early, grants=())
    signals = (_signal(_at(1, 1)), _signal(_at(1, 2)))
    run_scenario(Scenario(final, signals, (1, 2), early))

"""A seeded, deterministic synthetic workload: a sample company and Paid-shaped signal files.

`synth(out)` writes `out/config/company.yaml` and `out/signals/day-YYYY-MM-DD.jsonl`
(one camelCase signal per line, as the Paid SDK sends it). The same arguments give byte-identical
files. Signals are built column-wise (numpy draws, polars string concatenation) in chunks of at
most `CHUNK` rows, so tens of millions of signals take bounded memory and no per-signal Python.

The workload is meant to look like production: a few customers dominate (Zipf), traffic follows
the working day and week, users sit in departments and teams, some hold seats with their own
grants, grants expire mid-period and get topped up. A share `dirt` of the signals is realistic
trouble; `SynthResult.counts` says how many of each kind were written (`dirt.<kind>`):

- unknown_customer: `cus_unknown_<0-9>`, without a user. missing_attribution: `"attribution":
  null` or no key. unknown_product: `prod_unknown_<0-2>`. bad_quantity: a `document_processed`
  whose `quantity` is one of `BAD_QUANTITIES` (`bad_quantity.<value>` counts).
- duplicate: a byte-identical resend of an earlier keyed signal, same file or a later one.
- late: timestamp 1-5 days before its file's day (never before the first day).
- key_spelling: a signal of the second customer with `externalUserId` and `Team`.
- rejected (`rejected.<why>` counts, see `REJECTED`): no eventName, `"customer":{}`, a timestamp
  without zone, data as a list, a 304-character idempotencyKey.
- plus one `special` signal (if dirt > 0) with data `SPECIAL_DATA` (big integer, 0.1, Team/team).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import yaml

CHUNK = 250_000  # signals per generation step: bounds memory (~0.5 GB peak)
KEY_SHARE = 0.85  # share of signals that carry an idempotencyKey
DIRT_KINDS = (
    "unknown_customer",
    "missing_attribution",
    "unknown_product",
    "bad_quantity",
    "duplicate",
    "late",
    "key_spelling",
    "rejected",
)
_KIND_CDF = np.cumsum([0.12, 0.12, 0.10, 0.12, 0.20, 0.16, 0.12, 0.06])
REJECTED = (
    "missing_event_name",
    "empty_customer",
    "timestamp_without_zone",
    "data_is_list",
    "long_idempotency_key",
)
BAD_QUANTITIES = ("-3", "true", '"abc"', '{"value":2}', "0.1234567890123", "1e19")
SPECIAL_DATA = '{"n":12345678901234567890,"x":0.1,"Team":"a","team":"b","u":"é"}'

# name, product, currency, share of traffic, share carrying a user, models, mean credits/signal
EVENTS = (
    (
        "chat_message",
        "chatbot",
        "credits",
        0.36,
        0.95,
        ("gpt-4o", "gpt-4o-mini", "claude-sonnet", "claude-haiku", "gemini-pro"),
        0.25 * 2.785,
    ),
    (
        "embedding_created",
        "chatbot",
        "credits",
        0.10,
        0.60,
        ("text-embedding-3-small", "text-embedding-3-large"),
        0.001 * 2025,
    ),
    (
        "document_processed",
        "doc_processor",
        "credits",
        0.20,
        0.90,
        ("gpt-4o", "claude-sonnet"),
        1.375 * 4.0,
    ),
    ("email_sent", "outreach", "credits", 0.22, 0.90, ("gpt-4o-mini", "claude-haiku"), 1.0),
    ("email_opened", "outreach", "credits", 0.06, 0.90, (), 0.0),  # tracked, never priced
    ("search_query", "search_api", "api_calls", 0.06, 0.30, (), 1.0),
)
CHAT, EMBED, DOC, EMAIL, OPENED, SEARCH = range(len(EVENTS))
PRODUCTS = {
    "chatbot": "Support chatbot",
    "doc_processor": "Document processor",
    "outreach": "Outreach agent",
    "search_api": "Search API",
}
_PLANS = (
    set(PRODUCTS),
    {"chatbot", "doc_processor"},
    {"chatbot", "outreach", "doc_processor"},
    {"chatbot", "outreach"},
    {"chatbot", "doc_processor", "search_api"},
    {"chatbot"},
)
_COMPANIES = (
    "Acme Corp",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Stark Industries",
    "Wayne Enterprises",
    "Wonka",
    "Cyberdyne",
    "Soylent",
    "Tyrell",
    "Aperture",
)
_FIRST = (
    "Jane",
    "John",
    "Amara",
    "Wei",
    "Olga",
    "Ravi",
    "Lucia",
    "Kenji",
    "Fatima",
    "Noah",
    "Ines",
    "Tariq",
    "Mia",
    "Sven",
    "Aisha",
    "Pedro",
)
_LAST = (
    "Doe",
    "Smith",
    "Okafor",
    "Chen",
    "Ivanova",
    "Patel",
    "Garcia",
    "Sato",
    "Haddad",
    "Brown",
    "Moreau",
    "Khan",
    "Rossi",
    "Larsen",
    "Mensah",
    "Silva",
)
_TEAMS = {
    "engineering": ("platform", "ml", "web"),
    "sales": ("emea", "amer"),
    "support": ("tier1", "tier2"),
    "research": ("nlp", "vision"),
    "finance": ("billing",),
}
_DEPT_W = (0.35, 0.2, 0.2, 0.15, 0.1)
_HOURS = np.array(
    [2, 1.5, 1, 1, 1, 1.5, 3, 6, 10, 13, 14, 13, 10, 12, 14, 13, 11, 8, 6, 5, 4, 4, 3, 2.5]
)
_HOUR_CDF = np.concatenate([[0.0], np.cumsum(_HOURS) / _HOURS.sum()])
_HOUR_MS = np.arange(25, dtype=np.float64) * 3_600_000
_WEEKDAY = (1.0, 1.05, 1.05, 1.0, 0.9, 0.4, 0.3)
_FRAC8 = ("", "125", "25", "375", "5", "625", "75", "875")


@dataclass(frozen=True)
class SynthResult:
    """What `synth` wrote: the config directory, the daily files (in day order) and counts."""

    config_dir: Path
    signal_files: tuple[Path, ...]
    signals: int
    counts: dict[str, int]


@dataclass(frozen=True)
class _Company:
    """The deterministic model behind both the config and the signals."""

    start: datetime
    days: int
    customers: list[dict]
    cust_cdf: np.ndarray  # cumulative activity share per customer
    mix: np.ndarray  # [customer, event] probabilities
    users: list[dict]
    user_cust: np.ndarray  # customer index of each user
    user_w: np.ndarray  # activity share of each user within its customer
    seats: list[dict]  # id, customer index, assignments [(user index, from, until | None)]

    def at(self, fraction: float) -> datetime:
        """The instant `fraction` of the way through the period, rounded to the hour."""
        return self.start + timedelta(hours=round(fraction * self.days * 24))


def _company(customers: int, seed: int, start: date, days: int) -> _Company:
    if customers < 1 or days < 1:
        raise ValueError("customers and days must be at least 1")
    rng = np.random.default_rng([seed, 1])
    t0 = datetime(start.year, start.month, start.day, tzinfo=UTC)
    weight = 1.0 / np.arange(1, customers + 1) ** 1.2
    custs, users, user_cust, user_w, seats = [], [], [], [], []
    mix = np.zeros((customers, len(EVENTS)))
    for c in range(customers):
        base = _COMPANIES[c % len(_COMPANIES)]
        rnd = c // len(_COMPANIES)
        short = base.split()[0].lower() + (f"{rnd + 1}" if rnd else "")
        segment = "enterprise" if c == 0 else "mid_market" if c < 3 else "startup"
        custs.append(
            {
                "external_id": f"cus_{short}",
                "short": short,
                "name": base + (f" {rnd + 1}" if rnd else ""),
                "metadata": {"segment": segment, "region": ("emea", "amer", "apac")[c % 3]},
            }
        )
        plan = _PLANS[c % len(_PLANS)]
        mix[c] = [ev[3] if ev[1] in plan else 0.0 for ev in EVENTS]
        n_users = int(np.clip(round(200 * weight[c] / weight[0]), 3, 200))
        first = len(users)
        depts = rng.choice(len(_TEAMS), n_users, p=_DEPT_W)
        for n, d in enumerate(depts):
            dept = list(_TEAMS)[d]
            team = _TEAMS[dept][rng.integers(len(_TEAMS[dept]))]
            name = f"{_FIRST[rng.integers(len(_FIRST))]} {_LAST[rng.integers(len(_LAST))]}"
            users.append(
                {
                    "customer": f"cus_{short}",
                    "external_id": f"usr_{short}_{n + 1:03d}",
                    "name": name,
                    "metadata": {"team": team, "department": dept},
                }
            )
        w = rng.permutation(1.0 / np.arange(1, n_users + 1) ** 0.7)
        user_cust += [c] * n_users
        user_w += list(w / w.sum())
        if c % 3 != 2 and n_users >= 8:
            seats += _seats(rng, c, short, first, n_users)
    co = _Company(
        t0,
        days,
        custs,
        np.cumsum(weight / weight.sum()),
        mix / mix.sum(1, keepdims=True),
        users,
        np.array(user_cust),
        np.array(user_w),
        [],
    )
    for seat in seats:  # fractions of the period become instants now that the period is known
        seat["assignments"] = [
            (u, co.at(a), None if b is None else co.at(b)) for u, a, b in seat["assignments"]
        ]
    return _Company(**{**co.__dict__, "seats": seats})


def _seats(rng: np.random.Generator, c: int, short: str, first: int, n_users: int) -> list[dict]:
    """Seats for 20-40% of a customer's users; seats 0-3 show moves, handovers and vacancies."""
    n = max(4, round((0.2 + 0.2 * rng.random()) * n_users))
    who = first + rng.choice(n_users, n + 2, replace=False)
    u, spare = who[:n], who[n:]
    plans = [
        [(u[0], 0.0, 0.4), (spare[0], 0.45, None)],  # u0 leaves, the seat refills later
        [(u[1], 0.0, 0.3), (u[0], 0.4, None)],  # ...and u0 moves into this vacated seat
        [(u[2], 0.0, 0.5), (spare[1], 0.5, None)],  # a handover mid-period
        [(u[3], 0.0, 0.7)],
    ]  # unassigned later
    plans += [[(u[k], 0.0, None)] for k in range(4, n)]
    return [
        {"id": f"seat_{short}_{k + 1:02d}", "customer": c, "assignments": p}
        for k, p in enumerate(plans)
    ]


def _expected(co: _Company, signals: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Expected credits over the period: per customer (credits, api_calls) and per user."""
    share = np.diff(co.cust_cdf, prepend=0.0) * signals
    cost = np.array([ev[6] if ev[2] == "credits" else 0.0 for ev in EVENTS])
    user_rate = np.array([ev[4] for ev in EVENTS])
    credits = share * (co.mix @ cost)
    api = share * co.mix[:, SEARCH]
    per_user = share[co.user_cust] * (co.mix @ (cost * user_rate))[co.user_cust] * co.user_w
    return credits, api, per_user


def _amount(x: float, step: float = 1.0) -> int | float:
    value = max(step, round(x / step) * step)
    return int(value) if value == int(value) else value


def _ts(t: datetime | None) -> str | None:
    return None if t is None else t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _seat_grants(co: _Company, c: int, per_user: np.ndarray) -> tuple[list[dict], float]:
    """Seat-scoped grants of customer `c` (most seats; some start late, expire, get topped up)
    and the credits they are expected to absorb."""
    period, end = co.days * 86400.0, co.start + timedelta(days=co.days)
    grants, absorbed = [], 0.0
    for k, seat in enumerate(s for s in co.seats if s["customer"] == c):
        if k % 4 == 3:
            continue  # a seat without credits: its users spend from the organization pool
        begin = co.at(0.25) if k % 5 == 4 else co.start
        need = sum(
            per_user[u] * max(0.0, ((b or end) - max(a, begin)).total_seconds()) / period
            for u, a, b in seat["assignments"]
        )
        absorbed += need
        base = {
            "customer": co.customers[c]["external_id"],
            "seat": seat["id"],
            "currency": "credits",
        }
        grants.append(
            {
                "id": f"grant_{seat['id']}",
                **base,
                "amount": _amount(need * (1.4, 0.6, 0.8)[k % 3], 0.5),
                "starts_at": _ts(begin),
                **({"expires_at": _ts(end)} if k % 2 else {}),
                "origin": "seat_allowance",
            }
        )
        if k % 3 == 2:
            grants.append(
                {
                    "id": f"grant_{seat['id']}_topup",
                    **base,
                    "amount": _amount(need * 0.5, 0.5),
                    "starts_at": _ts(co.at(0.6)),
                    "origin": "top_up",
                }
            )
    return grants, absorbed


def _grants(co: _Company, signals: int) -> list[dict]:
    """Per customer: org pools (a promo expiring mid-period, the plan, top-ups), then seats."""
    credits, api, per_user = _expected(co, signals)
    grants = []
    for c, cust in enumerate(co.customers):
        seat_grants, absorbed = _seat_grants(co, c, per_user)
        org = max(credits[c] - absorbed, 1.0)
        base = {"customer": cust["external_id"], "seat": None, "currency": "credits"}
        gid = f"grant_{cust['short']}"
        scenario = c % 3  # 0: ample, 1: overage repaid by a top-up, 2: plan expires, overage
        grants.append(
            {
                "id": f"{gid}_welcome",
                **base,
                "amount": _amount(0.15 * org, 0.5),
                "starts_at": _ts(co.start),
                "expires_at": _ts(co.at(0.4)),
                "priority": 10,
                "origin": "promotional",
            }
        )
        expires = (co.start + timedelta(days=co.days + 16), None, co.at(0.8))[scenario]
        grants.append(
            {
                "id": f"{gid}_plan",
                **base,
                "amount": _amount((1.2, 0.45, 0.65)[scenario] * org),
                "starts_at": _ts(co.start),
                **({"expires_at": _ts(expires)} if expires else {}),
                "priority": 50,
                "origin": "purchased",
            }
        )
        if scenario == 1:
            grants.append(
                {
                    "id": f"{gid}_topup",
                    **base,
                    "amount": _amount(0.7 * org),
                    "starts_at": _ts(co.at(0.65)),
                    "priority": 40,
                    "origin": "top_up",
                }
            )
        if api[c] > 0:
            grants.append(
                {
                    "id": f"{gid}_api",
                    **base,
                    "currency": "api_calls",
                    "amount": _amount(0.9 * api[c]),
                    "starts_at": _ts(co.start),
                    "priority": 50,
                    "origin": "included",
                }
            )
        grants += seat_grants
    return grants


class _Flow(dict):
    """A mapping written in YAML flow style (`{a: 1}`)."""


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        return super().increase_indent(flow, False)  # indent lists under their key


_Dumper.add_representer(
    _Flow, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v, flow_style=True)
)


def _config(co: _Company, signals: int) -> dict[str, list]:
    mid = co.start + timedelta(days=co.days // 2)
    year = _ts(datetime(co.start.year, 1, 1, tzinfo=UTC))
    rules = {
        "chatbot": [
            {
                "event": "chat_message",
                "currency": "credits",
                "credit_cost": 0.25,
                "quantity_path": "usage.tokens_k",
            },
            {
                "event": "embedding_created",
                "currency": "credits",
                "credit_cost": 0.001,
                "quantity_path": '$["input.tokens"]',
            },
        ],
        "doc_processor": [
            {
                "event": "document_processed",
                "currency": "credits",
                "credit_cost": 1.5,
                "quantity_path": "$.quantity",
                "until": _ts(mid),
            },
            {
                "event": "document_processed",
                "currency": "credits",
                "credit_cost": 1.25,
                "quantity_path": "$.quantity",
                "from": _ts(mid),
                "until": None,
            },
        ],
        "outreach": [
            {"event": "email_sent", "currency": "credits", "credit_cost": 1, "from": year}
        ],
        "search_api": [{"event": "search_query", "currency": "api_calls", "credit_cost": 1}],
    }
    users = co.users
    return {
        "currencies": [
            _Flow(key="credits", name="Credits"),
            _Flow(key="api_calls", name="API calls"),
        ],
        "customers": [
            {"external_id": c["external_id"], "name": c["name"], "metadata": _Flow(c["metadata"])}
            for c in co.customers
        ],
        "products": [
            {"external_id": p, "name": n, "pricing": rules[p]} for p, n in PRODUCTS.items()
        ],
        "users": [_Flow({**u, "metadata": _Flow(u["metadata"])}) for u in users],
        "seats": [
            {
                "id": s["id"],
                "customer": co.customers[s["customer"]]["external_id"],
                "assignments": [
                    _Flow(user=users[u]["external_id"], **{"from": _ts(a)}, until=_ts(b))
                    for u, a, b in s["assignments"]
                ],
            }
            for s in co.seats
        ],
        "grants": _grants(co, signals),
    }


def write_config(
    config_dir: Path,
    *,
    customers: int = 6,
    seed: int = 7,
    start: date = date(2026, 11, 1),
    days: int = 14,
    signals: int = 20_000,
) -> Path:
    """Write `config_dir/company.yaml`; grants are sized for about `signals` signals."""
    co = _company(customers, seed, start, days)
    sections = _config(co, signals)
    notes = {
        "currencies": "credit currencies",
        "customers": "Zipf-skewed activity, biggest first",
        "products": "pricing rules per event and time range",
        "users": "metadata feeds breakdowns by team/department",
        "seats": "seat assignments (from inclusive, until exclusive)",
        "grants": "organization pools (seat: null) and seat-scoped grants",
    }
    text = [
        f"# Sample company generated by `tally synth` (pipelines/synth.py): seed={seed},\n"
        f"# customers={customers}, start={start.isoformat()}, days={days}, "
        f"signals={signals}. Regenerate rather than edit.\n"
    ]
    for name, entries in sections.items():
        text.append(f"\n# --- {name}: {notes[name]}\n")
        text.append(
            yaml.dump(
                {name: entries},
                Dumper=_Dumper,
                sort_keys=False,
                width=120,
                allow_unicode=True,
                default_flow_style=False,
            )
        )
    config_dir.mkdir(parents=True, exist_ok=True)
    path = config_dir / "company.yaml"
    path.write_text("".join(text), encoding="utf-8")
    return path


# --- signals ---


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a bijection on uint64, so distinct inputs give distinct keys."""
    x = x.astype(np.uint64)
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _hex(x: np.ndarray) -> pl.Series:
    """Each uint64 as 16 lowercase hex digits."""
    raw = pa.py_buffer(x.astype(">u8").tobytes())
    array = pa.FixedSizeBinaryArray.from_buffers(pa.binary(8), len(x), [None, raw])
    return pl.Series(array).cast(pl.Binary).bin.encode("hex")


def _group_cdf(group: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """`group + cumulative share within the group`, so one searchsorted picks within any group."""
    out = np.empty(len(weights))
    for g in np.unique(group):
        at = np.flatnonzero(group == g)
        cs = np.cumsum(weights[at])
        out[at] = g + cs / cs[-1]
    return out


def _day_counts(signals: int, start: date, days: int) -> np.ndarray:
    """Signals per day: weekday rhythm plus slow growth, summing exactly to `signals`."""
    w = np.array(
        [_WEEKDAY[(start + timedelta(days=d)).weekday()] * (1 + 0.01 * d) for d in range(days)]
    )
    exact = signals * w / w.sum()
    n = np.floor(exact).astype(np.int64)
    n[np.argsort(n - exact, kind="stable")[: signals - n.sum()]] += 1
    return n


class _Tables:
    """Lookup arrays shared by every chunk."""

    def __init__(self, co: _Company) -> None:
        n_c, n_e = len(co.customers), len(EVENTS)
        self.cust_cdf = co.cust_cdf / co.cust_cdf[-1]
        self.event_cdf = _group_cdf(np.repeat(np.arange(n_c), n_e), co.mix.ravel())
        self.user_cdf = _group_cdf(co.user_cust, co.user_w)
        self.spell_customer = min(1, n_c - 1)
        start = co.start.date()
        customers = [c["external_id"] for c in co.customers]
        customers += [f"cus_unknown_{k}" for k in range(10)]
        self.head = pl.Series(
            [
                f'{{"eventName":"{ev[0]}","customer":{{"externalCustomerId":"{c}"}}'
                for ev in EVENTS
                for c in customers
            ]
        )
        products = [ev[1] for ev in EVENTS] + [f"prod_unknown_{k}" for k in range(3)]
        self.attribution = pl.Series(
            [f',"attribution":{{"externalProductId":"{p}"}}' for p in products]
            + [',"attribution":null', ""]
        )
        users = [
            (u["external_id"], u["metadata"]["team"], u["metadata"]["department"]) for u in co.users
        ]  # then the same with the keys spelled the other way
        self.user = pl.Series(
            [f'"external_user_id":"{u}","team":"{t}","department":"{d}",' for u, t, d in users]
            + [f'"externalUserId":"{u}","Team":"{t}","department":"{d}",' for u, t, d in users]
            + [""]
        )
        self.model = pl.Series([f'"model":"{m}",' for ev in EVENTS for m in ev[5]] + [""])
        self.model_n = np.array([len(ev[5]) for ev in EVENTS])
        self.model_at = np.concatenate([[0], np.cumsum(self.model_n)[:-1]])
        self.date = pl.Series(
            [f',"timestamp":"{start + timedelta(days=d - 5)}T' for d in range(co.days + 5)]
        )
        self.hour_minute = pl.Series([f"{m // 60:02d}:{m % 60:02d}:" for m in range(1440)])
        self.second_ms = pl.Series([f"{ms // 1000:02d}.{ms % 1000:03d}Z" for ms in range(60_000)])
        self.user_rate = np.array([ev[4] for ev in EVENTS])


def _lit(*parts: str | pl.Expr) -> pl.Expr:
    return pl.concat_str([pl.lit(p) if isinstance(p, str) else p for p in parts], ignore_nulls=True)


def _specific(df: pl.DataFrame) -> pl.Series:
    """The event-specific data fields, each event's template applied to its own rows only."""
    c, s = pl.col, lambda name: pl.col(name).cast(pl.String)
    quantity = (
        pl.when(c("kind") == DIRT_KINDS.index("bad_quantity"))
        .then(c("bad"))
        .when(c("qk") < 6)
        .then(s("qi"))  # integers 0-10 (zeros included)
        .when(c("qk") < 9)
        .then(_lit(s("qa"), ".", c("q8")))  # eighths: 0.125, 2.375
        .otherwise(_lit('"', s("qa"), ".", s("qb"), '"'))
    )  # decimal strings: "2.5"
    templates = {
        CHAT: _lit(
            '"usage":{"tokens_k":',
            s("tk"),
            ".",
            s("tf").str.zfill(3).str.strip_chars_end("0"),
            ',"input_tokens":',
            s("it"),
            ',"output_tokens":',
            s("ot"),
            '},"conversation_id":"conv_',
            s("conv"),
            '"',
        ),
        EMBED: _lit('"input.tokens":', s("it"), ',"dimensions":', s("dim")),
        DOC: _lit('"quantity":', quantity, ',"pages":', s("pages"), ',"format":"', c("fmt"), '"'),
        EMAIL: _lit(
            '"template":"',
            c("tpl"),
            '","recipients":',
            s("rcpt"),
            pl.when(c("qk") == 0).then(pl.lit(',"quantity":5')),
        ),  # ignored: fixed cost
        OPENED: _lit('"template":"', c("tpl"), '","campaign":"q4_launch"'),
        SEARCH: _lit('"results":', s("rcpt"), ',"latency_ms":', (c("pages") * 7).cast(pl.String)),
    }
    lf = df.lazy().with_row_index("i")
    parts = [lf.filter(c("e") == e).select("i", x.alias("x")) for e, x in templates.items()]
    return pl.concat(parts).sort("i").collect()["x"]


_REJECTS = (  # (sub-kind, pattern, replacement) applied to the few rejected lines afterwards
    (0, r'^\{"eventName":"[^"]*",', "{"),
    (1, r'"customer":\{[^}]*\}', '"customer":{}'),
    (2, r'(T\d\d:\d\d:\d\d)\.\d{3}Z"', '$1"'),
    (
        3,
        r'"data":\{.*\}((?:,"idempotencyKey":"[^"]*")?)\}$',
        '"data":[{"quantity":1},{"quantity":2}]$1}',
    ),
    (4, r'(,"idempotencyKey":"[^"]*")?\}$', ',"idempotencyKey":"evt_' + "x" * 300 + '"}'),
)


def _lines(df: pl.DataFrame) -> pl.Series:
    """The JSON text of every row of a chunk frame: one flat concatenation of prebuilt parts."""
    c = pl.col
    key = pl.when(c("has_key"))
    lines = (
        df.with_columns(specific=_specific(df))
        .select(
            _lit(
                c("head"),
                c("attribution"),
                c("date"),
                c("hm"),
                c("sm"),
                '","data":{',
                c("user"),
                c("model"),
                c("specific"),
                "}",
                key.then(pl.lit(',"idempotencyKey":"evt_')),
                key.then(c("key")),
                key.then(pl.lit('"')),
                "}",
            )
        )
        .to_series()
    )
    rejected = (df["kind"] == DIRT_KINDS.index("rejected")).to_numpy()
    for sub, pattern, replacement in _REJECTS:
        rows = np.flatnonzero(rejected & (df["sub"] == sub).to_numpy())
        if len(rows):
            lines.scatter(rows, lines.gather(rows).str.replace(pattern, replacement))
    return lines


def _chunk(
    co: _Company,
    tab: _Tables,
    rng: np.random.Generator,
    n: int,
    day: int,
    q: tuple[float, float],
    first: int,
    dirt: float,
    seed: int,
    pool: pl.Series,
) -> tuple[pl.Series, pl.Series, dict[str, int]]:
    """`n` signals of file `day` whose times lie in the diurnal quantiles `q`; returns the lines,
    the resend pool for later chunks and the counts."""
    k = {name: i for i, name in enumerate(DIRT_KINDS)}
    n_c, n_e, n_u = len(co.customers), len(EVENTS), len(co.users)
    rand = lambda: rng.random(n) * (1 - 1e-12)  # noqa: E731 - strictly below 1
    tod = np.interp(np.sort(q[0] + (q[1] - q[0]) * rng.random(n)), _HOUR_CDF, _HOUR_MS)
    tod = tod.astype(np.int64)
    kind = np.full(n, -1)
    dirty = np.flatnonzero(rng.random(n) < dirt)
    kind[dirty] = np.searchsorted(_KIND_CDF / _KIND_CDF[-1], rng.random(len(dirty)), "right")
    if day == 0:
        kind[kind == k["late"]] = -1  # keep late signals inside the period
    special = min(7, n - 1) if first == 0 and dirt > 0 else -1
    spelled = kind == k["key_spelling"]
    cust = np.searchsorted(tab.cust_cdf, rand(), "right")
    cust[spelled] = tab.spell_customer
    e = np.searchsorted(tab.event_cdf, cust + rand(), "right") - cust * n_e
    e[kind == k["bad_quantity"]] = DOC
    user = np.searchsorted(tab.user_cdf, cust + rand(), "right")
    has_user = ((rng.random(n) < tab.user_rate[e]) | spelled) & (kind != k["unknown_customer"])
    if special >= 0:
        kind[special], cust[special], e[special] = -1, 0, CHAT
    sub, qk = rng.integers(0, 30, n), rng.integers(0, 10, n)
    late = kind == k["late"]
    lag = np.zeros(n, np.int64)
    lag[late] = 1 + (rng.random(late.sum()) * min(5, day)).astype(np.int64)
    has_key = rng.random(n) < KEY_SHARE
    tokens_in, tokens_out = rng.integers(50, 4001, n), rng.integers(20, 1501, n)
    tokens_out += (tokens_in + tokens_out) % 1000 == 0  # tokens_k keeps a fractional digit
    tokens = tokens_in + tokens_out
    model = tab.model_at[e] + (rand() * tab.model_n[e]).astype(np.int64)
    unattributed = kind == k["missing_attribution"]
    df = pl.DataFrame(
        {
            "kind": kind,
            "sub": sub % 5,
            "e": e,
            "has_key": has_key,
            "qk": qk,
            "qi": rng.integers(0, 11, n),
            "qa": rng.integers(0, 5, n),
            "qb": rng.integers(1, 10, n),
            "q8": pl.Series(_FRAC8).gather(rng.integers(1, 8, n)),
            "bad": pl.Series(BAD_QUANTITIES).gather(sub % 6),
            "tk": tokens // 1000,
            "tf": tokens % 1000,
            "it": tokens_in,
            "ot": tokens_out,
            "conv": rng.integers(100_000, 1_000_000, n),
            "dim": rng.choice([1536, 3072], n),
            "pages": rng.integers(1, 121, n),
            "rcpt": rng.integers(1, 26, n),
            "fmt": pl.Series(["pdf", "docx", "png", "html"]).gather(rng.integers(0, 4, n)),
            "tpl": pl.Series(["follow_up", "intro", "renewal"]).gather(rng.integers(0, 3, n)),
            "head": tab.head.gather(
                e * (n_c + 10) + np.where(kind == k["unknown_customer"], n_c + sub % 10, cust)
            ),
            "attribution": tab.attribution.gather(
                np.select(  # null for half, absent for the rest
                    [kind == k["unknown_product"], unattributed & (qk < 5), unattributed],
                    [n_e + sub % 3, n_e + 3, n_e + 4],
                    e,
                )
            ),
            "date": tab.date.gather(day - lag + 5),
            "hm": tab.hour_minute.gather(tod // 60_000),
            "sm": tab.second_ms.gather(tod % 60_000),
            "user": tab.user.gather(np.where(has_user, user + spelled * n_u, 2 * n_u)),
            "model": tab.model.gather(np.where(tab.model_n[e] > 0, model, len(tab.model) - 1)),
            "key": _hex(
                _mix64(
                    np.arange(first, first + n, dtype=np.uint64)
                    + np.uint64((seed % (1 << 24)) << 40)
                )
            ),
        }
    )
    lines = _lines(df)
    if special >= 0:  # one signal whose data tests exactness: big integer, 0.1, Team/team, UTF-8
        at = co.start + timedelta(days=day, milliseconds=int(tod[special]))
        head = tab.head[CHAT * (n_c + 10)] + tab.attribution[CHAT]
        lines.scatter(
            special,
            f'{head},"timestamp":"{at:%Y-%m-%dT%H:%M:%S}.'
            f'{at.microsecond // 1000:03d}Z","data":{SPECIAL_DATA},'
            f'"idempotencyKey":"evt_special_{seed}"}}',
        )
    # duplicates: exact resends of an earlier keyed clean signal, of this chunk or an earlier one
    clean = np.flatnonzero((kind == -1) & has_key & (np.arange(n) != special))
    dup = np.flatnonzero(kind == k["duplicate"])
    earlier = np.searchsorted(clean, dup)
    use_pool = (len(pool) > 0) & ((rng.random(len(dup)) < 0.5) | (earlier == 0))
    kind[dup[~use_pool & (earlier == 0)]] = -1  # nothing earlier to resend yet
    same = ~use_pool & (earlier > 0)
    if same.any():
        src = clean[(rng.random(same.sum()) * earlier[same]).astype(np.int64)]
        lines.scatter(dup[same], lines.gather(src))
    if use_pool.any():
        lines.scatter(dup[use_pool], pool.gather(rng.integers(0, len(pool), use_pool.sum())))
    if len(clean):
        pool = lines.gather(np.sort(rng.choice(clean, min(2000, len(clean)), replace=False)))
    # counts
    counts = {f"dirt.{name}": int((kind == i).sum()) for i, name in enumerate(DIRT_KINDS)}
    counts["special"] = int(special >= 0)
    counts["clean"] = int((kind == -1).sum()) - counts["special"]
    rejected = kind == k["rejected"]
    for i, name in enumerate(REJECTED):
        counts[f"rejected.{name}"] = int((rejected & (sub % 5 == i)).sum())
    for i, name in enumerate(BAD_QUANTITIES):
        counts[f"bad_quantity.{name}"] = int(((kind == k["bad_quantity"]) & (sub % 6 == i)).sum())
    named = (kind != k["duplicate"]) & ~(rejected & (sub % 5 == 0))
    for i, ev in enumerate(EVENTS):
        counts[f"event.{ev[0]}"] = int((named & (e == i)).sum())
    keyed = has_key | (rejected & (sub % 5 == 4)) | (np.arange(n) == special)
    counts["idempotency_keys"] = int((keyed | (kind == k["duplicate"])).sum())
    return lines, pool, counts


def synth(
    out: Path,
    *,
    signals: int = 20_000,
    days: int = 14,
    customers: int = 6,
    seed: int = 7,
    start: date = date(2026, 11, 1),
    dirt: float = 0.02,
    progress: Callable[[int], None] | None = None,
) -> SynthResult:
    """Write `out/config/company.yaml` and `out/signals/day-YYYY-MM-DD.jsonl`, deterministically.

    `signals` lines in total (resends and rejects included) over `days` daily files; about a
    share `dirt` of them is trouble (see `DIRT_KINDS`). Stale `day-*.jsonl` files in
    `out/signals` are removed first. `progress` receives the number of signals written so far.
    """
    if signals < 0 or seed < 0 or not 0.0 <= dirt <= 1.0:
        raise ValueError("signals and seed must be >= 0 and dirt within [0, 1]")
    out = Path(out)
    write_config(
        out / "config", customers=customers, seed=seed, start=start, days=days, signals=signals
    )
    co = _company(customers, seed, start, days)
    tab = _Tables(co)
    signal_dir = out / "signals"
    signal_dir.mkdir(parents=True, exist_ok=True)
    for stale in sorted(signal_dir.glob("day-*.jsonl")):
        stale.unlink()
    counts: dict[str, int] = {}
    pool = pl.Series(dtype=pl.String)
    files, written = [], 0
    for day, n_day in enumerate(_day_counts(signals, start, days)):
        path = signal_dir / f"day-{(start + timedelta(days=day)).isoformat()}.jsonl"
        parts = max(1, -(-int(n_day) // CHUNK))
        edges = [int(n_day) * j // parts for j in range(parts + 1)]
        with path.open("wb") as fh:
            for j in range(parts):
                n = edges[j + 1] - edges[j]
                if n == 0:
                    continue
                rng = np.random.default_rng([seed, 2, day, j])
                q = (edges[j] / n_day, edges[j + 1] / n_day)
                lines, pool, got = _chunk(co, tab, rng, n, day, q, written, dirt, seed, pool)
                pl.DataFrame({"line": lines}).write_csv(
                    fh, include_header=False, quote_style="never"
                )
                for name, value in got.items():
                    counts[name] = counts.get(name, 0) + value
                written += n
                if progress is not None:
                    progress(written)
        files.append(path)
    counts["signals"] = written
    return SynthResult(out / "config", tuple(files), written, dict(sorted(counts.items())))

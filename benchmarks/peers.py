"""Figure 6: the same pricing and per-customer/day totals computed by peers on the same files.

Each peer reads the landed Parquet files of a home's lake (listed by the catalog, as Tally's
readers do) and the same configuration (`load_config`), and computes for every (customer, UTC day)
the number of accepted signals and their credits, with Tally's pricing rules: duplicates
(the `is_duplicate` flag) are skipped; a signal earns credits only if its customer is known and a
rule of its product for its event is in force at its timestamp; the quantity comes from the rule's
`quantity_path` (absent or null -> 1; a number >= 0 or a string holding a plain decimal >= 0;
below 10^18 with at most 12 decimal places; anything else earns nothing); credits =
round_half_away_from_zero(credit_cost x quantity, 6), in exact decimals.

- `chdb`: ClickHouse, embedded; reads the files with file(..., Parquet); `sql/peer_chdb.sql`.
- `polars`: lazy `scan_parquet`, `str.json_path_match`, `Decimal(38, 18)` arithmetic.
- `python`: the json module and decimal.Decimal, signal by signal, on the first `PYTHON_SAMPLE`
  landed signals (all of them when fewer).

Tally's own figure is `fact_signal` summed the same way (`sql/tally_customer_day.sql`). Tally does
more per signal (recipients, hot-key columns, the row written to `fact_signal`) and per run (the
ledger, checks, publishing); the peers only price and total.

Known differences, none of which this workload exercises (the harness checks equality anyway):
ClickHouse and Polars parse JSON numbers with more than 15 significant digits through doubles
(Tally re-reads them exactly); Polars' JSONPath returns strings unquoted, so it takes the string
"1e2" (invalid) for the number 1e2 (a quantity), and its Decimal(38, 18) arithmetic raises on
credit products of 10^20 or more.

`python -m benchmarks.peers ENGINE HOME OUT [--max-seq N]` runs one peer and writes its totals and
compute time (files and configuration read, priced, totalled) to OUT as JSON.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext
from pathlib import Path

from benchmarks.harness import Bench, python
from pipelines.pricing.config import Config, load_config
from pipelines.pricing.paths import Segment, parse_path

ENGINES = ("chdb", "polars", "python")
LIBRARIES = {"chdb": "chdb", "polars": "polars", "python": "pyarrow.parquet"}
PYTHON_SAMPLE = 1_000_000
SQL_DIR = Path(__file__).resolve().parent / "sql"
PLAIN = r"[0-9]+(\.[0-9]+)?"  # a plain decimal number >= 0, as text
MICRO = Decimal("0.000001")
MAX_CREDITS = Decimal(10) ** 32  # DECIMAL(38, 6)
DAY_US = 86_400_000_000
EPOCH = date(1970, 1, 1)

Totals = dict[tuple[str, str], tuple[int, Decimal]]


def load_sql(name: str) -> str:
    return (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")


@dataclass(frozen=True)
class Rule:
    product: str
    event: str
    start_us: int | None  # valid_from, microseconds since the epoch (None: unbounded)
    end_us: int | None  # valid_until, exclusive
    cost: Decimal
    path: tuple[Segment, ...] | None  # quantity_path segments (None: 1 per signal)


def _us(t: datetime | None) -> int | None:
    return (
        None if t is None else (t - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    )


def rules_of(config: Config) -> list[Rule]:
    return [
        Rule(
            p.external_id,
            r.event,
            _us(r.valid_from),
            _us(r.valid_until),
            r.credit_cost,
            None if r.quantity_path is None else parse_path(r.quantity_path),
        )
        for p in config.products
        for r in p.pricing
    ]


def quantity_paths(rules: Iterable[Rule]) -> list[tuple[Segment, ...]]:
    """The distinct quantity paths, in a stable order (rule `path_index` i is the i-th, from 1)."""
    return sorted({r.path for r in rules if r.path is not None}, key=repr)


# --- plain Python ---------------------------------------------------------------------------

_PLAIN = re.compile(PLAIN)


def _value_at(data: str, path: tuple[Segment, ...]) -> object:
    """The JSON value at `path` in `data` (None when absent), numbers as int or Decimal."""
    value = json.loads(data, parse_float=Decimal)
    for segment in path:
        if isinstance(value, dict) and str(segment) in value:
            value = value[str(segment)]
        elif isinstance(value, list) and isinstance(segment, int) and segment < len(value):
            value = value[segment]
        else:
            return None
    return value


def python_quantity(value: object) -> Decimal | None:
    """The quantity rule for one value: the quantity, or None when it is invalid."""
    if value is None:
        return Decimal(1)
    if isinstance(value, bool):
        return None
    if isinstance(value, int | Decimal):
        number = Decimal(value)
    elif isinstance(value, str) and _PLAIN.fullmatch(value):
        number = Decimal(value)
    else:
        return None
    if number < 0 or number >= 10**18 or number != number.quantize(Decimal("1e-12")):
        return None
    return number


def python_credits(rule: Rule, data: str) -> Decimal:
    quantity = Decimal(1) if rule.path is None else python_quantity(_value_at(data, rule.path))
    if quantity is None:
        return Decimal(0)
    credits = (rule.cost * quantity).quantize(MICRO, ROUND_HALF_UP)
    return credits if credits < MAX_CREDITS else Decimal(0)


COLUMNS = [
    "customer_id",
    "external_customer_id",
    "product_id",
    "external_product_id",
    "event_name",
    "timestamp",
    "data",
    "is_duplicate",
]


def python_totals(files: list[str], config: Config, max_seq: int | None) -> Totals:
    import pyarrow as pa
    import pyarrow.parquet as pq

    customers = {c.external_id for c in config.customers}
    rules: dict[tuple[str, str], list[Rule]] = {}
    for rule in rules_of(config):
        rules.setdefault((rule.product, rule.event), []).append(rule)
    totals: dict[tuple[str, int], list] = {}
    keep = None if max_seq is None else [("seq", "<=", max_seq)]
    with localcontext(prec=100):  # exact: every product of DECIMAL(38,6) x DECIMAL(30,12) fits
        for path in files:
            table = pq.read_table(path, columns=COLUMNS, filters=keep)
            table = table.set_column(5, "timestamp", table["timestamp"].cast(pa.int64()))
            for cid, ecid, pid, epid, event, ts, data, dup in zip(
                *(c.to_pylist() for c in table.columns), strict=True
            ):
                if dup:
                    continue
                customer = cid if cid is not None else ecid
                product = pid if pid is not None else epid
                credits = Decimal(0)
                if customer in customers:
                    for rule in rules.get((product, event), ()):
                        if (rule.start_us is None or rule.start_us <= ts) and (
                            rule.end_us is None or ts < rule.end_us
                        ):
                            credits = python_credits(rule, data)
                            break
                total = totals.setdefault((customer, ts // DAY_US), [0, Decimal(0)])
                total[0] += 1
                total[1] += credits
    return {
        (c, (EPOCH + timedelta(days=d)).isoformat()): (n, s) for (c, d), (n, s) in totals.items()
    }


# --- Polars ---------------------------------------------------------------------------------


def _jsonpath(path: tuple[Segment, ...]) -> str:
    return "$" + "".join(f"[{s}]" if isinstance(s, int) else f"['{s}']" for s in path)


def polars_totals(files: list[str], config: Config) -> Totals:
    import polars as pl

    rules = rules_of(config)
    paths = quantity_paths(rules)
    never = datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC)
    rule_frame = pl.LazyFrame(
        {
            "product": [r.product for r in rules],
            "event_name": [r.event for r in rules],
            "valid_from": [never[0] if r.start_us is None else _dt(r.start_us) for r in rules],
            "valid_until": [never[1] if r.end_us is None else _dt(r.end_us) for r in rules],
            "credit_cost": [str(r.cost) for r in rules],
            "path_index": [0 if r.path is None else paths.index(r.path) + 1 for r in rules],
        },
        schema_overrides={
            "valid_from": pl.Datetime("us", "UTC"),
            "valid_until": pl.Datetime("us", "UTC"),
        },
    ).with_columns(pl.col("credit_cost").cast(pl.Decimal(38, 18)))
    signals = (
        pl.scan_parquet(files)
        .filter(~pl.col("is_duplicate"))
        .select(
            customer=pl.coalesce("customer_id", "external_customer_id"),
            product=pl.coalesce("product_id", "external_product_id"),
            event_name="event_name",
            timestamp="timestamp",
            day=pl.col("timestamp").dt.date(),
            data="data",
        )
    )
    # Rules of one product and event never overlap: at most one is in force per signal.
    ruled = (
        signals.filter(pl.col("customer").is_in([c.external_id for c in config.customers]))
        .join(rule_frame, on=["product", "event_name"])
        .filter(
            (pl.col("valid_from") <= pl.col("timestamp"))
            & (pl.col("timestamp") < pl.col("valid_until"))
        )
    )
    # One JSON parse per signal: each signal is matched against its own rule's path only.
    texts = [ruled.filter(pl.col("path_index") == 0).with_columns(qtext=pl.lit("1"))]
    texts += [
        ruled.filter(pl.col("path_index") == i).with_columns(
            qtext=pl.col("data").str.json_path_match(_jsonpath(path)).fill_null("1")
        )
        for i, path in enumerate(paths, 1)
    ]
    # A JSON number or a plain decimal (the path match gives both as bare text), >= 0, below
    # 10^18, at most 12 decimal places; numbers may come back as 5e-7.
    quantity = pl.col("qtext").cast(pl.Decimal(38, 18), strict=False)
    valid = (
        pl.col("qtext").str.contains(f"^-?{PLAIN}([eE][+-]?[0-9]+)?$")
        & (quantity >= 0)
        & (quantity < 10**18)
        & (quantity == quantity.round(12))
    )
    credits = (
        pl.concat(texts)
        .select(
            "customer",
            "day",
            credits=(pl.col("credit_cost") * pl.when(valid).then(quantity))
            .round(6, mode="half_away_from_zero")
            .cast(pl.Decimal(38, 6)),
        )
        .group_by("customer", "day")
        .agg(pl.col("credits").sum())
    )
    frame = (
        signals.group_by("customer", "day")
        .agg(signals=pl.len())
        .join(credits, on=["customer", "day"], how="left")
        .collect()
    )
    return {
        (c, d.isoformat()): (n, Decimal(0) if s is None else Decimal(s))
        for c, d, n, s in frame.select("customer", "day", "signals", "credits").iter_rows()
    }


def _dt(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


# --- ClickHouse (chdb) ----------------------------------------------------------------------


def _file_pattern(files: list[str]) -> str:
    """One ClickHouse path pattern naming exactly these files: `<dir>/{a/x.parquet,b/y.parquet}`."""
    root = os.path.dirname(files[0]) if len(files) == 1 else os.path.commonpath(files)
    return root + "/{" + ",".join(os.path.relpath(f, root) for f in files) + "}"


def _quantity_raw(paths: list[tuple[Segment, ...]], params: dict[str, str]) -> str:
    """The SQL term for the raw JSON text at the signal's rule's path ('' if none or absent);
    keys are bound parameters, added to `params`."""
    branches = []
    for i, path in enumerate(paths, 1):
        args = []
        for j, segment in enumerate(path):
            if isinstance(segment, int):
                args.append(str(segment + 1))  # ClickHouse indices count from 1
            else:
                params[f"k{i}_{j}"] = segment
                args.append(f"{{k{i}_{j}:String}}")
        branches.append(f"path_index = {i}, JSONExtractRaw(data, {', '.join(args)})")
    return f"multiIf({', '.join(branches)}, '')" if branches else "''"


def chdb_totals(files: list[str], config: Config) -> Totals:
    import chdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = config.tables()
    rules = tables["dim_pricing_rule"]
    paths = quantity_paths(rules_of(config))
    index = pa.array(
        [
            0 if p is None else paths.index(parse_path(p)) + 1
            for p in rules["quantity_path"].to_pylist()
        ],
        pa.int32(),
    )
    params = {"files": _file_pattern(files)}
    sql = load_sql("peer_chdb").replace("{quantity_raw}", _quantity_raw(paths, params))
    with tempfile.TemporaryDirectory() as tmp:
        for name, table in (
            ("rules", rules.append_column("path_index", index)),
            ("customers", tables["dim_customer"]),
        ):
            params[name] = f"{tmp}/{name}.parquet"
            pq.write_table(table, params[name])
        result = chdb.query(sql, "JSONCompactEachRow", params=params)
    rows = (json.loads(line) for line in result.data().splitlines())
    return {(c, d): (int(n), Decimal(s)) for c, d, n, s in rows}


# --- Tally and the comparison ---------------------------------------------------------------


def tally_totals(home: Path, max_seq: int | None = None) -> Totals:
    """Tally's `fact_signal` (the published warehouse of `home`) summed per customer and day."""
    from pipelines.core.sql import connect
    from pipelines.landing.schema import signal_id

    last_id = None if max_seq is None else signal_id(max_seq)
    con = connect(home / "warehouse.duckdb", read_only=True)
    try:
        rows = con.execute(load_sql("tally_customer_day"), {"last_id": last_id}).fetchall()
    finally:
        con.close()
    return {(c, d): (n, s) for c, d, n, s in rows}


def differing_groups(peer: Totals, tally: Totals) -> int:
    """How many (customer, day) groups differ in signals or credits (or exist on one side only)."""
    return sum(peer.get(k) != tally.get(k) for k in peer.keys() | tally.keys())


def compute(engine: str, home: Path, max_seq: int | None = None) -> Totals:
    """One peer's totals over the lake of `home`, with the configuration of `home`."""
    from pipelines.landing.lake import Lake

    files = [str(f.path) for f in Lake(home / "lake").files()]
    config = load_config(home / "config")
    if engine == "python":
        return python_totals(files, config, max_seq)
    if max_seq is not None:
        raise ValueError("only the python peer works on a sample")
    return chdb_totals(files, config) if engine == "chdb" else polars_totals(files, config)


def python_sample(home: Path) -> int | None:
    """The last sequence number of the plain-Python sample: the first PYTHON_SAMPLE landed
    signals (None: all of them)."""
    from pipelines.landing.lake import Lake

    files = Lake(home / "lake").files()
    if sum(f.rows for f in files) <= PYTHON_SAMPLE:
        return None
    return min(f.min_seq for f in files) + PYTHON_SAMPLE - 1


LABELS = {"chdb": "ClickHouse (chdb)", "polars": "Polars", "python": "plain Python"}


def measure(bench: Bench) -> None:
    """Figure 6: each peer, in a process of its own, on the main home as the full run left it;
    its time, its ratio to Tally's full run, its peak RSS, and whether its totals equal Tally's."""
    home = bench.home
    tally_all = tally_totals(home)
    for engine in ENGINES:
        max_seq = python_sample(home) if engine == "python" else None
        out = bench.dir / f"peer-{engine}.json"
        sample = [] if max_seq is None else ["--max-seq", str(max_seq)]
        _, rss, _ = python("benchmarks.peers", engine, str(home), str(out), *sample)
        result = json.loads(out.read_text())
        totals = {(c, d): (n, Decimal(s)) for c, d, n, s in result["groups"]}
        expected = tally_all if max_seq is None else tally_totals(home, max_seq)
        share = _signals(expected) / _signals(tally_all)  # of Tally's work this peer did
        label = LABELS[engine] + ("" if max_seq is None else f" (first {PYTHON_SAMPLE:,})")
        bench.add(
            f"peer_{engine}", 6, f"{label}: pricing + customer/day totals", "s", result["seconds"]
        )
        bench.add(
            f"peer_{engine}_ratio",
            6,
            f"{LABELS[engine]} / Tally full run, per signal",
            "x",
            result["seconds"] / share / bench.last("run"),
        )
        bench.add(f"peer_{engine}_rss", 6, f"{LABELS[engine]} peak RSS", "GB", rss / 1e9)
        differing = differing_groups(totals, expected)
        bench.check(
            f"peer_{engine}",
            differing == 0,
            signals=_signals(expected),
            groups=len(expected),
            differing_groups=differing,
        )


def _signals(totals: Totals) -> int:
    return sum(n for n, _ in totals.values())


def main() -> None:
    parser = argparse.ArgumentParser(description="Run one peer; write its totals as JSON.")
    parser.add_argument("engine", choices=ENGINES)
    parser.add_argument("home", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--max-seq", type=int, default=None)
    args = parser.parse_args()
    importlib.import_module(LIBRARIES[args.engine])  # loading a library is not the peer's work
    t = time.perf_counter()
    totals = compute(args.engine, args.home, args.max_seq)
    seconds = time.perf_counter() - t
    groups = [[c, d, n, str(s)] for (c, d), (n, s) in sorted(totals.items())]
    args.out.write_text(json.dumps({"engine": args.engine, "seconds": seconds, "groups": groups}))


if __name__ == "__main__":
    main()

"""Pricing: one day's landed signals -> priced `fact_signal` rows, in DuckDB (docs/concepts.md).

The SQL lives in `sql/priced_signal.sql`. This module prepares its inputs (the day's lake files,
the configuration's dimension tables, the list of JSON pointers to extract) and writes the result
atomically to `<home>/engine/fact_signal/date=YYYY-MM-DD/data.parquet`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, localcontext
from pathlib import Path

import duckdb
import msgspec
import pyarrow as pa

from pipelines.billing.shards import ONE, Shard
from pipelines.core.sql import connect, render
from pipelines.landing.lake import Lake
from pipelines.landing.schema import LakeFile
from pipelines.pricing.config import Config
from pipelines.pricing.paths import parse_path, to_json_pointer
from pipelines.storage.files import ENGINE_KEPT, atomic

USER_POINTER = "/external_user_id"
_exact = msgspec.json.Decoder(float_hook=Decimal)


def exact_number(data: str | None, pointer: str | None) -> str | None:
    """The JSON number at `pointer` in `data` as exact plain decimal text (None if not a number).

    DuckDB reads JSON non-integers as doubles; the SQL calls this only for the rare values whose
    digits a double cannot carry (more than 15 significant digits, or exponent notation).
    """
    if data is None or pointer is None:
        return None
    try:
        value = _exact.decode(data)
    except msgspec.DecodeError:
        return None
    for raw in pointer.split("/")[1:]:
        key = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return None
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        return None
    return format(Decimal(value), "f")


_MAX_CREDITS = Decimal(10) ** 32


def exact_product(cost: str | None, quantity: str | None) -> str | None:
    """cost x quantity rounded half away from zero to 6 places, exactly (None if >= 10^32).

    The SQL multiplies in DECIMAL(38,18) and calls this only for products too large for it.
    """
    if cost is None or quantity is None:
        return None
    with localcontext() as ctx:
        ctx.prec = 100  # room for any DECIMAL(38,6) x DECIMAL(38,12) product, exactly
        product = (Decimal(cost) * Decimal(quantity)).quantize(Decimal("0.000001"), ROUND_HALF_UP)
    return None if product >= _MAX_CREDITS else format(product, "f")


@dataclass(frozen=True)
class PricedDay:
    day: str
    rows: int
    credits: Decimal
    statuses: dict[str, int]
    max_seq: int = 0  # the last landing sequence number this pricing covered
    credits_by_currency: dict[str, Decimal] = field(default_factory=dict)


def merge(parts: list[PricedDay]) -> PricedDay:
    """One day's figures from its shards' (counts and credits add up; the same max_seq)."""
    statuses: dict[str, int] = {}
    by_currency: dict[str, Decimal] = {}
    for p in parts:
        for status, n in p.statuses.items():
            statuses[status] = statuses.get(status, 0) + n
        for currency, total in p.credits_by_currency.items():
            by_currency[currency] = by_currency.get(currency, Decimal(0)) + total
    return PricedDay(
        day=parts[0].day,
        rows=sum(p.rows for p in parts),
        credits=sum((p.credits for p in parts), Decimal(0)),
        statuses=dict(sorted(statuses.items())),
        max_seq=max(p.max_seq for p in parts),
        credits_by_currency=dict(sorted(by_currency.items())),
    )


def fact_signal_path(engine_dir: Path, day: str, part: str = "data", shard: Shard = ONE) -> Path:
    return engine_dir / "fact_signal" / f"date={day}" / f"{part}{shard.suffix}.parquet"


def rollup_path(engine_dir: Path, day: str, part: str = "data", shard: Shard = ONE) -> Path:
    return engine_dir / "signal_rollup" / f"date={day}" / f"{part}{shard.suffix}.parquet"


MAX_LATE_FILES = 8  # late parts a shard's day may collect before pricing merges them


def fact_signal_files(engine_dir: Path, day: str, shard: Shard | None = None) -> list[Path]:
    """A day's priced signals (of every shard, or of `shard`): `data.parquet` plus the late parts
    appended since (each part holds the signals that landed after the previous pricing, named by
    their first sequence); no file for a day without signals."""
    found = sorted((engine_dir / "fact_signal" / f"date={day}").glob("*.parquet"))
    return found if shard is None else [p for p in found if shard.owns(p)]


def _late_parts(engine_dir: Path, day: str, shard: Shard) -> list[Path]:
    return [
        p
        for output in ("fact_signal", "signal_rollup")
        for p in (engine_dir / output / f"date={day}").glob("late-*.parquet")
        if shard.owns(p)
    ]


def hot_key_pointers(config: Config) -> list[str]:
    """JSON pointers of the configured hot keys, in order (column `hot_key_<i>` is the i-th)."""
    return [to_json_pointer(parse_path(k)) for k in config.hot_keys]


@dataclass(frozen=True)
class Prepared:
    pointers: list[str]
    hot_columns: str  # SQL terms `, x[j] AS hot_key_i` (integers only)
    hot_names: str  # `, hot_key_1, hot_key_2, ...`


def prepare(con: duckdb.DuckDBPyConnection, config: Config) -> Prepared:
    """Register the configuration tables and the exact-number UDF; plan the JSON extraction."""
    tables = config.tables()
    for name, table in tables.items():
        con.register(name, table)
    rules = tables["dim_pricing_rule"]
    hot = hot_key_pointers(config)
    pointers = [USER_POINTER]
    for p in sorted({p for p in rules["quantity_pointer"].to_pylist() if p is not None}) + hot:
        if p not in pointers:
            pointers.append(p)
    index = {p: i + 1 for i, p in enumerate(pointers)}
    path_index = pa.array([index.get(p) for p in rules["quantity_pointer"].to_pylist()], pa.int32())
    con.register("rule", rules.append_column("path_index", path_index))
    for name, fn in (("tally_exact_number", exact_number), ("tally_exact_product", exact_product)):
        try:
            con.create_function(
                name,
                fn,
                ["VARCHAR", "VARCHAR"],
                "VARCHAR",
                null_handling="special",
                side_effects=False,
            )
        except duckdb.CatalogException:
            pass  # already registered on this connection
    hot_columns = "".join(
        f",\n    CASE WHEN json_type(p.x[{index[p_]}]) <> 'NULL' THEN p.x[{index[p_]}]::VARCHAR END"
        f" AS hot_key_{i + 1}"
        for i, p_ in enumerate(hot)
    )
    hot_names = "".join(f", hot_key_{i + 1}" for i in range(len(hot)))
    return Prepared(pointers, hot_columns, hot_names)


def empty_fact_signal(config: Config) -> pa.Table:
    """A fact_signal table with no rows and the schema pricing produces (hot keys included)."""
    from pipelines.landing.schema import SIGNAL_SCHEMA

    con = connect()
    prepared = prepare(con, config)
    con.register("landed", SIGNAL_SCHEMA.empty_table())
    sql = render("priced_signal", hot_columns=prepared.hot_columns)
    return con.sql(sql, params={"pointers": prepared.pointers}).to_arrow_table()


def empty_rollup(config: Config) -> pa.Table:
    """A signal_rollup table with no rows and the exact schema pricing produces."""
    con = connect()
    prepared = prepare(con, config)
    con.register("fact", empty_fact_signal(config))
    sql = render("signal_rollup", hot_key_columns=prepared.hot_names)
    return con.sql(sql).to_arrow_table()


def price_day(
    con: duckdb.DuckDBPyConnection,
    lake: Lake,
    engine_dir: Path,
    day: str,
    prepared: Prepared,
    since: int | None = None,
    shard: Shard = ONE,
) -> PricedDay:
    """Price the landed signals of `day` into that day's `fact_signal` and `signal_rollup`.

    Without `since`, every signal of the day is priced into `data.parquet` (late parts removed).
    With `since` (the last landing sequence number already priced, when neither the signals nor
    the configuration of that day changed otherwise), only later signals (late arrivals) are
    priced, into a part of their own beside the day's rows: pricing a signal never depends on the
    others, so a day that receives a few late signals costs what those signals cost. After
    MAX_LATE_FILES parts the day is priced whole again, which bounds its files.

    With several shards, only the signals of `shard`'s customers are priced, into its own files.
    """
    day_files = lake.files(date=day)
    lake.check(day_files)  # size always; the checksum of a file modified since it was written
    if not day_files:
        for output in (fact_signal_path, rollup_path):
            output(engine_dir, day, shard=shard).unlink(missing_ok=True)
        for path in _late_parts(engine_dir, day, shard):
            path.unlink()
        return PricedDay(day, 0, Decimal(0), {}, 0)
    existing = fact_signal_files(engine_dir, day, shard)
    append = since is not None and bool(existing) and len(existing) <= MAX_LATE_FILES
    # `since` is an integer from Dagster's records; a view's definition takes no parameters.
    landed_view(con, day_files, shard, [f"seq > {int(since)}"] if append else [])
    ((max_seq,),) = con.execute("SELECT max(seq) FROM landed_all").fetchall()
    if append and max_seq <= since:
        return _counts(con, engine_dir, day, max_seq, shard)  # nothing new (e.g. compaction)
    part = f"late-{int(since) + 1:016d}" if append else "data"
    _write_part(con, engine_dir, day, part, prepared, shard)
    if not append:
        for path in _late_parts(engine_dir, day, shard):
            path.unlink()
    return _counts(con, engine_dir, day, max_seq, shard)


_CUSTOMER = "coalesce(customer_id, external_customer_id)"  # as priced_signal.sql joins it


def landed_view(
    con: duckdb.DuckDBPyConnection, files: list[LakeFile], shard: Shard, where: list[str] = ()
) -> None:
    """Views over lake files: `landed_all`, every row; `landed`, the rows of `shard`'s customers
    (signals without a customer in shard 0) meeting the SQL conditions `where` (trusted text).

    Files carry each signal's shard key and are sorted by it, so a shard's range condition
    skips the row groups of other shards. Files from before shard keys (a lake of an earlier
    version, until compaction rewrites them) are filtered by hashing the day's customer ids."""
    keyed = all(f.keyed for f in files)
    con.read_parquet([str(f.path) for f in files], union_by_name=not keyed).create_view(
        "landed_all", replace=True
    )
    where = list(where)
    if shard.count > 1 and keyed:
        first, last = shard.keys
        where.append(f"shard_key BETWEEN {int(first)} AND {int(last)}")
    elif shard.count > 1:
        keys = con.execute(f"SELECT DISTINCT {_CUSTOMER} FROM landed_all").fetchall()
        mine = [k for (k,) in keys if k is not None and shard.holds(k)]
        con.execute(
            "CREATE OR REPLACE TEMP TABLE shard_keys AS SELECT unnest($keys::VARCHAR[]) AS k",
            {"keys": mine},
        )
        where.append(
            f"({_CUSTOMER} IN (SELECT k FROM shard_keys)"
            + (f" OR {_CUSTOMER} IS NULL)" if shard.index == 0 else ")")
        )
    con.execute(
        "CREATE OR REPLACE TEMP VIEW landed AS SELECT * FROM landed_all"
        + (" WHERE " + " AND ".join(where) if where else "")
    )


def _write_part(
    con: duckdb.DuckDBPyConnection,
    engine_dir: Path,
    day: str,
    part: str,
    prepared: Prepared,
    shard: Shard,
) -> None:
    """Price view `landed` into the day's fact_signal part `part`, then its rollup part."""
    sql = render("priced_signal", hot_columns=prepared.hot_columns)
    out = fact_signal_path(engine_dir, day, part, shard)
    # DuckDB writes the Parquet itself (in parallel, without a trip through Python).
    with atomic(out, kept=ENGINE_KEPT) as tmp:
        con.execute(
            f"COPY ({sql}) TO $out (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, "
            "ROW_GROUP_SIZE 122880)",
            {"pointers": prepared.pointers, "out": str(tmp)},
        )
    con.read_parquet(str(out)).create_view("fact", replace=True)
    with atomic(rollup_path(engine_dir, day, part, shard), kept=ENGINE_KEPT) as tmp:
        con.execute(
            "COPY ("
            + render("signal_rollup", hot_key_columns=prepared.hot_names)
            + ") TO $out (FORMAT parquet, COMPRESSION zstd)",
            {"out": str(tmp)},
        )


def _counts(
    con: duckdb.DuckDBPyConnection, engine_dir: Path, day: str, max_seq: int, shard: Shard
) -> PricedDay:
    """The shard's rows, credits (per currency) and statuses of the day, from two columns of
    its files."""
    counts = con.execute(
        "SELECT status, currency, count(*), sum(credits) FROM read_parquet($f) GROUP BY ALL",
        {"f": [str(p) for p in fact_signal_files(engine_dir, day, shard)]},
    ).fetchall()
    statuses: dict[str, int] = {}
    by_currency: dict[str, Decimal] = {}
    for status, currency, n, total in counts:
        statuses[status] = statuses.get(status, 0) + n
        if currency is not None and total is not None:
            by_currency[currency] = by_currency.get(currency, Decimal(0)) + total
    return PricedDay(
        day=day,
        rows=sum(statuses.values()),
        credits=sum(by_currency.values(), Decimal(0)),
        statuses=statuses,
        max_seq=max_seq,
        credits_by_currency=dict(sorted(by_currency.items())),
    )

"""Publish `warehouse.duckdb`: views over the engine's Parquet plus the dimension tables.

The file is built beside the old one and renamed over it, so publishing never waits for readers
and readers never see a half-published warehouse (docs/warehouse.md).

The warehouse explains itself: every analyst-facing table, view and column carries a comment
(COMMENTS below; `tally schema` and docs/schema.md are made from them), internal objects live in
the `internal` schema, and the hot keys are columns named after their keys (`team`, ...). Views
hold paths relative to the home (see sql/warehouse.sql), so a copied or moved home still works.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pyarrow as pa

from pipelines.core import faults
from pipelines.core.home import Home
from pipelines.core.sql import connect, load_sql, render
from pipelines.landing.lake import Lake
from pipelines.landing.schema import REJECT_SCHEMA, REJECTS, SIGNAL_SCHEMA, SIGNALS
from pipelines.pricing.config import Config
from pipelines.pricing.paths import format_path, parse_path
from pipelines.pricing.price import hot_key_pointers
from pipelines.storage.files import ENGINE_KEPT, atomic, write_parquet_atomic

STATUSES = (
    "status: priced (charged: credits = credit_cost x quantity, to the recipient); "
    "unknown_customer (customer not in the configuration); unattributed (no product "
    "attribution); unknown_product (product not in the configuration); unpriced (no pricing "
    "rule of the product for the event in force at timestamp); invalid_quantity (the value at "
    "the rule's quantity_path is not a number >= 0). Every status but priced has 0 credits, no "
    "currency and no recipient, and is re-priced when the configuration changes"
)
CREDITS = "credits"
_RECIPIENT = {
    "customer_id": "customer (external id)",
    "recipient_type": "organization (the customer's pool) or seat",
    "recipient_id": "the customer id for the organization pool, else the seat id",
    "currency": "credit currency (dim_currency.currency); never added across currencies",
}
_BALANCE = {
    "date": "UTC day",
    **_RECIPIENT,
    "opening_balance": f"closing balance of the previous day ({CREDITS})",
    "granted": f"credits of grants that started this day ({CREDITS})",
    "spent": f"credits of priced signals charged this day ({CREDITS})",
    "expired": f"credits forfeited by grants that expired this day ({CREDITS})",
    "closing_balance": f"opening + granted - spent - expired = available - overage ({CREDITS})",
    "available": f"remaining credits of grants in force at the end of the day ({CREDITS})",
    "overage": f"consumption no grant could fund, outstanding at the end of the day ({CREDITS})",
}
_GRANT = {
    "grant_id": "grant id (config)",
    "customer_id": "customer (external id)",
    "seat_id": "the seat for a seat-scoped grant, NULL for the organization pool",
    "recipient_type": "organization or seat",
    "recipient_id": "the customer id (pool) or the seat id",
    "currency": "credit currency",
    "amount": f"credits granted ({CREDITS})",
    "starts_at": "when the grant starts (UTC instant, inclusive)",
    "expires_at": "when the remaining credits are forfeited (UTC instant, exclusive); NULL: never",
    "priority": "burn order: lower burns first (then expires_at, starts_at, grant_id)",
    "origin": "free label (purchased, promotional, ...)",
}
# Every analyst-facing object: (its comment, {column: comment}). The test suite checks that every
# column of every table and view in the main schema has one.
COMMENTS: dict[str, tuple[str, dict[str, str]]] = {
    "fact_signal": (
        "Every accepted, de-duplicated signal with its pricing: one row per signal. "
        "Times are UTC; credits exact DECIMAL(38,6). " + STATUSES,
        {
            "signal_id": "time-ordered unique id given at landing",
            "idempotency_key": "the idempotencyKey sent (a key counts once, forever)",
            "event_name": "eventName as sent",
            "customer_id": "customer (external id; as sent when unknown)",
            "product_id": "product (external id; as sent when unknown; NULL: unattributed)",
            "user_id": "data.external_user_id as sent (NULL: none)",
            "timestamp": "event time (UTC instant; received_at when not sent)",
            "received_at": "when Tally accepted the signal (UTC instant)",
            "data": "the signal's data object exactly as sent (JSON text)",
            "status": STATUSES,
            "rule_id": "the pricing rule applied (dim_pricing_rule.rule_id)",
            "currency": "currency of the credits; NULL unless a rule applied",
            "quantity": "quantity priced (value at the rule's quantity_path, else 1); NULL "
            "unless priced",
            "credit_cost": "the rule's credits per unit (DECIMAL(38,6))",
            "credits": f"credit_cost x quantity rounded half away from zero ({CREDITS}); 0 "
            "unless priced",
            "recipient_type": "who pays: organization (the pool) or seat; NULL unless priced",
            "recipient_id": "the customer id (pool) or the seat id; NULL unless priced",
            "invalid_quantity": "the offending quantity value (status invalid_quantity)",
            "day": "UTC day of timestamp",
        },
    ),
    "signal_rollup": (
        "fact_signal summed per UTC day and dimension (fast breakdowns): one row per group.",
        {
            "day": "UTC day of timestamp",
            "customer_id": "customer (external id)",
            "product_id": "product (external id)",
            "event_name": "eventName",
            "user_id": "data.external_user_id",
            "seat_id": "the seat charged (NULL: organization pool or not priced)",
            "currency": "currency (NULL: not priced)",
            "status": STATUSES,
            "recipient_type": "organization or seat (NULL: not priced)",
            "recipient_id": "the customer id (pool) or the seat id (NULL: not priced)",
            "signals": "number of signals (of this status)",
            "quantity": "sum of quantity (priced signals)",
            "credits": f"sum of credits ({CREDITS})",
        },
    ),
    "balance_snapshot": (
        "Balances per UTC day and recipient (organization pool or seat) and currency, dense "
        "from the recipient's first grant or spend to the last processed day. "
        "closing = opening + granted - spent - expired = available - overage.",
        _BALANCE,
    ),
    "grant_balance": (
        "Each grant's state at the end of each UTC day of the ledger.",
        {
            "date": "UTC day",
            "grant_id": "grant id (dim_credit_grant.grant_id)",
            "used": f"credits of the grant spent so far ({CREDITS})",
            "expired": f"credits forfeited at expires_at ({CREDITS})",
            "remaining": f"credits left to spend ({CREDITS})",
        },
    ),
    "fact_credit_transaction": (
        "Every credit movement: grant (+amount at starts_at), spend (-credits per priced "
        "signal), expire (-forfeited at expires_at).",
        {
            "type": "grant, spend or expire",
            **_RECIPIENT,
            "amount": f"signed credits: + for grants, - for spends and expiries ({CREDITS})",
            "occurred_at": "when (UTC instant)",
            "grant_id": "the grant (grant and expire rows)",
            "signal_id": "the signal charged (spend rows)",
        },
    ),
    "raw_signal": (
        "Everything landed, duplicates included (is_duplicate), as validated.",
        {
            "signal_id": "time-ordered unique id given at landing",
            "received_at": "when Tally accepted it (UTC instant)",
            "timestamp": "event time (UTC instant)",
            "event_name": "eventName",
            "customer_id": "customer.customerId as sent",
            "external_customer_id": "customer.externalCustomerId as sent",
            "product_id": "attribution.productId as sent",
            "external_product_id": "attribution.externalProductId as sent",
            "customer_unit": "customerUnit as sent",
            "data": "data exactly as sent (JSON text)",
            "idempotency_key": "idempotencyKey as sent",
            "is_duplicate": "a later copy of an idempotency key already received (never charged)",
            "duplicate_of": "the signal_id of the first copy",
            "source": "where it came from (file or API)",
        },
    ),
    "rejected_signal": (
        "Signals that failed validation, whole and as received, with the reason.",
        {
            "received_at": "when it was received (UTC instant)",
            "source": "where it came from (file or API)",
            "location": "file and line, or request",
            "reason": "why it was rejected",
            "raw": "the signal as received",
        },
    ),
    "dim_credit_grant": (
        "Grants (config) with their state at the end of the last processed UTC day.",
        {
            **_GRANT,
            "used": f"credits spent from it so far ({CREDITS})",
            "expired": f"credits forfeited ({CREDITS})",
            "remaining": f"credits left ({CREDITS})",
        },
    ),
    "statement_line": (
        "What the final monthly statements said: per month, recipient and currency the "
        "month's figures (kind statement) and the adjustments carried for earlier months "
        "(kind adjustment).",
        {
            "month": "the statement's month (first day, UTC)",
            "adjusted_month": "the month the figures belong to (= month for kind statement)",
            "kind": "statement or adjustment",
            **_RECIPIENT,
            "granted": f"credits granted ({CREDITS})",
            "spent": f"credits consumed ({CREDITS})",
            "expired": f"credits forfeited ({CREDITS})",
        },
    ),
    "statement_adjustment": (
        "Corrections to closed months: what the ledger now says minus what the final "
        "statement said; pending in the first open month, final once carried.",
        {
            "month": "the statement carrying the adjustment (first day, UTC)",
            "adjusted_month": "the closed month corrected (first day, UTC)",
            **_RECIPIENT,
            "granted": f"change in credits granted ({CREDITS})",
            "spent": f"change in credits consumed ({CREDITS})",
            "expired": f"change in credits forfeited ({CREDITS})",
            "net": f"granted - spent - expired ({CREDITS})",
            "status": "pending (in the open month's statement) or final",
        },
    ),
    "dim_currency": (
        "Credit currencies (config).",
        {"currency": "currency key", "name": "display name"},
    ),
    "dim_customer": (
        "Customers (config).",
        {
            "customer_id": "external id",
            "name": "display name",
            "metadata": "free metadata (JSON text)",
        },
    ),
    "dim_product": (
        "Products (config).",
        {
            "product_id": "external id",
            "name": "display name",
            "metadata": "free metadata (JSON text)",
        },
    ),
    "dim_pricing_rule": (
        "Pricing rules (config): one per product, event and time range.",
        {
            "rule_id": "rule id",
            "product_id": "product (external id)",
            "event_name": "the event it prices",
            "currency": "currency of its credits",
            "credit_cost": "credits per unit of quantity (DECIMAL(38,6))",
            "quantity_path": "path of the quantity in data as configured (NULL: 1 per signal)",
            "quantity_pointer": "the same as a JSON pointer",
            "valid_from": "in force from (UTC instant, inclusive; NULL: always)",
            "valid_until": "in force until (UTC instant, exclusive; NULL: never ends)",
        },
    ),
    "dim_user": (
        "Users (config) of each customer.",
        {
            "customer_id": "customer (external id)",
            "user_id": "external id (matched against data.external_user_id)",
            "name": "display name",
            "metadata": "free metadata (JSON text)",
        },
    ),
    "dim_seat": ("Seats (config).", {"seat_id": "seat id", "customer_id": "its customer"}),
    "dim_seat_assignment": (
        "Which user holds which seat when (config).",
        {
            "seat_id": "seat id",
            "customer_id": "customer",
            "user_id": "user (external id)",
            "valid_from": "from (UTC instant, inclusive)",
            "valid_until": "until (UTC instant, exclusive; NULL: open)",
        },
    ),
    "dim_hot_key": (
        "The hot breakdown keys (config hot_keys): pre-extracted for fast breakdowns and shown "
        "as columns of fact_signal and signal_rollup.",
        {
            "position": "1-based position in hot_keys",
            "path": "the data path as configured",
            "pointer": "the same as a JSON pointer",
            "column_name": "its column in fact_signal and signal_rollup (the value as text)",
        },
    ),
}
MACRO_COMMENTS = {
    "balances_as_of": "balance_snapshot rows of one UTC day (NULL: the last processed day), "
    "the one definition of a balance at the end of a day: balances_as_of('2026-11-14')",
    "grant_balances_as_of": "grants in force at the end of one UTC day (NULL: the last processed "
    "day) with used, expired and remaining: grant_balances_as_of('2026-11-14')",
    "credits_by_key": "priced signals, quantity and credits by one data key (JSON pointer) and "
    "currency over [from, to) in UTC: credits_by_key('/team', '2026-11-01', '2026-12-01')",
    "credits_by_keys": "the same by two data keys: "
    "credits_by_keys('/team', '/model', '2026-11-01', '2026-12-01')",
}


def sql_literal(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def quote_identifier(name: str) -> str:
    """A SQL identifier, always quoted (any key name is safe)."""
    return '"' + name.replace('"', '""') + '"'


def hot_key_columns(config: Config) -> list[str]:
    """The column name of each hot key: its key (`team`, `we"ird key`), nested keys joined by
    dots (`a.b`; the path's own spelling when a key holds a dot or an index), prefixed with
    `data.` when that would shadow a fact_signal column. Always used quoted."""
    taken = set(COMMENTS["fact_signal"][1]) | set(COMMENTS["signal_rollup"][1])
    names = []
    for key in config.hot_keys:
        segments = parse_path(key)
        if all(isinstance(s, str) and "." not in s for s in segments):
            name = ".".join(segments)
        else:
            name = format_path(segments).removeprefix("$").removeprefix(".")
        names.append(f"data.{name}" if name in taken else name)
    return names


def _relative(home: Home, path: str) -> str:
    """`path` relative to the home when inside it (the views then move with the home)."""
    return path.removeprefix(str(home.root) + "/")


def _sources(home: Home, config: Config, published: dict[str, list[str]]) -> dict[str, str]:
    """What each view reads, as SQL literals: the engine outputs' published files (a list: the
    views show exactly what was published, whatever a later run is doing), the lake's and the
    statements' globs, relative to the home where inside it; an empty file of the right schema
    where there is nothing yet."""
    from pipelines.ledger.burndown import BALANCE_SCHEMA, EVENT_SCHEMA, GRANT_SCHEMA
    from pipelines.pricing.price import empty_fact_signal, empty_rollup
    from pipelines.statements.closing import LINE_SCHEMA, statements_dir

    def empty(name: str, table: pa.Table) -> str:
        path = home.engine_dir / "_empty" / f"{name}.parquet"
        write_parquet_atomic(table, path)
        return _relative(home, str(path))

    out = {}
    for name, make in (
        ("fact_signal", lambda: empty_fact_signal(config)),
        ("signal_rollup", lambda: empty_rollup(config)),
        ("balance_snapshot", BALANCE_SCHEMA.empty_table),
        ("grant_balance", GRANT_SCHEMA.empty_table),
        ("credit_event", EVENT_SCHEMA.empty_table),
    ):
        files = [_relative(home, f) for f in published.get(name, [])] or [empty(name, make())]
        out[name] = "[" + ", ".join(sql_literal(f) for f in files) + "]"
    lake = Lake(home.lake)
    for name, kind, schema in (
        ("signals", SIGNALS, SIGNAL_SCHEMA),
        ("rejects", REJECTS, REJECT_SCHEMA),
    ):
        found = lake.files(kind=kind)
        out[name] = sql_literal(
            _relative(home, lake.data_glob(kind)) if found else empty(name, schema.empty_table())
        )
    # Months are finalized between publishes: an empty file keeps the statement_line glob valid
    # from the start, so the view lists final statements at query time, not as of the publish.
    lines = statements_dir(home) / "line"
    anchor = lines / "date=none" / "data.parquet"
    if not anchor.exists():
        write_parquet_atomic(LINE_SCHEMA.empty_table(), anchor)
    out["statement_line"] = sql_literal(_relative(home, str(lines / "date=*" / "*.parquet")))
    return out


def _version() -> str:
    """Changes whenever the published views, macros or comments do."""
    text = load_sql("warehouse") + load_sql("statement_adjustment") + repr(COMMENTS)
    text += load_sql("balance_end_of_day")
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def is_current(home: Home) -> bool:
    """False when the published warehouse was built by an older Tally (other views) or for a
    home at another place (copied or moved): republish it, even with no new data to process."""
    if not home.warehouse.exists():
        return True
    con = connect(home.warehouse, read_only=True)
    try:
        found = con.execute("SELECT schema_version, home FROM internal.meta").fetchall()
        return found == [(_version(), str(home.root))]
    except duckdb.CatalogException:
        return False
    finally:
        con.close()


def _comment_sql(kind: str, name: str, text: str) -> str:
    return f"COMMENT ON {kind} {name} IS {sql_literal(text)}"


def _comments(con: duckdb.DuckDBPyConnection, config: Config) -> None:
    """COMMENT ON every analyst-facing table, view, column and macro."""
    kinds = {
        name: kind
        for name, kind in con.execute(
            "SELECT table_name, CASE WHEN table_type = 'VIEW' THEN 'VIEW' ELSE 'TABLE' END "
            "FROM information_schema.tables WHERE table_schema = 'main'"
        ).fetchall()
    }
    hot = list(zip(config.hot_keys, hot_key_columns(config), strict=True))
    for name, (comment, columns) in COMMENTS.items():
        con.execute(_comment_sql(kinds[name], quote_identifier(name), comment))
        columns = dict(columns)
        if name in ("fact_signal", "signal_rollup"):
            for key, column in hot:
                columns[column] = (
                    f"hot key {key}: its value in data as text (strings bare, other JSON as "
                    "JSON text; NULL: missing or null)"
                )
        present = [
            c
            for (c,) in con.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = 'main' AND table_name = $t",
                {"t": name},
            ).fetchall()
        ]
        for column in present:
            if column in columns:
                target = f"{quote_identifier(name)}.{quote_identifier(column)}"
                con.execute(_comment_sql("COLUMN", target, columns[column]))
    for name, comment in MACRO_COMMENTS.items():
        con.execute(_comment_sql("MACRO TABLE", name, comment))


def publish(home: Home, config: Config) -> Path:
    """Write the warehouse for `home` and atomically replace the published file."""
    from pipelines.warehouse import outputs

    published = outputs.publish(home).files  # the checked outputs, as Iceberg tables too
    target = home.warehouse
    with atomic(target, kept=ENGINE_KEPT) as tmp:
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):  # of a killed run
            leftover.unlink(missing_ok=True)
        con = connect(tmp)
        try:
            tables = config.tables()
            grant_config = tables.pop("dim_credit_grant")
            positions = range(1, len(config.hot_keys) + 1)
            columns = hot_key_columns(config)
            tables["dim_hot_key"] = pa.table(
                {
                    "position": pa.array(positions, pa.int32()),
                    "path": pa.array(config.hot_keys, pa.string()),
                    "pointer": pa.array(hot_key_pointers(config), pa.string()),
                    "column_name": pa.array(columns, pa.string()),
                }
            )
            for name, table in tables.items():
                con.register("_incoming", table)
                con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM _incoming')
                con.unregister("_incoming")
            fills = {
                "statement_adjustment_sql": load_sql("statement_adjustment"),
                "balance_end_of_day_sql": load_sql("balance_end_of_day"),
                "home": sql_literal(str(home.root)),
                "hot_key_exclude": "".join(f", hot_key_{i}" for i in positions),
                "hot_key_named": "".join(
                    f",\n       json_extract_string(hot_key_{i}, '$') AS {quote_identifier(c)}"
                    for i, c in zip(positions, columns, strict=True)
                ),
                **_sources(home, config, published),
            }
            script = render("warehouse", **fills)
            con.execute("CREATE SCHEMA internal")
            con.register("_incoming", grant_config)
            con.execute("CREATE TABLE internal.credit_grant_config AS SELECT * FROM _incoming")
            con.unregister("_incoming")
            con.execute(script)
            con.execute(
                "CREATE TABLE internal.meta AS SELECT $v AS schema_version, $h AS home",
                {"v": _version(), "h": str(home.root)},
            )
            _comments(con, config)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        faults.point("publish.warehouse")
    return target


def schema_markdown(warehouse: Path) -> str:
    """The schema page (docs/schema.md): every table, view, column and macro of the main schema
    with its comment, read from the warehouse itself."""
    con = connect(warehouse, read_only=True)
    try:
        objects = con.execute(
            "SELECT table_name, 'table', comment FROM duckdb_tables() "
            "WHERE database_name = current_database() AND schema_name = 'main' "
            "UNION ALL SELECT view_name, 'view', comment FROM duckdb_views() "
            "WHERE database_name = current_database() AND schema_name = 'main' "
            "AND NOT internal ORDER BY 1"
        ).fetchall()
        columns = con.execute(
            "SELECT table_name, column_name, data_type, comment FROM duckdb_columns() "
            "WHERE database_name = current_database() AND schema_name = 'main' "
            "ORDER BY table_name, column_index"
        ).fetchall()
        macros = con.execute(
            "SELECT function_name, parameters, comment FROM duckdb_functions() "
            "WHERE database_name = current_database() AND schema_name = 'main' "
            "AND function_type = 'table_macro' ORDER BY 1"
        ).fetchall()
    finally:
        con.close()
    cell = lambda text: (text or "").replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = [
        "# Warehouse schema",
        "",
        "Generated from the comments in `warehouse.duckdb` (COMMENTS in",
        "`pipelines/warehouse/publish.py`; regenerate with",
        "`.venv/bin/python -m pipelines.warehouse.publish docs/schema.md`; `tally schema`",
        "prints the page of a home's own warehouse, with its hot keys).",
        "Days and times are UTC; credits are exact `DECIMAL(38,6)`; figures are per currency,",
        "never added across currencies. Internal objects live in the `internal` schema. The",
        "hot-key columns (`external_user_id`, `team`, `department` by default) follow the",
        "configuration's `hot_keys`.",
        "",
        "Contents: " + ", ".join(f"[`{n}`](#{n})" for n, _, _ in objects),
        "",
    ]
    for name, kind, comment in objects:
        lines += [f"## {name}", "", f"*{kind}* — {cell(comment)}", ""]
        lines += ["| column | type | meaning |", "|---|---|---|"]
        lines += [f"| `{c}` | {t} | {cell(m)} |" for n, c, t, m in columns if n == name]
        lines.append("")
    lines += ["## Macros", "", "| macro | parameters | meaning |", "|---|---|---|"]
    lines += [f"| `{n}` | {', '.join(p)} | {cell(m)} |" for n, p, m in macros]
    return "\n".join(lines) + "\n"


def sample_schema_markdown(config_dir: Path) -> str:
    """The schema page of a warehouse published, without data, from the configuration in
    `config_dir` (docs/schema.md is this for the sample company's data/config)."""
    import shutil
    import tempfile

    from pipelines.pricing.config import load_config

    with tempfile.TemporaryDirectory(prefix="tally-schema-") as tmp:
        home = Home(Path(tmp))
        shutil.copytree(config_dir, home.config_dir)
        publish(home, load_config(home.config_dir))
        return schema_markdown(home.warehouse)


if __name__ == "__main__":  # python -m pipelines.warehouse.publish docs/schema.md
    import sys

    repo = Path(__file__).resolve().parents[2]
    page = sample_schema_markdown(repo / "data" / "config")
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(page, encoding="utf-8")
    else:
        sys.stdout.write(page)

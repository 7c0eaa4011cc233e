"""The analysts' warehouse: figures per currency, UTC days whatever the session's time
zone, a home that still works when copied or moved, a warehouse that explains itself (comments,
named hot-key columns, an internal schema, docs/schema.md), and terminal tables that fit."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import defaultdict
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from conftest import tally as run_tally
from statement_helpers import close_lake, make_home

from pipelines.core.home import Home
from pipelines.core.sql import connect
from pipelines.pricing.config import load_config
from pipelines.synth import synth
from pipelines.warehouse.analytics import breakdown, data_keys
from pipelines.warehouse.publish import is_current, publish, sample_schema_markdown

REPO = Path(__file__).resolve().parents[1]
MAIN_VIEWS = (
    "fact_signal",
    "signal_rollup",
    "balance_snapshot",
    "grant_balance",
    "fact_credit_transaction",
    "raw_signal",
    "rejected_signal",
    "dim_credit_grant",
    "statement_line",
    "statement_adjustment",
)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Home:
    """Two weeks of the sample company: two currencies (credits, api_calls), pools and seats."""
    workload = tmp_path_factory.mktemp("workload")
    synth(workload, signals=3000, days=14, customers=6, seed=7, start=date(2026, 11, 1))
    built = make_home(tmp_path_factory.mktemp("wh") / "data", workload)
    yield built
    close_lake(built)


def rows(path: Path, sql: str, params: dict | None = None, tz: str = "UTC") -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    con.execute(f"SET TimeZone = '{tz}'")
    try:
        return con.execute(sql, params or {}).fetchall()
    finally:
        con.close()


def tally(*args: str, home: Path, columns: int = 200) -> subprocess.CompletedProcess[str]:
    """`tally ARGS` at a fixed "now", from another directory than the home's."""
    return run_tally(
        *args,
        home=home,
        cwd="/",
        timeout=300,
        COLUMNS=str(columns),
        TALLY_NOW="2026-11-20T00:00:00Z",
    )


# ------------------------------------------------------------------------------ 1. currency


def test_the_workload_has_two_currencies(home):
    currencies = rows(
        home.warehouse, "SELECT DISTINCT currency FROM fact_signal WHERE status = 'priced'"
    )
    assert {c for (c,) in currencies} == {"credits", "api_calls"}


@pytest.mark.parametrize("force", [False, True])
def test_breakdowns_are_per_currency(home, force):
    result = breakdown(home.warehouse, ["team"], force_signals=force)
    assert result.columns == ["team", "currency", "signals", "quantity", "credits"]
    got = {
        (r["team"], r["currency"]): (r["signals"], r["credits"]) for r in result.table.to_pylist()
    }
    expected = rows(
        home.warehouse,
        "SELECT to_json(team)::VARCHAR, currency, count(*), sum(credits) FROM fact_signal "
        "GROUP BY ALL",
    )
    assert got == {(t if t != "null" else None, c): (n, s) for t, c, n, s in expected}
    # No row adds credits and api_calls together.
    assert {c for _, c in got} == {"credits", "api_calls", None}


@pytest.mark.parametrize("force", [False, True])
def test_currency_status_and_recipient_are_built_in_keys(home, force):
    result = breakdown(home.warehouse, ["currency", "status", "recipient"], force_signals=force)
    assert result.columns == ["currency", "status", "recipient", "signals", "quantity", "credits"]
    got = sorted(
        (r["currency"] or "", r["status"], r["recipient"] or "", r["signals"], r["credits"])
        for r in result.table.to_pylist()
    )
    expected = rows(
        home.warehouse,
        "SELECT coalesce(currency, ''), status, "
        "coalesce(recipient_type || ':' || recipient_id, ''), count(*), sum(credits) "
        "FROM fact_signal GROUP BY ALL",
    )
    assert got == sorted(expected)
    priced = breakdown(home.warehouse, ["currency"], status="priced", force_signals=force)
    assert "status priced only" in priced.note
    assert (
        sum(priced.table["signals"].to_pylist())
        == rows(home.warehouse, "SELECT count(*) FROM fact_signal WHERE status = 'priced'")[0][0]
    )
    assert "every accepted signal" in breakdown(home.warehouse, ["team"]).note


def test_cli_breakdown_json_has_a_currency_and_says_what_it_counts(home):
    proc = tally("breakdown", "--by", "team", "--format", "json", home=home.root)
    records = json.loads(proc.stdout)
    assert all(set(r) == {"team", "currency", "signals", "quantity", "credits"} for r in records)
    table = tally("breakdown", "--by", "currency", home=home.root).stdout
    assert "every accepted signal" in table and "api_calls" in table


def test_macros_are_per_currency_and_count_priced_signals(home):
    got = rows(home.warehouse, "SELECT * FROM credits_by_key('/team', '2026-11-02', '2026-11-03')")
    expected = rows(
        home.warehouse,
        "SELECT team, currency, count(*), sum(quantity), sum(credits) FROM fact_signal "
        "WHERE status = 'priced' AND day = DATE '2026-11-02' GROUP BY ALL",
    )
    assert sorted(got, key=repr) == sorted(expected, key=repr)
    two = rows(
        home.warehouse,
        "SELECT key_a, currency, sum(priced_signals), sum(credits) "
        "FROM credits_by_keys('/team', '/department', '2026-11-01', '2026-12-01') GROUP BY ALL",
    )
    one = rows(
        home.warehouse,
        "SELECT key_value, currency, priced_signals, credits "
        "FROM credits_by_key('/team', '2026-11-01', '2026-12-01')",
    )
    assert sorted(two, key=repr) == sorted(one, key=repr)


def test_report_signals_by_status_are_per_currency(home):
    from pipelines.statements import report

    built = report.build(home)
    pairs = [(r["status"], r["currency"]) for r in built.sections["statuses"]]
    assert ("priced", "credits") in pairs and ("priced", "api_calls") in pairs
    assert str(home.warehouse) in built.html  # the footer names the real warehouse


# ------------------------------------------------------------------------------ 2. UTC


def test_day_boundaries_are_utc_whatever_the_session_time_zone(home):
    sql = "SELECT * FROM credits_by_key('/team', '2026-11-02', '2026-11-03') ORDER BY ALL"
    utc = rows(home.warehouse, sql)
    for tz in ("America/Los_Angeles", "Asia/Kolkata"):
        assert rows(home.warehouse, sql, tz=tz) == utc
        days = rows(
            home.warehouse,
            "SELECT count(*) FILTER (WHERE day <> CAST(timezone('UTC', timestamp) AS DATE)), "
            "count(*) FILTER (WHERE day <> CAST(timestamp AS DATE)) FROM fact_signal",
            tz=tz,
        )[0]
        assert days[0] == 0 and days[1] > 0  # `day` is UTC; the session's date differs
    late_evening = rows(
        home.warehouse,
        "SELECT count(*) FROM fact_signal WHERE timestamp >= TIMESTAMPTZ '2026-11-02 00:00:00+00' "
        "AND timestamp < TIMESTAMPTZ '2026-11-03 00:00:00+00'",
    )[0][0]
    assert (
        rows(
            home.warehouse,
            "SELECT count(*) FROM fact_signal WHERE day = DATE '2026-11-02'",
            tz="America/Los_Angeles",
        )[0][0]
        == late_evening
    )
    rollup = rows(
        home.warehouse,
        "SELECT day, sum(signals) FROM signal_rollup GROUP BY 1 ORDER BY 1",
        tz="America/Los_Angeles",
    )
    assert rollup == rows(
        home.warehouse, "SELECT day, count(*) FROM fact_signal GROUP BY 1 ORDER BY 1"
    )


# ------------------------------------------------------------------------------ 3. portable


def test_a_copied_home_works_when_the_original_is_gone(home, tmp_path):
    original = Home(tmp_path / "original" / "data")
    shutil.copytree(home.root, original.root)
    publish(original, load_config(original.config_dir))
    copy = Home(tmp_path / "elsewhere" / "copy")
    shutil.copytree(original.root, copy.root)
    shutil.rmtree(original.root)

    definitions = rows(copy.warehouse, "SELECT sql FROM duckdb_views() WHERE NOT internal")
    assert not any(str(tmp_path) in sql for (sql,) in definitions)  # no absolute paths
    # Tally's connections resolve the views against the copy.
    con = connect(copy.warehouse, read_only=True)
    counts = {v: con.execute(f"SELECT count(*) FROM {v}").fetchall()[0][0] for v in MAIN_VIEWS}
    con.close()
    assert counts["fact_signal"] == rows(home.warehouse, "SELECT count(*) FROM fact_signal")[0][0]
    # Any client: one variable names the home.
    con = duckdb.connect(str(copy.warehouse), read_only=True)
    con.execute("SET VARIABLE tally_home = $h", {"h": str(copy.root)})
    for view in MAIN_VIEWS:
        con.execute(f"SELECT count(*) FROM {view}").fetchall()
    con.close()
    # Every command works on the copy.
    assert "team" in tally("breakdown", "--by", "team", home=copy.root).stdout
    assert "2026-11-14" in tally("balances", home=copy.root).stdout
    doc = json.loads(
        tally("statement", "--customer", "cus_acme", "--month", "2026-11", home=copy.root).stdout
    )
    assert doc["customer_id"] == "cus_acme"
    tally("report", "--out", str(tmp_path / "r.html"), home=copy.root)
    assert str(copy.warehouse) in (tmp_path / "r.html").read_text()
    # `tally run` republishes a moved warehouse (then a plain client needs nothing).
    assert not is_current(copy)
    publish(copy, load_config(copy.config_dir))
    assert is_current(copy)
    assert rows(copy.warehouse, "SELECT count(*) FROM fact_signal")[0][0] == counts["fact_signal"]


# ------------------------------------------------------------------------------ 4. self-describing


def test_every_analyst_facing_object_and_column_is_commented(home):
    objects = rows(
        home.warehouse,
        "SELECT table_name, comment FROM duckdb_tables() WHERE schema_name = 'main' "
        "UNION ALL SELECT view_name, comment FROM duckdb_views() "
        "WHERE schema_name = 'main' AND NOT internal",
    )
    assert {n for n, _ in objects} >= set(MAIN_VIEWS) | {"dim_customer", "dim_hot_key"}
    assert [n for n, c in objects if not c] == []
    bare = rows(
        home.warehouse,
        "SELECT table_name || '.' || column_name FROM duckdb_columns() "
        "WHERE database_name = current_database() AND schema_name = 'main' "
        "AND (comment IS NULL OR comment = '')",
    )
    assert bare == []
    status = rows(
        home.warehouse,
        "SELECT comment FROM duckdb_columns() WHERE table_name = 'fact_signal' "
        "AND column_name = 'status'",
    )[0][0]
    for word in (
        "priced",
        "unknown_customer",
        "unattributed",
        "unknown_product",
        "unpriced",
        "invalid_quantity",
    ):
        assert word in status
    internal = rows(
        home.warehouse,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'internal'",
    )
    assert {n for (n,) in internal} >= {"signal_rollup_part", "credit_grant_config", "meta"}
    main = {n for n, _ in objects}
    assert not main & {"signal_rollup_part", "credit_grant_config", "tally_meta"}
    macros = rows(
        home.warehouse,
        "SELECT function_name, comment FROM duckdb_functions() WHERE schema_name = 'main' "
        "AND function_type = 'table_macro'",
    )
    assert {n for n, c in macros if c} == {
        "balances_as_of",
        "grant_balances_as_of",
        "credits_by_key",
        "credits_by_keys",
    }


def test_hot_keys_are_columns_named_after_their_keys(home, tmp_path):
    columns = [c for (c,) in rows(home.warehouse, "SELECT column_name FROM (DESCRIBE fact_signal)")]
    assert columns[-4:] == ["day", "external_user_id", "team", "department"]
    assert not any(c.startswith("hot_key_") for c in columns)
    assert rows(
        home.warehouse,
        "SELECT count(*) FROM fact_signal WHERE team IS DISTINCT FROM data->>'$.team'",
    ) == [(0,)]
    # Any key name is a safely quoted identifier; one that would shadow a column is prefixed.
    odd = Home(tmp_path / "odd")
    odd.config_dir.mkdir(parents=True)
    for f in (REPO / "data" / "config").glob("*.yaml"):
        shutil.copy(f, odd.config_dir / f.name)
    (odd.config_dir / "keys.yaml").write_text("""hot_keys: [team, 'we"ird key', status, $.a.b]\n""")
    publish(odd, load_config(odd.config_dir))
    columns = [c for (c,) in rows(odd.warehouse, "SELECT column_name FROM (DESCRIBE fact_signal)")]
    assert columns[-4:] == ["team", 'we"ird key', "data.status", "a.b"]
    assert rows(odd.warehouse, "SELECT column_name FROM dim_hot_key ORDER BY position") == [
        ("team",),
        ('we"ird key',),
        ("data.status",),
        ("a.b",),
    ]


def test_the_schema_page_is_current():
    page = (REPO / "docs" / "schema.md").read_text(encoding="utf-8")
    assert page == sample_schema_markdown(REPO / "data" / "config"), (
        "docs/schema.md is stale: .venv/bin/python -m pipelines.warehouse.publish docs/schema.md"
    )


def test_tally_keys_has_one_row_per_path_and_type(home):
    report = data_keys(home.warehouse)
    seen = [(r["event_name"], r["path"], r["json_type"]) for r in report.rows]
    assert len(seen) == len(set(seen))
    assert ("document_processed", "$.quantity", "integer") in seen


# ------------------------------------------------------------------------------ 6. terminal


def test_balances_fit_80_columns_and_use_the_room_there_is(home):
    narrow = tally("balances", home=home.root, columns=80).stdout
    assert max(map(len, narrow.splitlines())) <= 80
    assert "…" not in narrow
    assert "cus_acme" in narrow and "seat_acme_01" in narrow and "available" in narrow
    assert "left out to fit 80 columns" in narrow
    wide = tally("balances", home=home.root, columns=200).stdout
    for column in ("customer", "opening_balance", "granted", "spent", "expired", "overage"):
        assert column in wide
    assert "left out" not in wide
    for command in (["breakdown", "--by", "team", "--by", "event"], ["keys"]):
        text = tally(*command, home=home.root, columns=80).stdout
        assert max(map(len, text.splitlines())) <= 80 and "…" not in text


def test_demo_summary_spent_is_the_whole_period_and_hints_keep_home(home):
    code = (
        "from pathlib import Path; from pipelines.cli.demo import _demo_summary; "
        "from pipelines.core.home import Home; "
        f"_demo_summary(Home(Path({str(home.root)!r})))"
    )
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, text=True, capture_output=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    spent = defaultdict(Decimal)
    for customer, currency, total in rows(
        home.warehouse,
        "SELECT customer_id, currency, sum(spent) FROM balance_snapshot "
        "WHERE recipient_type = 'organization' GROUP BY ALL",
    ):
        spent[(customer, currency)] = total
    line = next(
        x for x in proc.stdout.splitlines() if x.strip().startswith("cus_acme") and "credits" in x
    )
    assert f"{spent[('cus_acme', 'credits')]:.6f}" in line
    hints = proc.stdout.split("Next:")[1].splitlines()
    tally_hints = [h for h in hints if "tally " in h]
    assert tally_hints and all(f"--home {home.root}" in h for h in tally_hints)
    assert "api_calls" in proc.stdout.split("Organization pools")[0]  # statuses per currency


# ------------------------------------------------------------------------------ docs


def test_the_analysts_example_queries_run_as_written(home):
    import re

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## For analysts")[1].split("\n## ")[0]
    queries = re.findall(r"```sql\n(.*?)```", section, re.S)
    assert len(queries) == 3
    page = (REPO / "docs" / "analysts.md").read_text(encoding="utf-8")
    for tz in ("UTC", "America/Los_Angeles"):  # the same answers in any session time zone
        con = duckdb.connect(str(home.warehouse), read_only=True)
        con.execute(f"SET TimeZone = '{tz}'")
        # Sorted: rows that tie on the ORDER BY (equal credits) come in any order.
        results = [sorted(con.execute(q).fetchall(), key=repr) for q in queries]
        con.close()
        assert all(results), "every example returns rows"
        if tz == "UTC":
            first = results
        else:
            assert results == first
    inline = re.findall(r"`(SELECT \* FROM credits_by_key[^`]*)`", page)
    assert inline and rows(home.warehouse, inline[0])

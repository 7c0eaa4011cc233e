"""End to end through the real `tally` command: demo, ingest, run, balances."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import duckdb
import pytest
from conftest import tally

from pipelines.core.sql import connect

NOW = "2026-11-15T06:00:00Z"  # the demo's data ends on 2026-11-14: yesterday, for these tests


@pytest.fixture(scope="module", autouse=True)
def pinned_clock():
    """Every `tally` of this module runs with the clock pinned (the tests name days)."""
    before = os.environ.get("TALLY_NOW")
    os.environ["TALLY_NOW"] = NOW
    yield
    if before is None:
        os.environ.pop("TALLY_NOW", None)
    else:
        os.environ["TALLY_NOW"] = before


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory, pinned_clock) -> Path:
    home = tmp_path_factory.mktemp("demo") / "data"
    proc = tally("demo", home=home)
    assert "ingested 19,892  duplicates 86  failed 22" in proc.stdout
    assert "done through" in proc.stdout
    return home


def test_demo_publishes_a_checked_warehouse(demo_home):
    con = duckdb.connect(str(demo_home / "warehouse.duckdb"), read_only=True)
    statuses = dict(con.execute("SELECT status, count(*) FROM fact_signal GROUP BY 1").fetchall())
    assert sum(statuses.values()) == 19_892
    assert set(statuses) == {
        "priced",
        "unpriced",
        "unattributed",
        "unknown_product",
        "unknown_customer",
        "invalid_quantity",
    }
    grants, spends = con.execute(
        "SELECT sum(amount) FILTER (type = 'grant'), -sum(amount) FILTER (type = 'spend') "
        "FROM fact_credit_transaction"
    ).fetchall()[0]
    total = con.execute("SELECT sum(credits) FROM fact_signal").fetchall()[0][0]
    assert spends == total and grants > 0
    # Conservation as finance reads it: every day closes as it opened plus the day's movements.
    broken = con.execute(
        "SELECT count(*) FROM balance_snapshot WHERE closing_balance <> "
        "opening_balance + granted - spent - expired OR closing_balance <> available - overage"
    ).fetchall()[0][0]
    assert broken == 0
    # The byte-exact data example survived landing, pricing and publishing.
    exact = con.execute(
        "SELECT data FROM fact_signal WHERE idempotency_key = 'evt_special_7'"
    ).fetchall()[0][0]
    assert exact == '{"n":12345678901234567890,"x":0.1,"Team":"a","team":"b","u":"é"}'


def test_run_twice_does_nothing_the_second_time(demo_home):
    assert "everything is up to date" in tally("run", home=demo_home).stdout


def test_a_warehouse_from_an_older_version_is_republished(demo_home, tmp_path):
    home = tmp_path / "data"
    shutil.copytree(demo_home, home)
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute("DROP TABLE internal.meta")  # as published before the views changed
    con.execute("DROP VIEW internal.signal_rollup_part")
    con.close()
    assert "warehouse: published" in tally("run", home=home).stdout
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM internal.signal_rollup_part").fetchall()[0][0] > 0
    con.close()
    assert "everything is up to date" in tally("run", home=home).stdout


def test_balances_formats(demo_home):
    rows = json.loads(
        tally("balances", "--customer", "cus_acme", "--format", "json", home=demo_home).stdout
    )
    assert rows and all(r["customer_id"] == "cus_acme" for r in rows)
    assert all(len(r["closing_balance"].split(".")[1]) == 6 for r in rows)
    csv_out = tally("balances", "--as-of", "2026-11-05", "--format", "csv", home=demo_home).stdout
    assert csv_out.splitlines()[0].startswith("customer_id,recipient_type,recipient_id")
    table = tally("balances", home=demo_home).stdout
    assert "Balances at the end of 20" in table and "(UTC)" in table  # the last ledger day
    bad = tally("balances", "--as-of", "tomorrow", home=demo_home, check=False)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: --as-of 'tomorrow'")
    assert "Traceback" not in bad.stderr


def test_ingest_reports_and_exit_codes(tmp_path):
    home = tmp_path / "data"
    good = tmp_path / "good.jsonl"
    good.write_text(
        json.dumps(
            {"eventName": "e", "customer": {"externalCustomerId": "c"}, "idempotencyKey": "k"}
        )
        + "\n"
    )
    proc = tally("ingest", str(good), home=home)
    assert proc.stdout.strip() == "ingested 1  duplicates 0  failed 0"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"eventName": "e", "customer": {}}\nnot json\n')
    proc = tally("ingest", str(good), str(bad), home=home, check=False)
    assert proc.returncode == 1
    assert proc.stdout.strip() == "ingested 0  duplicates 1  failed 2"
    assert f"{bad}:1: customer has no non-empty customerId or externalCustomerId" in proc.stderr
    assert f"{bad}:2: invalid JSON" in proc.stderr
    missing = tally("ingest", str(tmp_path / "nope.jsonl"), home=home, check=False)
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_config_error_is_one_line(tmp_path):
    home = tmp_path / "data"
    (home / "config").mkdir(parents=True)
    (home / "config" / "a.yaml").write_text("grants:\n  - {id: g1, customer: nobody, amount: 1}\n")
    proc = tally("run", home=home, check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: a.yaml: grants[0]") and "Traceback" not in proc.stderr


def test_signals_dated_after_yesterday_wait_for_their_day(demo_home, tmp_path):
    """Billing closes days that are over: a signal dated after yesterday (clock skew, a test) is
    landed and waits; once its day has ended, the next run prices exactly the new days."""
    home = tmp_path / "data"  # a copy: the demo home is shared by this module's tests
    shutil.copytree(demo_home, home)
    f = tmp_path / "future.jsonl"
    signal = {
        "eventName": "email_sent",
        "customer": {"externalCustomerId": "cus_acme"},
        "attribution": {"externalProductId": "outreach"},
        "timestamp": "2026-11-17T12:00:00Z",
        "idempotencyKey": "future-1",
    }
    f.write_text(json.dumps(signal) + "\n")
    tally("ingest", str(f), home=home)
    proc = tally("run", home=home)
    assert "1 signal(s) dated after 2026-11-14 wait for their day to end" in proc.stderr
    assert "fact_signal" not in proc.stdout  # (the copied home's warehouse is republished)
    later = "2026-11-18T01:00:00Z"
    proc = tally("run", home=home, TALLY_NOW=later)
    assert "fact_signal: 2026-11-15..2026-11-17 (3 day(s)), 1 rows" in proc.stdout
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    status = con.execute(
        "SELECT status FROM fact_signal WHERE idempotency_key = 'future-1'"
    ).fetchall()
    assert status == [("priced",)]
    assert "everything is up to date" in tally("run", home=home, TALLY_NOW=later).stdout


def test_a_failed_check_exits_1_and_publishes_nothing(demo_home, tmp_path):
    """Tampered balances (an opening balance that no longer adds up to the day's closing) fail
    the conservation check of the next ledger run: `tally run` exits 1 naming the check, and the
    warehouse stays as it was."""
    home = tmp_path / "data"
    shutil.copytree(demo_home, home)
    snapshot = home / "engine" / "balance_snapshot" / "date=2026-11-09" / "data.parquet"
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT * REPLACE (opening_balance + 1 AS opening_balance) "
        f"FROM read_parquet('{snapshot}')) TO '{snapshot}.t' (FORMAT parquet)"
    )
    Path(f"{snapshot}.t").replace(snapshot)
    published = (home / "warehouse.duckdb").stat().st_mtime_ns
    late = {
        "eventName": "email_sent",
        "customer": {"externalCustomerId": "cus_acme"},
        "attribution": {"externalProductId": "outreach"},
        "timestamp": "2026-11-10T12:00:00Z",
        "idempotencyKey": "late-1",
    }
    f = tmp_path / "late.jsonl"
    f.write_text(json.dumps(late) + "\n")
    tally("ingest", str(f), home=home)
    proc = tally("run", home=home, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: check conservation failed on 2026-11-14: nothing downstream of it ran "
        "(the warehouse was not published)"
    ]
    assert (home / "warehouse.duckdb").stat().st_mtime_ns == published


def iceberg_outputs_match_the_warehouse(home: Path) -> None:
    """The engine's outputs, read as Iceberg tables by a catalog that did not write them, hold
    exactly the warehouse's rows (same count, same credits)."""
    from pyiceberg.catalog.sql import SqlCatalog

    from pipelines.storage.catalog import s3_properties, storage

    where = storage(home / "lake")
    props = {"uri": where.catalog_uri, "warehouse": where.warehouse_uri}
    if not where.local:
        props |= s3_properties()
    catalog = SqlCatalog("tally", **props)
    con = connect(home / "warehouse.duckdb", read_only=True)
    for table, total in (("fact_signal", "credits"), ("balance_snapshot", "closing_balance")):
        rows = catalog.load_table(f"{where.namespace}.{table}").scan().to_arrow()
        expected = con.execute(f"SELECT count(*), sum({total}) FROM {table}").fetchone()
        assert (rows.num_rows, sum(v for v in rows[total].to_pylist() if v)) == expected, table


def test_the_engine_outputs_are_iceberg_tables(demo_home):
    from pipelines.core.home import Home
    from pipelines.warehouse import outputs

    iceberg_outputs_match_the_warehouse(demo_home)
    # Publishing again costs nothing: no day's files changed since the run published them.
    assert set(outputs.publish(Home(demo_home)).changed.values()) == {0}


def test_the_demo_on_postgresql_and_s3_gives_the_same_numbers(
    demo_home, services, tmp_path, monkeypatch
):
    """The shared deployment is two environment variables (plus the bucket's credentials): the
    same demo lands into a PostgreSQL catalog and an S3 bucket and bills exactly the same."""
    shared = tmp_path / "shared"
    env = services.env("demo_" + os.urandom(4).hex())
    proc = tally("demo", home=shared, **env)
    assert "ingested 19,892  duplicates 86  failed 22" in proc.stdout
    assert not (shared / "lake").exists(), "a shared lake keeps nothing in the home"
    for args in (("balances", "--format", "csv"), ("breakdown", "--by", "/team")):
        embedded = tally(*args, home=demo_home).stdout
        assert tally(*args, home=shared, **env).stdout == embedded
        assert len(embedded.splitlines()) > 3
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    iceberg_outputs_match_the_warehouse(shared)

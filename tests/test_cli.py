"""End to end through the real `tally` command: demo, ingest, run, balances."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest
from conftest import tally


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory) -> Path:
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
    landed and waits; once its day has ended, the next run prices exactly that day."""
    from datetime import UTC, datetime, timedelta

    home = tmp_path / "data"  # a copy: the demo home is shared by this module's tests
    shutil.copytree(demo_home, home)
    later = datetime.now(UTC) + timedelta(days=3)
    f = tmp_path / "future.jsonl"
    signal = {
        "eventName": "email_sent",
        "customer": {"externalCustomerId": "cus_acme"},
        "attribution": {"externalProductId": "outreach"},
        "timestamp": later.strftime("%Y-%m-%dT12:00:00Z"),
        "idempotencyKey": "future-1",
    }
    f.write_text(json.dumps(signal) + "\n")
    tally("ingest", str(f), home=home)
    proc = tally("run", home=home)
    assert "1 signal(s) dated after" in proc.stderr and "wait for their day to end" in proc.stderr
    after = (later + timedelta(days=1)).strftime("%Y-%m-%dT01:00:00Z")
    proc = tally("run", home=home, TALLY_NOW=after)
    day = later.strftime("%Y-%m-%d")
    assert f"fact_signal: {day}..{day} (1 day(s))" in proc.stdout
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    status = con.execute(
        "SELECT status FROM fact_signal WHERE idempotency_key = 'future-1'"
    ).fetchall()
    assert status == [("priced",)]
    assert "everything is up to date" in tally("run", home=home, TALLY_NOW=after).stdout
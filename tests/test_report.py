"""`tally report`: the overview's figures equal the warehouse; the page renders in Chromium."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import duckdb
import pytest
from conftest import tally
from statement_helpers import close_lake, make_home, november, render_in_chromium

from pipelines.core.home import Home
from pipelines.statements import report


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """November 2026 for two customers, with the synthetic workload's dirt (unknown customers
    and products, unpriced events, invalid quantities, duplicates, rejects, key drift)."""
    workload = november(tmp_path_factory.mktemp("workload"))
    built = make_home(tmp_path_factory.mktemp("report") / "data", workload)
    yield built
    close_lake(built)


@pytest.fixture(scope="module")
def built(home):
    return report.build(home)


def rows(home: Home, sql: str, **params):
    con = duckdb.connect(str(home.warehouse), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def test_balances_and_burn_rates_equal_the_ledger(home, built):
    as_of = built.as_of
    assert as_of.isoformat() == "2026-11-30"
    pools = rows(
        home,
        "SELECT customer_id, currency, closing_balance, available, overage FROM balance_snapshot "
        "WHERE date = $d AND recipient_type = 'organization'",
        d=as_of,
    )
    got = {(p["customer_id"], p["currency"]): p for p in built.sections["pools"]}
    assert set(got) == {(c, cur) for c, cur, *_ in pools}
    for customer, currency, closing, available, overage in pools:
        pool = got[(customer, currency)]
        assert (pool["closing_balance"], pool["available"], pool["overage"]) == (
            closing,
            available,
            overage,
        )
        spent = rows(
            home,
            "SELECT spent FROM balance_snapshot WHERE recipient_id = $c AND currency = $cur "
            "AND date > $d - 7 AND date <= $d",
            c=customer,
            cur=currency,
            d=as_of,
        )
        assert pool["burn_rate"] == (sum(s for (s,) in spent) / len(spent)).quantize(
            Decimal("0.000001")
        )
    in_overage = rows(
        home,
        "SELECT recipient_id, currency FROM balance_snapshot WHERE date = $d AND overage > 0",
        d=as_of,
    )
    flagged = {(b["recipient_id"], b["currency"]) for b in built.sections["attention"]}
    assert in_overage and set(in_overage) <= flagged
    for b in built.sections["attention"]:
        assert b["in_overage"] or b["days_left"] < report.NEAR_ZERO_DAYS


def test_expiring_credits(home, built):
    end = datetime.fromisoformat(f"{built.as_of + timedelta(days=1)}T00:00:00+00:00")
    want = rows(
        home,
        "SELECT g.grant_id, b.remaining FROM internal.credit_grant_config g JOIN grant_balance b "
        "USING (grant_id) WHERE b.date = $d AND b.remaining > 0 AND g.expires_at >= $s "
        "AND g.expires_at < $e",
        d=built.as_of,
        s=end,
        e=end + timedelta(days=report.EXPIRY_HORIZON_DAYS),
    )
    assert want
    assert sorted((g["grant_id"], g["remaining"]) for g in built.sections["expiring"]) == sorted(
        want
    )


def test_data_quality_exceptions(home, built):
    statuses = dict(rows(home, "SELECT status, count(*) FROM fact_signal GROUP BY 1"))
    shown: dict = {}  # per status and currency: summed over the currencies here
    for r in built.sections["statuses"]:
        shown[r["status"]] = shown.get(r["status"], 0) + r["signals"]
    assert shown == statuses
    per_currency = rows(
        home, "SELECT status, currency, count(*), sum(credits) FROM fact_signal GROUP BY ALL"
    )
    assert sorted(
        (r["status"], r["currency"] or "", r["signals"], r["credits"])
        for r in built.sections["statuses"]
    ) == sorted((s, c or "", n, t) for s, c, n, t in per_currency)
    assert built.exceptions == sum(n for s, n in statuses.items() if s != "priced")
    kinds = {e["status"] for e in built.sections["exceptions"]}
    assert {"unknown_customer", "unknown_product", "unpriced", "invalid_quantity"} <= kinds
    unknown = {
        e["customer_id"] for e in built.sections["exceptions"] if e["status"] == "unknown_customer"
    }
    assert all(c.startswith("cus_unknown_") for c in unknown)
    landed, duplicates = rows(
        home, "SELECT count(*), count(*) FILTER (WHERE is_duplicate) FROM raw_signal"
    )[0]
    assert (built.sections["duplicates"]["landed"], built.sections["duplicates"]["duplicates"]) == (
        landed,
        duplicates,
    )
    assert duplicates > 0
    rejected = rows(home, "SELECT count(*) FROM rejected_signal")[0][0]
    assert sum(r["signals"] for r in built.sections["rejected"]) == rejected > 0
    assert any("externalUserId" in w and "external_user_id" in w for w in built.sections["drift"])
    for heading in (
        "Balances and burn rates",
        "Nearing zero or in overage",
        "Expiring credits",
        "Data quality",
        "Key-spelling drift",
    ):
        assert heading in built.html


def test_report_renders_in_chromium(built, tmp_path):
    page = tmp_path / "report.html"
    page.write_text(built.html, encoding="utf-8")
    shown = render_in_chromium(page, tmp_path / "report.png")
    assert shown.errors == []
    assert shown.screenshot.stat().st_size > 20_000
    assert shown.charts and all(c["width"] > 100 and c["shapes"] > 0 for c in shown.charts)
    assert "<script" not in built.html


def test_tally_report_command(home, tmp_path):
    out = tmp_path / "overview.html"
    proc = tally("report", "--out", str(out), "--days", "7", home=home, timeout=300)
    assert f"to {out}" in proc.stdout and "as of 2026-11-30" in proc.stdout
    assert "2026-11-24 to 2026-11-30" in out.read_text()
    with pytest.raises(report.ReportError, match="no warehouse"):
        report.build(Home(tmp_path / "empty"))


def test_report_fits_1024_px_and_its_charts_start_with_the_data(built, tmp_path):
    from statement_helpers import layout_in_chromium

    page = tmp_path / "report.html"
    page.write_text(built.html, encoding="utf-8")
    shown = layout_in_chromium(page, tmp_path / "report-1024.png", 1024)
    assert shown.overflows == []
    # The window is 30 days; the charts begin at the first day that has consumption.
    assert built.sections["daily_charts"]
    first_label = str(built.sections["daily_charts"][0]).split('text-anchor="start">')[1]
    assert first_label.startswith("2026-11-01")
    assert "data/warehouse.duckdb" not in built.html.replace(str(built.sections["warehouse"]), "")

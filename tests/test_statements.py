"""Monthly statements: every figure equals the ledger; period close and adjustments; the
`tally statement` command; the Dagster assets and schedule; the HTML in a real Chromium."""

from __future__ import annotations

import csv
import io
import shutil
from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from conftest import tally
from statement_helpers import close_lake, land, make_home, november, render_in_chromium, run

from pipelines.core import clock
from pipelines.core.home import Home
from pipelines.pricing.config import load_config
from pipelines.statements import closing, render
from pipelines.statements.statement import Month, StatementError, decode
from pipelines.synth import synth
from pipelines.warehouse.publish import publish

NOV, DEC = Month.parse("2026-11"), Month.parse("2026-12")
IN_GRACE = datetime(2026, 12, 2, tzinfo=UTC)  # November has ended but is still open
NOV_CLOSED = datetime(2026, 12, 4, tzinfo=UTC)  # November's end + 3 days
DEC_CLOSED = datetime(2027, 1, 4, tzinfo=UTC)


@pytest.fixture(scope="module")
def workload(tmp_path_factory) -> Path:
    return november(tmp_path_factory.mktemp("workload"))


@pytest.fixture(scope="module")
def nov_home(tmp_path_factory, workload):
    """A home with all of November run and published (read-only for the tests using it)."""
    home = make_home(tmp_path_factory.mktemp("nov") / "data", workload)
    yield home
    close_lake(home)


@pytest.fixture()
def fresh_home(tmp_path, nov_home):
    """A copy of nov_home of its own (for tests that close months and land late signals)."""
    home = Home(tmp_path / "data")
    shutil.copytree(nov_home.root, home.root)
    publish(home, load_config(home.config_dir))  # the views name their home's files
    yield home
    close_lake(home)


@pytest.fixture(autouse=True)
def _default_grace(monkeypatch):
    monkeypatch.delenv(closing.GRACE_ENV, raising=False)
    monkeypatch.delenv(clock.NOW_ENV, raising=False)


def warehouse(home: Home) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(home.warehouse), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    return con


def query(con, sql: str, **params) -> list[tuple]:
    return con.execute(sql, params).fetchall()


def D(text) -> Decimal:  # noqa: N802 - reads like the Decimal it builds
    return Decimal(text)


# ------------------------------------------------------------------------------ figures


def _expected_balances(con, customer: str, month: Month) -> dict[tuple, dict]:
    """Straight from balance_snapshot: the month's rows per recipient, and the day before."""
    out = {}
    rows = query(
        con,
        "SELECT recipient_type, recipient_id, currency, date, opening_balance, granted, spent, "
        "expired, closing_balance, available, overage FROM balance_snapshot "
        "WHERE customer_id = $c AND date < $end ORDER BY date",
        c=customer,
        end=month.end,
    )
    by_recipient = defaultdict(list)
    for r in rows:
        by_recipient[r[:3]].append(r[3:])
    for key, days in by_recipient.items():
        inside = [d for d in days if d[0] >= month.start]
        before = [d for d in days if d[0] < month.start]
        last = days[-1]
        out[key] = {
            "opening_balance": before[-1][5] if before else inside[0][1],
            "granted": sum((d[2] for d in inside), D(0)),
            "spent": sum((d[3] for d in inside), D(0)),
            "expired": sum((d[4] for d in inside), D(0)),
            "closing_balance": last[5],
            "available": last[6],
            "overage": last[7],
        }
    return out


def test_every_figure_equals_the_ledger(nov_home):
    docs = closing.month_statements(nov_home, NOV, at=IN_GRACE).docs
    con = warehouse(nov_home)
    assert set(docs) == {r[0] for r in query(con, "SELECT customer_id FROM dim_customer")}
    start, end = NOV.start, NOV.end
    seen_seat = False
    for customer, doc in docs.items():
        assert (doc["status"], doc["month"], doc["as_of"]) == ("open", "2026-11", "2026-11-30")
        # Balances per pool and seat, and the identity that ties them.
        expected = _expected_balances(con, customer, NOV)
        got = {(b["recipient_type"], b["recipient_id"], b["currency"]): b for b in doc["balances"]}
        assert set(got) == set(expected)
        for key, figures in expected.items():
            line = got[key]
            assert {k: D(line[k]) for k in figures} == figures, key
            assert D(line["closing_balance"]) == D(line["opening_balance"]) + D(
                line["granted"]
            ) - D(line["spent"]) - D(line["expired"])
            assert line["adjustments"] == "0.000000"
            seen_seat |= key[0] == "seat"
        # Totals per currency are the sums of the lines.
        for total in doc["totals"]:
            lines = [b for b in doc["balances"] if b["currency"] == total["currency"]]
            for figure in ("opening_balance", "granted", "spent", "expired", "closing_balance"):
                assert D(total[figure]) == sum((D(b[figure]) for b in lines), D(0))
        # Consumption by product and event = the priced signals = the spend transactions.
        signals = query(
            con,
            "SELECT currency, product_id, event_name, count(*), sum(quantity), sum(credits) "
            "FROM fact_signal WHERE status = 'priced' AND customer_id = $c "
            "AND timestamp >= $s AND timestamp < $e GROUP BY ALL",
            c=customer,
            s=start,
            e=end,
        )
        assert sorted(
            (
                c["currency"],
                c["product_id"],
                c["event_name"],
                c["signals"],
                D(c["quantity"]),
                D(c["credits"]),
            )
            for c in doc["consumption_by_product"]
        ) == sorted(signals)
        spends = dict(
            query(
                con,
                "SELECT currency, -sum(amount) FROM fact_credit_transaction WHERE type = 'spend' "
                "AND customer_id = $c AND occurred_at >= $s AND occurred_at < $e GROUP BY 1",
                c=customer,
                s=start,
                e=end,
            )
        )
        for total in doc["totals"]:
            consumed = sum(
                (
                    D(c["credits"])
                    for c in doc["consumption_by_product"]
                    if c["currency"] == total["currency"]
                ),
                D(0),
            )
            assert consumed == D(total["spent"]) == spends.get(total["currency"], D(0))
        # By user and seat.
        by_user = query(
            con,
            "SELECT currency, user_id, recipient_type, recipient_id, count(*), sum(credits) "
            "FROM fact_signal WHERE status = 'priced' AND customer_id = $c "
            "AND timestamp >= $s AND timestamp < $e GROUP BY ALL",
            c=customer,
            s=start,
            e=end,
        )
        mine = [
            (
                u["currency"],
                u["user_id"],
                u["recipient_type"],
                u["recipient_id"],
                u["signals"],
                D(u["credits"]),
            )
            for u in doc["consumption_by_user"]
        ]
        assert sorted(mine, key=repr) == sorted(by_user, key=repr)
        # Top values of the hot keys: the same sums as grouping the signals' data by that key.
        for key in {k["key"] for k in doc["top_keys"]}:
            rows = [k for k in doc["top_keys"] if k["key"] == key]
            truth = {
                (cur, None if v is None else decode(v)): (n, credits)
                for cur, v, n, credits in query(
                    con,
                    "SELECT currency, json_extract(data, $p)::VARCHAR, count(*), sum(credits) "
                    "FROM fact_signal WHERE status = 'priced' AND customer_id = $c "
                    "AND timestamp >= $s AND timestamp < $e GROUP BY ALL",
                    p="/" + key,
                    c=customer,
                    s=start,
                    e=end,
                )
            }
            for row in rows:
                assert truth[(row["currency"], row["value"])] == (row["signals"], D(row["credits"]))
            for currency in {r["currency"] for r in rows}:
                mine = [D(r["credits"]) for r in rows if r["currency"] == currency]
                best = sorted((c for (cur, _), (_, c) in truth.items() if cur == currency))[::-1]
                assert mine == best[: len(mine)] and len(mine) == min(10, len(best))
        # Grants, expirations and the daily rows are the ledger's transactions and days.
        for kind, section, field in (
            ("grant", "grants", "starts_at"),
            ("expire", "expirations", "expired_at"),
        ):
            want = query(
                con,
                "SELECT grant_id, abs(amount), occurred_at FROM fact_credit_transaction "
                "WHERE type = $t AND customer_id = $c AND occurred_at >= $s AND occurred_at < $e",
                t=kind,
                c=customer,
                s=start,
                e=end,
            )
            got_rows = [
                (r["grant_id"], D(r["amount"]), datetime.fromisoformat(r[field]))
                for r in doc[section]
            ]
            assert sorted(got_rows) == sorted(want)
        days = query(
            con,
            "SELECT date, recipient_id, currency, spent, closing_balance FROM balance_snapshot "
            "WHERE customer_id = $c AND date >= $s AND date < $e",
            c=customer,
            s=start,
            e=end,
        )
        assert sorted(
            (
                date.fromisoformat(d["date"]),
                d["recipient_id"],
                d["currency"],
                D(d["spent"]),
                D(d["closing_balance"]),
            )
            for d in doc["daily"]
        ) == sorted(days)
    assert seen_seat
    con.close()


# ------------------------------------------------------------------------------ period close


LATE = {
    "eventName": "email_sent",
    "customer": {"externalCustomerId": "cus_acme"},
    "attribution": {"externalProductId": "outreach"},
    "timestamp": "2026-11-10T12:00:00Z",
    "data": {"campaign": "late"},
    "idempotencyKey": "late-for-a-closed-month",
}


def test_open_month_is_a_draft_until_the_grace_period_ends(nov_home, monkeypatch):
    doc = closing.statement(nov_home, "cus_acme", NOV, at=IN_GRACE)
    assert doc["status"] == "open" and doc["finalized_at"] is None
    assert doc["closes_at"] == "2026-12-04T00:00:00Z"
    assert closing.final_months(nov_home) == []
    monkeypatch.setenv(closing.GRACE_ENV, "10")
    doc = closing.statement(nov_home, "cus_acme", NOV, at=NOV_CLOSED)
    assert doc["status"] == "open" and doc["closes_at"] == "2026-12-11T00:00:00Z"
    monkeypatch.setenv(closing.GRACE_ENV, "soon")
    with pytest.raises(StatementError, match="TALLY_STATEMENT_GRACE_DAYS"):
        closing.statement(nov_home, "cus_acme", NOV, at=NOV_CLOSED)


def test_a_late_signal_never_changes_a_final_statement(fresh_home):
    home = fresh_home
    final = closing.statement(home, "cus_acme", NOV, at=NOV_CLOSED)
    assert final["status"] == "final" and final["finalized_at"] == "2026-12-04T00:00:00Z"
    assert closing.final_months(home) == [NOV]
    stored = closing.final_path(home, NOV).read_bytes()
    # The warehouse published before November closed lists it at once (the view reads files).
    con = warehouse(home)
    assert query(con, "SELECT DISTINCT month FROM statement_line") == [(date(2026, 11, 1),)]
    con.close()

    land(home, [LATE])
    run(home, until=date(2026, 12, 31))  # the engine re-prices Nov 10 and reruns the ledger
    later = datetime(2026, 12, 10, tzinfo=UTC)
    assert closing.statement(home, "cus_acme", NOV, at=later) == final
    assert closing.final_path(home, NOV).read_bytes() == stored

    # The difference appears as adjustment lines of the next open statement ...
    dec = closing.statement(home, "cus_acme", DEC, at=later)
    assert dec["status"] == "open"
    lines = dec["adjustments"]
    assert {a["adjusted_month"] for a in lines} == {"2026-11"}
    assert sum(D(a["spent"]) for a in lines) == D(1)  # email_sent costs 1 credit
    assert any(
        (a["recipient_type"], a["recipient_id"], a["currency"], a["spent"])
        == ("organization", "cus_acme", "credits", "1.000000")
        for a in lines
    )
    # ... whose opening balance is the final closing balance plus the adjustments.
    closed = {(b["recipient_id"], b["currency"]): b for b in final["balances"]}
    for b in dec["balances"]:
        before = closed.get((b["recipient_id"], b["currency"]))
        previous = D(before["closing_balance"]) if before else D(0)
        assert D(b["opening_balance"]) == previous + D(b["adjustments"])
    assert sum(D(b["adjustments"]) for b in dec["balances"]) == sum(D(a["net"]) for a in lines)

    # ... and in the warehouse, pending until December is final, then final.
    con = warehouse(home)
    pending = query(
        con,
        "SELECT month, adjusted_month, recipient_id, spent, status FROM statement_adjustment "
        "WHERE customer_id = 'cus_acme' AND spent <> 0",
    )
    assert pending == [(date(2026, 12, 1), date(2026, 11, 1), "cus_acme", D(1), "pending")]
    con.close()
    dec_final = closing.statement(home, "cus_acme", DEC, at=DEC_CLOSED)
    assert dec_final["status"] == "final" and dec_final["adjustments"] == lines
    con = warehouse(home)
    carried = query(
        con,
        "SELECT month, status, sum(spent) FROM statement_adjustment WHERE customer_id = 'cus_acme'"
        " GROUP BY ALL",
    )
    assert carried == [(date(2026, 12, 1), "final", D(1))]
    # statement_line lists the months finalized since the last publish (no republish here).
    finalized = query(con, "SELECT DISTINCT month, kind FROM statement_line ORDER BY ALL")
    assert finalized == [
        (date(2026, 11, 1), "statement"),
        (date(2026, 12, 1), "adjustment"),
        (date(2026, 12, 1), "statement"),
    ]
    con.close()


def test_a_crash_between_the_final_file_and_its_lines_is_repaired(fresh_home):
    home = fresh_home
    closing.close_due(home, NOV_CLOSED, 3)
    line_dir = closing.statements_dir(home) / "line"
    lines = sorted(p for p in line_dir.rglob("*.parquet") if p.parent.name != "date=none")
    assert len(lines) == 1  # date=none holds the warehouse's empty anchor file
    want = lines[0].read_bytes()
    lines[0].unlink()
    closing.close_due(home, NOV_CLOSED, 3)
    assert lines[0].read_bytes() == want


def test_statement_errors(nov_home):
    with pytest.raises(StatementError, match="unknown customer 'cus_nobody'"):
        closing.statement(nov_home, "cus_nobody", NOV, at=IN_GRACE)
    with pytest.raises(StatementError, match="has not started"):
        closing.statement(nov_home, "cus_acme", Month.parse("2027-01"), at=IN_GRACE)
    with pytest.raises(StatementError, match="the ledger starts 2026-11-01"):
        closing.statement(nov_home, "cus_acme", Month.parse("2026-10"), at=IN_GRACE)
    with pytest.raises(StatementError, match="not YYYY-MM"):
        Month.parse("2026-13")


# ------------------------------------------------------------------------------ formats


def test_csv_and_json_hold_the_same_figures(nov_home):
    doc = closing.statement(nov_home, "cus_acme", NOV, at=IN_GRACE)
    assert decode(render.statement_json(doc)) == doc
    rows = list(csv.DictReader(io.StringIO(render.statement_csv(doc))))
    assert list(rows[0]) == list(render.CSV_COLUMNS)
    balance = {
        (r["recipient_id"], r["currency"], r["item"]): r["credits"]
        for r in rows
        if r["section"] == "balance"
    }
    for b in doc["balances"]:
        assert (
            balance[(b["recipient_id"], b["currency"], "closing_balance")] == b["closing_balance"]
        )
    product = [r for r in rows if r["section"] == "product_event"]
    assert sum(D(r["credits"]) for r in product) == sum(D(t["spent"]) for t in doc["totals"])
    assert {r["status"] for r in rows} == {"open"}


def test_statement_html_renders_in_chromium(fresh_home, tmp_path):
    home = fresh_home
    closing.close_due(home, NOV_CLOSED, 3)
    land(home, [LATE])
    run(home, until=date(2026, 12, 31))
    doc = closing.statement(home, "cus_acme", DEC, at=datetime(2026, 12, 10, tzinfo=UTC))
    assert doc["adjustments"]
    page = tmp_path / "statement.html"
    page.write_text(render.statement_html(doc), encoding="utf-8")
    shown = render_in_chromium(page, tmp_path / "statement.png")
    assert shown.errors == []
    assert shown.screenshot.stat().st_size > 20_000
    pools = {
        (b["recipient_id"], b["currency"])
        for b in doc["balances"]
        if b["recipient_type"] == "organization"
    }
    currencies = {b["currency"] for b in doc["balances"]}
    # One daily chart per currency and a burn-down per pool; seats are table rows, not charts.
    assert len(shown.charts) == len(currencies) + len(pools)
    for chart in shown.charts:
        assert chart["width"] > 100 and chart["height"] > 100 and chart["shapes"] > 0
    html = page.read_text()
    assert "Adjustments to closed months" in html and "<script" not in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")


# ------------------------------------------------------------------------------ CLI and Dagster


def test_tally_statement_right_after_tally_run(tmp_path):
    """`tally ingest` + `tally run` (through Dagster), then `tally statement` in every format."""
    workload = synth(
        tmp_path / "w", signals=300, days=5, customers=2, seed=3, start=date(2026, 11, 26)
    )
    home = tmp_path / "data"
    (home / "config").mkdir(parents=True)
    shutil.copy(workload.config_dir / "company.yaml", home / "config" / "company.yaml")
    tally(
        "ingest", *map(str, workload.signal_files), home=home, TALLY_NOW="2026-12-02", check=False
    )
    tally("run", home=home, TALLY_NOW="2026-12-02")

    proc = tally(
        "statement",
        "--customer",
        "cus_acme",
        "--month",
        "2026-11",
        home=home,
        TALLY_NOW="2026-12-02",
    )
    doc = decode(proc.stdout)
    assert doc["status"] == "open" and doc["customer_id"] == "cus_acme"
    assert doc == closing.statement(Home(home), "cus_acme", NOV, at=IN_GRACE)
    out = tmp_path / "acme.html"
    proc = tally(
        "statement",
        "--customer",
        "cus_acme",
        "--month",
        "2026-11",
        "--out",
        str(out),
        home=home,
        TALLY_NOW="2026-12-05",
    )
    assert "wrote the final statement of 2026-11" in proc.stderr
    assert "<svg" in out.read_text() and "FINAL" in out.read_text()
    assert closing.final_path(Home(home), NOV).exists()

    bad = tally(
        "statement",
        "--customer",
        "cus_nobody",
        "--month",
        "2026-11",
        home=home,
        TALLY_NOW="2026-12-05",
        check=False,
    )
    assert bad.returncode == 2 and bad.stderr.strip() == "error: unknown customer 'cus_nobody'"
    bad = tally(
        "statement",
        "--customer",
        "cus_acme",
        "--month",
        "11/2026",
        "--format",
        "xml",
        home=home,
        TALLY_NOW="2026-12-05",
        check=False,
    )
    assert bad.returncode == 2 and "--format must be html, json, csv or pdf" in bad.stderr
    close_lake(Home(home))


def test_dagster_statement_assets_and_schedule(fresh_home, monkeypatch):
    import dagster as dg

    from pipelines.definitions import defs
    from pipelines.defs.resources import TallyHome
    from pipelines.defs.statements.assets import monthly_statements, tally_report
    from pipelines.defs.statements.schedules import monthly_statements_schedule

    monkeypatch.setenv("TALLY_HOME", str(fresh_home.root))
    d = defs()
    assert d.resolve_job_def("statement_run") is not None
    spec = d.resolve_assets_def("monthly_statements").specs_by_key[
        dg.AssetKey("monthly_statements")
    ]
    assert isinstance(spec.partitions_def, dg.MonthlyPartitionsDefinition) and spec.description
    assert d.resolve_assets_def("tally_report") is not None
    assert d.resolve_schedule_def("monthly_statements_schedule").cron_schedule == "0 1 * * *"

    tick = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 12, 3, 1, tzinfo=UTC))
    assert isinstance(monthly_statements_schedule(tick), dg.SkipReason)
    tick = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 12, 4, 1, tzinfo=UTC))
    request = monthly_statements_schedule(tick)
    assert (request.partition_key, request.run_key) == ("2026-11", "2026-11")

    resource = TallyHome(home=str(fresh_home.root))
    monkeypatch.setenv(clock.NOW_ENV, "2026-12-04T00:00:00Z")
    result = monthly_statements(dg.build_asset_context(partition_key="2026-11"), tally=resource)
    assert result.metadata["status"] == "final" and result.metadata["customers"] == 2
    assert "cus_acme" in result.metadata["totals"].value
    result = tally_report(tally=resource)
    assert (fresh_home.root / "reports" / "report.html").exists()
    assert result.metadata["pools"] >= 2


# ------------------------------------------------------------------------------ fit to send


def test_an_open_statement_says_exactly_why(nov_home):
    doc = closing.statement(nov_home, "cus_acme", NOV, at=IN_GRACE)
    assert doc["status"] == "open"
    assert doc["open_because"].startswith("November 2026 closes after 2026-12-03")
    # The ledger behind the month's last day (it runs through yesterday: a month with quiet
    # last days still closes); the reason names the day it has reached.
    behind = closing.open_because(nov_home, NOV, NOV_CLOSED, 3, date(2026, 11, 14))
    assert behind == (
        "the ledger has processed through 2026-11-14, not 2026-11-30, the last day of November 2026"
    )
    both = closing.open_because(
        nov_home, NOV, datetime(2026, 11, 20, tzinfo=UTC), 3, date(2026, 11, 14)
    )
    assert "processed through 2026-11-14" in both and "closes after 2026-12-03" in both
    page = render.statement_html(doc)
    assert "Not final yet:" in page and "closes after 2026-12-03" in page


def test_html_shows_2_decimals_a_summary_first_and_seats_with_their_users(nov_home):
    doc = closing.statement(nov_home, "cus_acme", NOV, at=IN_GRACE)
    page = render.statement_html(doc, source="/somewhere/warehouse.duckdb")
    import re

    assert not re.search(r"\d\.\d{3,}", page)  # never 6 decimals in the page
    assert "2 decimal places" in page and "exact to 6" in page
    assert page.index("<h2>Summary</h2>") < page.index("Details") < page.index("Balances by pool")
    total = doc["totals"][0]
    assert render.money(total["closing_balance"]) in page
    assert "/somewhere/warehouse.duckdb" in page
    users = render.seat_users(doc)
    seat = next(b["recipient_id"] for b in doc["balances"] if b["recipient_type"] == "seat")
    shown = f'Seat {render.breakable(seat)} <span class="muted">· {users[seat]}</span>'
    assert users[seat] and shown in page
    assert render.money("-2.005") == "-2.01" and render.money("0.004") == "0.00"


def test_csv_has_totals_per_currency(nov_home):
    doc = closing.statement(nov_home, "cus_acme", NOV, at=IN_GRACE)
    rows = list(csv.DictReader(io.StringIO(render.statement_csv(doc))))
    totals = {(r["currency"], r["item"]): r["credits"] for r in rows if r["section"] == "total"}
    for t in doc["totals"]:
        assert totals[(t["currency"], "closing_balance")] == t["closing_balance"]
        assert totals[(t["currency"], "spent")] == t["spent"]
    products = [r for r in rows if r["section"] == "product_event"]
    for r in rows:
        if r["section"] == "product_event_total":
            mine = [p for p in products if p["currency"] == r["currency"]]
            assert D(r["credits"]) == sum(D(p["credits"]) for p in mine)
            assert int(r["signals"]) == sum(int(p["signals"]) for p in mine)
            assert len(r["credits"].split(".")[1]) == 6


@pytest.mark.parametrize("width,media", [(1024, "screen"), ("a4", "print")])
def test_statement_tables_fit_at_1024_px_and_in_a4_print(nov_home, tmp_path, width, media):
    from statement_helpers import A4_PRINT_WIDTH, layout_in_chromium

    doc = closing.statement(nov_home, "cus_acme", NOV, at=IN_GRACE)
    page = tmp_path / "statement.html"
    page.write_text(render.statement_html(doc, source=str(nov_home.warehouse)), encoding="utf-8")
    pdf = tmp_path / "statement.pdf" if media == "print" else None
    shown = layout_in_chromium(
        page,
        tmp_path / f"statement-{media}.png",
        A4_PRINT_WIDTH if width == "a4" else width,
        print_media=media == "print",
        pdf=pdf,
    )
    assert shown.overflows == []
    assert shown.midword == []  # ids wrap after `_`, `-`, `.`: "seat_" + "allowance"
    assert shown.screenshot.stat().st_size > 20_000
    if pdf is not None:
        assert pdf.read_bytes().startswith(b"%PDF")


def test_ids_wrap_only_after_separators_or_every_16_characters():
    assert render.breakable("seat_allowance") == "seat_<wbr>allowance"
    assert render.breakable("a.b-c/d:e@f") == "a.<wbr>b-<wbr>c/<wbr>d:<wbr>e@<wbr>f"
    assert render.breakable("x" * 20) == "x" * 16 + "<wbr>" + "x" * 4
    assert render.breakable("<b>_&") == "&lt;b&gt;_<wbr>&amp;"  # escaped, then marked up
    assert render.breakable(None) == ""


def test_tally_statement_writes_a_real_pdf_and_refuses_unknown_suffixes(fresh_home, tmp_path):
    from statement_helpers import CHROMIUM

    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing")
    args = ("statement", "--customer", "cus_acme", "--month", "2026-11")
    pdf = tmp_path / "acme.pdf"
    proc = tally(*args, "--out", str(pdf), home=fresh_home, TALLY_NOW="2026-12-02")
    assert "wrote the open statement of 2026-11" in proc.stderr
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and b"/Type /Page" in data and len(data) > 10_000
    for bad in ("acme.txt", "acme", "acme.PDFX"):
        proc = tally(
            *args,
            "--out",
            str(tmp_path / bad),
            home=fresh_home,
            TALLY_NOW="2026-12-02",
            check=False,
        )
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
        assert "unknown suffix" in proc.stderr and not (tmp_path / bad).exists()
    proc = tally(
        *args,
        "--format",
        "json",
        "--out",
        str(tmp_path / "x.csv"),
        home=fresh_home,
        TALLY_NOW="2026-12-02",
        check=False,
    )
    assert proc.returncode == 2 and "does not match" in proc.stderr
    csv_out = tmp_path / "acme.csv"
    tally(*args, "--out", str(csv_out), home=fresh_home, TALLY_NOW="2026-12-02")
    assert ",total," in csv_out.read_text()

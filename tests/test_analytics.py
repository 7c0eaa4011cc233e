"""Breakdowns by any JSON key, key discovery, and the warehouse under concurrent readers."""

from __future__ import annotations

import shutil
import threading
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.billing.engine import run_engine
from pipelines.core.home import Home
from pipelines.landing.ingest import ingest_signals
from pipelines.landing.lake import Lake
from pipelines.pricing.config import load_config
from pipelines.warehouse.analytics import AnalyticsError, breakdown, data_keys
from pipelines.warehouse.publish import publish

NASTY = ["a.b", "with space", 'quote"d', "it's", "é/ü~x", "a'); DROP TABLE x; --", "Team"]
CONFIG = """
currencies: [{key: credits, name: Credits}]
customers: [{external_id: c1, name: C1}, {external_id: c2, name: C2}]
products:
  - external_id: p
    name: P
    pricing: [{event: e, currency: credits, credit_cost: "0.5", quantity_path: $.q}]
grants:
  - {id: g1, customer: c1, currency: credits, amount: 100, starts_at: 2026-11-01T00:00:00Z}
"""


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    home = Home(tmp_path_factory.mktemp("analytics"))
    home.config_dir.mkdir()
    (home.config_dir / "c.yaml").write_text(CONFIG)
    signals = []
    for i in range(240):
        data = {
            "q": i % 5,
            "team": ["red", "blue", None][i % 3],
            "n": {"deep": i % 2},
            NASTY[i % len(NASTY)]: f"v{i % 4}",
        }
        if i % 7 == 0:
            del data["team"]
        signals.append(
            {
                "eventName": "e" if i % 11 else "other",
                "customer": {"externalCustomerId": f"c{1 + i % 2}"},
                "attribution": {"externalProductId": "p"},
                "timestamp": f"2026-11-0{1 + i % 4}T{i % 24:02d}:00:00Z",
                "data": data,
            }
        )
    ingest_signals(Lake(home.lake), signals)
    run_engine(home)
    return publish(home, load_config(home.config_dir))


def totals(path: Path, where: str = "TRUE", params: dict | None = None) -> tuple:
    con = duckdb.connect(str(path), read_only=True)
    return con.execute(
        f"SELECT count(*), sum(quantity), coalesce(sum(credits), 0) FROM fact_signal WHERE {where}",
        params or {},
    ).fetchall()[0]


@pytest.mark.parametrize("key", NASTY)
def test_nasty_keys_are_just_keys(warehouse, key):
    path = '$["' + key.replace("\\", "\\\\").replace('"', '\\"') + '"]'
    result = breakdown(warehouse, [path])
    values: dict = {}  # per value, over the currencies (priced) and no currency (not priced)
    for value, n in zip(
        result.table[path].to_pylist(), result.table["signals"].to_pylist(), strict=True
    ):
        values[value] = values.get(value, 0) + n
    expected = sum(1 for i in range(240) if NASTY[i % len(NASTY)] == key)
    assert sum(v for k, v in values.items() if k is not None) == expected
    assert set(values) - {None} <= {f'"v{j}"' for j in range(4)}
    con = duckdb.connect(str(warehouse), read_only=True)
    assert con.execute("SELECT count(*) FROM fact_signal").fetchall()[0][0] == 240


def test_case_sensitive_keys_and_missing_group(warehouse):
    upper = breakdown(warehouse, ['"Team"']).table.to_pylist()
    lower = breakdown(warehouse, ["$.team"]).table.to_pylist()
    assert {r['"Team"'] for r in upper} == {None, '"v0"', '"v1"', '"v2"', '"v3"'}
    by_team: dict = {}
    for r in lower:
        by_team[r["$.team"]] = by_team.get(r["$.team"], 0) + r["signals"]
    # JSON null and a missing key both group as null.
    assert by_team[None] == sum(1 for i in range(240) if i % 7 == 0 or i % 3 == 2)


def test_hot_key_and_json_path_agree(warehouse):
    hot = breakdown(warehouse, ["team"]).table  # a configured hot key: pre-extracted column
    forced = breakdown(warehouse, ['$["team"]', "event"]).table  # same path, grouped finer
    assert sorted(hot["signals"].to_pylist()) != []
    assert sum(hot["signals"].to_pylist()) == sum(forced["signals"].to_pylist()) == 240
    assert sum(hot["credits"].to_pylist()) == sum(forced["credits"].to_pylist())


KEYS = st.lists(
    st.sampled_from(
        [
            "customer",
            "product",
            "event",
            "user",
            "seat",
            "day",
            "week",
            "month",
            "team",
            "$.n.deep",
            "n.deep",
            '$["a.b"]',
            "$.q",
            "missing.key",
        ]
    ),
    min_size=1,
    max_size=3,
    unique=True,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    keys=KEYS,
    customer=st.sampled_from([None, "c1", "c2", "nobody"]),
    event=st.sampled_from([None, "e", "other"]),
    span=st.sampled_from([(None, None), ("2026-11-02", None), ("2026-11-02", "2026-11-04")]),
)
def test_breakdown_totals_equal_fact_signal(warehouse, keys, customer, event, span):
    result = breakdown(
        warehouse, keys, customer=customer, event=event, from_day=span[0], to_day=span[1]
    )
    t = result.table
    where = (
        "($c IS NULL OR customer_id = $c) AND ($e IS NULL OR event_name = $e) "
        "AND ($f IS NULL OR timestamp >= CAST($f AS TIMESTAMPTZ)) "
        "AND ($t IS NULL OR timestamp < CAST($t AS TIMESTAMPTZ))"
    )
    n, q, c = totals(warehouse, where, {"c": customer, "e": event, "f": span[0], "t": span[1]})
    # The rollup (used when every key is built in or hot) answers exactly like the signals.
    direct = breakdown(
        warehouse,
        keys,
        customer=customer,
        event=event,
        from_day=span[0],
        to_day=span[1],
        force_signals=True,
    ).table
    assert sorted(map(repr, t.to_pylist())) == sorted(map(repr, direct.to_pylist()))
    assert sum(t["signals"].to_pylist()) == n
    assert sum(x for x in t["quantity"].to_pylist() if x is not None) == (q or 0)
    assert sum(t["credits"].to_pylist(), Decimal(0)) == c


def test_bad_requests_are_one_line(warehouse):
    with pytest.raises(AnalyticsError, match="invalid path"):
        breakdown(warehouse, ["a..b"])
    with pytest.raises(AnalyticsError, match="not a date"):
        breakdown(warehouse, ["day"], from_day="soon")
    with pytest.raises(AnalyticsError, match="once"):
        breakdown(warehouse, ["day", "day"])


def test_keys_report_types_counts_and_spelling_drift(warehouse):
    report = data_keys(warehouse)
    paths = {(r["event_name"], r["path"], r["json_type"]): r["signals"] for r in report.rows}
    assert paths[("e", "$.n.deep", "integer")] > 0
    assert paths[("e", "$.n", "object")] > 0
    assert ("e", '$["a.b"]', "string") in paths
    assert any("$.team" in w and "$.Team" in w for w in report.warnings)


def test_reader_holding_the_warehouse_open_neither_blocks_nor_breaks(warehouse, tmp_path):
    home = Home(tmp_path / "copy")  # a copy of its own: the module's warehouse stays as it is
    shutil.copytree(warehouse.parent, home.root)
    warehouse = home.warehouse
    con = duckdb.connect(str(warehouse), read_only=True)
    before = con.execute("SELECT count(*) FROM fact_signal").fetchall()[0][0]
    errors: list[Exception] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                c = duckdb.connect(str(warehouse), read_only=True)
                c.execute("SELECT count(*), sum(credits) FROM fact_signal").fetchall()
                c.close()
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    ingest_signals(
        Lake(home.lake),
        [
            {
                "eventName": "e",
                "customer": {"externalCustomerId": "c1"},
                "attribution": {"externalProductId": "p"},
                "timestamp": "2026-11-04T12:00:00Z",
                "data": {"q": 1},
            }
        ],
    )
    run_engine(home)
    publish(home, load_config(home.config_dir))
    stop.set()
    reader.join()
    assert not errors, errors[:3]
    # The connection opened before publishing still answers (its snapshot); a new one sees more.
    assert con.execute("SELECT count(*) FROM fact_signal").fetchall()[0][0] >= before
    con.close()  # (a connection in this process would share the old file's database instance)
    fresh = duckdb.connect(str(warehouse), read_only=True)
    assert fresh.execute("SELECT count(*) FROM fact_signal").fetchall()[0][0] == before + 1
    macro = fresh.execute(
        "SELECT sum(priced_signals) FROM credits_by_keys('/team', '/q', '2026-11-01', '2026-12-01')"
    ).fetchall()[0][0]
    priced = fresh.execute("SELECT count(*) FROM fact_signal WHERE status = 'priced'").fetchall()
    assert macro == priced[0][0]

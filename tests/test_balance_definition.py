"""One definition of a balance "at the end of day D" (sql/balance_end_of_day.sql)
shared by the HTTP API, `tally balances`, statements and the warehouse: all four agree, on a grant
that expires exactly at the midnight that ends the last processed day (it counts on that day and
expires the next) and on the demo."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from pipelines.api.app import create_app
from pipelines.core.home import Home
from pipelines.core.sql import connect
from tests.conftest import tally

NOW = "2026-11-20T12:00:00Z"  # the last processed day is 2026-11-19
CONFIG = """
currencies:
  - {key: credits, name: Credits}
customers:
  - {external_id: acme, name: Acme}
users:
  - {customer: acme, external_id: u1}
seats:
  - {id: seat_1, customer: acme, assignments: [{user: u1, from: 2026-11-01T00:00:00Z}]}
products:
  - external_id: p
    pricing:
      - {event: e, currency: credits, credit_cost: 1}
grants:
  - {id: g_mid, customer: acme, currency: credits, amount: 10, priority: 1,
     starts_at: 2026-11-18T00:00:00Z, expires_at: 2026-11-20T00:00:00Z}
  - {id: g_long, customer: acme, currency: credits, amount: 100, starts_at: 2026-11-18T00:00:00Z}
  - {id: g_next, customer: acme, currency: credits, amount: 5, starts_at: 2026-11-20T00:00:00Z}
  - {id: g_seat, customer: acme, seat: seat_1, currency: credits, amount: 4,
     starts_at: 2026-11-18T00:00:00Z, expires_at: 2026-11-20T00:00:00Z}
"""
Key = tuple[str, str, str, str]


def signal(i: int, user: str | None = None) -> str:
    data = {"external_user_id": user} if user else {}
    return json.dumps(
        {
            "eventName": "e",
            "customer": {"externalCustomerId": "acme"},
            "attribution": {"externalProductId": "p"},
            "timestamp": f"2026-11-19T{10 + i:02d}:00:00Z",
            "data": data,
            "idempotencyKey": f"k{i}",
        }
    )


def four_views(root: Path, month: str, **env: str) -> list[dict[Key, Decimal]]:
    """Available credits per pool and seat at the end of the last processed day, as the
    warehouse, `tally balances`, the HTTP API and the month's statement say."""
    con = connect(root / "warehouse.duckdb", read_only=True)
    rows = con.execute(
        "SELECT customer_id, recipient_type, recipient_id, currency, available "
        "FROM balances_as_of(NULL)"
    ).fetchall()
    customers = sorted({r[0] for r in rows})
    warehouse = {r[:4]: r[4] for r in rows}
    cli = {
        (r["customer_id"], r["recipient_type"], r["recipient_id"], r["currency"]): Decimal(
            str(r["available"])
        )
        for r in json.loads(tally("balances", "--format", "json", home=root, **env).stdout)
    }
    home = Home(root)
    api: dict[Key, Decimal] = {}
    with TestClient(create_app(home, ["t"]), headers={"Authorization": "Bearer t"}) as client:
        for customer in customers:
            pools = client.get(f"/api/v2/customers/external/{customer}/credits/balances").json()
            for p in pools["data"]:
                rid = p.get("seatId", customer)
                key = (customer, p["recipient"], rid, p["currencyKey"])
                api[key] = Decimal(str(p["available"]))
                assert api[key] == sum(Decimal(str(g["available"])) for g in p["grants"])
    statement: dict[Key, Decimal] = {}
    for customer in customers:
        out = tally(
            "statement",
            "--customer",
            customer,
            "--month",
            month,
            "--format",
            "json",
            home=root,
            **env,
        ).stdout
        for line in json.loads(out)["balances"]:
            key = (customer, line["recipient_type"], line["recipient_id"], line["currency"])
            statement[key] = Decimal(str(line["available"]))
    return [warehouse, cli, api, statement]


def test_a_grant_expiring_at_the_midnight_that_ends_the_day(home: Home) -> None:
    home.config_dir.mkdir()
    (home.config_dir / "company.yaml").write_text(CONFIG)
    signals = home.root / "s.jsonl"
    signals.write_text("\n".join([signal(0), signal(1), signal(2), signal(3, "u1")]) + "\n")
    tally("ingest", str(signals), home=home, TALLY_NOW=NOW)
    tally("run", home=home, TALLY_NOW=NOW)
    views = four_views(home.root, "2026-11", TALLY_NOW=NOW)
    expected = {
        ("acme", "organization", "acme", "credits"): Decimal("107"),  # g_mid 10 - 3 + g_long
        ("acme", "seat", "seat_1", "credits"): Decimal("3"),  # g_seat 4 - 1, expires at midnight
    }
    for view in views:
        assert view == expected, views
    con = connect(home.warehouse, read_only=True)
    grants = dict(
        con.execute("SELECT grant_id, remaining FROM grant_balances_as_of(NULL)").fetchall()
    )
    assert grants == {"g_mid": 7, "g_long": 100, "g_seat": 3}  # g_next starts at midnight


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo") / "data"
    tally("demo", "--home", str(root), home=root)
    return root


def test_all_four_agree_on_the_demo(demo: Path) -> None:
    con = connect(demo / "warehouse.duckdb", read_only=True)
    (day,) = con.execute("SELECT max(date) FROM balance_snapshot").fetchone()
    warehouse, cli, api, statement = four_views(demo, day.strftime("%Y-%m"))
    assert len(warehouse) > 10
    assert cli == warehouse and api == warehouse and statement == warehouse

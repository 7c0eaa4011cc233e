"""Pricing edge cases straight through the engine (docs/concepts.md)."""

from __future__ import annotations

from decimal import Decimal

import duckdb
import pytest

from pipelines.billing.engine import run_engine
from pipelines.landing.ingest import ingest_signals
from pipelines.landing.lake import Lake
from pipelines.pricing.price import exact_number

CONFIG = """
currencies: [{key: credits, name: Credits}]
customers: [{external_id: c, name: C}]
products:
  - external_id: p
    name: P
    pricing:
      - {event: q, currency: credits, credit_cost: "COST", quantity_path: $.q}
      - {event: fixed, currency: credits, credit_cost: "1.5"}
      - {event: nested, currency: credits, credit_cost: "2", quantity_path: a.b}
      - {event: dotted, currency: credits, credit_cost: "2", quantity_path: '$["a.b"]'}
grants: [{id: g, customer: c, currency: credits, amount: 1000000, starts_at: 2026-11-01T00:00:00Z}]
"""


def price(home, signals, cost="1"):
    home.config_dir.mkdir(exist_ok=True)
    (home.config_dir / "c.yaml").write_text(CONFIG.replace("COST", cost))
    raw = []
    for event, data in signals:
        body = (
            f'{{"eventName":"{event}","customer":{{"externalCustomerId":"c"}},'
            '"attribution":{"externalProductId":"p"},"timestamp":"2026-11-02T00:00:00Z"'
        )
        raw.append((body + (',"data":' + data if data is not None else "") + "}").encode())
    ingest_signals(Lake(home.lake), raw)
    run_engine(home)
    con = duckdb.connect()
    return con.execute(
        "SELECT status, quantity, credits FROM read_parquet($f) ORDER BY seq",
        {"f": str(home.engine_dir / "fact_signal" / "*" / "*.parquet")},
    ).fetchall()


CASES = [
    ('{"q": 5}', ("priced", Decimal(5), Decimal(5))),
    ('{"q": "2.5"}', ("priced", Decimal("2.5"), Decimal("2.5"))),
    ('{"q": 0}', ("priced", Decimal(0), Decimal(0))),
    ('{"q": null}', ("priced", Decimal(1), Decimal(1))),
    ("{}", ("priced", Decimal(1), Decimal(1))),
    (None, ("priced", Decimal(1), Decimal(1))),
    ('{"q": 1e3}', ("priced", Decimal(1000), Decimal(1000))),
    ('{"q": 0.0000001}', ("priced", Decimal("0.0000001"), Decimal("0"))),
    (
        '{"q": 123456789.123456789}',
        ("priced", Decimal("123456789.123456789"), Decimal("123456789.123457")),
    ),
    ('{"q": 0.000000000001}', ("priced", Decimal("1E-12"), Decimal(0))),
    ('{"q": "1.500000000000000"}', ("priced", Decimal("1.5"), Decimal("1.5"))),
    ('{"q": 0.1234567890123}', ("invalid_quantity", None, Decimal(0))),
    ('{"q": -1}', ("invalid_quantity", None, Decimal(0))),
    ('{"q": true}', ("invalid_quantity", None, Decimal(0))),
    ('{"q": "abc"}', ("invalid_quantity", None, Decimal(0))),
    ('{"q": " 2"}', ("invalid_quantity", None, Decimal(0))),
    ('{"q": "-2"}', ("invalid_quantity", None, Decimal(0))),
    ('{"q": {"v": 1}}', ("invalid_quantity", None, Decimal(0))),
    ('{"q": [1]}', ("invalid_quantity", None, Decimal(0))),
    ('{"q": 1e19}', ("invalid_quantity", None, Decimal(0))),
    (
        '{"q": 999999999999999999}',
        ("priced", Decimal("999999999999999999"), Decimal("999999999999999999")),
    ),
    ('{"q": 1000000000000000000}', ("invalid_quantity", None, Decimal(0))),
]


@pytest.mark.parametrize(("data", "expected"), CASES)
def test_quantity_rules(home, data, expected):
    ((status, quantity, credits),) = price(home, [("q", data)])
    assert status == expected[0]
    assert credits == expected[2]
    if expected[1] is not None:
        assert quantity == expected[1]


@pytest.mark.parametrize(
    ("cost", "q", "credits"),
    [
        ("0.000001", "0.5", "0.000001"),  # 0.0000005 rounds half away from zero
        ("0.000003", "0.5", "0.000002"),  # 0.0000015
        ("0.000001", "0.49", "0"),
        ("1.5", "0.333333", "0.5"),  # 0.4999995 -> 0.500000
        ("2", "3", "6"),
    ],
)
def test_rounding_half_away_from_zero(home, cost, q, credits):
    ((status, _, got),) = price(home, [("q", f'{{"q": "{q}"}}')], cost=cost)
    assert (status, got) == ("priced", Decimal(credits))


def test_fixed_cost_ignores_data_and_paths_nest(home):
    rows = price(
        home,
        [
            ("fixed", '{"quantity": 5}'),
            ("nested", '{"a": {"b": 3}}'),
            ("dotted", '{"a.b": 4, "a": {"b": 100}}'),
        ],
    )
    assert [r[2] for r in rows] == [Decimal("1.5"), Decimal(6), Decimal(8)]


def test_huge_products_are_exact_and_overflow_is_invalid_not_a_crash(home):
    ((status, _, credits),) = price(home, [("q", '{"q": 99999999999999999}')], cost="99999")
    assert (status, credits) == ("priced", Decimal("9999899999999999900001"))


def test_credits_beyond_decimal_38_6_are_invalid(home):
    ((status, _, credits),) = price(
        home, [("q", '{"q": 100000000000000000}')], cost="99999999999999999999999999"
    )
    assert (status, credits) == ("invalid_quantity", Decimal(0))


def test_exact_number_reads_the_raw_digits():
    assert (
        exact_number('{"a": {"b": [1, 0.12345678901234567891]}}', "/a/b/1")
        == "0.12345678901234567891"
    )
    assert exact_number('{"a~b": {"c/d": 2.50}}', "/a~0b/c~1d") == "2.50"
    assert exact_number('{"a": "2.5"}', "/a") is None
    assert exact_number('{"a": true}', "/a") is None

"""Tests for pipelines.pricing.config: loading and validating `<config_dir>/*.yaml`."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.pricing.config import (
    Config,
    ConfigError,
    Currency,
    Grant,
    SeatAssignment,
    load_config,
    parse_config,
)

SAMPLE = """\
currencies:
  - {key: credits, name: Credits}
customers:
  - {external_id: cus_acme, name: Acme Corp, metadata: {segment: enterprise}}
products:
  - external_id: doc_processor
    name: Document processor
    pricing:                               # one rule per (event, time range)
      - event: document_processed
        currency: credits
        credit_cost: 1.5                   # decimal >= 0, at most 6 decimal places
        quantity_path: $.quantity          # optional
        from: 2026-01-01T00:00:00Z         # optional, inclusive
        until: null                        # optional, exclusive
users:
  - {customer: cus_acme, external_id: usr_jane_doe, name: Jane Doe, metadata: {team: research}}
seats:
  - id: seat_001
    customer: cus_acme
    assignments:
      - {user: usr_jane_doe, from: 2026-11-01T00:00:00Z, until: null}
grants:
  - id: grant_001
    customer: cus_acme
    seat: null                             # null/absent = the organization pool
    currency: credits
    amount: 10000                          # decimal > 0, at most 6 dp
    starts_at: 2026-11-01T00:00:00Z
    expires_at: 2026-12-01T00:00:00Z       # optional; absent = never expires
    priority: 50                           # optional, default 50; lower burns first
    origin: purchased                      # optional label
"""

# A valid base for error tests: two customers, each with a user and a seat.
BASE = """\
currencies:
  - {key: credits, name: Credits}
  - {key: api_calls, name: API calls}
customers:
  - {external_id: cus_acme, name: Acme}
  - {external_id: cus_beta, name: Beta}
products:
  - external_id: doc
    name: Docs
    pricing:
      - {event: page, currency: credits, credit_cost: 1, until: 2026-02-01T00:00:00Z}
      - {event: page, currency: credits, credit_cost: 2, from: 2026-02-01T00:00:00Z}
users:
  - {customer: cus_acme, external_id: usr_a}
  - {customer: cus_beta, external_id: usr_b}
seats:
  - {id: seat_a, customer: cus_acme}
  - {id: seat_b, customer: cus_beta}
"""

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return directory


def load(tmp_path: Path, extra: str | None = None, base: str = BASE) -> Config:
    files = {"base.yaml": base}
    if extra is not None:
        files["extra.yaml"] = extra
    return load_config(write(tmp_path / "config", files))


def errors_of(tmp_path: Path, extra: str | None = None, base: str = BASE) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, extra, base)
    for line in info.value.errors:
        assert "\n" not in line, f"one line per error: {line!r}"
    assert str(info.value) == "\n".join(info.value.errors)
    return info.value.errors


def only_error(tmp_path: Path, extra: str | None = None, base: str = BASE) -> str:
    errors = errors_of(tmp_path, extra, base)
    assert len(errors) == 1, errors
    return errors[0]


# --- loading the sample of docs/configuration.md ---


def test_sample_config_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, {"company.yaml": SAMPLE}))
    assert config.currencies == (Currency("credits", "Credits"),)
    (customer,) = config.customers
    assert (customer.external_id, customer.name, customer.metadata) == (
        "cus_acme",
        "Acme Corp",
        {"segment": "enterprise"},
    )
    (product,) = config.products
    (rule,) = product.pricing
    assert rule.rule_id == "doc_processor:document_processed:1"
    assert (rule.product_id, rule.event, rule.currency) == (
        "doc_processor",
        "document_processed",
        "credits",
    )
    assert rule.credit_cost == Decimal("1.5") and isinstance(rule.credit_cost, Decimal)
    assert rule.quantity_path == "$.quantity"
    assert rule.valid_from == T0 and rule.valid_from.tzinfo is not None
    assert rule.valid_until is None
    (user,) = config.users
    assert (user.customer_id, user.external_id, user.metadata) == (
        "cus_acme",
        "usr_jane_doe",
        {"team": "research"},
    )
    (seat,) = config.seats
    assert seat.assignments == (
        SeatAssignment("seat_001", "usr_jane_doe", datetime(2026, 11, 1, tzinfo=UTC), None),
    )
    assert config.grants == (
        Grant(
            "grant_001",
            "cus_acme",
            None,
            "credits",
            Decimal("10000"),
            datetime(2026, 11, 1, tzinfo=UTC),
            datetime(2026, 12, 1, tzinfo=UTC),
            50,
            "purchased",
        ),
    )
    assert len(config.fingerprint()) == 64


def test_defaults(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """\
        grants:
          - {id: g1, customer: cus_acme, currency: credits, amount: 5, starts_at: 2026-01-01}
        """,
    )
    (grant,) = config.grants
    assert (grant.seat_id, grant.expires_at, grant.priority, grant.origin) == (None, None, 50, None)
    assert config.customers[0].name == "Acme"
    assert config.users[0].name == "usr_a" and config.users[0].metadata == {}
    assert config.currencies[1] == Currency("credits", "Credits")


def test_files_read_in_sorted_order_and_concatenated(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "b.yaml": "customers:\n  - {external_id: cus_b}\n",
            "a.yaml": "customers:\n  - {external_id: cus_a}\ncurrencies:\n  - {key: c}\n",
            "c.yaml": "",
            "d.yaml": "customers: null\n",
            ".hidden.yaml": "not: [valid",
            "notes.yml": "ignored: true",
        },
    )
    config = load_config(tmp_path)
    assert [c.external_id for c in config.customers] == ["cus_a", "cus_b"]
    with pytest.raises(ConfigError) as info:
        write(tmp_path, {"a.yaml": "customers:\n  - {external_id: cus_b}\n"})
        load_config(tmp_path)
    assert info.value.errors == [
        "b.yaml: customers[0] (external_id=cus_b): duplicate customer 'cus_b', "
        "first at a.yaml: customers[0] (external_id=cus_b)"
    ]


def test_fingerprint_ignores_file_split_and_entry_order(tmp_path: Path) -> None:
    one = load_config(write(tmp_path / "one", {"company.yaml": SAMPLE}))
    cut = SAMPLE.index("products:")
    first, second = SAMPLE[:cut], SAMPLE[cut:]
    split = load_config(write(tmp_path / "split", {"z.yaml": first, "a.yaml": second}))
    assert split == one
    assert split.fingerprint() == one.fingerprint()
    reordered = BASE.replace(
        "  - {external_id: cus_acme, name: Acme}\n  - {external_id: cus_beta, name: Beta}",
        "  - {external_id: cus_beta, name: Beta}\n  - {external_id: cus_acme, name: Acme}",
    ).replace(
        "      - {event: page, currency: credits, credit_cost: 1, until: 2026-02-01T00:00:00Z}\n"
        "      - {event: page, currency: credits, credit_cost: 2, from: 2026-02-01T00:00:00Z}",
        "      - {event: page, currency: credits, credit_cost: 2.000, from: 2026-02-01}\n"
        "      - {event: page, currency: credits, credit_cost: '1',"
        " until: 2026-02-01T01:00:00+01:00}",
    )
    assert reordered != BASE
    a = load(tmp_path / "a")
    b = load(tmp_path / "b", base=reordered)
    assert a == b and a.fingerprint() == b.fingerprint()
    assert [r.rule_id for r in b.products[0].pricing] == ["doc:page:1", "doc:page:2"]
    assert b.products[0].pricing[0].credit_cost == Decimal(1)
    changed = load(tmp_path / "c", base=BASE.replace("name: Beta", "name: Beta Inc"))
    assert changed.fingerprint() != a.fingerprint()


def test_rule_ids_count_per_event_in_time_order(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """\
        products:
          - external_id: p
            pricing:
              - {event: b, currency: credits, credit_cost: 1, from: 2026-03-01T00:00:00Z}
              - {event: a, currency: credits, credit_cost: 1}
              - {event: b, currency: credits, credit_cost: 1, until: 2026-03-01T00:00:00Z}
        """,
    )
    product = next(p for p in config.products if p.external_id == "p")
    assert [(r.rule_id, r.valid_from) for r in product.pricing] == [
        ("p:a:1", None),
        ("p:b:1", None),
        ("p:b:2", datetime(2026, 3, 1, tzinfo=UTC)),
    ]


# --- values: decimals, times, identifiers, metadata ---


@pytest.mark.parametrize(
    ("written", "value"),
    [
        ("1.5", "1.5"),
        ("0.1", "0.1"),
        ("'2.5'", "2.5"),
        ('"0.000001"', "0.000001"),
        ("0", "0"),
        ("-0", "0"),
        ("10000", "10000"),
        ("1.500000000", "1.5"),
        ("123456789012345678.123456", "123456789012345678.123456"),
        ("99999999999999999999999999999999.999999", "99999999999999999999999999999999.999999"),
        ("+3", "3"),
        ("7.", "7"),
        (".25", "0.25"),
    ],
)
def test_decimals_are_exact(tmp_path: Path, written: str, value: str) -> None:
    config = load(
        tmp_path,
        f"""\
        products:
          - external_id: p
            pricing: [{{event: e, currency: credits, credit_cost: {written}}}]
        """,
    )
    cost = next(p for p in config.products if p.external_id == "p").pricing[0].credit_cost
    assert cost == Decimal(value)
    assert cost.as_tuple().exponent == -6


@given(
    cost=st.decimals(min_value=0, max_value=Decimal("1e31"), places=6, allow_nan=False),
    quoted=st.booleans(),
)
def test_any_six_place_decimal_is_exact(cost: Decimal, quoted: bool) -> None:
    written = f"'{cost:f}'" if quoted else f"{cost:f}"
    config = parse_config(
        {
            "c.yaml": "currencies: [{key: c}]\nproducts: [{external_id: p, pricing: "
            f"[{{event: e, currency: c, credit_cost: {written}}}]}}]\n",
        }
    )
    assert config.products[0].pricing[0].credit_cost == cost


@pytest.mark.parametrize(
    ("written", "problem"),
    [
        ("1.1234567", "'1.1234567' has more than 6 decimal places"),
        ("'0.0000001'", "'0.0000001' has more than 6 decimal places"),
        ("abc", "'abc' is not a plain decimal number"),
        ("'1e3'", "'1e3' is not a plain decimal number"),
        ("1.0e+3", "'1.0e+3' is not a plain decimal number"),
        (".inf", "'.inf' is not a plain decimal number"),
        (".nan", "'.nan' is not a plain decimal number"),
        ("1_000", "'1_000' is not a plain decimal number"),
        ("'1,5'", "'1,5' is not a plain decimal number"),
        ("true", "true is not a plain decimal number"),
        ("[1]", "a list is not a plain decimal number"),
        ("-1", "'-1' is negative"),
        ("-0.5", "'-0.5' is negative"),
        ("100000000000000000000000000000000", "is too large"),
        ("' 1'", "is not a plain decimal number"),
    ],
)
def test_bad_credit_cost(tmp_path: Path, written: str, problem: str) -> None:
    error = only_error(
        tmp_path,
        f"""\
        products:
          - external_id: p
            pricing: [{{event: e, currency: credits, credit_cost: {written}}}]
        """,
    )
    assert error.startswith("extra.yaml: products[0] (external_id=p): pricing[0] (event=e): ")
    assert "credit_cost: " in error and problem in error


@pytest.mark.parametrize(
    ("written", "problem"),
    [
        ("0", "'0' is not greater than 0"),
        ("0.000000", "'0.000000' is not greater than 0"),
        ("-5", "'-5' is not greater than 0"),
        ("1.0000001", "has more than 6 decimal places"),
        ("ten", "'ten' is not a plain decimal number"),
    ],
)
def test_bad_amount(tmp_path: Path, written: str, problem: str) -> None:
    error = only_error(
        tmp_path,
        f"""\
        grants:
          - {{id: g9, customer: cus_acme, currency: credits, amount: {written},
              starts_at: 2026-01-01T00:00:00Z}}
        """,
    )
    assert error.startswith("extra.yaml: grants[0] (id=g9): amount: ")
    assert problem in error


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("2026-01-01T00:00:00Z", datetime(2026, 1, 1, tzinfo=UTC)),
        ("'2026-01-01T00:00:00Z'", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-01-01t00:00:00z", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-01-01 00:00:00Z", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-01-01T02:30:00+02:30", datetime(2026, 1, 1, tzinfo=UTC)),
        ("'2025-12-31T19:00:00-05:00'", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-01-01", datetime(2026, 1, 1, tzinfo=UTC)),
        ("'2026-01-01'", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-01-01T00:00:00.123456Z", datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)),
        ("2026-01-01T00:00:00.5Z", datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)),
    ],
)
def test_times_are_utc(tmp_path: Path, written: str, expected: datetime) -> None:
    config = load(
        tmp_path,
        f"""\
        grants:
          - {{id: g1, customer: cus_acme, currency: credits, amount: 1, starts_at: {written}}}
        """,
    )
    starts = config.grants[0].starts_at
    assert starts == expected
    assert starts.utcoffset().total_seconds() == 0 and starts.tzinfo == UTC


@pytest.mark.parametrize(
    ("written", "problem"),
    [
        ("2026-01-01T00:00:00", "'2026-01-01T00:00:00' has no time zone (add Z for UTC)"),
        ("2026-01-01 00:00:00", "'2026-01-01 00:00:00' has no time zone"),
        ("'2026-01-01T00:00:00'", "has no time zone"),
        ("'yesterday'", "'yesterday' is not an RFC 3339 time like 2026-01-01T00:00:00Z"),
        ("2026-1-1", "'2026-1-1' is not an RFC 3339 time"),
        ("'2026-02-30T00:00:00Z'", "'2026-02-30T00:00:00Z' is not a valid date and time"),
        ("2026-01-01T00:00:00.1234567Z", "is more precise than a microsecond"),
        ("20260101", "'20260101' is not an RFC 3339 time"),
        ("1767225600", "is not an RFC 3339 time"),
        ("true", "must be an RFC 3339 time like 2026-01-01T00:00:00Z, got true"),
    ],
)
def test_bad_times(tmp_path: Path, written: str, problem: str) -> None:
    error = only_error(
        tmp_path,
        f"""\
        grants:
          - {{id: g1, customer: cus_acme, currency: credits, amount: 1, starts_at: {written}}}
        """,
    )
    assert error.startswith("extra.yaml: grants[0] (id=g1): starts_at: ")
    assert problem in error


@pytest.mark.parametrize(("written", "ident"), [("1001", "1001"), ("007", "007"), ("'42'", "42")])
def test_integer_ids_are_their_text(tmp_path: Path, written: str, ident: str) -> None:
    config = load(tmp_path, f"customers:\n  - {{external_id: {written}}}\n")
    assert ident in [c.external_id for c in config.customers]
    assert all(type(c.external_id) is str for c in config.customers)


@pytest.mark.parametrize(
    ("written", "problem"),
    [
        ("true", "external_id: must be a string, got true (quote it)"),
        ("no", "external_id: must be a string, got false (quote it)"),
        ("1.50", "external_id: must be a string, got '1.50' (quote it)"),
        ("2026-01-01", "external_id: must be a string, got '2026-01-01' (quote it)"),
        ("[a]", "external_id: must be a string, got a list (quote it)"),
        ("''", "external_id: must not be empty"),
        ("' '", "external_id: must not be empty"),
        ("null", "missing required field 'external_id'"),
    ],
)
def test_bad_ids(tmp_path: Path, written: str, problem: str) -> None:
    error = only_error(tmp_path, f"customers:\n  - {{external_id: {written}, name: X}}\n")
    assert error.startswith("extra.yaml: customers[0]")
    assert error.endswith(problem)


def test_metadata_is_exact_json(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """\
        customers:
          - external_id: cus_meta
            metadata:
              zeta: 1
              alpha: 0.10
              big: 12345678901234567890
              tiny: 0.1000000000000000000001
              when: 2026-01-01
              flags: [true, null, "x", 1.5]
              nested: {Team: A, team: b, "a.b": 3, 7: seven}
              inf: .inf
        """,
    )
    customer = next(c for c in config.customers if c.external_id == "cus_meta")
    assert list(customer.metadata) == [
        "zeta",
        "alpha",
        "big",
        "tiny",
        "when",
        "flags",
        "nested",
        "inf",
    ]
    assert customer.metadata["alpha"] == Decimal("0.10")
    assert customer.metadata["nested"] == {"Team": "A", "team": "b", "a.b": 3, "7": "seven"}
    row = config.tables()["dim_customer"].to_pylist()
    text = next(r["metadata"] for r in row if r["customer_id"] == "cus_meta")
    assert text == (
        '{"zeta":1,"alpha":0.10,"big":12345678901234567890,"tiny":0.1000000000000000000001,'
        '"when":"2026-01-01","flags":[true,null,"x",1.5],'
        '"nested":{"Team":"A","team":"b","a.b":3,"7":"seven"},"inf":".inf"}'
    )
    assert json.loads(text)["big"] == 12345678901234567890


@pytest.mark.parametrize(
    ("written", "problem"),
    [
        ("[1, 2]", "metadata: must be a mapping, got a list"),
        ("text", "metadata: must be a mapping, got 'text'"),
        ("{null: 1}", "metadata: key null must be a string"),
        ("{a: {true: 1}}", "metadata: key true must be a string"),
    ],
)
def test_bad_metadata(tmp_path: Path, written: str, problem: str) -> None:
    error = only_error(tmp_path, f"customers:\n  - {{external_id: c9, metadata: {written}}}\n")
    assert error == f"extra.yaml: customers[0] (external_id=c9): {problem}"


# --- tables ---


def test_tables(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """\
        products:
          - external_id: p
            metadata: {tier: gold}
            pricing:
              - {event: e, currency: credits, credit_cost: 0.25, quantity_path: '$["a.b/c~d"]'}
        seats:
          - id: seat_a2
            customer: cus_acme
            assignments: [{user: usr_a, from: 2026-01-01T00:00:00Z, until: 2026-02-01T00:00:00Z}]
        grants:
          - {id: g_org, customer: cus_acme, currency: credits, amount: 100.5,
             starts_at: 2026-01-01T00:00:00Z}
          - {id: g_seat, customer: cus_acme, seat: seat_a2, currency: credits, amount: 10,
             starts_at: 2026-01-01T00:00:00Z, expires_at: 2026-02-01T00:00:00Z, priority: 10,
             origin: seat_allowance}
        """,
    )
    tables = config.tables()
    assert sorted(tables) == sorted(
        [
            "dim_currency",
            "dim_customer",
            "dim_product",
            "dim_pricing_rule",
            "dim_user",
            "dim_seat",
            "dim_seat_assignment",
            "dim_credit_grant",
        ]
    )
    ts, credits = pa.timestamp("us", tz="UTC"), pa.decimal128(38, 6)
    rules = tables["dim_pricing_rule"]
    assert rules.schema.field("credit_cost").type == credits
    assert rules.schema.field("valid_from").type == ts
    assert rules.column_names == [
        "rule_id",
        "product_id",
        "event_name",
        "currency",
        "credit_cost",
        "quantity_path",
        "quantity_pointer",
        "valid_from",
        "valid_until",
    ]
    row = next(r for r in rules.to_pylist() if r["product_id"] == "p")
    assert row["quantity_pointer"] == "/a.b~1c~0d"
    assert row["credit_cost"] == Decimal("0.25")
    grants = tables["dim_credit_grant"].to_pylist()
    recipients = [
        (g["grant_id"], g["recipient_type"], g["recipient_id"], g["priority"]) for g in grants
    ]
    assert recipients == [
        ("g_org", "organization", "cus_acme", 50),
        ("g_seat", "seat", "seat_a2", 10),
    ]
    assert tables["dim_credit_grant"].schema.field("amount").type == credits
    assert tables["dim_credit_grant"].schema.field("expires_at").type == ts
    assert tables["dim_seat_assignment"].to_pylist() == [
        {
            "seat_id": "seat_a2",
            "customer_id": "cus_acme",
            "user_id": "usr_a",
            "valid_from": datetime(2026, 1, 1, tzinfo=UTC),
            "valid_until": datetime(2026, 2, 1, tzinfo=UTC),
        }
    ]
    assert tables["dim_user"].column_names == ["customer_id", "user_id", "name", "metadata"]
    assert tables["dim_seat"].num_rows == 3
    assert json.loads(tables["dim_product"].to_pylist()[1]["metadata"]) == {"tier": "gold"}

    con = duckdb.connect()
    con.register("dim_credit_grant", tables["dim_credit_grant"])
    con.register("dim_pricing_rule", tables["dim_pricing_rule"])
    total = con.execute("select sum(amount), typeof(sum(amount)) from dim_credit_grant")
    assert total.fetchone() == (Decimal("110.5"), "DECIMAL(38,6)")
    value = con.execute(
        "select json_extract_string($d::JSON, quantity_pointer) from dim_pricing_rule"
        " where product_id = 'p'",
        {"d": json.dumps({"a.b/c~d": "7.5"})},
    ).fetchone()
    assert value == ("7.5",)


def test_tables_of_an_empty_section_have_schemas(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, {"c.yaml": "currencies: [{key: credits}]\n"}))
    tables = config.tables()
    assert tables["dim_credit_grant"].num_rows == 0
    assert tables["dim_credit_grant"].schema.field("amount").type == pa.decimal128(38, 6)
    assert tables["dim_currency"].to_pylist() == [{"currency": "credits", "name": "credits"}]


# --- errors: directory and YAML ---


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config directory .*nope does not exist"):
        load_config(tmp_path / "nope")


def test_directory_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is not a directory"):
        load_config(tmp_path / "file")


def test_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(ConfigError, match=r"has no \*\.yaml files"):
        load_config(tmp_path)


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    error = only_error(tmp_path, "customers:\n  - {external_id: a}\n  - {external_id: [b}\n")
    assert error.startswith("extra.yaml: line 3: YAML syntax error: ")


def test_yaml_duplicate_key_names_file_and_line(tmp_path: Path) -> None:
    error = only_error(
        tmp_path,
        """\
        grants:
          - id: g1
            customer: cus_acme
            currency: credits
            amount: 5
            amount: 50
            starts_at: 2026-01-01
        """,
    )
    assert error == "extra.yaml: line 6: YAML syntax error: duplicate key 'amount'"


def test_yaml_merge_keys_are_allowed(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """\
        grants:
          - &g {id: g1, customer: cus_acme, currency: credits, amount: 5, starts_at: 2026-01-01}
          - {<<: *g, id: g2}
        """,
    )
    assert [g.id for g in config.grants] == ["g1", "g2"]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("- a\n- b\n", "extra.yaml: the top level must map section names"),
        ("just text\n", "extra.yaml: the top level must map section names"),
        ("grant:\n  - {id: g}\n", "extra.yaml: unknown section 'grant' (did you mean 'grants'?)"),
        ("grants: {id: g}\n", "extra.yaml: grants must be a list of entries, got a mapping"),
        ("grants:\n  - g1\n", "extra.yaml: grants[0]: must be a mapping, got 'g1'"),
    ],
)
def test_bad_structure(tmp_path: Path, text: str, error: str) -> None:
    assert only_error(tmp_path, text).startswith(error)


def test_non_utf8_file(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_bytes(b"customers:\n  - {external_id: \xff}\n")
    with pytest.raises(ConfigError, match=r"^bad\.yaml: cannot read"):
        load_config(tmp_path)


# --- errors: entries ---


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    error = only_error(
        tmp_path,
        """\
        grants:
          - {id: grant_007, customer: cus_acme, currency: credits, ammount: 5,
             amount: 5, starts_at: 2026-01-01}
        """,
    )
    assert error.startswith(
        "extra.yaml: grants[0] (id=grant_007): unknown key 'ammount' (did you mean 'amount'?)"
    )


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("currencies: [{name: X}]", "extra.yaml: currencies[0]: missing required field 'key'"),
        (
            "customers: [{name: X}]",
            "extra.yaml: customers[0]: missing required field 'external_id'",
        ),
        (
            "users: [{external_id: u9}]",
            "extra.yaml: users[0] (external_id=u9): missing required field 'customer'",
        ),
        ("seats: [{id: s9}]", "extra.yaml: seats[0] (id=s9): missing required field 'customer'"),
        (
            "seats: [{id: s9, customer: cus_acme, assignments: [{from: 2026-01-01}]}]",
            "extra.yaml: seats[0] (id=s9): assignments[0]: missing required field 'user'",
        ),
        (
            "products: [{external_id: p, pricing: [{event: e, currency: credits}]}]",
            "extra.yaml: products[0] (external_id=p): pricing[0] (event=e): "
            "missing required field 'credit_cost'",
        ),
        (
            "products: [{external_id: p, pricing: [{currency: credits, credit_cost: 1}]}]",
            "extra.yaml: products[0] (external_id=p): pricing[0]: missing required field 'event'",
        ),
        (
            "grants: [{id: g9, customer: cus_acme, currency: credits, starts_at: 2026-01-01}]",
            "extra.yaml: grants[0] (id=g9): missing required field 'amount'",
        ),
        (
            "grants: [{id: g9, customer: cus_acme, currency: credits, amount: 1}]",
            "extra.yaml: grants[0] (id=g9): missing required field 'starts_at'",
        ),
        (
            "grants: [{id: g9, customer: cus_acme, amount: 1, amount_: 1, starts_at: 2026-01-01}]",
            "extra.yaml: grants[0] (id=g9): unknown key 'amount_' (did you mean 'amount'?)",
        ),
    ],
)
def test_missing_required_fields(tmp_path: Path, text: str, error: str) -> None:
    assert any(line.startswith(error) for line in errors_of(tmp_path, text + "\n"))


def test_unknown_key_in_nested_entries(tmp_path: Path) -> None:
    errors = errors_of(
        tmp_path,
        """\
        products:
          - external_id: p
            pricing: [{event: e, currency: credits, credit_cost: 1, quantity: $.q}]
        seats:
          - {id: s9, customer: cus_acme, assignments: [{user: usr_a, since: 2026-01-01}]}
        """,
    )
    assert errors == [
        "extra.yaml: products[0] (external_id=p): pricing[0] (event=e): unknown key 'quantity' "
        "(did you mean 'quantity_path'?); allowed: event, currency, credit_cost, quantity_path, "
        "from, until",
        "extra.yaml: seats[0] (id=s9): assignments[0] (user=usr_a): unknown key 'since'; "
        "allowed: user, from, until",
    ]


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("'$'", "invalid path '$'"),
        ("'a..b'", "invalid path 'a..b': empty key"),
        ("'$[\"unterminated'", "unterminated quoted key"),
        ("''", "invalid path '': the path is empty"),
        ("5", "must be a string, got '5'"),
        ("[a]", "must be a string, got a list"),
    ],
)
def test_bad_quantity_path(tmp_path: Path, path: str, problem: str) -> None:
    error = only_error(
        tmp_path,
        f"""\
        products:
          - external_id: p
            pricing: [{{event: e, currency: credits, credit_cost: 1, quantity_path: {path}}}]
        """,
    )
    assert error.startswith(
        "extra.yaml: products[0] (external_id=p): pricing[0] (event=e): quantity_path: "
    )
    assert problem in error


@pytest.mark.parametrize("priority", ["high", "1.5", "true", "99999999999"])
def test_bad_priority(tmp_path: Path, priority: str) -> None:
    error = only_error(
        tmp_path,
        f"""\
        grants:
          - {{id: g1, customer: cus_acme, currency: credits, amount: 1, starts_at: 2026-01-01,
              priority: {priority}}}
        """,
    )
    assert error.startswith("extra.yaml: grants[0] (id=g1): priority: ")


def test_priority_may_be_negative_or_a_string(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """\
        grants:
          - {id: g1, customer: cus_acme, currency: credits, amount: 1, starts_at: 2026-01-01,
             priority: -5}
          - {id: g2, customer: cus_acme, currency: credits, amount: 1, starts_at: 2026-01-01,
             priority: '7'}
        """,
    )
    assert [g.priority for g in config.grants] == [-5, 7]


# --- errors: ranges ---


def test_expires_at_not_after_starts_at(tmp_path: Path) -> None:
    error = only_error(
        tmp_path,
        """\
        grants:
          - {id: g0, customer: cus_acme, currency: credits, amount: 1, starts_at: 2026-01-01}
          - {id: g1, customer: cus_acme, currency: credits, amount: 1, starts_at: 2026-01-01}
          - {id: g2, customer: cus_acme, currency: credits, amount: 1, starts_at: 2026-01-01}
          - id: grant_007
            customer: cus_acme
            currency: credits
            amount: 1
            starts_at: 2026-02-01T00:00:00Z
            expires_at: 2026-01-01T00:00:00Z
        """,
    )
    assert error == (
        "extra.yaml: grants[3] (id=grant_007): expires_at 2026-01-01T00:00:00Z is not after "
        "starts_at 2026-02-01T00:00:00Z"
    )


def test_expires_at_equal_to_starts_at(tmp_path: Path) -> None:
    error = only_error(
        tmp_path,
        """\
        grants:
          - {id: g1, customer: cus_acme, currency: credits, amount: 1,
             starts_at: 2026-01-01T00:00:00Z, expires_at: '2026-01-01T01:00:00+01:00'}
        """,
    )
    assert error == (
        "extra.yaml: grants[0] (id=g1): expires_at 2026-01-01T00:00:00Z is not after "
        "starts_at 2026-01-01T00:00:00Z"
    )


def test_until_not_after_from(tmp_path: Path) -> None:
    errors = errors_of(
        tmp_path,
        """\
        products:
          - external_id: p
            pricing:
              - {event: e, currency: credits, credit_cost: 1, from: 2026-02-01, until: 2026-01-01}
        seats:
          - id: s9
            customer: cus_acme
            assignments: [{user: usr_a, from: 2026-03-01T00:00:00Z, until: 2026-03-01T00:00:00Z}]
        """,
    )
    assert errors == [
        "extra.yaml: products[0] (external_id=p): pricing[0] (event=e): until "
        "2026-01-01T00:00:00Z is not after from 2026-02-01T00:00:00Z",
        "extra.yaml: seats[0] (id=s9): assignments[0] (user=usr_a): until 2026-03-01T00:00:00Z "
        "is not after from 2026-03-01T00:00:00Z",
    ]


# --- errors: duplicates ---


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "currencies: [{key: credits}]",
            "extra.yaml: currencies[0] (key=credits): duplicate currency 'credits', "
            "first at base.yaml: currencies[0] (key=credits)",
        ),
        (
            "customers: [{external_id: cus_beta}]",
            "extra.yaml: customers[0] (external_id=cus_beta): duplicate customer 'cus_beta', "
            "first at base.yaml: customers[1] (external_id=cus_beta)",
        ),
        (
            "products: [{external_id: doc}]",
            "extra.yaml: products[0] (external_id=doc): duplicate product 'doc', "
            "first at base.yaml: products[0] (external_id=doc)",
        ),
        (
            "users: [{customer: cus_acme, external_id: usr_a}]",
            "extra.yaml: users[0] (customer=cus_acme, external_id=usr_a): duplicate user 'usr_a' "
            "of customer 'cus_acme', first at base.yaml: users[0] "
            "(customer=cus_acme, external_id=usr_a)",
        ),
        (
            "seats: [{id: seat_b, customer: cus_beta}]",
            "extra.yaml: seats[0] (id=seat_b): duplicate seat 'seat_b', "
            "first at base.yaml: seats[1] (id=seat_b)",
        ),
        (
            "grants: [{id: g, customer: cus_acme, currency: credits, amount: 1,"
            " starts_at: 2026-01-01},"
            " {id: g, customer: cus_beta, currency: credits, amount: 2, starts_at: 2026-01-01}]",
            "extra.yaml: grants[1] (id=g): duplicate grant 'g', "
            "first at extra.yaml: grants[0] (id=g)",
        ),
    ],
)
def test_duplicate_ids(tmp_path: Path, text: str, error: str) -> None:
    assert only_error(tmp_path, text + "\n") == error


def test_same_user_id_in_two_customers_is_fine(tmp_path: Path) -> None:
    config = load(tmp_path, "users: [{customer: cus_beta, external_id: usr_a}]\n")
    assert [(u.customer_id, u.external_id) for u in config.users] == [
        ("cus_acme", "usr_a"),
        ("cus_beta", "usr_a"),
        ("cus_beta", "usr_b"),
    ]


def test_ids_are_case_sensitive(tmp_path: Path) -> None:
    config = load(tmp_path, "customers: [{external_id: CUS_ACME}, {external_id: Cus_Acme}]\n")
    assert len(config.customers) == 4


# --- errors: references ---


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "users: [{customer: cus_nope, external_id: u9}]",
            "extra.yaml: users[0] (customer=cus_nope, external_id=u9): unknown customer 'cus_nope'",
        ),
        (
            "seats: [{id: s9, customer: cus_nope}]",
            "extra.yaml: seats[0] (id=s9): unknown customer 'cus_nope'",
        ),
        (
            "grants: [{id: g9, customer: cus_nope, currency: credits, amount: 1,"
            " starts_at: 2026-01-01}]",
            "extra.yaml: grants[0] (id=g9): unknown customer 'cus_nope'",
        ),
        (
            "grants: [{id: g9, customer: cus_acme, currency: Credits, amount: 1,"
            " starts_at: 2026-01-01}]",
            "extra.yaml: grants[0] (id=g9): unknown currency 'Credits'",
        ),
        (
            "grants: [{id: g9, customer: cus_acme, seat: seat_nope, currency: credits, amount: 1,"
            " starts_at: 2026-01-01}]",
            "extra.yaml: grants[0] (id=g9): unknown seat 'seat_nope'",
        ),
        (
            "products: [{external_id: p, pricing: [{event: e, currency: gold, credit_cost: 1}]}]",
            "extra.yaml: products[0] (external_id=p): pricing[0] (event=e): "
            "unknown currency 'gold'",
        ),
        (
            "seats: [{id: s9, customer: cus_acme, assignments: [{user: usr_nope}]}]",
            "extra.yaml: seats[0] (id=s9): assignments[0] (user=usr_nope): unknown user 'usr_nope' "
            "of customer 'cus_acme'",
        ),
    ],
)
def test_unknown_references(tmp_path: Path, text: str, error: str) -> None:
    assert only_error(tmp_path, text + "\n") == error


def test_user_assigned_to_a_seat_of_another_customer(tmp_path: Path) -> None:
    error = only_error(
        tmp_path,
        """\
        seats:
          - {id: s9, customer: cus_acme, assignments: [{user: usr_b, from: 2026-01-01}]}
        """,
    )
    assert error == (
        "extra.yaml: seats[0] (id=s9): assignments[0] (user=usr_b): user 'usr_b' belongs to "
        "customer 'cus_beta', not to the seat's customer 'cus_acme'"
    )


def test_seat_grant_on_a_seat_of_another_customer(tmp_path: Path) -> None:
    error = only_error(
        tmp_path,
        """\
        grants:
          - {id: g9, customer: cus_acme, seat: seat_b, currency: credits, amount: 1,
             starts_at: 2026-01-01}
        """,
    )
    assert error == (
        "extra.yaml: grants[0] (id=g9): seat 'seat_b' belongs to customer 'cus_beta', "
        "not to the grant's customer 'cus_acme'"
    )


def test_references_resolve_across_files_in_any_order(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "a_grants.yaml": "grants: [{id: g, customer: c, seat: s, currency: x, amount: 1,"
            " starts_at: 2026-01-01}]\n",
            "b_seats.yaml": "seats: [{id: s, customer: c, assignments: [{user: u}]}]\n",
            "c_people.yaml": "users: [{customer: c, external_id: u}]\n",
            "d_base.yaml": "currencies: [{key: x}]\ncustomers: [{external_id: c}]\n",
        },
    )
    config = load_config(tmp_path)
    assert config.grants[0].seat_id == "s"


# --- errors: overlaps ---


@pytest.mark.parametrize(
    "rules",
    [
        # [from, until) pairs; None = unbounded
        [(None, None), (None, None)],
        [(None, "2026-02-01"), ("2026-01-31", None)],
        [("2026-01-01", None), ("2026-06-01", "2026-07-01")],
        [(None, "2026-03-01"), ("2026-01-01", "2026-02-01")],
        [("2026-01-01", "2026-12-01"), ("2026-02-01", "2026-03-01"), ("2026-04-01", "2026-05-01")],
        [("2026-01-01", "2026-02-01"), ("2026-01-01", "2026-02-01")],
    ],
)
def test_overlapping_pricing_rules(tmp_path: Path, rules: list) -> None:
    def bound(key: str, value: str | None) -> str:
        return "" if value is None else f", {key}: {value}"

    lines = "\n".join(
        "      - {event: e, currency: credits, credit_cost: 1"
        f"{bound('from', a)}{bound('until', b)}}}"
        for a, b in rules
    )
    errors = errors_of(tmp_path, f"products:\n  - external_id: p\n    pricing:\n{lines}\n")
    assert errors
    for error in errors:
        assert error.startswith("extra.yaml: products[0] (external_id=p): pricing[")
        assert "pricing rule for event 'e' [" in error and ") overlaps [" in error
        assert ") at extra.yaml: products[0] (external_id=p): pricing[" in error


def test_overlap_message(tmp_path: Path) -> None:
    error = only_error(
        tmp_path,
        """\
        products:
          - external_id: p
            pricing:
              - {event: e, currency: credits, credit_cost: 1, from: 2026-01-15T00:00:00Z}
              - {event: e, currency: credits, credit_cost: 2, until: 2026-02-01T00:00:00Z}
        """,
    )
    assert error == (
        "extra.yaml: products[0] (external_id=p): pricing[0] (event=e): pricing rule for event "
        "'e' [2026-01-15T00:00:00Z, unbounded) overlaps [unbounded, 2026-02-01T00:00:00Z) "
        "at extra.yaml: products[0] (external_id=p): pricing[1] (event=e)"
    )


def test_adjacent_and_other_event_rules_do_not_overlap(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """\
        products:
          - external_id: p
            pricing:
              - {event: e, currency: credits, credit_cost: 1, until: 2026-01-01T00:00:00Z}
              - {event: e, currency: credits, credit_cost: 2, from: 2026-01-01T00:00:00Z,
                 until: 2026-02-01T00:00:00Z}
              - {event: e, currency: credits, credit_cost: 3, from: 2026-02-01T00:00:00Z}
              - {event: f, currency: credits, credit_cost: 4}
              - {event: E, currency: credits, credit_cost: 5}
          - external_id: q
            pricing: [{event: e, currency: credits, credit_cost: 1}]
        """,
    )
    p = next(p for p in config.products if p.external_id == "p")
    assert [r.rule_id for r in p.pricing] == ["p:E:1", "p:e:1", "p:e:2", "p:e:3", "p:f:1"]


def test_overlapping_assignments_of_one_seat(tmp_path: Path) -> None:
    error = only_error(
        tmp_path,
        """\
        users: [{customer: cus_acme, external_id: usr_c}]
        seats:
          - id: s9
            customer: cus_acme
            assignments:
              - {user: usr_a, from: 2026-01-01T00:00:00Z, until: 2026-02-01T00:00:00Z}
              - {user: usr_c, from: 2026-01-31T00:00:00Z}
        """,
    )
    assert error == (
        "extra.yaml: seats[0] (id=s9): assignments[1] (user=usr_c): assignment of seat 's9' "
        "[2026-01-31T00:00:00Z, unbounded) overlaps [2026-01-01T00:00:00Z, 2026-02-01T00:00:00Z) "
        "at extra.yaml: seats[0] (id=s9): assignments[0] (user=usr_a)"
    )


def test_overlapping_assignments_of_one_user_across_seats(tmp_path: Path) -> None:
    error = only_error(
        tmp_path,
        """\
        seats:
          - {id: s8, customer: cus_acme, assignments: [{user: usr_a}]}
          - {id: s9, customer: cus_acme, assignments: [{user: usr_a, from: 2030-01-01}]}
        """,
    )
    assert error == (
        "extra.yaml: seats[1] (id=s9): assignments[0] (user=usr_a): assignment of user 'usr_a' "
        "[2030-01-01T00:00:00Z, unbounded) overlaps [unbounded, unbounded) "
        "at extra.yaml: seats[0] (id=s8): assignments[0] (user=usr_a)"
    )


def test_sequential_assignments_are_fine(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """\
        users: [{customer: cus_acme, external_id: usr_c}]
        seats:
          - id: s9
            customer: cus_acme
            assignments:
              - {user: usr_c, from: 2026-02-01T00:00:00Z}
              - {user: usr_a, until: 2026-01-15T00:00:00Z}
              - {user: usr_c, from: 2026-01-15T00:00:00Z, until: 2026-02-01T00:00:00Z}
          - {id: s8, customer: cus_acme, assignments: [{user: usr_a, from: 2026-01-15}]}
        """,
    )
    seat = next(s for s in config.seats if s.id == "s9")
    assert [(a.user_id, a.valid_from) for a in seat.assignments] == [
        ("usr_a", None),
        ("usr_c", datetime(2026, 1, 15, tzinfo=UTC)),
        ("usr_c", datetime(2026, 2, 1, tzinfo=UTC)),
    ]


# --- errors are collected, nothing is half-applied ---


def test_all_errors_are_reported_together(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "a.yaml": "customers: [{external_id: c, nmae: C}]\ncurrencies: [{key: x}]\n",
            "b.yaml": "grants: [{id: g, customer: c9, currency: y, amount: -1,"
            " starts_at: 2026-01-01}]\n",
            "c.yaml": "customers: [{external_id: c}]\n",
        },
    )
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    errors = info.value.errors
    assert errors == [
        "a.yaml: customers[0] (external_id=c): unknown key 'nmae' (did you mean 'name'?); "
        "allowed: external_id, name, metadata",
        "b.yaml: grants[0] (id=g): amount: '-1' is not greater than 0",
        "c.yaml: customers[0] (external_id=c): duplicate customer 'c', "
        "first at a.yaml: customers[0] (external_id=c)",
    ]


def test_loading_is_pure(tmp_path: Path) -> None:
    directory = write(tmp_path / "config", {"company.yaml": SAMPLE})
    before = sorted(p.name for p in directory.iterdir())
    first = load_config(directory)
    (directory / "zz.yaml").write_text("grants: [{id: grant_001}]\n")
    with pytest.raises(ConfigError):
        load_config(directory)
    (directory / "zz.yaml").unlink()
    assert sorted(p.name for p in directory.iterdir()) == before
    assert load_config(directory) == first
    assert parse_config({"company.yaml": SAMPLE}) == first


def test_config_error_accepts_a_single_message() -> None:
    assert ConfigError("boom").errors == ["boom"]
    assert str(ConfigError(["a", "b"])) == "a\nb"


SEATS = """\
currencies: [{key: credits}]
customers: [{external_id: acme}]
users: [{customer: acme, external_id: u1}, {customer: acme, external_id: u2}]
seats: [{id: s1, customer: acme, assignments: [{user: u1, from: 2026-01-01T00:00:00Z,
                                                until: 2026-02-01T00:00:00Z}]}]
"""


def test_seat_assignments_section_merges_with_the_seat() -> None:
    api = (
        "seat_assignments:\n  - {seat: s1, user: u2, from: 2026-02-01T00:00:00Z}\n"
        "api_records: {anything: {createdAt: x}}\n"
    )
    config = parse_config({"company.yaml": SEATS, "api.yaml": api})
    (seat,) = config.seats
    assert [(a.user_id, a.valid_from.month) for a in seat.assignments] == [("u1", 1), ("u2", 2)]


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("{seat: nope, user: u2}", "unknown seat 'nope'"),
        ("{seat: s1, user: u2, from: 2026-01-15T00:00:00Z}", "overlap"),
        ("{seat: s1, user: ghost}", "unknown user 'ghost'"),
    ],
)
def test_seat_assignments_section_is_validated(entry: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"company.yaml": SEATS, "api.yaml": f"seat_assignments:\n  - {entry}\n"})
    assert any(
        problem in e and e.startswith("api.yaml: seat_assignments[0]") for e in info.value.errors
    ), info.value.errors

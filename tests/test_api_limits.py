"""Every request that fails because of its input gets a 4xx with the JSON error
shape (per signal where the batch allows it: the good signals land), each limit of
docs/limits.md is tested at the limit and one past it, and a server fault is a JSON 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from pipelines.api import read
from pipelines.api.app import create_app
from pipelines.core import limits
from pipelines.core.home import Home
from pipelines.landing.lake import Lake

TOKEN = "tok"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
COMPANY = """
currencies:
  - {key: credits, name: Credits}
customers:
  - {external_id: acme, name: Acme Corp}
"""


@pytest.fixture()
def api(home: Home, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("TALLY_NOW", NOW.isoformat())
    home.config_dir.mkdir(parents=True)
    (home.config_dir / "company.yaml").write_text(COMPANY)
    with TestClient(create_app(home, [TOKEN], max_body=8 << 20), headers=AUTH) as client:
        yield client


def signal(**over) -> dict:
    base = {"eventName": "e", "customer": {"externalCustomerId": "acme"}}
    return {**base, **over}


def bulk(client: TestClient, *signals: dict | bytes) -> dict:
    parts = [s if isinstance(s, bytes) else json.dumps(s).encode() for s in signals]
    r = client.post("/api/v2/signals/bulk", content=b'{"signals": [' + b",".join(parts) + b"]}")
    assert r.status_code in (200, 400), r.text
    body = r.json()
    assert r.status_code == (400 if body["failed"] else 200)
    return body


def nested(levels: int, leaf: object = 1) -> object:
    value = leaf
    for _ in range(levels):
        value = {"a": value}
    return value


def test_id_and_key_lengths_at_and_past_the_limit(api: TestClient) -> None:
    at, past = "x" * limits.MAX_ID, "x" * (limits.MAX_ID + 1)
    fields = [
        lambda v: {"customer": {"externalCustomerId": v}},
        lambda v: {"customer": {"customerId": v}},
        lambda v: {"attribution": {"externalProductId": v}},
        lambda v: {"attribution": {"productId": v}},
        lambda v: {"idempotencyKey": v},
        lambda v: {"eventName": v},
    ]
    for make in fields:
        out = bulk(api, signal(**make(at)), signal(**make(past)), signal())
        assert (out["ingested"], out["failed"]) == (2, 1), make(past).keys()
        assert f"over the {limits.MAX_ID} limit" in out["errors"][0]["reason"]
    huge = bulk(api, signal(customer={"externalCustomerId": "c" * (1 << 20)}))
    assert huge["failed"] == 1


def test_data_nesting_at_and_past_the_limit_and_far_past_it(api: TestClient) -> None:
    out = bulk(
        api, signal(data=nested(limits.MAX_DEPTH)), signal(data=nested(limits.MAX_DEPTH + 1))
    )
    assert (out["ingested"], out["failed"]) == (1, 1)
    assert out["errors"][0] == {"index": 1, "reason": "data is nested deeper than 32 levels"}
    for levels in (1_000, 100_000):  # deeper than the JSON decoder recurses: the good one lands
        deep = b'{"eventName": "e", "customer": {"externalCustomerId": "acme"}, "data": '
        deep += b'{"a": ' * levels + b"1" + b"}" * levels + b"}"
        out = bulk(api, signal(idempotencyKey=f"good-{levels}"), deep, signal())
        assert (out["ingested"], out["failed"]) == (2, 1)
        assert out["errors"][0]["index"] == 1 and "nested deeper" in out["errors"][0]["reason"]


def test_invalid_utf8_inside_data_rejects_that_signal_only(api: TestClient) -> None:
    bad = b'{"eventName": "e", "customer": {"externalCustomerId": "acme"}, "data": {"k": "\xff"}}'
    out = bulk(api, signal(), bad)
    assert (out["ingested"], out["failed"]) == (1, 1)
    assert out["errors"][0] == {"index": 1, "reason": "data or customerUnit is not valid UTF-8"}


def test_timestamp_window(api: TestClient, home: Home) -> None:
    last = NOW + timedelta(days=365)
    inside = ["2000-01-01T00:00:00Z", (last - timedelta(microseconds=1)).isoformat()]
    outside = [
        "1999-12-31T23:59:59.999999Z",
        last.isoformat(),
        "9999-12-31T23:59:59Z",
        "0001-01-01T00:00:00Z",
        "1970-01-01T00:00:00Z",
    ]
    out = bulk(api, *[signal(timestamp=t) for t in inside + outside])
    assert (out["ingested"], out["failed"]) == (2, 5)
    reasons = [e["reason"] for e in out["errors"]]
    assert "is before 2000-01-01T00:00:00Z" in reasons[0]
    assert "more than a year ahead" in reasons[1]
    kept = Lake(home.lake).stats()
    assert kept["signals"] == 2


def test_bad_timestamps_get_reasons(api: TestClient) -> None:
    out = bulk(
        api,
        signal(timestamp="2026-10-01 00:00:00+00"),
        signal(timestamp="2026-02-30T00:00:00Z"),
        signal(timestamp="2026-10-01T00:00:00"),
        signal(timestamp="2026-10-01t10:00:00z"),
    )
    assert (out["ingested"], out["failed"]) == (1, 3)
    assert [e["reason"] for e in out["errors"]] == [
        "timestamp '2026-10-01 00:00:00+00' is not an RFC3339 date-time with a time zone",
        "timestamp '2026-02-30T00:00:00Z' is not an RFC3339 date-time with a time zone",
        "timestamp '2026-10-01T00:00:00' has no time zone (RFC3339 needs Z or ±hh:mm)",
    ]


def grant(api: TestClient, **body) -> tuple[int, dict]:
    r = api.post(
        "/api/v2/customers/external/acme/credits/grants",
        json={"creditCurrencyKey": "credits", "amount": 1, **body},
    )
    return r.status_code, r.json()


def test_grant_amounts_and_times(api: TestClient) -> None:
    r = api.post(
        "/api/v2/customers/external/acme/credits/grants",
        content=b'{"creditCurrencyKey": "credits", "amount": 1e30}',
    )
    assert r.status_code == 400 and r.json()["error"] == "amount must be less than 10^18, got 1E+30"
    assert grant(api, amount="999999999999999999.999999", startsAt="2026-01-01T00:00:00Z")[0] == 200
    assert grant(api, amount=10**18)[0] == 400
    assert grant(api, amount="1.0000001")[0] == 400
    assert grant(api, startsAt="2000-01-01T00:00:00Z")[0] == 200
    status, body = grant(api, startsAt="1999-12-31T23:59:59Z")
    assert status == 400 and "is before 2000-01-01" in body["error"]
    assert grant(api, startsAt="0001-01-01T00:00:00Z")[0] == 400
    assert grant(api, startsAt="0001-01-01T00:00:00+01:00")[0] == 400
    assert grant(api, expiresAt="2100-01-01T00:00:00Z", amount=2)[0] == 200
    assert grant(api, expiresAt="2100-01-01T00:00:00.000001Z", amount=3)[0] == 400
    assert grant(api, expiresAt="9999-12-31T23:59:59Z", amount=3)[0] == 400


def test_metadata_depth_and_size(api: TestClient) -> None:
    url = "/api/v2/customers/acme/users/u1"
    ok = api.put(url, json={"metadata": nested(limits.MAX_DEPTH)})
    assert ok.status_code == 200, ok.text
    for levels in (limits.MAX_DEPTH + 1, 900, 100_000):
        body = b'{"metadata": ' + b'{"a": ' * levels + b"1" + b"}" * levels + b"}"
        r = api.put(url, content=body)
        assert r.status_code == 400 and "nested deeper" in r.json()["error"], levels
    pad = limits.MAX_METADATA_BYTES - len('{"p":""}')
    assert api.put(url, json={"metadata": {"p": "x" * pad}}).status_code == 200
    r = api.put(url, json={"metadata": {"p": "x" * (pad + 1)}})
    assert r.status_code == 400 and r.json()["code"] == "bad_request"
    r = api.post("/api/v2/customers/", json={"name": "Big", "metadata": {"p": "x" * 4_400_000}})
    assert r.status_code == 400 and "16,384-byte limit" in r.json()["error"]


def test_entity_id_lengths(api: TestClient) -> None:
    at, past = "c" * limits.MAX_ID, "c" * (limits.MAX_ID + 1)
    assert api.post("/api/v2/customers/", json={"name": "A", "externalId": at}).status_code == 200
    r = api.post("/api/v2/customers/", json={"name": "A", "externalId": past})
    assert r.status_code == 400 and "over the 256 limit" in r.json()["error"]
    r = api.post("/api/v2/customers/", json={"name": "A", "externalId": "c" * (1 << 20)})  # 1 MB
    assert r.status_code == 400
    assert api.put(f"/api/v2/customers/acme/users/{'u' * 256}", json={}).status_code == 200
    assert api.put(f"/api/v2/customers/acme/users/{'u' * 257}", json={}).status_code == 400


def test_config_file_size(api: TestClient, monkeypatch: pytest.MonkeyPatch, home: Home) -> None:
    from pipelines.api import store

    api.post("/api/v2/customers/", json={"name": "First", "externalId": "first"})
    size = (home.config_dir / "api.yaml").stat().st_size
    monkeypatch.setattr(store, "MAX_CONFIG_FILE_BYTES", size + 200)
    r = api.post("/api/v2/customers/", json={"name": "B" * 400, "externalId": "big"})
    assert r.status_code == 400 and r.json()["code"] == "config_too_large"
    assert api.post("/api/v2/customers/", json={"name": "S", "externalId": "s"}).status_code == 200


def test_offset_limit_and_total_of_an_empty_page(api: TestClient) -> None:
    bulk(api, *[signal(idempotencyKey=f"k{i}") for i in range(5)])
    r = api.get("/api/v2/signals/", params={"offset": "99999999999999999999999"})
    assert r.status_code == 400 and r.json()["code"] == "bad_request"
    assert api.get("/api/v2/signals/", params={"offset": limits.MAX_OFFSET + 1}).status_code == 400
    page = api.get("/api/v2/signals/", params={"offset": limits.MAX_OFFSET}).json()
    assert page["data"] == [] and page["pagination"]["total"] == 5
    page = api.get("/api/v2/signals/", params={"offset": 3, "limit": 1}).json()
    assert page["pagination"] == {"limit": 1, "offset": 3, "total": 5, "hasMore": True}


def test_body_size_at_and_past_the_limit(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    home.config_dir.mkdir(parents=True)
    (home.config_dir / "company.yaml").write_text(COMPANY)
    with TestClient(create_app(home, [TOKEN], max_body=1000), headers=AUTH) as client:
        body = b'{"signals": []}'
        at = body[:-1] + b" " * (1000 - len(body)) + b"}"
        assert client.post("/api/v2/signals/bulk", content=at).status_code == 200
        r = client.post("/api/v2/signals/bulk", content=at + b" ")
        assert r.status_code == 413 and r.json()["code"] == "too_large"

        def chunks(data: bytes):  # no content-length: the limit holds while reading
            yield data[:500]
            yield data[500:]

        assert client.post("/api/v2/signals/bulk", content=chunks(at)).status_code == 200
        assert client.post("/api/v2/signals/bulk", content=chunks(at + b" ")).status_code == 413


def tiny_warehouse(home: Home) -> None:
    import duckdb

    con = duckdb.connect(str(home.warehouse))
    con.execute("CREATE TABLE t AS SELECT range AS n FROM range(100)")
    con.close()


def test_analytics_result_bytes(api: TestClient, home: Home, monkeypatch) -> None:
    tiny_warehouse(home)
    query = {"query": "SELECT n::VARCHAR AS n FROM t ORDER BY n"}
    size = sum(len(json.dumps([str(n)], separators=(",", ":"))) + 1 for n in range(100))
    monkeypatch.setattr(read, "QUERY_BYTE_CAP", size)
    whole = api.post("/api/v2/analytics/query", json=query).json()
    assert (whole["meta"]["rowCount"], whole["meta"]["truncated"]) == (100, False)
    monkeypatch.setattr(read, "QUERY_BYTE_CAP", size - 1)
    cut = api.post("/api/v2/analytics/query", json=query).json()
    assert (cut["meta"]["rowCount"], cut["meta"]["truncated"]) == (99, True)


def test_analytics_memory_limit(api: TestClient, home: Home, monkeypatch) -> None:
    tiny_warehouse(home)
    monkeypatch.setattr(read, "QUERY_MEMORY", "64MB")
    small = "SELECT count(*) AS n FROM (SELECT string_agg(repeat('x', 100), ',') FROM range(1000))"
    assert api.post("/api/v2/analytics/query", json={"query": small}).status_code == 200
    big = "SELECT length(string_agg(repeat('x', 1000), ',')) FROM range(1000000)"
    r = api.post("/api/v2/analytics/query", json={"query": big})
    assert r.status_code == 400 and r.json()["code"] == "query_out_of_memory"
    r = api.post("/api/v2/analytics/query", json={"query": "SELECT 1 " + " " * 100_000})
    assert r.status_code == 400


def test_a_server_fault_is_a_json_500(api: TestClient, home: Home, monkeypatch) -> None:
    def broken(*_a, **_k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(read, "schema", broken)
    r = api.get("/api/v2/analytics/schema")
    assert r.status_code == 500
    assert r.json() == {"error": "internal error; see the server log", "code": "internal"}


def test_extreme_query_times_are_400_or_empty(api: TestClient) -> None:
    meta = "/api/v2/analytics/signals/metadata"
    assert api.get(meta, params={"toDate": "0001-01-02T00:00:00Z"}).status_code == 400
    assert api.get(meta, params={"toDate": "9999-12-31T23:59:59-01:00"}).status_code == 400
    assert api.get("/api/v2/signals/", params={"createdAtFrom": "0001-01-01"}).status_code == 200


def test_bad_json_and_shapes_are_400(api: TestClient) -> None:
    for body in (b"{nope", b"[]", b'{"signals": 3}', b'{"signals": [1, "x"]}', b"\xff\xfe"):
        r = api.post("/api/v2/signals/bulk", content=body)
        assert r.status_code == 400, (body, r.text)
        assert set(r.json()) >= {"error", "code"}
    assert api.post("/api/v2/customers/", content=b"\xff").status_code == 400


def test_config_loader_refuses_times_outside_the_window(tmp_path: Path, monkeypatch) -> None:
    from pipelines.pricing.config import ConfigError, parse_config

    monkeypatch.setenv("TALLY_NOW", NOW.isoformat())
    base = COMPANY + "grants:\n  - {id: g, customer: acme, currency: credits, amount: 1, %s}\n"
    parse_config({"a.yaml": base % "starts_at: 2000-01-01T00:00:00Z"})
    parse_config({"a.yaml": base % "starts_at: 2026-01-01T00:00:00Z, expires_at: 2100-01-01"})
    for bad in (
        "starts_at: 1999-12-31T23:59:59Z",
        "starts_at: 0001-01-01T00:00:00Z",
        "starts_at: 2027-12-02T12:00:00Z",
        "starts_at: 2026-01-01T00:00:00Z, expires_at: 2100-01-01T00:00:01Z",
    ):
        with pytest.raises(ConfigError, match="grants"):
            parse_config({"a.yaml": base % bad})
    rule = COMPANY + (
        "products:\n  - external_id: p\n    pricing:\n      - {event: e, currency: credits, "
        "credit_cost: 1, from: %s}\n"
    )
    parse_config({"a.yaml": rule % "2000-01-01T00:00:00Z"})
    with pytest.raises(ConfigError, match="pricing"):
        parse_config({"a.yaml": rule % "1970-01-01T00:00:00Z"})


def test_config_loader_file_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.pricing.config import ConfigError, load_config
    from pipelines.pricing.config import loader as config

    (tmp_path / "a.yaml").write_text(COMPANY)
    size = (tmp_path / "a.yaml").stat().st_size
    monkeypatch.setattr(config, "MAX_CONFIG_FILE_BYTES", size)
    assert load_config(tmp_path).customers[0].external_id == "acme"
    monkeypatch.setattr(config, "MAX_CONFIG_FILE_BYTES", size - 1)
    config._CACHE.clear()
    with pytest.raises(ConfigError, match="a.yaml: .* bytes, over the"):
        load_config(tmp_path)

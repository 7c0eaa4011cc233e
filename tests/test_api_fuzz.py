"""Issue 16, item 6: a property-based fuzz of the HTTP API.

- schemathesis generates requests for every operation of the OpenAPI document the server
  publishes at /api/v2/openapi.json (valid and invalid bodies, parameters and path ids): never a
  5xx;
- hypothesis generates bulk bodies mixing good and bad signals: every signal is counted once
  (ingested + duplicates + failed), and every acknowledged one is in the lake exactly once.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import duckdb
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from starlette.testclient import TestClient

from pipelines.api.app import create_app
from pipelines.core.home import Home
from pipelines.landing.lake import Lake

TOKEN = "fuzz"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
COMPANY = """
currencies:
  - {key: credits, name: Credits}
customers:
  - {external_id: acme, name: Acme Corp}
users:
  - {customer: acme, external_id: u1}
seats:
  - {id: seat_1, customer: acme}
products:
  - external_id: agent
    pricing:
      - {event: e, currency: credits, credit_cost: 1}
"""


def _home() -> Home:
    root = Path(tempfile.mkdtemp(prefix="tally-fuzz-")) / "home"
    (root / "config").mkdir(parents=True)
    (root / "config" / "company.yaml").write_text(COMPANY)
    return Home(root)


HOME = _home()
APP = create_app(HOME, [TOKEN], max_body=1 << 20)
schema = schemathesis.openapi.from_asgi("/api/v2/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_server_error(case) -> None:
    case.call_and_validate(headers=AUTH, checks=[not_a_server_error])


# ------------------------------------------------------------------ no acknowledged signal lost
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_maybe_bad = st.one_of(st.none(), _json)
_signal = st.fixed_dictionaries(
    {
        "eventName": st.one_of(st.just("e"), st.text(max_size=300), _maybe_bad),
        "customer": st.one_of(
            st.just({"externalCustomerId": "acme"}),
            st.fixed_dictionaries({"customerId": st.text(max_size=300)}),
            _maybe_bad,
        ),
    },
    optional={
        "attribution": st.one_of(st.just({"externalProductId": "agent"}), _maybe_bad),
        "timestamp": st.one_of(
            st.datetimes(timezones=st.just(__import__("datetime").UTC)).map(
                lambda d: d.isoformat()
            ),
            st.sampled_from(
                ["2026-10-01 00:00:00+00", "9999-12-31T23:59:59Z", "2026-11-30T10:00:00Z"]
            ),
            _maybe_bad,
        ),
        "data": st.one_of(st.dictionaries(st.text(max_size=5), _json, max_size=4), _maybe_bad),
    },
)
SEEN: set[str] = set()
LAND_HOME = _home()
LAND_APP = create_app(LAND_HOME, [TOKEN])  # its own: schemathesis runs APP's lifespan
LAND_LAKE = Lake(LAND_HOME.lake)  # opened once, before any landing thread runs


@given(signals=st.lists(_signal, max_size=8), dup=st.booleans())
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_acknowledged_signal_is_lost(signals: list[dict], dup: bool) -> None:
    keys = []
    for s in signals:
        key = f"k{len(SEEN)}"
        SEEN.add(key)
        s["idempotencyKey"] = key
        keys.append(key)
    if dup and signals:
        signals.append(dict(signals[0]))  # a replayed copy of the first
    client = TestClient(LAND_APP, headers=AUTH)  # no lifespan: it would stop the committer
    r = client.post("/api/v2/signals/bulk", content=json.dumps({"signals": signals}))
    assert r.status_code in (200, 400), r.text
    body = r.json()
    assert body["ingested"] + body["duplicates"] + body["failed"] == len(signals)
    rejected = {e["index"] for e in body.get("errors", [])}
    acknowledged = {s["idempotencyKey"] for i, s in enumerate(signals) if i not in rejected}
    files = [str(f.path) for f in LAND_LAKE.files()]
    landed: dict[str, int] = {}
    if files and acknowledged:
        landed = dict(
            duckdb.execute(
                "SELECT idempotency_key, count(DISTINCT seq) FROM read_parquet($f) "
                "WHERE NOT is_duplicate AND idempotency_key IN (SELECT unnest($k)) GROUP BY 1",
                {"f": files, "k": sorted(acknowledged)},
            ).fetchall()
        )
    assert landed == dict.fromkeys(acknowledged, 1)

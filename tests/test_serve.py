"""`tally serve` driven by the unmodified `paid-python` SDK over real HTTP (uvicorn, loopback).

The three signal examples of the Paid SDK's documentation (docs/http-api.md), idempotency,
replays, auth, errors, the config store, and a kill -9 of the server during a load.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from conftest import start_tally, tally
from paid import Paid
from paid.core.api_error import ApiError
from paid.errors import BadRequestError, ConflictError, NotFoundError
from paid.types import CustomerByExternalId, ProductAttributeUpsert, ProductByExternalId, Signal
from paid.types.product_pricing_input import ProductPricingInput_UsagePrepaidCredits

from pipelines.landing.lake import Lake

TOKEN = "test-token-123"
COMPANY = """
currencies:
  - {key: credits, name: Credits}
customers:
  - {external_id: acme, name: Acme Corp}
seats:
  - {id: seat_1, customer: acme}
  - {id: seat_yaml, customer: acme, assignments: [{user: u_yaml, from: TODAY}]}
users:
  - {customer: acme, external_id: u_yaml, name: Yaml User}
grants:
  - {id: g_seat, customer: acme, seat: seat_1, currency: credits, amount: 100,
     starts_at: TODAY}
"""  # TODAY: the ledger starts today, so each billing run here covers one day


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, root: Path, run_every: float = 0):
        self.root, self.port, self.proc = root, _free_port(), None
        self.run_every = run_every

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v2"

    def start(self) -> Server:
        self.proc = start_tally(
            "serve",
            "--port",
            str(self.port),
            "--run-every",
            str(self.run_every),
            home=self.root,
            TALLY_API_TOKENS=f"{TOKEN},other",
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url + "/credits/currencies", timeout=1)
                return self
            except httpx.TransportError:
                assert self.proc.poll() is None, self.proc.stderr.read().decode()
                time.sleep(0.1)
        raise AssertionError("tally serve did not start")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def run(self) -> None:
        """The billing run through today (the open day), as `--run-every` starts it."""
        tally("run", "--through", datetime.now(UTC).date().isoformat(), home=self.root)


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[Server]:
    root = tmp_path / "home"
    (root / "config").mkdir(parents=True)
    today = datetime.now(UTC).date().isoformat() + "T00:00:00Z"
    (root / "config" / "company.yaml").write_text(COMPANY.replace("TODAY", today))
    srv = Server(root).start()
    yield srv
    srv.stop()


def client(server: Server, token: str = TOKEN) -> Paid:
    return Paid(token=token, base_url=server.url)


def signal_of(
    event: str,
    data: dict | None = None,
    key: str | None = None,
    customer: str = "acme",
    product: str = "agent",
) -> Signal:
    return Signal(
        event_name=event,
        customer=CustomerByExternalId(external_customer_id=customer),
        attribution=ProductByExternalId(external_product_id=product),
        data=data,
        idempotency_key=key,
    )


def usage(event: str, cost: float, path: str | None = None) -> ProductAttributeUpsert:
    pricing_input = {"kind": "signalQuantity", "path": path} if path else None
    return ProductAttributeUpsert(
        name=event,
        pricing=ProductPricingInput_UsagePrepaidCredits(
            event_name=event,
            credits_currency_id="credits",
            credit_cost=cost,
            pricing_input=pricing_input,
        ),
    )


def set_up_company(paid: Paid) -> None:
    paid.products.create_product(name="Agent", external_id="agent")
    paid.products.update_product_by_external_id(
        "agent",
        product_attributes=[
            usage("email_sent", 1),
            usage("document_processed", 1, "quantity"),
            usage("report_built", 2, "quantity"),
            usage("chat_message", 0.5),
        ],
    )
    paid.customers.upsert_customer_user_by_external_id("acme", "u_seat", name="Seated")
    paid.customers.upsert_customer_user_by_external_id("acme", "u_pool", name="Pooled")
    paid.orders.update_order_seat_assignment("ord_acme", "seat_1", user_external_id="u_seat")
    grant = paid.customers.grant_customer_credits_by_external_id(
        "acme", credit_currency_key="credits", amount=1000
    )
    assert grant.created and grant.grant.amount_decimal == "1000.000000"


def test_seed_examples_through_the_sdk(server: Server) -> None:
    paid = client(server)
    set_up_company(paid)
    sent = paid.signals.create_signals(
        signals=[
            signal_of("email_sent", {"to": "x@example.com"}, "k-email"),
            signal_of("document_processed", {"quantity": 5}, "k-doc"),
            signal_of("report_built", {"quantity": 3}, "k-report"),
            signal_of("chat_message", {"external_user_id": "u_seat"}, "k-chat-seat"),
            signal_of("chat_message", {"external_user_id": "u_pool"}, "k-chat-pool"),
        ]
    )
    assert (sent.ingested, sent.duplicates, sent.failed) == (5, 0, 0)
    again = paid.signals.create_signals(signals=[signal_of("email_sent", {}, "k-email")])
    assert (again.ingested, again.duplicates, again.failed) == (0, 1, 0)

    server.run()
    balances = paid.customers.get_customer_credit_balances_by_external_id("acme").data
    pool = next(b for b in balances if b.recipient == "organization")
    seat = next(b for b in balances if b.recipient == "seat")
    # pool: email 1 + document 5 x 1 + report 3 x 2 + unseated chat 0.5 = 12.5
    assert Decimal(str(pool.used)) == Decimal("12.5")
    assert Decimal(str(pool.available)) == Decimal("987.5")
    assert Decimal(str(seat.used)) == Decimal("0.5")
    assert Decimal(str(seat.available)) == Decimal("99.5")
    assert [g.total for g in seat.grants] == [100]

    state = paid.customers.get_customer_state_by_external_id("acme")
    assert state.credits.balances[0].balance == pytest.approx(987.5)
    seats = {s.id: s for s in state.seats.data}
    assert seats["seat_1"].assignee.external_id == "u_seat"
    assert seats["seat_1"].credits.balances[0].balance == pytest.approx(99.5)
    assert state.seats.assigned == 2

    txns = paid.credits.list_credit_transactions(external_customer_id="acme", type="spend")
    amounts = sorted(Decimal(t.amount) for t in txns.data)
    assert amounts == [Decimal(x) for x in ("-6", "-5", "-1", "-0.5", "-0.5")]
    assert all(t.signal_id for t in txns.data)
    signals = paid.signals.list_signals(signal_name="chat_message")
    assert signals.pagination.total == 2
    one = paid.signals.get_signal_by_id(txns.data[0].signal_id)
    assert one.name in {"email_sent", "document_processed", "report_built", "chat_message"}


def test_bulk_errors_replays_and_exact_data(server: Server) -> None:
    paid = client(server)
    set_up_company(paid)
    exact = '{"n": 12345678901234567890, "x": 0.1, "Team": "a", "team": "b", "u": "é"}'
    good = (
        '{"eventName": "email_sent", "customer": {"externalCustomerId": "acme"}, '
        f'"data": {exact}, "idempotencyKey": "exact"}}'
    )
    body = (
        '{"signals": [' + good + ', {"eventName": "", "customer": {"externalCustomerId": '
        '"acme"}}, {"eventName": "e", "customer": {}}]}'
    ).encode()
    headers = {"Authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
    r = httpx.post(server.url + "/signals/bulk", content=body, headers=headers)
    assert r.status_code == 400
    assert (r.json()["ingested"], r.json()["failed"]) == (1, 2)
    assert r.json()["errors"][0] == {"index": 1, "reason": "eventName is empty"}
    # The SDK's view of the same: a typed error, the good signal still landed once.
    with pytest.raises(BadRequestError):
        paid.signals.create_signals(
            signals=[
                Signal(event_name="", customer=CustomerByExternalId(external_customer_id="acme"))
            ]
        )
    replay = httpx.post(
        server.url + "/signals/bulk", content=f'{{"signals": [{good}]}}'.encode(), headers=headers
    )
    assert replay.json() == {"ingested": 0, "duplicates": 1, "failed": 0}
    listed = httpx.get(server.url + "/signals/", headers=headers).json()
    copies = [s for s in listed["data"] if s.get("idempotencyKey") == "exact"]
    assert [c["isDuplicate"] for c in copies] == [True, False]  # newest first
    raw = httpx.get(server.url + f"/signals/{copies[1]['id']}", headers=headers).text
    assert f'"data":{exact}' in raw
    big = b'{"signals": [' + b" " * (33 << 20) + b"]}"
    assert httpx.post(server.url + "/signals/bulk", content=big, headers=headers).status_code == 413
    bad = httpx.post(server.url + "/signals/bulk", content=b"{nope", headers=headers)
    assert bad.status_code == 400 and bad.json()["error"].startswith("the body is not valid JSON")


def test_serve_runs_the_billing_run_when_something_changed(tmp_path: Path) -> None:
    root = tmp_path / "home"
    (root / "config").mkdir(parents=True)
    today = datetime.now(UTC).date().isoformat() + "T00:00:00Z"
    (root / "config" / "company.yaml").write_text(COMPANY.replace("TODAY", today))
    srv = Server(root, run_every=0.5).start()
    try:
        paid = client(srv)
        set_up_company(paid)
        paid.signals.create_signals(signals=[signal_of("report_built", {"quantity": 2}, "r1")])
        deadline = time.monotonic() + 120
        used = None
        while time.monotonic() < deadline and used != 4:
            time.sleep(0.5)
            pools = paid.customers.get_customer_credit_balances_by_external_id("acme").data
            used = next((b.used for b in pools if b.recipient == "organization"), None)
        assert used == 4
    finally:
        srv.stop()


def test_auth(server: Server) -> None:
    for token in ("wrong", TOKEN[:-1], TOKEN + "4"):
        with pytest.raises(ApiError) as err:
            client(server, token).credits.list_credit_currencies()
        assert err.value.status_code == 401
    r = httpx.post(server.url + "/signals/bulk", json={"signals": []})
    assert r.status_code == 401 and r.json()["code"] == "unauthorized"
    assert client(server, "other").credits.list_credit_currencies().data[0].key == "credits"
    assert not Lake(server.root / "lake").stats()["signals"]


def test_config_store_ownership_and_replays(server: Server) -> None:
    paid = client(server)
    set_up_company(paid)
    # Replaying a create returns what exists; a grant replayed without startsAt is one grant.
    assert paid.customers.create_customer(name="Beta", external_id="beta").id == "beta"
    assert paid.customers.create_customer(name="Beta", external_id="beta").id == "beta"
    g1 = paid.customers.grant_customer_credits_by_external_id(
        "beta", credit_currency_key="credits", amount=1.5
    )
    g2 = paid.customers.grant_customer_credits_by_external_id(
        "beta", credit_currency_key="credits", amount=1.5
    )
    assert g1.created and not g2.created and g1.grant.amount == 1
    api_doc = (server.root / "config" / "api.yaml").read_text()
    assert api_doc.count("amount: '1.500000'") == 1
    # YAML-owned entities are not changed through the API.
    with pytest.raises(BadRequestError) as err:
        paid.customers.upsert_customer_user_by_external_id("acme", "u_yaml", name="Renamed")
    assert err.value.body["code"] == "managed_in_file"
    with pytest.raises(ConflictError):
        paid.orders.update_order_seat_assignment("ord_acme", "seat_yaml", user_external_id=None)
    with pytest.raises(NotFoundError):
        paid.customers.get_customer_by_external_id("nobody")
    with pytest.raises(BadRequestError):
        paid.customers.grant_customer_credits_by_external_id(
            "beta", credit_currency_key="credits", amount=1.0000001
        )
    # A price change applies from now on; history keeps its price.
    paid.products.update_product_by_external_id(
        "agent", product_attributes=[usage("email_sent", 3)]
    )
    rules = [
        a
        for a in paid.products.get_product_by_external_id("agent").product_attributes
        if a.name == "email_sent"
    ]
    assert len(rules) == 2 and sum(a.active for a in rules) == 1
    # Seat moves: the user leaves seat_1, seat_1 is free, re-assign works.
    seats = paid.orders.batch_order_seat_assignments(
        "ord_acme", assignments=[{"seatId": "seat_1", "userExternalId": None}]
    )
    assert seats.data[0].status == "unassigned"
    # Beta spends more than its grant: the rest is overage, listed as pending consumption.
    paid.signals.create_signals(
        signals=[signal_of("report_built", {"quantity": 1.5}, "b1", customer="beta")]
    )
    generated = paid.customers.create_customer(name="No external id")
    assert generated.id.startswith("cus_") and generated.external_id == generated.id
    assert [s.status for s in paid.orders.list_order_seats("ord_acme").data] == [
        "unassigned",
        "assigned",
    ]
    # The pipeline loads what the API wrote.
    server.run()
    pending = paid.customers.list_customer_pending_credit_consumption_by_external_id("beta")
    assert [(p.credits, p.credits_decimal) for p in pending.data] == [(1, "1.500000")]
    beta = paid.customers.get_customer_credit_balances_by_external_id("beta").data
    assert [(b.available, b.used, b.total) for b in beta] == [(0, 1.5, 1.5)]
    assert (
        paid.customers.get_customer_state_by_external_id("beta").credits.balances[0].balance == -1.5
    )
    meta = paid.analytics.get_signals_metadata()
    assert {(s.signal_name, p.path) for s in meta.signals for p in s.paths} >= {
        ("report_built", "quantity")
    }
    out = paid.analytics.execute_analytics_query(
        query="SELECT customer_id, count(*) AS n FROM dim_credit_grant GROUP BY 1 ORDER BY 1"
    )
    assert out.rows == [["acme", "2"], ["beta", "1"]] and out.meta.row_count == 2
    with pytest.raises(BadRequestError):
        paid.analytics.execute_analytics_query(query="DROP TABLE dim_customer")
    with pytest.raises(BadRequestError):
        paid.analytics.execute_analytics_query(query="SELECT * FROM read_csv('/etc/passwd')")
    schema = paid.analytics.get_analytics_schema()
    assert "fact_signal" in {v.name for v in schema.views}


def test_kill_9_during_a_load_loses_no_acknowledged_signal(server: Server, tmp_path: Path) -> None:
    acked_file = tmp_path / "acked.jsonl"
    loader = subprocess.Popen([sys.executable, "-c", LOADER, server.url, TOKEN, str(acked_file)])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (
        not acked_file.exists() or acked_file.read_text().count("\n") < 20
    ):
        time.sleep(0.05)
    server.stop(signal.SIGKILL)
    loader.wait(timeout=60)
    acked = [json.loads(line) for line in acked_file.read_text().splitlines()]
    keys = [k for batch in acked for k in batch]
    assert len(keys) >= 20 * 200

    restarted = Server(server.root).start()
    try:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        listed = httpx.get(restarted.url + "/signals/", params={"limit": 1}, headers=headers)
        total = listed.json()["pagination"]["total"]
        assert total >= len(keys)
    finally:
        restarted.stop()
    import duckdb

    files = [str(f.path) for f in Lake(server.root / "lake").files()]
    con = duckdb.connect()
    landed = dict(
        con.execute(
            "SELECT idempotency_key, count(DISTINCT seq) FROM read_parquet($f) "
            "WHERE NOT is_duplicate GROUP BY 1",
            {"f": files},
        ).fetchall()
    )
    missing = [k for k in keys if landed.get(k) != 1]
    assert not missing, f"{len(missing)} acknowledged signals missing or doubled"


LOADER = r"""
import json, sys, httpx
url, token, out = sys.argv[1:]
headers = {"Authorization": f"Bearer {token}"}
with httpx.Client(headers=headers, timeout=30) as http, open(out, "a") as fh:
    for b in range(100_000):
        keys = [f"load-{b}-{i}" for i in range(200)]
        body = {"signals": [{"eventName": "email_sent", "customer": {"externalCustomerId": "acme"},
                             "idempotencyKey": k, "data": {"i": i}} for i, k in enumerate(keys)]}
        try:
            r = http.post(url + "/signals/bulk", json=body)
        except httpx.TransportError:
            break
        if r.status_code == 200:
            fh.write(json.dumps(keys) + "\n")
            fh.flush()
"""

"""Bad input and faults over real HTTP (uvicorn in a thread, Tally's protocol class): a server
fault is a JSON 500 on a connection that stays open; slow clients are cut off with a 408; readers
never break each other (two clients polling while an analytics query runs, an analyst's own
DuckDB connection open and the warehouse republished meanwhile: zero 500s)."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import httpx
import pytest
import uvicorn

from pipelines.api import http as api_http
from pipelines.api import read, server
from pipelines.api.app import create_app
from pipelines.core.home import Home
from pipelines.pricing.config import load_config
from pipelines.warehouse.publish import publish

TOKEN = "tok"
COMPANY = """
currencies:
  - {key: credits, name: Credits}
customers:
  - {external_id: acme, name: Acme Corp}
grants:
  - {id: g1, customer: acme, currency: credits, amount: 10, starts_at: 2026-11-01T00:00:00Z}
"""


@contextmanager
def serving(home: Home) -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(
        create_app(home, [TOKEN]),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        http=server.protocol_class(),
        timeout_keep_alive=server.KEEP_ALIVE_S,
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        srv.should_exit = True
        thread.join(timeout=30)


@pytest.fixture()
def home_with_config(home: Home) -> Home:
    home.config_dir.mkdir(parents=True)
    (home.config_dir / "company.yaml").write_text(COMPANY)
    return home


def request(path: str, method: str = "GET", body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def read_response(sock: socket.socket) -> tuple[int, dict]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    length = int(
        next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[
            1
        ]
    )
    while len(rest) < length:
        rest += sock.recv(65536)
    return status, json.loads(rest[:length])


def test_a_500_is_json_and_keeps_the_connection(home_with_config, monkeypatch, caplog) -> None:
    def broken(*_a, **_k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(read, "schema", broken)
    with serving(home_with_config) as port, socket.create_connection(("127.0.0.1", port)) as s:
        for _ in range(3):  # the same connection, again and again
            s.sendall(request("/api/v2/analytics/schema"))
            assert read_response(s) == (
                500,
                {"error": "internal error; see the server log", "code": "internal"},
            )
            s.sendall(request("/api/v2/credits/currencies"))
            assert read_response(s)[0] == 200
    assert "Exception in ASGI application" not in caplog.text


def test_slow_headers_are_cut_off(home_with_config, monkeypatch) -> None:
    monkeypatch.setattr(server, "HEADER_TIMEOUT_S", 0.5)
    with serving(home_with_config) as port:
        with socket.create_connection(("127.0.0.1", port)) as s:  # within the deadline: served
            s.sendall(request("/api/v2/credits/currencies")[:20])
            time.sleep(0.3)
            s.sendall(request("/api/v2/credits/currencies")[20:])
            assert read_response(s)[0] == 200
        with socket.create_connection(("127.0.0.1", port)) as s:  # past it: 408, closed
            s.sendall(b"GET /api/v2/credits/currencies HTTP/1.1\r\nHost: x\r\n")
            time.sleep(1.0)
            status, body = read_response(s)
            assert status == 408 and body["code"] == "request_timeout"
            assert s.recv(100) == b""
        with socket.create_connection(("127.0.0.1", port)) as s:  # silent: closed too
            time.sleep(1.0)
            assert read_response(s)[0] == 408


def test_a_slow_body_is_cut_off(home_with_config, monkeypatch) -> None:
    monkeypatch.setattr(api_http, "READ_TIMEOUT_S", 0.5)
    with serving(home_with_config) as port:
        with socket.create_connection(("127.0.0.1", port)) as s:
            body = b'{"signals": []}'
            s.sendall(request("/api/v2/signals/bulk", "POST", body)[:-5])
            time.sleep(0.2)
            s.sendall(body[-5:])
            assert read_response(s)[0] == 200
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(request("/api/v2/signals/bulk", "POST", b'{"signals": [        ]}')[:-10])
            time.sleep(1.0)
            status, body = read_response(s)
            assert status == 408 and body["code"] == "request_timeout"


def test_readers_never_break_each_other(home_with_config: Home) -> None:
    home = home_with_config
    config = load_config(home.config_dir)
    publish(home, config)
    analyst = duckdb.connect(str(home.warehouse), read_only=True)  # `duckdb -readonly`, default
    assert analyst.execute("SELECT count(*) FROM dim_customer").fetchone() == (1,)
    statuses: Counter[int] = Counter()
    stop = threading.Event()
    with serving(home) as port:
        url = f"http://127.0.0.1:{port}/api/v2"
        headers = {"Authorization": f"Bearer {TOKEN}"}

        def poll() -> None:
            with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
                while not stop.is_set():
                    for path in (
                        "/customers/external/acme/credits/balances",
                        "/analytics/signals/metadata",
                        "/analytics/schema",
                        "/customers/external/acme/state",
                        "/credits/transactions",
                    ):
                        statuses[client.get(path).status_code] += 1

        pollers = [threading.Thread(target=poll) for _ in range(2)]
        for t in pollers:
            t.start()
        slow = "SELECT count(*) AS n FROM range(300000000) t(a) WHERE a % 7 = 3"
        with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
            for _ in range(2):
                r = client.post("/analytics/query", json={"query": slow})
                assert r.status_code == 200, r.text
                publish(home, config)  # `tally run` publishing meanwhile
                assert analyst.execute("SELECT count(*) FROM dim_customer").fetchone() == (1,)
        stop.set()
        for t in pollers:
            t.join()
    assert statuses[200] > 10 and set(statuses) == {200}, statuses


@pytest.fixture(autouse=True)
def _quiet_uvicorn(caplog) -> None:
    caplog.set_level(logging.ERROR)

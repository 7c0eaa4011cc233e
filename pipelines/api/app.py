"""`tally serve`: the Paid-compatible HTTP API (docs/http-api.md).

Routes live under `/api/v2/`, so an agent points `Paid(token=..., base_url=".../api/v2")` at Tally
and changes nothing else. Every request needs `Authorization: Bearer <token>` (401 otherwise).
Errors are JSON `{error, code, details?}`. Writes are safe to replay: signals de-duplicate by
`idempotencyKey`, creates return what exists when the same thing is asked again, and no 5xx is
returned after anything was committed.
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipelines.api import openapi, read, resources
from pipelines.api.errors import ApiError, bad_request, not_found
from pipelines.api.http import (
    DEFAULT_MAX_BODY,
    Api,
    body_of,
    int_param,
    json_body,
    pagination,
    reply,
    time_param,
)
from pipelines.api.ingest import Committer, parse_bulk
from pipelines.api.runner import Runner
from pipelines.api.store import Store, iso
from pipelines.core.clock import now
from pipelines.core.home import Home
from pipelines.core.limits import MAX_QUERY_CHARS
from pipelines.landing.lake import Lake
from pipelines.warehouse.analytics import data_keys

log = logging.getLogger(__name__)
PREFIX = "/api/v2"
OPENAPI_PATH = PREFIX + "/openapi.json"
INTERNAL = {"error": "internal error; see the server log", "code": "internal"}


# --------------------------------------------------------------------------- auth and limits
class Guard:
    """Bearer-token auth (constant-time comparison) and the body size limit, before any route."""

    def __init__(self, app: ASGIApp, tokens: list[str], max_body: int):
        self.app, self.max_body = app, max_body
        self.tokens = [t.encode() for t in tokens]
        self.openapi = openapi.document()

    def _authorized(self, scope: Scope) -> bool:
        header = dict(scope["headers"]).get(b"authorization", b"")
        given = header[7:] if header[:7].lower() == b"bearer " else b""
        ok = False
        for token in self.tokens:  # compare with every token: timing says nothing
            ok |= hmac.compare_digest(given, token)
        return ok and bool(given)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == OPENAPI_PATH and scope["method"] in ("GET", "HEAD"):
            await reply(self.openapi)(scope, receive, send)  # public: it holds no data
            return
        if not self._authorized(scope):
            error = ApiError(401, "missing or invalid bearer token", "unauthorized")
            headers = {"WWW-Authenticate": "Bearer"}
            response = reply(error.body(), 401)
            response.headers.update(headers)
            await response(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            error = ApiError(413, f"the body is over the {self.max_body:,}-byte limit", "too_large")
            await reply(error.body(), 413)(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:  # noqa: BLE001 - answer JSON and keep the connection, never re-raise
            log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await reply(INTERNAL, 500)(scope, receive, send)


# ---------------------------------------------------------------------------------- signals
async def create_signals(request: Request, api: Api) -> Response:
    body = await body_of(request, api)
    validated = await asyncio.to_thread(parse_bulk, body)
    request_id = uuid.uuid4().hex[:12]
    ack = await asyncio.wrap_future(api.committer.submit(validated, request_id))
    counts = {"ingested": ack.ingested, "duplicates": ack.duplicates, "failed": ack.failed}
    if ack.failed:
        first = ack.errors[0]
        raise ApiError(
            400,
            f"{ack.failed} signal(s) rejected; the other {ack.ingested + ack.duplicates} landed",
            "invalid_signals",
            f"signals[{first['index']}]: {first['reason']}",
            errors=ack.errors,
            **counts,
        )
    return reply(counts)


def _signal_item(row: dict[str, Any]) -> dict[str, Any]:
    data = row["data"]
    return {
        "id": row["signal_id"],
        "name": row["event_name"],
        "createdAt": iso(row["received_at"]),
        "customerId": row["customer_id"] or row["external_customer_id"],
        "externalCustomerId": row["external_customer_id"] or row["customer_id"],
        "productId": row["product_id"] or row["external_product_id"],
        "externalProductId": row["external_product_id"] or row["product_id"],
        "data": msgspec.Raw(data.encode()) if data else None,
        "idempotencyKey": row["idempotency_key"],
        "isDuplicate": row["is_duplicate"],
    }


def list_signals(request: Request, api: Api) -> Response:
    q = request.query_params
    limit, offset = int_param(request, "limit", 100, 1000), int_param(request, "offset", 0)
    found, total = read.signals(
        api.lake,
        name=q.get("signalName"),
        customer_id=q.get("customerId"),
        external_customer_id=q.get("externalCustomerId"),
        product_id=q.get("productId"),
        external_product_id=q.get("externalProductId"),
        from_ts=time_param(request, "createdAtFrom"),
        to_ts=time_param(request, "createdAtTo"),
        limit=limit,
        offset=offset,
    )
    return reply(
        {"data": [_signal_item(r) for r in found], "pagination": pagination(limit, offset, total)}
    )


def get_signal(request: Request, api: Api) -> Response:
    ident = request.path_params["id"]
    digits = ident.removeprefix("sig_")
    if not (ident.startswith("sig_") and digits.isdigit() and len(digits) <= 18):
        raise not_found("signal", ident)
    found, _ = read.signals(api.lake, limit=1, seq=int(digits))
    if not found:
        raise not_found("signal", ident)
    return reply(_signal_item(found[0]))


# -------------------------------------------------------------------------------- analytics
def analytics_query(request: Request, api: Api) -> Response:
    doc = json_body(request, api)
    query = doc.get("query")
    if not isinstance(query, str) or not query.strip():
        raise bad_request("query must be a non-empty string")
    if len(query) > MAX_QUERY_CHARS:
        raise bad_request(f"query is {len(query):,} characters, over the {MAX_QUERY_CHARS:,} limit")
    return reply(read.analytics_query(api.home, query))


def analytics_schema(request: Request, api: Api) -> Response:
    return reply(read.schema(api.home))


def signals_metadata(request: Request, api: Api) -> Response:
    to_ts = time_param(request, "toDate") or now()
    try:
        from_ts = time_param(request, "fromDate") or to_ts - timedelta(days=30)
    except OverflowError:  # toDate in the first 30 days of year 1
        raise bad_request("toDate is too early") from None
    meta = {"fromDate": iso(from_ts), "toDate": iso(to_ts)}
    if not api.home.warehouse.exists():
        return reply({"signals": [], "meta": meta})
    report = data_keys(api.home.warehouse, request.query_params.get("signalName"), from_ts, to_ts)
    by_event: dict[str, dict[str, list[str]]] = {}
    for row in report.rows:
        path = _dotted(row["path"])
        types = by_event.setdefault(row["event_name"], {}).setdefault(path, [])
        types.append(row["json_type"])
    signals = [
        {"signalName": event, "paths": [{"path": p, "types": t} for p, t in paths.items()]}
        for event, paths in by_event.items()
    ]
    return reply({"signals": signals, "meta": meta | {"warnings": report.warnings}})


def _dotted(path: str) -> str:
    """`$.a.b` as the Paid API writes paths (`a.b`) when every segment is a plain key; other
    paths (array indexes, keys with dots) keep Tally's unambiguous form (docs/concepts.md)."""
    from pipelines.pricing.paths import parse_path

    segments = parse_path(path)
    plain = all(isinstance(s, str) and s and "." not in s and '"' not in s for s in segments)
    return ".".join(segments) if plain else path


# ------------------------------------------------------------------------------------- app
Handler = Callable[[Request, Api], Awaitable[Response] | Response]


def _route(path: str, handler: Handler, method: str, api: Api) -> Route:
    """A route whose errors are JSON: an ApiError as itself, anything else a 500 that keeps the
    connection. A plain (not async) handler runs in a worker thread with its body read first:
    DuckDB queries and configuration reads never block the event loop."""
    blocking = not inspect.iscoroutinefunction(handler)

    async def endpoint(request: Request) -> Response:
        try:
            if not blocking:
                return await handler(request, api)
            request.state.body = await body_of(request, api) if method in ("POST", "PUT") else b""
            return await run_in_threadpool(handler, request, api)
        except ApiError as exc:
            return reply(exc.body(), exc.status)
        except Exception:  # noqa: BLE001 - a server fault: log it, answer JSON, keep going
            log.exception("unexpected error on %s %s", request.method, request.url.path)
            return reply(INTERNAL, 500)

    return Route(PREFIX + path, endpoint, methods=[method])


ROUTES: list[tuple[str, str, Handler]] = [
    ("POST", "/signals/bulk", create_signals),
    ("GET", "/signals/", list_signals),
    ("GET", "/signals/{id}", get_signal),
    ("POST", "/analytics/query", analytics_query),
    ("GET", "/analytics/schema", analytics_schema),
    ("GET", "/analytics/signals/metadata", signals_metadata),
    ("POST", "/experimental/analytics/query", analytics_query),
    ("GET", "/experimental/analytics/schema", analytics_schema),
    ("GET", "/experimental/analytics/signals/metadata", signals_metadata),
    *resources.ROUTES,
]


async def _not_found(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 404)
    error = "no such route" if status == 404 else "method not allowed for this route"
    return reply(
        {
            "error": f"{error}: {request.method} {request.url.path}",
            "code": "not_found" if status == 404 else "method_not_allowed",
        },
        status,
    )


async def _internal(request: Request, exc: Exception) -> Response:
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return reply(INTERNAL, 500)


def create_app(
    home: Home,
    tokens: list[str],
    max_body: int = DEFAULT_MAX_BODY,
    run_every: float | None = None,
    ack_committed: bool = False,
) -> ASGIApp:
    """The ASGI app for `home`; `run_every` seconds > 0 keeps balances fresh (see runner.py);
    `ack_committed` acknowledges signals only once they are in an Iceberg table commit."""
    if not tokens:
        raise ValueError("tally serve needs at least one API token")
    lake = Lake(home.lake)
    api = Api(home, lake, Store(home.config_dir), Committer(lake, ack_committed), max_body)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runner = Runner(home, lake, run_every) if run_every else None
        try:
            yield
        finally:
            if runner:
                runner.close()
            api.committer.close()

    app = Starlette(
        routes=[_route(path, handler, method, api) for method, path, handler in ROUTES],
        exception_handlers={404: _not_found, 405: _not_found, Exception: _internal},
        lifespan=lifespan,
    )
    return Guard(app, tokens, max_body)

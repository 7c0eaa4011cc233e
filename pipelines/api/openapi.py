"""The OpenAPI 3 document `tally serve` publishes at `/api/v2/openapi.json` (no token needed).

It describes every route, its parameters and request bodies in the shapes of the Paid API
(docs/http-api.md) and the error shape every 4xx and 5xx shares. Limits (docs/limits.md) are
stated where a schema can say them. The property-based fuzz (tests/test_api_fuzz.py) generates
requests from it.
"""

from __future__ import annotations

from typing import Any

from pipelines.core.limits import MAX_DEPTH, MAX_ID, MAX_METADATA_BYTES, MAX_OFFSET

_STR = {"type": "string"}
_ID = {"type": "string", "maxLength": MAX_ID}
_TIME = {"type": "string", "format": "date-time"}
_NUMBER = {"type": "number"}
_OBJECT = {"type": "object", "additionalProperties": True}
_METADATA = {
    "type": "object",
    "additionalProperties": True,
    "description": f"at most {MAX_DEPTH} levels deep and {MAX_METADATA_BYTES} bytes as JSON",
}
ERROR = {
    "type": "object",
    "required": ["error", "code"],
    "properties": {"error": _STR, "code": _STR, "details": _STR},
}


def _obj(required: list[str] | None = None, **props: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    return out


SIGNAL = _obj(
    ["eventName", "customer"],
    eventName={"type": "string", "minLength": 1, "maxLength": MAX_ID},
    customer=_obj(customerId=_ID, externalCustomerId=_ID),
    attribution={**_obj(productId=_ID, externalProductId=_ID), "nullable": True},
    customerUnit={**_obj(externalCustomerUnitId=_ID), "nullable": True},
    timestamp={**_TIME, "nullable": True},
    data={**_OBJECT, "nullable": True},
    idempotencyKey={**_ID, "nullable": True},
)
_PAGE = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 0}},
    {
        "name": "offset",
        "in": "query",
        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
    },
]


def _query(*names: str, times: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    out = [{"name": n, "in": "query", "schema": _STR} for n in names]
    return out + [{"name": n, "in": "query", "schema": _TIME} for n in times]


def _path(*names: str) -> list[dict[str, Any]]:
    return [{"name": n, "in": "path", "required": True, "schema": _STR} for n in names]


def _op(
    summary: str,
    params: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    error = {"content": {"application/json": {"schema": ERROR}}}
    op: dict[str, Any] = {
        "summary": summary,
        "parameters": params or [],
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": _OBJECT}}},
            "400": {"description": "bad input", **error},
            "401": {"description": "no or wrong bearer token", **error},
            "404": {"description": "not found", **error},
            "408": {"description": "the request did not arrive in time", **error},
            "413": {"description": "the body is too large", **error},
            "500": {"description": "a server fault (the connection stays open)", **error},
            "503": {"description": "signals could not be stored; retry", **error},
        },
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


GRANT = _obj(
    ["creditCurrencyKey", "amount"],
    creditCurrencyKey=_ID,
    amount=_NUMBER,
    startsAt=_TIME,
    expiresAt={**_TIME, "nullable": True},
)
CUSTOMER = _obj(
    ["name"],
    name=_STR,
    externalId=_ID,
    email=_STR,
    phone=_STR,
    website=_STR,
    metadata=_METADATA,
)
USER = _obj(name=_STR, email=_STR, metadata=_METADATA, status={"enum": ["active", "deactivated"]})
PRICING = _obj(
    ["pricingType", "eventName", "creditsCurrencyId", "creditCost"],
    pricingType={"enum": ["UsagePrepaidCredits"]},
    eventName=_ID,
    creditsCurrencyId=_ID,
    creditCost=_NUMBER,
    pricingInput=_obj(kind={"enum": ["signalQuantity"]}, path=_ID),
)
PRODUCT = _obj(
    name=_STR,
    externalId=_ID,
    description=_STR,
    metadata=_METADATA,
    productAttributes={
        "type": "array",
        "items": _obj(["name", "pricing"], name=_STR, pricing=PRICING),
    },
)
SEAT = _obj(userExternalId={**_ID, "nullable": True})


def document() -> dict[str, Any]:
    """The OpenAPI document of the routes under /api/v2."""
    c = "/customers/external/{ext}"
    paths: dict[str, dict[str, Any]] = {
        "/signals/bulk": {
            "post": _op(
                "land signals (per-signal rejects in the 400 body)",
                body=_obj(["signals"], signals={"type": "array", "items": SIGNAL}),
            )
        },
        "/signals/": {
            "get": _op(
                "landed signals, newest first",
                _PAGE
                + _query(
                    "signalName",
                    "customerId",
                    "externalCustomerId",
                    "productId",
                    "externalProductId",
                    times=("createdAtFrom", "createdAtTo"),
                ),
            )
        },
        "/signals/{id}": {"get": _op("one signal", _path("id"))},
        "/analytics/query": {"post": _op("one read-only SELECT", body=_obj(["query"], query=_STR))},
        "/analytics/schema": {"get": _op("the views and columns")},
        "/analytics/signals/metadata": {
            "get": _op("data paths per event", _query("signalName", times=("fromDate", "toDate")))
        },
        "/customers/": {"post": _op("create a customer", body=CUSTOMER)},
        c: {"get": _op("a customer", _path("ext"))},
        c + "/state": {"get": _op("a customer's state", _path("ext"))},
        c + "/credits/balances": {"get": _op("credit pools", _path("ext"))},
        c + "/credits/grants": {"post": _op("grant credits", _path("ext"), GRANT)},
        c + "/credits/pending-consumption": {
            "get": _op("unfunded consumption", _path("ext") + _PAGE)
        },
        "/customers/{cust}/users/{user}": {
            "put": _op("create or update a user", _path("cust", "user"), USER)
        },
        "/credits/currencies": {
            "get": _op("credit currencies", _query("status")),
            "post": _op(
                "create a credit currency",
                body=_obj(["name", "key"], name=_STR, key=_ID, description=_STR),
            ),
        },
        "/credits/transactions": {
            "get": _op(
                "credit transactions, newest first",
                _PAGE
                + _query(
                    "customerId",
                    "externalCustomerId",
                    "creditsCurrencyId",
                    "creditCurrencyKey",
                    "type",
                    times=("createdAtFrom", "createdAtTo"),
                ),
            )
        },
        "/products/": {"post": _op("create a product", body=PRODUCT)},
        "/products/external/{ext}": {
            "get": _op("a product", _path("ext")),
            "put": _op("update a product and its pricing", _path("ext"), PRODUCT),
        },
        "/orders/{order}/seats": {
            "get": _op("an order's seats", _path("order") + _PAGE + _query("status"))
        },
        "/orders/{order}/seats/{seat}": {
            "put": _op("assign or unassign a seat", _path("order", "seat"), SEAT)
        },
        "/orders/{order}/seat-assignments": {
            "post": _op(
                "assign several seats",
                _path("order"),
                _obj(
                    ["assignments"],
                    assignments={
                        "type": "array",
                        "items": _obj(
                            ["seatId"],
                            seatId=_ID,
                            userExternalId=SEAT["properties"]["userExternalId"],
                        ),
                    },
                ),
            )
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "Tally (Paid-compatible API)", "version": "2"},
        "servers": [{"url": "/api/v2"}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": ERROR, "Signal": SIGNAL},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }

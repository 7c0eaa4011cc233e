"""Credit currencies: list and create."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from pipelines.api.errors import ApiError, bad_request
from pipelines.api.http import Api, json_body, reply
from pipelines.api.resources.common import (
    KEY_PATTERN,
    ident_field,
    stamps,
    stored_records,
    text_field,
)
from pipelines.api.store import record


def _currency_body(key: str, name: str, api: Api) -> dict[str, Any]:
    rec = stored_records(api).get(f"currency:{key}", {})
    return {
        "id": key,
        "key": key,
        "name": name,
        "status": "active",
        "description": rec.get("description"),
        "archivedAt": None,
        **stamps(rec, api),
    }


def list_currencies(request: Request, api: Api) -> Response:
    status = request.query_params.get("status", "all")
    currencies = [] if status == "archived" else api.store.config().currencies
    return reply({"data": [_currency_body(c.key, c.name, api) for c in currencies]})


def create_currency(request: Request, api: Api) -> Response:
    body = json_body(request, api)
    name, key = text_field(body, "name", required=True), ident_field(body, "key", required=True)
    if not KEY_PATTERN.fullmatch(key):
        raise bad_request(f"key {key!r} may hold only lowercase letters, numbers, _ and -")
    with api.store.change() as doc:
        owner = api.store.owner("currencies", doc, key=key)
        if owner is None:
            doc["currencies"].append({"key": key, "name": name})
            rec = record(doc, f"currency:{key}")
            if body.get("description") is not None:
                rec["description"] = body["description"]
    existing = next(c for c in api.store.config().currencies if c.key == key)
    if existing.name != name:
        raise ApiError(
            400, f"credit currency {key!r} already exists as {existing.name!r}", "already_exists"
        )
    return reply(_currency_body(key, existing.name, api))

"""Credit grants: create one, refusing an exact replay within the replay window."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from pipelines.api.errors import bad_request
from pipelines.api.http import Api, json_body, reply
from pipelines.api.resources.common import (
    REPLAY_WINDOW,
    find_customer,
    parse_credits,
    path_id,
    six_places,
    stored_records,
    text_field,
    time_field,
)
from pipelines.api.store import iso, record
from pipelines.core.clock import now


def create_grant(request: Request, api: Api) -> Response:
    ident = path_id(request, "ext")
    body = json_body(request, api)
    config = api.store.config()
    customer = find_customer(config, ident)
    key = text_field(body, "creditCurrencyKey", required=True)
    currency = next((c for c in config.currencies if c.key == key), None)
    if currency is None:
        raise bad_request(f"unknown credit currency {key!r}")
    amount = parse_credits(body.get("amount"), "amount", positive=True)
    at = now()
    starts, expires = time_field(body, "startsAt"), time_field(body, "expiresAt", end=True)
    if starts is not None and starts > at:
        raise bad_request(f"startsAt {iso(starts)} is after the current server time {iso(at)}")
    if expires is not None and expires <= (starts or at):
        raise bad_request("expiresAt must be after startsAt")
    with api.store.change() as doc:
        grant = _replayed_grant(doc, ident, key, amount, starts, expires, at)
        created = grant is None
        if created:
            grant = {
                "id": f"grt_{uuid.uuid4().hex[:16]}",
                "customer": ident,
                "currency": key,
                "amount": six_places(amount),
                "starts_at": iso(starts or at),
                "origin": "api",
            }
            if expires is not None:
                grant["expires_at"] = iso(expires)
            doc["grants"].append(grant)
            record(doc, f"grant:{grant['id']}")["defaultStart"] = starts is None
    return reply(
        {
            "created": created,
            "customer": {"id": customer.external_id, "externalId": customer.external_id},
            "creditCurrency": {"key": currency.key, "name": currency.name},
            "grant": {
                "id": grant["id"],
                "amount": int(amount),
                "amountDecimal": six_places(amount),
                "startsAt": grant["starts_at"],
                "expiresAt": grant.get("expires_at"),
                "status": "active",
            },
            "createdAt": stored_records(api)
            .get(f"grant:{grant['id']}", {})
            .get("createdAt", iso(at)),
        }
    )


def _replayed_grant(
    doc: dict[str, Any],
    customer: str,
    currency: str,
    amount: Decimal,
    starts: datetime | None,
    expires: datetime | None,
    at: datetime,
) -> dict[str, Any] | None:
    """The grant this request already created, if it is a replay: same customer, currency,
    amount and expiry, and the same explicit startsAt, or (without one) a default start less
    than REPLAY_WINDOW ago. The SDK resends a POST after a timeout or a 5xx; to grant the same
    amount twice within the window, give each grant its own startsAt."""
    for g in doc["grants"]:
        if (g["customer"], g["currency"], g.get("seat")) != (customer, currency, None):
            continue
        if Decimal(str(g["amount"])) != amount or g.get("expires_at") != iso(expires):
            continue
        default_start = doc["api_records"].get(f"grant:{g['id']}", {}).get("defaultStart")
        started = time_field(g, "starts_at", check=False)
        if starts is not None and started == starts and not default_start:
            return g
        if starts is None and default_start and at - started < REPLAY_WINDOW:
            return g
    return None

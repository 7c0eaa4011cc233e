"""Helpers of the reference routes: reading request fields, credits, times, the API records."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

import msgspec
from starlette.requests import Request

from pipelines.api.errors import bad_request, not_found
from pipelines.api.http import Api
from pipelines.api.store import iso
from pipelines.core.clock import now
from pipelines.core.limits import (
    MAX_AMOUNT,
    MAX_DEPTH,
    MAX_ID,
    MAX_METADATA_BYTES,
    MAX_NAME,
    depth,
    window_problem,
)
from pipelines.pricing.config import Config, Customer

REPLAY_WINDOW = timedelta(minutes=10)
SEAT_PRODUCT = {"id": "seat", "name": "Seat", "externalId": "seat"}
KEY_PATTERN = re.compile(r"[a-z0-9_-]+")
MAX_CREDITS = Decimal(MAX_AMOUNT)
_JSON = msgspec.json.Encoder(decimal_format="number").encode


def text_field(
    doc: dict[str, Any], name: str, required: bool = False, limit: int = MAX_NAME
) -> str | None:
    value = doc.get(name)
    if value is None:
        if required:
            raise bad_request(f"{name} is required")
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise bad_request(f"{name} must be a non-empty string")
    if len(value) > limit:
        raise bad_request(f"{name} is {len(value):,} characters, over the {limit:,} limit")
    return value


def ident_field(doc: dict[str, Any], name: str, required: bool = False) -> str | None:
    """An id or key: a string of at most MAX_ID characters."""
    return text_field(doc, name, required, MAX_ID)


def path_id(request: Request, name: str) -> str:
    value = request.path_params[name]
    if len(value) > MAX_ID:
        raise bad_request(f"the id in the path is {len(value):,} characters, over the {MAX_ID}")
    return value


def object_field(doc: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = doc.get(name)
    if value is not None and not isinstance(value, dict):
        raise bad_request(f"{name} must be a JSON object")
    return value


def metadata_field(doc: dict[str, Any], name: str = "metadata") -> dict[str, Any] | None:
    """`metadata`: an object nested at most MAX_DEPTH levels, at most MAX_METADATA_BYTES."""
    value = object_field(doc, name)
    if value is None:
        return None
    if depth(value) > MAX_DEPTH:
        raise bad_request(f"{name} is nested deeper than {MAX_DEPTH} levels")
    size = len(_JSON(value))
    if size > MAX_METADATA_BYTES:
        raise bad_request(
            f"{name} is {size:,} bytes as JSON, over the {MAX_METADATA_BYTES:,}-byte limit"
        )
    return value


def parse_credits(value: Any, name: str, positive: bool) -> Decimal:
    """A credit amount: a JSON number (decoded exactly) or decimal string, at most 6 places,
    less than 10^18 (sums of many stay far inside DECIMAL(38, 6))."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        raise bad_request(f"{name} must be a number")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise bad_request(f"{name} must be a number, got {str(value)[:40]!r}") from None
    if not amount.is_finite() or amount < 0 or (positive and amount == 0):
        raise bad_request(f"{name} must be {'> 0' if positive else '>= 0'}, got {value}")
    if amount >= MAX_CREDITS:
        raise bad_request(f"{name} must be less than 10^18, got {value}")
    with localcontext(prec=60):
        if amount != amount.quantize(Decimal("0.000001")):
            raise bad_request(f"{name} has more than 6 decimal places: {value}")
    return amount


def time_field(
    doc: dict[str, Any], name: str, end: bool = False, check: bool = True
) -> datetime | None:
    """An RFC 3339 time within the accepted window (limits.py): a start (`end` False) in
    [2000-01-01, now + 1 year), an end up to 2100-01-01."""
    value = doc.get(name)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        parsed = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        raise bad_request(f"{name} must be an RFC 3339 date-time, got {value!r}") from None
    problem = window_problem(parsed, end) if check else None
    if problem:
        raise bad_request(f"{name} {problem}")
    return parsed


def six_places(value: Decimal) -> str:
    return f"{value:.6f}"


def find_customer(config: Config, ident: str) -> Customer:
    found = next((c for c in config.customers if c.external_id == ident), None)
    if found is None:
        raise not_found("customer", ident)
    return found


def stored_records(api: Api) -> dict[str, Any]:
    return api.store.document()["api_records"]


def stamps(rec: dict[str, Any], api: Api) -> dict[str, str]:
    fallback = iso(datetime.fromtimestamp(api.store.dir.stat().st_mtime, UTC))
    return {
        "createdAt": rec.get("createdAt", fallback),
        "updatedAt": rec.get("updatedAt", fallback),
    }


def touch(rec: dict[str, Any]) -> None:
    rec["updatedAt"] = iso(now())

"""What every route shares: the API context, JSON replies, bodies and query parameters."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import anyio
import msgspec
from starlette.requests import Request
from starlette.responses import Response

from pipelines.api.errors import ApiError, bad_request
from pipelines.api.ingest import Committer
from pipelines.api.store import Store
from pipelines.core.home import Home
from pipelines.core.limits import MAX_DEPTH, MAX_OFFSET, depth
from pipelines.landing.lake import Lake

DEFAULT_MAX_BODY = 32 << 20
READ_TIMEOUT_S = float(os.environ.get("TALLY_READ_TIMEOUT", "30"))  # a request's whole body
_encode = msgspec.json.Encoder(decimal_format="number").encode
_decode = msgspec.json.Decoder(float_hook=Decimal).decode


@dataclass
class Api:
    """What every route needs: the home, its lake and config store, the committer."""

    home: Home
    lake: Lake
    store: Store
    committer: Committer
    max_body: int


def reply(body: Any, status: int = 200) -> Response:
    return Response(_encode(body), status_code=status, media_type="application/json")


async def body_of(request: Request, api: Api) -> bytes:
    """The whole body, within `api.max_body` bytes (413) and READ_TIMEOUT_S seconds (408)."""
    chunks, size = [], 0
    with anyio.move_on_after(READ_TIMEOUT_S) as scope:
        async for chunk in request.stream():
            size += len(chunk)
            if size > api.max_body:
                raise ApiError(
                    413, f"the body is over the {api.max_body:,}-byte limit", "too_large"
                )
            chunks.append(chunk)
    if scope.cancelled_caught:
        raise ApiError(
            408, f"the body did not arrive within {READ_TIMEOUT_S:g} s", "request_timeout"
        )
    return b"".join(chunks)


def decode_json(raw: bytes) -> dict[str, Any]:
    """A JSON object body (numbers exact), nested at most MAX_DEPTH levels below the top."""
    try:
        doc = _decode(raw) if raw.strip() else {}
    except msgspec.DecodeError as exc:
        raise bad_request(f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        doc = None
    if doc is None or depth(doc, MAX_DEPTH + 1) > MAX_DEPTH + 1:
        raise bad_request(f"the body is nested deeper than {MAX_DEPTH} levels")
    if not isinstance(doc, dict):
        raise bad_request("the body must be a JSON object")
    return doc


def json_body(request: Request, api: Api) -> dict[str, Any]:
    """The request's JSON object body, read by the route before its handler ran."""
    return decode_json(request.state.body)


# ------------------------------------------------------------------------------ query params
def int_param(request: Request, name: str, default: int, maximum: int | None = None) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise bad_request(f"{name} must be an integer, got {text!r}") from None
    if value < 0:
        raise bad_request(f"{name} must be >= 0")
    if value > MAX_OFFSET:
        raise bad_request(f"{name} must be at most {MAX_OFFSET:,}")
    return min(value, maximum) if maximum else value


def time_param(request: Request, name: str) -> datetime | None:
    """An ISO date (UTC midnight) or date-time with a zone."""
    text = request.query_params.get(name)
    if text is None or text == "":
        return None
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        value.astimezone(UTC)  # an offset that moves it out of the calendar fails here
    except (ValueError, OverflowError):
        raise bad_request(f"{name} must be an ISO date or date-time, got {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def pagination(limit: int, offset: int, total: int) -> dict[str, Any]:
    return {"limit": limit, "offset": offset, "total": total, "hasMore": offset + limit < total}

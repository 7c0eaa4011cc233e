"""What every route shares: the API context, JSON replies, bodies and query parameters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from pipelines.api.errors import ApiError, bad_request
from pipelines.api.ingest import Committer
from pipelines.api.store import Store
from pipelines.lib.home import Home
from pipelines.lib.lake import Lake

DEFAULT_MAX_BODY = 32 << 20
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
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > api.max_body:
            raise ApiError(413, f"the body is over the {api.max_body:,}-byte limit", "too_large")
        chunks.append(chunk)
    return b"".join(chunks)


async def json_body(request: Request, api: Api) -> dict[str, Any]:
    raw = await body_of(request, api)
    try:
        doc = _decode(raw) if raw.strip() else {}
    except msgspec.DecodeError as exc:
        raise bad_request(f"the body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise bad_request("the body must be a JSON object")
    return doc


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
    except ValueError:
        raise bad_request(f"{name} must be an ISO date or date-time, got {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def pagination(limit: int, offset: int, total: int) -> dict[str, Any]:
    return {"limit": limit, "offset": offset, "total": total, "hasMore": offset + limit < total}

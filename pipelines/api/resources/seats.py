"""Seats of a customer's implicit order, and assigning users to them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from pipelines.api.errors import ApiError, bad_request, not_found
from pipelines.api.http import Api, int_param, json_body, pagination, reply
from pipelines.api.resources.balances import seat_holder
from pipelines.api.resources.common import (
    SEAT_PRODUCT,
    ident_field,
    stamps,
    stored_records,
    time_field,
    touch,
)
from pipelines.api.store import iso, managed_elsewhere, record
from pipelines.core.clock import now
from pipelines.pricing.config import Config, Seat


def _order_customer(api: Api, order_id: str) -> tuple[Config, str]:
    config = api.store.config()
    customer = order_id.removeprefix("ord_")
    if not order_id.startswith("ord_") or not any(s.customer_id == customer for s in config.seats):
        raise not_found("order", order_id)
    return config, customer


def _order_seat(
    seat: Seat, api: Api, at: datetime, records: dict[str, Any] | None = None
) -> dict[str, Any]:
    holder = seat_holder(seat, at)
    rec = (stored_records(api) if records is None else records).get(f"seat:{seat.id}", {})
    return {
        "id": seat.id,
        "orderId": f"ord_{seat.customer_id}",
        "status": "assigned" if holder else "unassigned",
        "productExternalId": SEAT_PRODUCT["externalId"],
        "assignee": {"id": holder, "externalId": holder} if holder else None,
        **stamps(rec, api),
    }


def list_seats(request: Request, api: Api) -> Response:
    config, customer = _order_customer(api, request.path_params["order"])
    limit, offset = int_param(request, "limit", 100, 1000), int_param(request, "offset", 0)
    at = now()
    records = stored_records(api)  # read api.yaml once, not once per seat
    items = [_order_seat(s, api, at, records) for s in config.seats if s.customer_id == customer]
    status = request.query_params.get("status")
    items = [s for s in items if status is None or s["status"] == status]
    return reply(
        {
            "data": items[offset : offset + limit],
            "pagination": pagination(limit, offset, len(items)),
        }
    )


def _assign(
    doc: dict[str, Any],
    api: Api,
    config: Config,
    customer: str,
    seat_id: str,
    user: str | None,
    at: datetime,
) -> None:
    """Close the seat's assignment in force at `at` and, for a user, open a new one from `at`.

    Assignments made through the API live in `seat_assignments` of api.yaml; one defined in an
    operator's file is theirs to end, so replacing it is refused (409)."""
    seat = next((s for s in config.seats if s.id == seat_id and s.customer_id == customer), None)
    if seat is None:
        raise not_found("seat", seat_id)
    holder = seat_holder(seat, at)
    if holder == user:
        return
    current = next(
        (a for a in doc["seat_assignments"] if a["seat"] == seat_id and _holder_entry(a, at)),
        None,
    )
    if holder is not None and current is None:
        owner = api.store.owner("seats", doc, id=seat_id) or "?"
        raise managed_elsewhere(f"the current assignment of seat {seat_id!r}", owner, 409)
    if user is not None:
        if not any(u.customer_id == customer and u.external_id == user for u in config.users):
            raise ApiError(
                400,
                f"user {user!r} of customer {customer!r} does not exist; create "
                "it with PUT customers/{customer}/users/{user} first",
                "unknown_user",
            )
        other = next(
            (s.id for s in config.seats if s.id != seat_id and seat_holder(s, at) == user), None
        )
        if other is not None:
            raise ApiError(
                409,
                f"user {user!r} already holds seat {other!r}; unassign it first",
                "seat_conflict",
            )
    stamp = iso(at)
    if current is not None:
        if time_field(current, "from", check=False) == at:
            doc["seat_assignments"].remove(current)
        else:
            current["until"] = stamp
    if user is not None:
        doc["seat_assignments"].append({"seat": seat_id, "user": user, "from": stamp})
    touch(record(doc, f"seat:{seat_id}"))


def _holder_entry(a: dict[str, Any], at: datetime) -> bool:
    start, end = time_field(a, "from", check=False), time_field(a, "until", check=False)
    return (start is None or start <= at) and (end is None or at < end)


def _seat_user(body: dict[str, Any], where: str) -> str | None:
    if "userExternalId" not in body:
        raise bad_request(f"{where}userExternalId is required (null unassigns the seat)")
    return ident_field(body, "userExternalId")


def update_seat(request: Request, api: Api) -> Response:
    config, customer = _order_customer(api, request.path_params["order"])
    body = json_body(request, api)
    user = _seat_user(body, "")
    at = now()
    with api.store.change() as doc:
        _assign(doc, api, config, customer, request.path_params["seat"], user, at)
    seat = next(s for s in api.store.config().seats if s.id == request.path_params["seat"])
    return reply(_order_seat(seat, api, at))


def assign_seats(request: Request, api: Api) -> Response:
    config, customer = _order_customer(api, request.path_params["order"])
    body = json_body(request, api)
    items = body.get("assignments")
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise bad_request("assignments must be a list of {seatId, userExternalId}")
    at = now()
    with api.store.change() as doc:
        for item in items:
            seat_id = ident_field(item, "seatId", required=True)
            user = ident_field(item, "userExternalId")
            _assign(doc, api, config, customer, seat_id, user, at)
    seats = {s.id: s for s in api.store.config().seats}
    records = stored_records(api)
    return reply({"data": [_order_seat(seats[i["seatId"]], api, at, records) for i in items]})

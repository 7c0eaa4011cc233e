"""A customer's credit balances (pools and their grants) and its state (balances, seats)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from pipelines.api import read
from pipelines.api.http import Api, reply
from pipelines.api.resources.common import SEAT_PRODUCT, find_customer
from pipelines.api.resources.customers import customer_body
from pipelines.api.store import iso
from pipelines.core.clock import now
from pipelines.pricing.config import Seat


def _pools(api: Api, customer: str, names: dict[str, str]) -> list[dict[str, Any]]:
    """Pools (organization and seats) with their grants in force at the end of the last
    processed day (sql/balance_end_of_day.sql: the same figures as `tally balances`)."""
    pools: dict[tuple, dict[str, Any]] = {}
    for row in read.balance_rows(api.home, customer):
        key = (row["recipient_type"], row["recipient_id"], row["currency"])
        pool = pools.setdefault(
            key,
            {
                "creditsCurrencyId": key[2],
                "currencyName": names.get(key[2], key[2]),
                "currencyKey": key[2],
                "available": row["pool_available"],
                "used": Decimal(0),
                "total": Decimal(0),
                "recipient": key[0],
                "grants": [],
                "overage": row["overage"],
                "asOf": row["as_of"].isoformat(),
                **({"seatId": key[1]} if key[0] == "seat" else {}),
            },
        )
        if row["grant_id"] is None:
            continue
        pool["used"] += row["used"]
        pool["total"] += row["amount"]
        pool["grants"].append(
            {
                "id": row["grant_id"],
                "available": row["grant_available"],
                "used": row["used"],
                "total": row["amount"],
                "periodStart": iso(row["starts_at"]),
                "periodEnd": iso(row["expires_at"]),
                "expiresAt": iso(row["expires_at"]),
                "isInRolloverWindow": False,
            }
        )
    return list(pools.values())


def balances(request: Request, api: Api) -> Response:
    config = api.store.config()
    customer = find_customer(config, request.path_params["ext"])
    names = {c.key: c.name for c in config.currencies}
    return reply({"data": _pools(api, customer.external_id, names)})


def _bal(pool: dict[str, Any]) -> dict[str, Any]:
    return {
        "creditsCurrencyId": pool["creditsCurrencyId"],
        "currencyName": pool["currencyName"],
        "currencyKey": pool["currencyKey"],
        "balance": pool["available"] - pool["overage"],
    }


def seat_holder(seat: Seat, at: datetime) -> str | None:
    for a in seat.assignments:
        if (a.valid_from is None or a.valid_from <= at) and (
            a.valid_until is None or at < a.valid_until
        ):
            return a.user_id
    return None


def customer_state(request: Request, api: Api) -> Response:
    config = api.store.config()
    customer = find_customer(config, request.path_params["ext"])
    names = {c.key: c.name for c in config.currencies}
    pools = _pools(api, customer.external_id, names)
    at = now()
    seats = [s for s in config.seats if s.customer_id == customer.external_id]
    users = {u.external_id: u for u in config.users if u.customer_id == customer.external_id}
    order_id = f"ord_{customer.external_id}"
    seat_items = []
    for seat in seats:
        holder = seat_holder(seat, at)
        seat_items.append(
            {
                "id": seat.id,
                "orderId": order_id,
                "product": SEAT_PRODUCT,
                "status": "assigned" if holder else "unassigned",
                "assignee": {
                    "id": holder,
                    "externalId": holder,
                    "name": users[holder].name if holder in users else None,
                }
                if holder
                else None,
                "credits": {
                    "balances": [
                        _bal(p)
                        for p in pools
                        if p["recipient"] == "seat" and p["seatId"] == seat.id
                    ]
                },
            }
        )
    assigned = sum(1 for s in seat_items if s["status"] == "assigned")
    orders = (
        [
            {
                "id": order_id,
                "name": "Seats",
                "state": "active",
                "currency": "USD",
                "startDate": iso(at),
            }
        ]
        if seats
        else []
    )
    return reply(
        {
            "customer": {
                "id": customer.external_id,
                "name": customer.name,
                "externalId": customer.external_id,
            },
            "defaultCurrency": customer_body(customer, api)["defaultCurrency"],
            "orders": orders,
            "seats": {
                "total": len(seats),
                "assigned": assigned,
                "unassigned": len(seats) - assigned,
                "data": seat_items,
            },
            "checkoutLinks": [],
            "credits": {"balances": [_bal(p) for p in pools if p["recipient"] == "organization"]},
            "timestamp": iso(at),
            "asOf": pools[0]["asOf"] if pools else None,
        }
    )

"""Credit transactions and pending consumption."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response

from pipelines.api import read
from pipelines.api.http import Api, int_param, pagination, reply, time_param
from pipelines.api.resources.common import find_customer, six_places
from pipelines.api.store import iso
from pipelines.core.sql import load_sql


def list_transactions(request: Request, api: Api) -> Response:
    q = request.query_params
    customer = q.get("externalCustomerId") or q.get("customerId")
    currency = q.get("creditCurrencyKey") or q.get("creditsCurrencyId")
    kind = q.get("type")
    limit, offset = int_param(request, "limit", 100, 1000), int_param(request, "offset", 0)
    if kind == "pendingGrant":  # Tally grants are never pending payment
        return reply({"data": [], "pagination": pagination(limit, offset, 0)})
    rows, total = read.transactions(
        api.home,
        customer=customer,
        currency=currency,
        type=kind,
        from_ts=time_param(request, "createdAtFrom"),
        to_ts=time_param(request, "createdAtTo"),
        limit=limit,
        offset=offset,
    )
    names = {c.key: c.name for c in api.store.config().currencies}
    data = [
        {
            "id": f"txn_{r['type']}_{r['signal_id'] or r['grant_id']}",
            "customer": {"id": r["customer_id"], "externalId": r["customer_id"]},
            "creditCurrency": {
                "key": r["currency"],
                "name": names.get(r["currency"], r["currency"]),
            },
            "type": r["type"],
            "amount": six_places(r["amount"]),
            "originCode": r["origin"] or "unknown",
            "createdAt": iso(r["occurred_at"]),
            "eventName": r["event_name"],
            "signalId": r["signal_id"],
            "grantId": r["grant_id"],
            "recipientType": r["recipient_type"],
            "recipientId": r["recipient_id"],
            "product": {
                "id": r["product_id"],
                "name": r["product_name"] or r["product_id"],
                "externalId": r["product_id"],
            }
            if r["product_id"]
            else None,
        }
        for r in rows
    ]
    return reply({"data": data, "pagination": pagination(limit, offset, total)})


def pending_consumption(request: Request, api: Api) -> Response:
    """Consumption no grant could fund yet: each pool's outstanding overage after the last run,
    oldest first; it leaves the list when a grant repays it."""
    config = api.store.config()
    customer = find_customer(config, request.path_params["ext"])
    limit, offset = int_param(request, "limit", 100, 1000), int_param(request, "offset", 0)
    names = {c.key: c.name for c in config.currencies}
    with read.warehouse(api.home) as con:
        rows = (
            []
            if con is None
            else read.rows(con.execute(load_sql("api_pending"), {"customer": customer.external_id}))
        )
    data = [
        {
            "credits": int(r["overage"]),
            "creditsDecimal": six_places(r["overage"]),
            "occurredAt": iso(datetime.combine(r["since"], datetime.min.time(), UTC)),
            "recordedAt": iso(datetime.combine(r["as_of"], datetime.min.time(), UTC)),
            "creditCurrency": {
                "key": r["currency"],
                "name": names.get(r["currency"], r["currency"]),
            },
            "recipientType": r["recipient_type"],
            "recipientId": r["recipient_id"],
        }
        for r in rows
    ]
    page = data[offset : offset + limit]
    return reply({"data": page, "pagination": pagination(limit, offset, len(data))})

"""Reference routes: customers, users, products and pricing, currencies, grants, balances, state,
credit transactions, pending consumption and seats (docs/http-api.md).

Tally's ids are the external ids: a customer's `id` and `externalId` are the same string, a
currency's `id` is its key, a product's `id` is its external id. Seats belong to one implicit
order per customer, `ord_<customer id>`. Changes go through `Store` (config/api.yaml).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from pipelines.api import read
from pipelines.api.errors import ApiError, bad_request, not_found
from pipelines.api.http import Api, int_param, json_body, pagination, reply, time_param
from pipelines.api.store import API_FILE, iso, managed_elsewhere, record
from pipelines.lib.clock import now
from pipelines.lib.config import Config, Customer, Seat
from pipelines.lib.limits import (
    MAX_AMOUNT,
    MAX_DEPTH,
    MAX_ID,
    MAX_METADATA_BYTES,
    MAX_NAME,
    depth,
    window_problem,
)
from pipelines.lib.sql import load_sql

REPLAY_WINDOW = timedelta(minutes=10)
SEAT_PRODUCT = {"id": "seat", "name": "Seat", "externalId": "seat"}
_KEY = re.compile(r"[a-z0-9_-]+")
MAX_CREDITS = Decimal(MAX_AMOUNT)
_JSON = msgspec.json.Encoder(decimal_format="number").encode


# ------------------------------------------------------------------------------ helpers
def _text(
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


def _ident(doc: dict[str, Any], name: str, required: bool = False) -> str | None:
    """An id or key: a string of at most MAX_ID characters."""
    return _text(doc, name, required, MAX_ID)


def _path_id(request: Request, name: str) -> str:
    value = request.path_params[name]
    if len(value) > MAX_ID:
        raise bad_request(f"the id in the path is {len(value):,} characters, over the {MAX_ID}")
    return value


def _object(doc: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = doc.get(name)
    if value is not None and not isinstance(value, dict):
        raise bad_request(f"{name} must be a JSON object")
    return value


def _metadata(doc: dict[str, Any], name: str = "metadata") -> dict[str, Any] | None:
    """`metadata`: an object nested at most MAX_DEPTH levels, at most MAX_METADATA_BYTES."""
    value = _object(doc, name)
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


def _credits(value: Any, name: str, positive: bool) -> Decimal:
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


def _when(doc: dict[str, Any], name: str, end: bool = False, check: bool = True) -> datetime | None:
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


def _six(value: Decimal) -> str:
    return f"{value:.6f}"


def _customer(config: Config, ident: str) -> Customer:
    found = next((c for c in config.customers if c.external_id == ident), None)
    if found is None:
        raise not_found("customer", ident)
    return found


def _records(api: Api) -> dict[str, Any]:
    return api.store.document()["api_records"]


def _stamps(rec: dict[str, Any], api: Api) -> dict[str, str]:
    fallback = iso(datetime.fromtimestamp(api.store.dir.stat().st_mtime, UTC))
    return {
        "createdAt": rec.get("createdAt", fallback),
        "updatedAt": rec.get("updatedAt", fallback),
    }


def _touch(rec: dict[str, Any]) -> None:
    rec["updatedAt"] = iso(now())


# ---------------------------------------------------------------------------- customers
_CUSTOMER_FIELDS = (
    "legalName",
    "email",
    "phone",
    "website",
    "vatNumber",
    "defaultCurrency",
    "billingAddress",
    "creationState",
)


def _customer_body(c: Customer, api: Api) -> dict[str, Any]:
    rec = _records(api).get(f"customer:{c.external_id}", {})
    return {
        "id": c.external_id,
        "externalId": c.external_id,
        "name": c.name,
        "email": rec.get("email") or "",
        "phone": rec.get("phone") or "",
        "website": rec.get("website") or "",
        "legalName": rec.get("legalName"),
        "vatNumber": rec.get("vatNumber"),
        "billingAddress": rec.get("billingAddress"),
        "creationState": rec.get("creationState") or "active",
        "status": "active",
        "defaultCurrency": rec.get("defaultCurrency") or "USD",
        "connections": {},
        "metadata": c.metadata,
        **_stamps(rec, api),
    }


def create_customer(request: Request, api: Api) -> Response:
    body = json_body(request, api)
    name = _text(body, "name", required=True)
    ident = _ident(body, "externalId") or f"cus_{uuid.uuid4().hex[:16]}"
    metadata = _metadata(body) or {}
    with api.store.change() as doc:
        owner = api.store.owner("customers", doc, external_id=ident)
        if owner is None:
            doc["customers"].append({"external_id": ident, "name": name, "metadata": metadata})
            rec = record(doc, f"customer:{ident}")
            rec.update({k: body[k] for k in _CUSTOMER_FIELDS if body.get(k) is not None})
    existing = _customer(api.store.config(), ident)
    if owner is not None and existing.name != name:
        raise ApiError(
            400,
            f"customer {ident!r} already exists with another name "
            f"({existing.name!r}, config/{owner})",
            "already_exists",
        )
    return reply(_customer_body(existing, api))


def get_customer(request: Request, api: Api) -> Response:
    c = _customer(api.store.config(), request.path_params["ext"])
    return reply(_customer_body(c, api))


def upsert_user(request: Request, api: Api) -> Response:
    cust, uid = _path_id(request, "cust"), _path_id(request, "user")
    body = json_body(request, api)
    _customer(api.store.config(), cust)
    name, email, status = _text(body, "name"), _text(body, "email"), _text(body, "status")
    metadata = _metadata(body)
    if status not in (None, "active", "deactivated"):
        raise bad_request(f"status must be active or deactivated, got {status!r}")
    with api.store.change() as doc:
        owner = api.store.owner("users", doc, customer=cust, external_id=uid)
        created = owner is None
        if owner not in (None, API_FILE):
            user = next(
                u for u in api.store.config().users if (u.customer_id, u.external_id) == (cust, uid)
            )
            if (name is not None and name != user.name) or (
                metadata is not None and metadata != user.metadata
            ):
                raise managed_elsewhere(f"user {uid!r} of customer {cust!r}", owner)
        else:
            if created:
                doc["users"].append({"customer": cust, "external_id": uid, "name": name or uid})
            entry = next(
                u for u in doc["users"] if (u["customer"], u["external_id"]) == (cust, uid)
            )
            if name is not None:
                entry["name"] = name
            if metadata is not None:
                entry["metadata"] = metadata
        rec = record(doc, f"user:{cust}/{uid}")
        changes = {k: v for k, v in (("email", email), ("status", status)) if v is not None}
        if any(rec.get(k) != v for k, v in changes.items()):
            rec.update(changes)
            _touch(rec)
    user = next(
        u for u in api.store.config().users if (u.customer_id, u.external_id) == (cust, uid)
    )
    rec = _records(api).get(f"user:{cust}/{uid}", {})
    return reply(
        {
            "id": uid,
            "externalId": uid,
            "customerExternalId": cust,
            "name": user.name,
            "email": rec.get("email"),
            "metadata": user.metadata,
            "status": rec.get("status") or "active",
            "created": created,
            **_stamps(rec, api),
        }
    )


# ----------------------------------------------------------------------------- currencies
def _currency_body(key: str, name: str, api: Api) -> dict[str, Any]:
    rec = _records(api).get(f"currency:{key}", {})
    return {
        "id": key,
        "key": key,
        "name": name,
        "status": "active",
        "description": rec.get("description"),
        "archivedAt": None,
        **_stamps(rec, api),
    }


def list_currencies(request: Request, api: Api) -> Response:
    status = request.query_params.get("status", "all")
    currencies = [] if status == "archived" else api.store.config().currencies
    return reply({"data": [_currency_body(c.key, c.name, api) for c in currencies]})


def create_currency(request: Request, api: Api) -> Response:
    body = json_body(request, api)
    name, key = _text(body, "name", required=True), _ident(body, "key", required=True)
    if not _KEY.fullmatch(key):
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


# ------------------------------------------------------------------------------- products
def _attribute(rule: Any) -> dict[str, Any]:
    pricing_input = None
    if rule.quantity_path is not None:
        pricing_input = {"kind": "signalQuantity", "path": rule.quantity_path}
    return {
        "productAttributeId": rule.rule_id,
        "name": rule.event,
        "active": rule.valid_until is None or rule.valid_until > now(),
        "creditBenefits": [],
        "pricing": {
            "pricingType": "UsagePrepaidCredits",
            "chargeType": "usage",
            "pricePoints": [],
            "eventName": rule.event,
            "creditsCurrencyId": rule.currency,
            "creditCost": rule.credit_cost,
            "pricingInput": pricing_input,
            "validFrom": iso(rule.valid_from),
            "validUntil": iso(rule.valid_until),
        },
    }


def _product_body(api: Api, ident: str) -> dict[str, Any]:
    product = next((p for p in api.store.config().products if p.external_id == ident), None)
    if product is None:
        raise not_found("product", ident)
    rec = _records(api).get(f"product:{ident}", {})
    return {
        "id": ident,
        "externalId": ident,
        "name": product.name,
        "description": rec.get("description"),
        "productCode": rec.get("productCode"),
        "active": rec.get("active", True),
        "metadata": product.metadata,
        "archivedAt": None,
        "productAttributes": [_attribute(r) for r in product.pricing],
        **_stamps(rec, api),
    }


_PRODUCT_FIELDS = ("description", "productCode", "active")


def create_product(request: Request, api: Api) -> Response:
    body = json_body(request, api)
    name = _text(body, "name", required=True)
    ident = _ident(body, "externalId") or f"prod_{uuid.uuid4().hex[:16]}"
    with api.store.change() as doc:
        owner = api.store.owner("products", doc, external_id=ident)
        if owner is None:
            entry = {
                "external_id": ident,
                "name": name,
                "metadata": _metadata(body) or {},
                "pricing": [],
            }
            doc["products"].append(entry)
            rec = record(doc, f"product:{ident}")
            rec.update({k: body[k] for k in _PRODUCT_FIELDS if body.get(k) is not None})
    product = _product_body(api, ident)
    if owner is not None and product["name"] != name:
        raise ApiError(
            400,
            f"product {ident!r} already exists with another name "
            f"({product['name']!r}, config/{owner})",
            "already_exists",
        )
    return reply({k: v for k, v in product.items() if k != "productAttributes"})


def get_product(request: Request, api: Api) -> Response:
    return reply(_product_body(api, request.path_params["ext"]))


def _rule_from(attribute: Any, index: int, currencies: set[str]) -> dict[str, Any]:
    """A UsagePrepaidCredits attribute as a Tally pricing rule (event, currency, cost, path)."""
    where = f"productAttributes[{index}]"
    if not isinstance(attribute, dict) or not isinstance(attribute.get("pricing"), dict):
        raise bad_request(f"{where} needs a pricing object")
    pricing = attribute["pricing"]
    kind = pricing.get("pricingType")
    if kind != "UsagePrepaidCredits":
        raise ApiError(
            400,
            f"{where}: pricingType {kind!r} is not supported; Tally prices "
            "signals with UsagePrepaidCredits",
            "unsupported",
        )
    if attribute.get("creditBenefits"):
        raise ApiError(
            400,
            f"{where}: creditBenefits are not supported; grant credits with "
            "POST customers/external/{id}/credits/grants",
            "unsupported",
        )
    event = _ident(pricing, "eventName", required=True)
    currency = _ident(pricing, "creditsCurrencyId", required=True)
    if currency not in currencies:
        raise bad_request(f"{where}: unknown credit currency {currency!r}")
    rule: dict[str, Any] = {
        "event": event,
        "currency": currency,
        "credit_cost": str(_credits(pricing.get("creditCost"), f"{where}.creditCost", False)),
    }
    pricing_input = _object(pricing, "pricingInput")
    if pricing_input is not None:
        rule["quantity_path"] = _ident(pricing_input, "path") or "quantity"
    return rule


def _same_rule(old: dict[str, Any], new: dict[str, Any]) -> bool:
    keys = ("currency", "credit_cost", "quantity_path")
    return all(str(old.get(k)) == str(new.get(k)) for k in keys)


def _upsert_rule(rules: list[dict[str, Any]], new: dict[str, Any], at: str) -> None:
    """A new event is priced for all time; a changed price applies from now on (history keeps
    the price it had), by closing the rule in force and opening a new one."""
    mine = [r for r in rules if r["event"] == new["event"]]
    current = next((r for r in mine if r.get("until") is None), None)
    if current is not None and _same_rule(current, new):
        return
    if current is not None:
        current["until"] = at
    if mine:
        new = {**new, "from": at}
    rules.append(new)


def update_product(request: Request, api: Api) -> Response:
    ident = _path_id(request, "ext")
    body = json_body(request, api)
    config = api.store.config()
    currencies = {c.key for c in config.currencies}
    attributes = body.get("productAttributes")
    if attributes is not None and not isinstance(attributes, list):
        raise bad_request("productAttributes must be a list")
    new_rules = [_rule_from(a, i, currencies) for i, a in enumerate(attributes or [])]
    with api.store.change() as doc:
        owner = api.store.owner("products", doc, external_id=ident)
        if owner is None:
            raise not_found("product", ident)
        if owner != API_FILE:
            raise managed_elsewhere(f"product {ident!r}", owner)
        entry = next(p for p in doc["products"] if p["external_id"] == ident)
        if body.get("name") is not None:
            entry["name"] = _text(body, "name", required=True)
        if body.get("metadata") is not None:
            entry["metadata"] = _metadata(body)
        at = iso(now())
        for rule in new_rules:
            _upsert_rule(entry.setdefault("pricing", []), rule, at)
        rec = record(doc, f"product:{ident}")
        rec.update({k: body[k] for k in _PRODUCT_FIELDS if body.get(k) is not None})
        _touch(rec)
    return reply(_product_body(api, ident))


# --------------------------------------------------------------------------------- grants
def create_grant(request: Request, api: Api) -> Response:
    ident = _path_id(request, "ext")
    body = json_body(request, api)
    config = api.store.config()
    customer = _customer(config, ident)
    key = _text(body, "creditCurrencyKey", required=True)
    currency = next((c for c in config.currencies if c.key == key), None)
    if currency is None:
        raise bad_request(f"unknown credit currency {key!r}")
    amount = _credits(body.get("amount"), "amount", positive=True)
    at = now()
    starts, expires = _when(body, "startsAt"), _when(body, "expiresAt", end=True)
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
                "amount": _six(amount),
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
                "amountDecimal": _six(amount),
                "startsAt": grant["starts_at"],
                "expiresAt": grant.get("expires_at"),
                "status": "active",
            },
            "createdAt": _records(api).get(f"grant:{grant['id']}", {}).get("createdAt", iso(at)),
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
        started = _when(g, "starts_at", check=False)
        if starts is not None and started == starts and not default_start:
            return g
        if starts is None and default_start and at - started < REPLAY_WINDOW:
            return g
    return None


# ------------------------------------------------------------------------ balances, state
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
    customer = _customer(config, request.path_params["ext"])
    names = {c.key: c.name for c in config.currencies}
    return reply({"data": _pools(api, customer.external_id, names)})


def _bal(pool: dict[str, Any]) -> dict[str, Any]:
    return {
        "creditsCurrencyId": pool["creditsCurrencyId"],
        "currencyName": pool["currencyName"],
        "currencyKey": pool["currencyKey"],
        "balance": pool["available"] - pool["overage"],
    }


def _holder(seat: Seat, at: datetime) -> str | None:
    for a in seat.assignments:
        if (a.valid_from is None or a.valid_from <= at) and (
            a.valid_until is None or at < a.valid_until
        ):
            return a.user_id
    return None


def customer_state(request: Request, api: Api) -> Response:
    config = api.store.config()
    customer = _customer(config, request.path_params["ext"])
    names = {c.key: c.name for c in config.currencies}
    pools = _pools(api, customer.external_id, names)
    at = now()
    seats = [s for s in config.seats if s.customer_id == customer.external_id]
    users = {u.external_id: u for u in config.users if u.customer_id == customer.external_id}
    order_id = f"ord_{customer.external_id}"
    seat_items = []
    for seat in seats:
        holder = _holder(seat, at)
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
            "defaultCurrency": _customer_body(customer, api)["defaultCurrency"],
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


# --------------------------------------------------------------------------- transactions
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
            "amount": _six(r["amount"]),
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
    customer = _customer(config, request.path_params["ext"])
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
            "creditsDecimal": _six(r["overage"]),
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


# ---------------------------------------------------------------------------------- seats
def _order_customer(api: Api, order_id: str) -> tuple[Config, str]:
    config = api.store.config()
    customer = order_id.removeprefix("ord_")
    if not order_id.startswith("ord_") or not any(s.customer_id == customer for s in config.seats):
        raise not_found("order", order_id)
    return config, customer


def _order_seat(
    seat: Seat, api: Api, at: datetime, records: dict[str, Any] | None = None
) -> dict[str, Any]:
    holder = _holder(seat, at)
    rec = (_records(api) if records is None else records).get(f"seat:{seat.id}", {})
    return {
        "id": seat.id,
        "orderId": f"ord_{seat.customer_id}",
        "status": "assigned" if holder else "unassigned",
        "productExternalId": SEAT_PRODUCT["externalId"],
        "assignee": {"id": holder, "externalId": holder} if holder else None,
        **_stamps(rec, api),
    }


def list_seats(request: Request, api: Api) -> Response:
    config, customer = _order_customer(api, request.path_params["order"])
    limit, offset = int_param(request, "limit", 100, 1000), int_param(request, "offset", 0)
    at = now()
    records = _records(api)  # read api.yaml once, not once per seat
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
    holder = _holder(seat, at)
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
            (s.id for s in config.seats if s.id != seat_id and _holder(s, at) == user), None
        )
        if other is not None:
            raise ApiError(
                409,
                f"user {user!r} already holds seat {other!r}; unassign it first",
                "seat_conflict",
            )
    stamp = iso(at)
    if current is not None:
        if _when(current, "from", check=False) == at:
            doc["seat_assignments"].remove(current)
        else:
            current["until"] = stamp
    if user is not None:
        doc["seat_assignments"].append({"seat": seat_id, "user": user, "from": stamp})
    _touch(record(doc, f"seat:{seat_id}"))


def _holder_entry(a: dict[str, Any], at: datetime) -> bool:
    start, end = _when(a, "from", check=False), _when(a, "until", check=False)
    return (start is None or start <= at) and (end is None or at < end)


def _seat_user(body: dict[str, Any], where: str) -> str | None:
    if "userExternalId" not in body:
        raise bad_request(f"{where}userExternalId is required (null unassigns the seat)")
    return _ident(body, "userExternalId")


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
            seat_id = _ident(item, "seatId", required=True)
            user = _ident(item, "userExternalId")
            _assign(doc, api, config, customer, seat_id, user, at)
    seats = {s.id: s for s in api.store.config().seats}
    records = _records(api)
    return reply({"data": [_order_seat(seats[i["seatId"]], api, at, records) for i in items]})


ROUTES = [
    ("POST", "/customers/", create_customer),
    ("GET", "/customers/external/{ext}", get_customer),
    ("GET", "/customers/external/{ext}/state", customer_state),
    ("GET", "/customers/external/{ext}/credits/balances", balances),
    ("POST", "/customers/external/{ext}/credits/grants", create_grant),
    ("GET", "/customers/external/{ext}/credits/pending-consumption", pending_consumption),
    ("PUT", "/customers/{cust}/users/{user}", upsert_user),
    # By-id forms: a Tally id is the external id, so they are the same routes.
    ("GET", "/customers/{ext}", get_customer),
    ("GET", "/customers/{ext}/state", customer_state),
    ("GET", "/customers/{ext}/credits/balances", balances),
    ("POST", "/customers/{ext}/credits/grants", create_grant),
    ("GET", "/customers/{ext}/credits/pending-consumption", pending_consumption),
    ("GET", "/credits/currencies", list_currencies),
    ("POST", "/credits/currencies", create_currency),
    ("GET", "/credits/transactions", list_transactions),
    ("POST", "/products/", create_product),
    ("GET", "/products/external/{ext}", get_product),
    ("PUT", "/products/external/{ext}", update_product),
    ("GET", "/products/{ext}", get_product),
    ("PUT", "/products/{ext}", update_product),
    ("GET", "/orders/{order}/seats", list_seats),
    ("PUT", "/orders/{order}/seats/{seat}", update_seat),
    ("POST", "/orders/{order}/seat-assignments", assign_seats),
]

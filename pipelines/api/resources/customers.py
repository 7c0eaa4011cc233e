"""Customers and their users: create, read, upsert a user."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from pipelines.api.errors import ApiError, bad_request
from pipelines.api.http import Api, json_body, reply
from pipelines.api.resources.common import (
    find_customer,
    ident_field,
    metadata_field,
    path_id,
    stamps,
    stored_records,
    text_field,
    touch,
)
from pipelines.api.store import API_FILE, managed_elsewhere, record
from pipelines.pricing.config import Customer

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


def customer_body(c: Customer, api: Api) -> dict[str, Any]:
    rec = stored_records(api).get(f"customer:{c.external_id}", {})
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
        **stamps(rec, api),
    }


def create_customer(request: Request, api: Api) -> Response:
    body = json_body(request, api)
    name = text_field(body, "name", required=True)
    ident = ident_field(body, "externalId") or f"cus_{uuid.uuid4().hex[:16]}"
    metadata = metadata_field(body) or {}
    with api.store.change() as doc:
        owner = api.store.owner("customers", doc, external_id=ident)
        if owner is None:
            doc["customers"].append({"external_id": ident, "name": name, "metadata": metadata})
            rec = record(doc, f"customer:{ident}")
            rec.update({k: body[k] for k in _CUSTOMER_FIELDS if body.get(k) is not None})
    existing = find_customer(api.store.config(), ident)
    if owner is not None and existing.name != name:
        raise ApiError(
            400,
            f"customer {ident!r} already exists with another name "
            f"({existing.name!r}, config/{owner})",
            "already_exists",
        )
    return reply(customer_body(existing, api))


def get_customer(request: Request, api: Api) -> Response:
    c = find_customer(api.store.config(), request.path_params["ext"])
    return reply(customer_body(c, api))


def upsert_user(request: Request, api: Api) -> Response:
    cust, uid = path_id(request, "cust"), path_id(request, "user")
    body = json_body(request, api)
    find_customer(api.store.config(), cust)
    name, email, status = (
        text_field(body, "name"),
        text_field(body, "email"),
        text_field(body, "status"),
    )
    metadata = metadata_field(body)
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
            touch(rec)
    user = next(
        u for u in api.store.config().users if (u.customer_id, u.external_id) == (cust, uid)
    )
    rec = stored_records(api).get(f"user:{cust}/{uid}", {})
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
            **stamps(rec, api),
        }
    )

"""Products and their pricing: create, read, update (a changed price is a new rule version)."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from pipelines.api.errors import ApiError, bad_request, not_found
from pipelines.api.http import Api, json_body, reply
from pipelines.api.resources.common import (
    ident_field,
    metadata_field,
    object_field,
    parse_credits,
    path_id,
    stamps,
    stored_records,
    text_field,
    touch,
)
from pipelines.api.store import API_FILE, iso, managed_elsewhere, record
from pipelines.core.clock import now


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
    rec = stored_records(api).get(f"product:{ident}", {})
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
        **stamps(rec, api),
    }


_PRODUCT_FIELDS = ("description", "productCode", "active")


def create_product(request: Request, api: Api) -> Response:
    body = json_body(request, api)
    name = text_field(body, "name", required=True)
    ident = ident_field(body, "externalId") or f"prod_{uuid.uuid4().hex[:16]}"
    with api.store.change() as doc:
        owner = api.store.owner("products", doc, external_id=ident)
        if owner is None:
            entry = {
                "external_id": ident,
                "name": name,
                "metadata": metadata_field(body) or {},
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
    event = ident_field(pricing, "eventName", required=True)
    currency = ident_field(pricing, "creditsCurrencyId", required=True)
    if currency not in currencies:
        raise bad_request(f"{where}: unknown credit currency {currency!r}")
    rule: dict[str, Any] = {
        "event": event,
        "currency": currency,
        "credit_cost": str(parse_credits(pricing.get("creditCost"), f"{where}.creditCost", False)),
    }
    pricing_input = object_field(pricing, "pricingInput")
    if pricing_input is not None:
        rule["quantity_path"] = ident_field(pricing_input, "path") or "quantity"
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
    ident = path_id(request, "ext")
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
            entry["name"] = text_field(body, "name", required=True)
        if body.get("metadata") is not None:
            entry["metadata"] = metadata_field(body)
        at = iso(now())
        for rule in new_rules:
            _upsert_rule(entry.setdefault("pricing", []), rule, at)
        rec = record(doc, f"product:{ident}")
        rec.update({k: body[k] for k in _PRODUCT_FIELDS if body.get(k) is not None})
        touch(rec)
    return reply(_product_body(api, ident))

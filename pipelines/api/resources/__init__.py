"""Reference routes: customers, users, products and pricing, currencies, grants, balances, state,
credit transactions, pending consumption and seats (docs/http-api.md).

Tally's ids are the external ids: a customer's `id` and `externalId` are the same string, a
currency's `id` is its key, a product's `id` is its external id. Seats belong to one implicit
order per customer, `ord_<customer id>`. Changes go through `Store` (config/api.yaml).
"""

from __future__ import annotations

from pipelines.api.resources.balances import balances, customer_state
from pipelines.api.resources.currencies import create_currency, list_currencies
from pipelines.api.resources.customers import create_customer, get_customer, upsert_user
from pipelines.api.resources.grants import create_grant
from pipelines.api.resources.products import create_product, get_product, update_product
from pipelines.api.resources.seats import assign_seats, list_seats, update_seat
from pipelines.api.resources.transactions import list_transactions, pending_consumption

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

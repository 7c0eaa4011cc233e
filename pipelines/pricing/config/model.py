"""The configuration's entities: what a validated configuration holds (see the package)."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

import msgspec
import pyarrow as pa

SECTIONS = (
    "currencies",
    "customers",
    "products",
    "users",
    "seats",
    "seat_assignments",
    "grants",
    "hot_keys",
    "billing",
)
# A section the parser skips: the HTTP API keeps its own records (timestamps, contact fields) there.
API_RECORDS = "api_records"
# Data paths extracted into columns while pricing, so breakdowns on them do not parse JSON again.
DEFAULT_HOT_KEYS = ("external_user_id", "team", "department")
DEFAULT_PRIORITY = 50


class ConfigError(Exception):
    """Invalid configuration; `errors` holds one line per problem (file, entry, problem)."""

    def __init__(self, errors: list[str] | str) -> None:
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("\n".join(self.errors))


@dataclass(frozen=True)
class Currency:
    """A credit currency, e.g. `credits`."""

    key: str
    name: str


@dataclass(frozen=True)
class Customer:
    """A customer (organization) billed for signals."""

    external_id: str
    name: str
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class PricingRule:
    """The credit cost of one event of a product over [valid_from, valid_until)."""

    rule_id: str
    product_id: str
    event: str
    currency: str
    credit_cost: Decimal
    quantity_path: str | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None


@dataclass(frozen=True)
class Product:
    """A product that signals are attributed to, with its pricing rules."""

    external_id: str
    name: str
    metadata: dict = field(default_factory=dict)
    pricing: tuple[PricingRule, ...] = ()


@dataclass(frozen=True)
class User:
    """A user of one customer; `external_id` is unique within that customer."""

    customer_id: str
    external_id: str
    name: str
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SeatAssignment:
    """A user holding a seat over [valid_from, valid_until)."""

    seat_id: str
    user_id: str
    valid_from: datetime | None = None
    valid_until: datetime | None = None


@dataclass(frozen=True)
class Seat:
    """A seat of a customer, assigned to users over time."""

    id: str
    customer_id: str
    assignments: tuple[SeatAssignment, ...] = ()


@dataclass(frozen=True)
class Grant:
    """Credits granted to a customer's organization pool (`seat_id` None) or to one seat."""

    id: str
    customer_id: str
    seat_id: str | None
    currency: str
    amount: Decimal
    starts_at: datetime
    expires_at: datetime | None = None
    priority: int = DEFAULT_PRIORITY
    origin: str | None = None


@dataclass(frozen=True)
class Config:
    """A validated configuration; every tuple is sorted by id."""

    currencies: tuple[Currency, ...] = ()
    customers: tuple[Customer, ...] = ()
    products: tuple[Product, ...] = ()
    users: tuple[User, ...] = ()
    seats: tuple[Seat, ...] = ()
    grants: tuple[Grant, ...] = ()
    hot_keys: tuple[str, ...] = DEFAULT_HOT_KEYS
    # The first UTC day that is billed (the first daily partition); None: the day the earliest
    # grant starts (see pipelines.billing.engine).
    billing_start: date | None = None

    def fingerprint(self) -> str:
        """A stable sha256 of the content: equal content gives an equal fingerprint."""
        encoder = msgspec.json.Encoder(decimal_format="number", order="sorted")
        return hashlib.sha256(encoder.encode(dataclasses.asdict(self))).hexdigest()

    def tables(self) -> dict[str, pa.Table]:
        """The dimension tables (`dim_*`) as Arrow tables; ids are the external ids."""
        from pipelines.pricing.config.tables import dim_tables

        return dim_tables(self)

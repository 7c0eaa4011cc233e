"""Load and validate the billing configuration in `<config_dir>/*.yaml` (docs/configuration.md).

Files are read in sorted name order (hidden files skipped); each may hold any of the sections
`currencies, customers, products, users, seats, grants`, whose entries are concatenated. Loading
is a pure function: it returns a new `Config` or raises `ConfigError` listing every problem found,
one line each, naming the file, the entry and the problem. Nothing is half-applied.

Rules in detail:
- Numbers are read from the YAML text as written, never through a binary float. Decimals
  (`credit_cost >= 0`, `amount > 0`) are plain decimal numbers or strings holding one, with at
  most 6 decimal places; `1e3`, `1_000`, `.inf` are rejected.
- Identifiers and names are strings. A YAML integer (`1001`) is taken as its text exactly as
  written (`"1001"`, `007` stays `"007"`); booleans, floats, dates and null must be quoted.
- Times are RFC 3339 with a zone (`2026-01-01T00:00:00Z`, quoted or not), converted to UTC; a
  bare date is midnight UTC; a time without a zone or with sub-microsecond digits is an error.
- `name` defaults to the id; `metadata` defaults to `{}`; `from`/`until` are optional (unbounded),
  as are `expires_at` (never), `priority` (50, any integer) and `origin`.
- Users are identified by (customer, external_id); seat assignments name a user of the seat's
  customer. Pricing rule ids are `product:event:n`, n counting that product's rules for that
  event in time order from 1, so they do not depend on how the YAML is ordered.
- `Config` holds every entity sorted by id, so equal content gives an equal `Config` and an equal
  `fingerprint()` whatever the file split or entry order.
"""

from pipelines.pricing.config.loader import format_time, load_config, parse_config
from pipelines.pricing.config.model import (
    API_RECORDS,
    DEFAULT_HOT_KEYS,
    DEFAULT_PRIORITY,
    SECTIONS,
    Config,
    ConfigError,
    Currency,
    Customer,
    Grant,
    PricingRule,
    Product,
    Seat,
    SeatAssignment,
    User,
)

__all__ = [
    "API_RECORDS",
    "DEFAULT_HOT_KEYS",
    "DEFAULT_PRIORITY",
    "SECTIONS",
    "Config",
    "ConfigError",
    "Currency",
    "Customer",
    "Grant",
    "PricingRule",
    "Product",
    "Seat",
    "SeatAssignment",
    "User",
    "format_time",
    "load_config",
    "parse_config",
]

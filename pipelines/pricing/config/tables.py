"""The configuration as Arrow dimension tables (`dim_*`), for pricing, the ledger and the
warehouse."""

from __future__ import annotations

import msgspec
import pyarrow as pa

from pipelines.pricing.config.model import Config
from pipelines.pricing.paths import parse_path, to_json_pointer

_JSON = msgspec.json.Encoder(decimal_format="number")

# --- Arrow tables ---

_TIME = pa.timestamp("us", tz="UTC")
_CREDITS = pa.decimal128(38, 6)
_TEXT = pa.string()


def _table(columns: dict[str, pa.DataType], rows: list[tuple]) -> pa.Table:
    schema = pa.schema(list(columns.items()))
    return pa.Table.from_pylist([dict(zip(columns, row, strict=True)) for row in rows], schema)


def _json(metadata: dict) -> str:
    return _JSON.encode(metadata).decode()


def dim_tables(config: Config) -> dict[str, pa.Table]:
    """The dimension tables (`dim_*`) as Arrow tables; ids are the external ids."""
    rules = [r for p in config.products for r in p.pricing]
    assignments = [(a, s.customer_id) for s in config.seats for a in s.assignments]
    return {
        "dim_currency": _table(
            {"currency": _TEXT, "name": _TEXT}, [(c.key, c.name) for c in config.currencies]
        ),
        "dim_customer": _table(
            {"customer_id": _TEXT, "name": _TEXT, "metadata": _TEXT},
            [(c.external_id, c.name, _json(c.metadata)) for c in config.customers],
        ),
        "dim_product": _table(
            {"product_id": _TEXT, "name": _TEXT, "metadata": _TEXT},
            [(p.external_id, p.name, _json(p.metadata)) for p in config.products],
        ),
        "dim_pricing_rule": _table(
            {
                "rule_id": _TEXT,
                "product_id": _TEXT,
                "event_name": _TEXT,
                "currency": _TEXT,
                "credit_cost": _CREDITS,
                "quantity_path": _TEXT,
                "quantity_pointer": _TEXT,
                "valid_from": _TIME,
                "valid_until": _TIME,
            },
            [
                (
                    r.rule_id,
                    r.product_id,
                    r.event,
                    r.currency,
                    r.credit_cost,
                    r.quantity_path,
                    None
                    if r.quantity_path is None
                    else to_json_pointer(parse_path(r.quantity_path)),
                    r.valid_from,
                    r.valid_until,
                )
                for r in rules
            ],
        ),
        "dim_user": _table(
            {"customer_id": _TEXT, "user_id": _TEXT, "name": _TEXT, "metadata": _TEXT},
            [(u.customer_id, u.external_id, u.name, _json(u.metadata)) for u in config.users],
        ),
        "dim_seat": _table(
            {"seat_id": _TEXT, "customer_id": _TEXT}, [(s.id, s.customer_id) for s in config.seats]
        ),
        "dim_seat_assignment": _table(
            {
                "seat_id": _TEXT,
                "customer_id": _TEXT,
                "user_id": _TEXT,
                "valid_from": _TIME,
                "valid_until": _TIME,
            },
            [(a.seat_id, c, a.user_id, a.valid_from, a.valid_until) for a, c in assignments],
        ),
        "dim_credit_grant": _table(
            {
                "grant_id": _TEXT,
                "customer_id": _TEXT,
                "seat_id": _TEXT,
                "recipient_type": _TEXT,
                "recipient_id": _TEXT,
                "currency": _TEXT,
                "amount": _CREDITS,
                "starts_at": _TIME,
                "expires_at": _TIME,
                "priority": pa.int32(),
                "origin": _TEXT,
            },
            [
                (
                    g.id,
                    g.customer_id,
                    g.seat_id,
                    "organization" if g.seat_id is None else "seat",
                    g.seat_id or g.customer_id,
                    g.currency,
                    g.amount,
                    g.starts_at,
                    g.expires_at,
                    g.priority,
                    g.origin,
                )
                for g in config.grants
            ],
        ),
    }

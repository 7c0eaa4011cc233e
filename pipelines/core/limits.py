"""Every input limit in one place (docs/limits.md lists them with the error each one gives).

Signals over a limit are rejected one by one, with a reason (the rest of the batch lands); API
requests over a limit get a 4xx with the JSON error shape; configuration over a limit fails the
load with a message naming the file and the entry.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pipelines.core.clock import now

MAX_ID = 256  # characters: eventName, every id and key (externalCustomerId, idempotencyKey, ...)
MAX_NAME = 1024  # characters: display names (customer, product, user, currency)
MAX_DEPTH = 32  # levels of nesting of a signal's `data` and of an entity's `metadata`
MAX_DATA_BYTES = 64 * 1024  # a signal's `data`, serialized (docs/concepts.md)
MAX_METADATA_BYTES = 16 * 1024  # an entity's `metadata`, serialized as JSON
MAX_CONFIG_FILE_BYTES = 16 << 20  # one config/*.yaml file (api.yaml included)
MAX_AMOUNT = 10**18  # credits: a grant amount or credit cost sent to the API is below this
MAX_OFFSET = 1_000_000_000  # `offset` of list routes
MAX_QUERY_CHARS = 100_000  # the SQL text of one analytics query
# Times: a signal's timestamp, a grant's starts_at, a pricing rule's or assignment's `from` lie in
# [TIME_MIN, now + FUTURE); ends (expires_at, until) lie in (start, TIME_END].
TIME_MIN = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE = timedelta(days=365)
TIME_END = datetime(2100, 1, 1, tzinfo=UTC)


def time_window() -> tuple[datetime, datetime]:
    """[first, last) instant a signal timestamp or a start time may take, now."""
    return TIME_MIN, now() + FUTURE


def show_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def window_problem(value: datetime, end: bool = False) -> str | None:
    """Why a start (or, with `end`, an end) time is outside the window, or None."""
    if value < TIME_MIN:
        return f"{show_time(value)} is before {show_time(TIME_MIN)}, the earliest time accepted"
    if end:
        if value > TIME_END:
            return f"{show_time(value)} is after {show_time(TIME_END)}, the latest end accepted"
        return None
    _, last = time_window()
    if value >= last:
        return f"{show_time(value)} is more than a year ahead (at or after {show_time(last)})"
    return None


def depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of a decoded JSON value (an object or array is one level), counting only
    up to `limit + 1` (so a hostile value costs no more than that)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest

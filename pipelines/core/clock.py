"""The project's one clock: `TALLY_NOW` when set (tests, re-issues of statements), else the real
time; always UTC. Every "now" in Tally (billing days, partitions, statements, the API's time
window, grants' `createdAt`) comes from here."""

from __future__ import annotations

import os
from datetime import UTC, datetime

NOW_ENV = "TALLY_NOW"


class ClockError(ValueError):
    """`TALLY_NOW` is not a time."""


def now() -> datetime:
    """`TALLY_NOW` when set, else the clock; always UTC."""
    text = os.environ.get(NOW_ENV, "").strip()
    if not text:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ClockError(f"{NOW_ENV}={text!r} is not an RFC 3339 time or a date") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

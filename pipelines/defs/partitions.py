"""The billed days and months: static UTC partitions from the first billed day through yesterday.

The first day comes from the configuration (`billing.start_date`, else the day the earliest grant
starts); it is read when the code location loads, never from the lake. The last partition is
today (UTC), the open day; the schedule and the sensor bill through yesterday, the last closed
day. `TALLY_NOW` moves "now" (tests, re-issues).
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from pipelines.billing.engine import billing_start
from pipelines.core.clock import NOW_ENV, now
from pipelines.core.home import resolve_home
from pipelines.pricing.config import ConfigError, load_config


def first_billed_day() -> date:
    """The first daily partition. A configuration that does not load yet (it is reported by the
    run that reads it) or has no grant starts at the first day of the current month."""
    try:
        start = billing_start(load_config(resolve_home().config_dir))
    except ConfigError:
        start = None
    return start or now().date().replace(day=1)


def _end() -> dict:
    """The partitions run through today (UTC): days through yesterday are closed and billed by
    the schedule; today is open (`tally run --through TODAY` and `tally serve` bill it as it
    goes). Dagster ends time partitions at the real clock, so a clock pinned ahead of it
    (`TALLY_NOW`) extends them by an offset, and one pinned behind it ends them at its day."""
    if not os.environ.get(NOW_ENV, "").strip():
        return {"end_offset": 1}
    today = now().date()
    ahead = (today - datetime.now(UTC).date()).days
    if ahead >= 0:
        return {"end_offset": ahead + 1}
    end = today + timedelta(days=1)
    return {"end_date": datetime(end.year, end.month, end.day, tzinfo=UTC)}


START = first_billed_day()
DAILY = dg.DailyPartitionsDefinition(start_date=START.isoformat(), **_end())
# Months through the current one (its statements are drafts until the month closes).
_today, _real = now().date(), datetime.now(UTC).date()
_ahead = (_today.year - _real.year) * 12 + _today.month - _real.month
MONTHLY = (
    dg.MonthlyPartitionsDefinition(
        start_date=START.strftime("%Y-%m"), end_offset=1 + _ahead, fmt="%Y-%m"
    )
    if _ahead >= 0
    else dg.MonthlyPartitionsDefinition(
        start_date=START.strftime("%Y-%m"),
        end_date=date(_today.year + _today.month // 12, _today.month % 12 + 1, 1).strftime("%Y-%m"),
        fmt="%Y-%m",
    )
)

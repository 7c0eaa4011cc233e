"""Daily partitions (UTC) and the resource that locates the home; shared by every stage."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime

import dagster as dg

from pipelines.lib.config import Config, load_config
from pipelines.lib.home import Home, resolve_home
from pipelines.lib.lake import Lake


class TallyHome(dg.ConfigurableResource):
    """The data directory (`TALLY_HOME`, default ./data) and its configuration."""

    home: str = "data"

    def resolve(self) -> Home:
        return resolve_home(self.home or None)

    def config(self) -> Config:
        return load_config(self.resolve().config_dir)


def _data_days() -> list[str]:
    """Days with landed signals or a grant start (the ledger's span)."""
    home = resolve_home(os.environ.get("TALLY_HOME") or None)
    days = []
    if (home.lake / "_catalog").exists():
        days += list(Lake(home.lake).partitions())
    try:
        grants = load_config(home.config_dir).grants
        days += [g.starts_at.astimezone(UTC).date().isoformat() for g in grants]
    except Exception:  # noqa: BLE001 - a broken config is reported by the run, not at load time
        pass
    return days


def daily_partitions() -> dg.DailyPartitionsDefinition:
    """UTC days from the first day with data through today, or through the last day with data
    when signals are dated in the future (clock skew, test data): every landed day has one."""
    days = _data_days()
    today = datetime.now(UTC).date()
    first = min(days, default=today.isoformat())
    ahead = (date.fromisoformat(max(days, default=today.isoformat())) - today).days
    return dg.DailyPartitionsDefinition(start_date=first, end_offset=max(1, ahead + 1))


DAILY = daily_partitions()
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"

"""Daily partitions (UTC) and the resource that locates the home; shared by every stage."""

from __future__ import annotations

import os
from datetime import UTC, datetime

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


def first_day() -> str:
    """The first day with signals or a grant start; partitions begin there (today if none)."""
    home = resolve_home(os.environ.get("TALLY_HOME") or None)
    days = []
    if (home.lake / "_catalog").exists():
        days += list(Lake(home.lake).partitions())
    try:
        days += [
            g.starts_at.astimezone(UTC).date().isoformat()
            for g in load_config(home.config_dir).grants
        ]
    except Exception:  # noqa: BLE001 - a broken config is reported by the run, not at load time
        pass
    return min(days, default=datetime.now(UTC).date().isoformat())


DAILY = dg.DailyPartitionsDefinition(start_date=first_day(), end_offset=1)
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"

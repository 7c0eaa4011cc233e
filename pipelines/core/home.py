"""Where a Tally installation keeps its files.

`--home DIR`, env `TALLY_HOME`, default `./data` (docs/operations.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "TALLY_HOME"


@dataclass(frozen=True)
class Home:
    """The data directory of one installation and the well-known paths inside it."""

    root: Path

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def lake(self) -> Path:
        """Landed signals and rejects (hive-partitioned Parquet) plus the catalog."""
        return self.root / "lake"

    @property
    def engine_dir(self) -> Path:
        """Per-day pipeline outputs (priced signals, ledger) as Parquet."""
        return self.root / "engine"

    @property
    def warehouse(self) -> Path:
        """The DuckDB file analysts open read-only."""
        return self.root / "warehouse.duckdb"


def resolve_home(home: str | os.PathLike[str] | None = None) -> Home:
    """The explicit `home`, else `$TALLY_HOME`, else `./data`; always absolute."""
    chosen = home if home is not None else os.environ.get(HOME_ENV) or "data"
    return Home(Path(chosen).expanduser().resolve())


# The parts both instances share: run artifacts and compute logs in the home, pools of one slot.
_HOME_FILES = """\
local_artifact_storage:
  module: pipelines.billing.instance
  class: HomeArtifactStorage
  config: {}
compute_logs:
  module: pipelines.billing.instance
  class: HomeComputeLogManager
  config: {}
"""
_POOLS_AND_TELEMETRY = """\
  pools:
    default_limit: 1
telemetry:
  enabled: false
"""

INSTANCE_YAML = (
    """\
# Dagster's instance for this Tally home (written by `tally`; edit freely, it is kept).
storage:
  custom:
    module: pipelines.billing.instance
    class: HomeSqliteStorage
    config: {}
"""
    + _HOME_FILES
    + "concurrency:\n"
    + _POOLS_AND_TELEMETRY
)


DAGSTER_STORAGE_ENV = "TALLY_DAGSTER_STORAGE"

# The shared deployment: runs, events and schedules in PostgreSQL (every host and worker sees the
# same instance), runs launched from the UI, sensors and schedules queued and started by the
# daemon a few at a time. The URL stays in the environment, never in the file.
SHARED_INSTANCE_YAML = (
    """\
# Dagster's instance for this Tally home on PostgreSQL (written by `tally` because
# TALLY_DAGSTER_STORAGE is set; edit freely, it is kept).
storage:
  postgres:
    postgres_url:
      env: TALLY_DAGSTER_STORAGE
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
"""
    + _HOME_FILES
    + "concurrency:\n  runs:\n    max_concurrent_runs: 4\n"
    + _POOLS_AND_TELEMETRY
)


def ensure_instance(home_root: Path) -> Path:
    """Create the home's Dagster instance directory with its dagster.yaml (once) and return it
    (DAGSTER_HOME): `<home>/dagster` (SQLite), or `<home>/dagster/shared` when
    `TALLY_DAGSTER_STORAGE` names a PostgreSQL database."""
    path = home_root / "dagster"
    text = INSTANCE_YAML
    if os.environ.get(DAGSTER_STORAGE_ENV, "").strip():
        path, text = path / "shared", SHARED_INSTANCE_YAML
    path.mkdir(parents=True, exist_ok=True)
    config = path / "dagster.yaml"
    if not config.exists():
        config.write_text(text)
    else:  # a home written before the modules moved into their stages
        kept = config.read_text()
        if _OLD_INSTANCE_MODULE in kept:
            from pipelines.storage.files import write_bytes_atomic

            moved = kept.replace(_OLD_INSTANCE_MODULE, "pipelines.billing.instance")
            write_bytes_atomic(moved.encode(), config)
    return path


_OLD_INSTANCE_MODULE = "pipelines.lib.instance"

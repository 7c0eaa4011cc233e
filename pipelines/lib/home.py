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


INSTANCE_YAML = """\
# Dagster's instance for this Tally home (written by `tally`; edit freely, it is kept).
storage:
  custom:
    module: pipelines.lib.instance
    class: HomeSqliteStorage
    config: {}
local_artifact_storage:
  module: pipelines.lib.instance
  class: HomeArtifactStorage
  config: {}
compute_logs:
  module: pipelines.lib.instance
  class: HomeComputeLogManager
  config: {}
concurrency:
  pools:
    default_limit: 1
telemetry:
  enabled: false
"""


def ensure_instance(home_root: Path) -> Path:
    """Create `<home>/dagster/dagster.yaml` (once) and return the directory (DAGSTER_HOME)."""
    path = home_root / "dagster"
    path.mkdir(parents=True, exist_ok=True)
    config = path / "dagster.yaml"
    if not config.exists():
        config.write_text(INSTANCE_YAML)
    return path

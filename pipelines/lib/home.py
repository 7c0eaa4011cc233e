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

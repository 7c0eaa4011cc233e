"""Customer shards: the unit the engine's work splits into within a day.

A customer's signals, seats, grants and balances all belong to one shard, so a shard's pricing and
ledger never read another shard's files and one customer's numbers never depend on another shard's
work. The shard comes from the customer's *shard key*, a stable hash of its id (the first 2 bytes
of its SHA-256: 0..65535; no customer: 0): with N shards, shard i holds the keys k with
floor(k * N / 65536) = i, a contiguous range. The lake stores each signal's key and sorts its
files by it, so a shard's steps read only the row groups of its range. `TALLY_SHARDS` sets the
count (default 1: one shard, the files named as they always were). Changing it recomputes every day
once (the engine's working files are derived from the lake; see `ensure_layout`).
"""

from __future__ import annotations

import fcntl
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from pipelines.landing.schema import KEY_SPACE, shard_key
from pipelines.storage.files import write_bytes_atomic

SHARDS_ENV = "TALLY_SHARDS"
MAX_SHARDS = 256
LAYOUT_FILE = "SHARDS"  # in <home>/engine: the shard count its files were written with
# How customers map to shards. Files of several shards written under another mapping (before shard
# keys: SHA-256 modulo the count) are recomputed once; one shard is the same under every mapping.
MAPPING = "key16"
ENGINE_OUTPUTS = (
    "fact_signal",
    "signal_rollup",
    "balance_snapshot",
    "grant_balance",
    "credit_event",
)


class ShardError(ValueError):
    """`TALLY_SHARDS` is not a usable shard count."""


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    @property
    def suffix(self) -> str:
        """What this shard's files add to their names ("" when there is one shard)."""
        return "" if self.count == 1 else f"-s{self.index:03d}"

    def holds(self, customer: str | None) -> bool:
        return shard_of(customer, self.count) == self.index

    @property
    def keys(self) -> tuple[int, int]:
        """The first and last shard key of this shard (inclusive)."""
        return (
            -(-self.index * KEY_SPACE // self.count),
            -(-(self.index + 1) * KEY_SPACE // self.count) - 1,
        )

    def owns(self, path: Path) -> bool:
        """Whether an engine file (`data-s003.parquet`, `late-...-s003.parquet`) is this shard's."""
        return self.count == 1 or path.stem.endswith(self.suffix)

    def __str__(self) -> str:
        return f"{self.index + 1}/{self.count}"


ONE = Shard(0, 1)


def shard_of(customer: str | None, count: int) -> int:
    """The shard of a customer id (signals without a customer go to shard 0)."""
    return shard_key(customer) * count // KEY_SPACE


def shard_count() -> int:
    raw = os.environ.get(SHARDS_ENV, "").strip()
    try:
        n = int(raw) if raw else 1
    except ValueError:
        raise ShardError(f"{SHARDS_ENV}={raw!r} is not a number of shards") from None
    if not 1 <= n <= MAX_SHARDS:
        raise ShardError(f"{SHARDS_ENV} must be between 1 and {MAX_SHARDS}, not {n}")
    return n


def all_shards(count: int | None = None) -> list[Shard]:
    n = shard_count() if count is None else count
    return [Shard(i, n) for i in range(n)]


def ensure_layout(engine_dir: Path, count: int) -> bool:
    """Make the engine's working files match `count` shards: written with another count, they are
    removed (every day's version changes with the count, so Dagster recomputes them). True if
    files were removed."""
    marker = engine_dir / LAYOUT_FILE
    engine_dir.mkdir(parents=True, exist_ok=True)
    # Shards' steps start side by side: one of them changes the layout, the others then see it.
    with open(engine_dir / ".layout.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        layout = f"{count}\n" if count == 1 else f"{count} {MAPPING}\n"
        try:
            recorded = marker.read_text()
        except OSError:
            recorded = None
        if recorded == layout:
            return False
        removed = False
        if recorded is not None or count != 1:  # a home from before shards holds 1-shard files
            for name in ENGINE_OUTPUTS:
                if (engine_dir / name).exists():
                    shutil.rmtree(engine_dir / name)
                    removed = True
        write_bytes_atomic(layout.encode(), marker)
        return removed

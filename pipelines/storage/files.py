"""Writing files so that readers see a whole file or the previous one, never a part.

Every file Tally writes on a local disk goes through `atomic`: the content goes to `<name>.tmp`
beside the target (never matched by the `*.parquet` globs readers use), is fsync'd, then renamed
over the target. If writing fails, the temporary file is removed, and a full disk becomes a
`WriteError`: one line naming the directory, what the caller can say about what was kept.
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.core import faults

ENGINE_KEPT = "nothing was published (the warehouse is as the last finished run left it)"


class WriteError(RuntimeError):
    """A file could not be written (its temporary file is gone; the previous file, if any, is
    untouched)."""


def no_space(exc: BaseException) -> bool:
    """Is `exc` a full disk (an OSError, or DuckDB's IOException, which carries only text)?"""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return "No space left on device" in str(exc) or "Disk quota exceeded" in str(exc)


def write_failure(exc: BaseException, where: str | Path, kept: str) -> str:
    """One line for a failed write under `where`; `kept` says what the failure left as it was."""
    if no_space(exc):
        return f"no space left on the device of {where}: {kept}; free space and retry"
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return f"could not write to {where} ({reason}): {kept}; retry"


def temp_path(path: Path) -> Path:
    """Where `atomic` writes `path` first (its directory is created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(path.name + ".tmp")


def publish_file(tmp: Path, path: Path, replace: bool = True) -> None:
    """fsync `tmp` and rename it to `path`: readers see the whole file or the previous one. With
    `replace=False` an existing `path` stays and FileExistsError is raised (written once)."""
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    if replace:
        os.replace(tmp, path)
    else:
        os.link(tmp, path)
        tmp.unlink()


@contextmanager
def atomic(
    path: Path, kept: str = "the previous file is unchanged", replace: bool = True
) -> Iterator[Path]:
    """Yield the temporary path to write `path` to; when the block ends, publish it
    (`publish_file`; the caller fsyncs the directory when the rename itself must survive a
    crash). If the block or the publish fails, the temporary file is removed, and a full disk
    (an OSError, or DuckDB's error) becomes a one-line `WriteError`. Fault point `write`: the
    temporary file is complete, not yet renamed."""
    tmp = temp_path(path)
    try:
        yield tmp
        faults.point("write")
        publish_file(tmp, path, replace)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if no_space(exc):
            raise WriteError(write_failure(exc, path.parent, kept)) from exc
        raise


def write_bytes_atomic(data: bytes, path: Path, replace: bool = True) -> None:
    with atomic(path, replace=replace) as tmp:
        tmp.write_bytes(data)


def fsync_dir(path: Path) -> None:
    """Make the renames and new entries in directory `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_digest(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


# Parquet settings: dictionaries for the repetitive columns, statistics where readers prune.
_LOW_CARDINALITY = {
    "event_name",
    "customer_id",
    "external_customer_id",
    "product_id",
    "external_product_id",
    "source",
    "status",
    "currency",
    "recipient_type",
    "recipient_id",
    "rule_id",
    "user_id",
    "type",
    "grant_id",
    "date",
    "reason",
}
_STATISTICS = {"seq", "timestamp", "received_at", "date", "occurred_at", "shard_key"}


ROW_GROUP_ROWS = 256 * 1024


def write_parquet_atomic(
    table: pa.Table,
    path: Path,
    kept: str = "the previous file is unchanged",
    row_group_size: int = ROW_GROUP_ROWS,
) -> pq.FileMetaData:
    """Write `table` to `path` through `atomic`. Returns the file's footer."""
    with atomic(path, kept) as tmp, open(tmp, "wb") as fh:
        metadata = write_parquet(table, fh, row_group_size)
    return metadata


def write_parquet(table: pa.Table, sink, row_group_size: int = ROW_GROUP_ROWS) -> pq.FileMetaData:
    """Tally's Parquet settings: zstd, dictionaries and statistics where readers use them."""
    with pq.ParquetWriter(
        sink,
        table.schema,
        compression="zstd",
        compression_level=1,
        use_dictionary=[c for c in table.column_names if c in _LOW_CARDINALITY],
        write_statistics=[c for c in table.column_names if c in _STATISTICS],
    ) as writer:
        writer.write_table(table, row_group_size=row_group_size)
    return writer.writer.metadata

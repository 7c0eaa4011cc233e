"""Small helpers over pyiceberg: file locations, snapshot expiry, fsync of a local commit."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from pipelines.storage.files import fsync_dir

if TYPE_CHECKING:
    from pyiceberg.table import Table


def expire_snapshots(table: Table, keep: int, older_than: dt.datetime | None = None) -> int:
    """Expire a table's snapshots beyond the newest `keep` (and, if given, only those older than
    `older_than`); the current snapshot always stays. Returns how many were expired."""
    snapshots = sorted(table.metadata.snapshots, key=lambda s: s.timestamp_ms)
    doomed = snapshots[: max(len(snapshots) - keep, 0)]
    if older_than is not None:
        limit = older_than.timestamp() * 1000
        doomed = [s for s in doomed if s.timestamp_ms < limit]
    current = table.metadata.current_snapshot_id
    ids = [s.snapshot_id for s in doomed if s.snapshot_id != current]
    if ids:
        table.maintenance.expire_snapshots().by_ids(ids).commit()
    return len(ids)


def file_uri(path: str) -> str:
    """A catalog location for a path (local paths become file:// URIs)."""
    return "file://" + path if path.startswith("/") else path


def local_path(uri: str) -> str:
    """The path of a file:// location (other locations unchanged)."""
    return urlparse(uri).path if uri.startswith("file:") else uri


def fsync_commit(table: Table) -> None:
    """fsync what an Iceberg commit wrote on a local disk (metadata, manifest list, manifests)
    and their directories: the catalog (fsync'd by SQLite) must never point at a lost file."""
    snapshot = table.current_snapshot()
    paths = {local_path(table.metadata_location)}
    if snapshot is not None:
        paths.add(local_path(snapshot.manifest_list))
        paths.update(
            local_path(m.manifest_path)
            for m in snapshot.manifests(table.io)
            if m.added_snapshot_id == snapshot.snapshot_id
        )
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    for directory in {str(Path(p).parent) for p in paths}:
        fsync_dir(Path(directory))

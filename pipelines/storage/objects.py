"""The files of a table store, local paths or `s3://` URLs alike: written durably, read, placed,
checked and deleted. Local files are written beside their target and renamed (fsync'd); on S3 a
file is one PUT, so it is whole or absent."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.storage.files import (
    ROW_GROUP_ROWS,
    file_digest,
    fsync_dir,
    publish_file,
    temp_path,
    write_parquet,
    write_parquet_atomic,
)
from pipelines.storage.iceberg import local_path

if TYPE_CHECKING:
    from pyiceberg.io import FileIO


class Objects:
    """Files on one store; `io` gives pyiceberg's FileIO for the object store (asked lazily)."""

    def __init__(self, local: bool, io: Callable[[], FileIO]):
        self.local = local
        self._io = io

    def write_parquet(
        self, path: str, table: pa.Table, row_group_size: int = ROW_GROUP_ROWS
    ) -> tuple[pq.FileMetaData, tuple]:
        """Write `table` at `path`; its footer and `(path, size, mtime_ns, sha256)` to record.
        A local file's new directories are fsync'd by `sync_dirs` once per landing."""
        if self.local:
            local = Path(path)
            metadata = write_parquet_atomic(table, local, row_group_size=row_group_size)
            stat = local.stat()
            return metadata, (path, stat.st_size, stat.st_mtime_ns, file_digest(local))
        sink = pa.BufferOutputStream()
        metadata = write_parquet(table, sink, row_group_size)
        body = sink.getvalue()
        with self._io().new_output(path).create(overwrite=True) as out:
            out.write(body)
        return metadata, (path, body.size, 0, hashlib.sha256(memoryview(body)).hexdigest())

    @staticmethod
    def sync_dirs(paths: list[str], new: set[Path]) -> None:
        """fsync the directories of local files just written (deepest first): their parents,
        and for a directory that did not exist before (`new`), its two parents too."""
        dirs: set[Path] = set()
        for path in paths:
            parent = Path(path).parent
            dirs.add(parent)
            if parent in new:
                dirs.update({parent.parent, parent.parent.parent})
        for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
            fsync_dir(d)

    def read(self, path: str) -> pa.Table:
        """One Parquet file's rows."""
        if self.local:
            return pq.read_table(path)
        with self._io().new_input(path).open() as stream:
            return pq.read_table(stream)

    def place(self, source: Path, target: str) -> None:
        """Put an immutable local file at `target` durably: a hard link (or a copy where the
        link cannot be made) on a local store, one upload on S3."""
        if self.local:
            path = Path(local_path(target))
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                try:
                    os.link(source, path)
                except OSError:  # another filesystem
                    tmp = temp_path(path)
                    shutil.copyfile(source, tmp)
                    publish_file(tmp, path)
            fsync_dir(path.parent)
        else:
            with self._io().new_output(target).create(overwrite=True) as out:
                out.write(source.read_bytes())

    def stat_of(self, path: str) -> tuple[int, int | None] | None:
        """(size, modification time in ns; None on S3) of a file, None if it is missing."""
        if not path.startswith("s3://"):
            try:
                st = os.stat(path)
            except FileNotFoundError:
                return None
            return st.st_size, st.st_mtime_ns
        try:
            return len(self._io().new_input(path)), None
        except FileNotFoundError:
            return None

    def digest_of(self, path: str) -> str:
        """SHA-256 of a file's bytes, hex."""
        if not path.startswith("s3://"):
            return file_digest(Path(path))
        with self._io().new_input(path).open() as stream:
            return hashlib.file_digest(stream, "sha256").hexdigest()

    def delete(self, path: str) -> None:
        """Remove a file (and a local file's leftover temporary) if it exists."""
        if self.local:
            Path(path).unlink(missing_ok=True)
            Path(path + ".tmp").unlink(missing_ok=True)
        else:
            self._io().delete(path)

"""The signal lake: landed signals and rejects as Apache Iceberg tables, and how they land.

Two tables in the catalog of `pipelines.storage.catalog` (embedded SQLite + a local directory by
default, PostgreSQL + S3 when shared), both partitioned by UTC day:

    <namespace>.signals   accepted signals (duplicates included, flagged), day of `timestamp`
    <namespace>.rejects   rejected signals, as received, with reasons, day of `received_at`

Beside them, the index (`pipelines.landing.index`) holds every idempotency key, the counters and the
landing intents. Landing one batch, under the index's writer lock (shared by every process, and
by every host when shared):
1. record an *intent* naming the files about to be written;
2. write each file (locally `*.tmp`, fsync, rename, fsync the directory; on S3 one PUT);
3. commit the index: the new idempotency keys, the counters, intent -> "committing";
4. commit the files to the Iceberg tables (one append per table, tagged `tally.batch`; on a
   local warehouse the new metadata files are fsync'd);
5. clear the intent. A signal is acknowledged only after this.
A crash before 3 leaves files no table lists: the next writer deletes them, so the client's retry
lands the batch cleanly. A crash after 3 is rolled forward by the next writer (the files are
durable and the keys already indexed): the retry then finds every signal a duplicate of a first
copy that is in the table. Readers list files from the table's current snapshot (`Lake.files`),
so they never see a file that is not complete.

Small batches are merged by size tier (`compact`), one Iceberg replace commit each, so after each
compaction a day holds a bounded number of files (at most `3 * tiers`, about 30) however many tiny
batches arrived (`tally serve` compacts at a pause in its stream, or at least every 30 s).
Replaced files are deleted after a grace period so that a reader holding an older listing can
finish; `Lake.maintain` expires old snapshots (docs/storage.md).
"""

from __future__ import annotations

import datetime as dt
import glob
import logging
import os
import shutil
import sqlite3
import struct
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.core import faults
from pipelines.landing.dedup import flag_duplicates, idem_key
from pipelines.landing.errors import LEGACY_CATALOG, IntegrityError, LandingError, LegacyLakeError
from pipelines.landing.index import COMMITTING, open_index
from pipelines.landing.schema import (
    INCOMING_COLUMNS,
    REJECT_SCHEMA,
    REJECTS,
    SIGNAL_SCHEMA,
    SIGNALS,
    LakeFile,
    LandResult,
    kind_of,
    shard_keys,
    signal_ids,
)
from pipelines.storage.catalog import forget, storage
from pipelines.storage.catalog import table as catalog_table
from pipelines.storage.files import (
    ROW_GROUP_ROWS,
    WriteError,
    write_failure,
)
from pipelines.storage.iceberg import expire_snapshots, file_uri, fsync_commit, local_path
from pipelines.storage.integrity import verify_files
from pipelines.storage.objects import Objects

if TYPE_CHECKING:
    from pyiceberg.table import Table

COMPACT_FANIN = 4  # merge a size tier once it holds this many files
GC_GRACE_SECONDS = float(os.environ.get("TALLY_GC_GRACE_SECONDS", "600"))


def _sources(table: pa.Table, source: str) -> pa.Array:
    """Each row's source: the table's own `source` column, else `source` for every row."""
    if "source" in table.column_names:
        return table["source"].cast(pa.string())
    return pa.repeat(pa.scalar(source, pa.string()), table.num_rows)


SNAPSHOT_RETENTION_ENV = "TALLY_SNAPSHOT_RETENTION_HOURS"


def snapshot_retention() -> dt.timedelta:
    """How long lake snapshots are kept for time travel (default 7 days; docs/storage.md)."""
    raw = os.environ.get(SNAPSHOT_RETENTION_ENV) or "168"
    try:
        hours = float(raw)
    except ValueError:
        raise ValueError(
            f"{SNAPSHOT_RETENTION_ENV} must be a number of hours, not {raw!r}"
        ) from None
    if hours < 0:
        raise ValueError(f"{SNAPSHOT_RETENTION_ENV} must not be negative ({raw})")
    return dt.timedelta(hours=hours)


SNAPSHOTS_KEPT = 20  # landing expires the oldest snapshots beyond this (bounds the metadata)
_BATCH_PROPERTY = "tally.batch"
_LONG = struct.Struct("<q")


def _day(days_since_epoch: int) -> str:
    return (dt.date(1970, 1, 1) + dt.timedelta(days=days_since_epoch)).isoformat()


class Lake:
    """The landed signals of one home: write with `land`, read with `files`/`partitions`."""

    def __init__(self, root: Path, legacy_ok: bool = False):
        self.root = Path(root)
        if not legacy_ok and (self.root / LEGACY_CATALOG / "data.mdb").exists():
            raise LegacyLakeError(
                f"the lake at {self.root} has the earlier format (an LMDB catalog): "
                "run `tally migrate` to move it into the Iceberg tables"
            )
        self.storage = storage(self.root)
        self.index = open_index(self.storage, self.root)
        self._tables: dict[str, Table] = {}
        self._listings: dict[str, tuple[int | None, list[LakeFile]]] = {}
        self._untidy: set[str] = set()  # partitions landed into since the last compaction
        self._pending: dict[str, object] = {}  # acknowledged, not yet published: path -> DataFile
        self.objects = Objects(self.storage.local, lambda: self.table(SIGNALS, refresh=False).io)
        if self.storage.embedded:
            self._follow_move()

    def close(self) -> None:
        """Release the index and the catalog connections (tests that open many lakes)."""
        self.index.close()
        forget(self.storage)

    def data_glob(self, kind: str) -> str:
        """Every data file of a table, as a glob (a local path or an s3:// URL): what the
        warehouse views read, so that analysts need no Iceberg reader."""
        base = self.table(kind, refresh=False).location().rstrip("/")
        glob = f"{base}/data/date=*/*.parquet"
        return local_path(glob)

    def version(self) -> tuple[str, ...]:
        """Changes whenever anything lands: the tables' current metadata files."""
        self._publish_if_pending()
        return tuple(self.table(kind).metadata_location for kind in (SIGNALS, REJECTS))

    # ---------------------------------------------------------------------------- tables
    def table(self, kind: str, refresh: bool = True) -> Table:
        """The Iceberg table of `kind` (`signals` or `rejects`), as of its latest commit."""
        found = self._tables.get(kind)
        if found is None:  # two threads may both load it: the same table, either is fine
            schema, by = (
                (SIGNAL_SCHEMA, "timestamp") if kind == SIGNALS else (REJECT_SCHEMA, "received_at")
            )
            found = self._tables[kind] = catalog_table(self.storage, kind, schema, by)
        elif refresh:
            found.refresh()
        return found

    def location(self, kind: str, date: str, batch: int) -> str:
        """Where a landing's file of one day goes: a local path or an s3:// URL."""
        base = self.table(kind, refresh=False).location().rstrip("/")
        uri = f"{base}/data/date={date}/part-{batch:012d}.parquet"
        return local_path(uri)

    def _follow_move(self) -> None:
        """An embedded lake that was copied or moved (Iceberg metadata holds absolute paths):
        register the files beside this catalog again, so the copy reads its own files."""
        from pyiceberg.io.pyarrow import parquet_file_to_data_file

        db = self.root / "catalog.db"
        if not db.exists():
            return
        mine = "file://" + str(self.root / "warehouse") + "/"
        with closing(sqlite3.connect(db)) as con:
            found = [r[0] for r in con.execute("SELECT metadata_location FROM iceberg_tables")]
        moved = [loc for loc in found if loc and not loc.startswith(mine)]
        if not moved:
            return
        old = local_path(moved[0].rsplit(f"/{self.storage.namespace}/", 1)[0]) + "/"
        new = local_path(mine)
        with self.index.writer():
            self.index.relocate(old, new)
            writing = {
                p for _, state, r in self.index.intents() if state != COMMITTING for p in r["files"]
            }
            dead = writing | {path for path, _ in self.index.graves()}
            forget(self.storage)
            db.unlink()
            self._tables.clear()
            self._listings.clear()
            for kind in (SIGNALS, REJECTS):
                shutil.rmtree(
                    Path(new) / self.storage.namespace / kind / "metadata", ignore_errors=True
                )
                table = self.table(kind)
                live = sorted(set(glob.glob(self.data_glob(kind))) - dead)
                if live:
                    files = [
                        parquet_file_to_data_file(table.io, table.metadata, file_uri(p))
                        for p in live
                    ]
                    self._commit(kind, files, 0)

    # ----------------------------------------------------------------- writer lock and recovery
    @contextmanager
    def _writer(self, publish_own: bool = False) -> Iterator[None]:
        """Exclusive across threads, processes (and hosts when shared); recovers first (this
        process's own acknowledged batches only with `publish_own`)."""
        with self.index.writer():
            self._recover(publish_own)
            yield

    def _recover(self, publish_own: bool = True) -> None:
        """Publish acknowledged batches and undo what a crashed writer left (module docstring):
        the files of "committing" intents go into the tables, one commit per table for all of
        them; the files of any other intent are deleted."""
        from pyiceberg.io.pyarrow import parquet_file_to_data_file

        intents = [
            (batch, state, record)
            for batch, state, record in self.index.intents()
            if publish_own or not all(p in self._pending for p in record["files"])
        ]
        if not intents:
            if publish_own:
                self._pending.clear()
            return
        kinds = {kind_of(p) for _, _, r in intents for p in r["files"] + r.get("replaces", [])}
        live = {lf.path for kind in sorted(kinds) for lf in self._listing(kind)}
        publish: dict[str, list] = {SIGNALS: [], REJECTS: []}
        for _, state, record in intents:
            for path in record["files"]:
                if path in live:
                    continue
                if state == COMMITTING:
                    publish[kind_of(path)].append(self._pending.pop(path, None) or path)
                else:
                    self._delete(path)
        for kind, files in publish.items():
            if files:
                table = self.table(kind)
                data_files = [
                    parquet_file_to_data_file(table.io, table.metadata, file_uri(f))
                    if isinstance(f, str)
                    else f
                    for f in files
                ]
                self._commit(kind, data_files, max(b for b, _, _ in intents))
        for batch, _, record in intents:
            gone = [p for p in record.get("replaces", []) if p not in live]
            self.index.finish(batch, bury=gone, at_ns=time.time_ns())
        self._untidy.update(
            p.rsplit("/date=", 1)[1][:10] for _, _, r in intents for p in r["files"]
        )
        if publish_own:  # ours are published now (or were, by another process)
            self._pending.clear()

    def _publish_if_pending(self) -> None:
        """Readers see every acknowledged batch: publish those a writer left committing."""
        if any(state == COMMITTING for _, state, _ in self.index.intents()):
            with self._writer(publish_own=True):
                pass

    def settle(self, compact: bool = True) -> None:
        """Publish what `land(..., publish=False)` acknowledged, then tidy (compaction only with
        `compact`; snapshot expiry and garbage collection always)."""
        with self._writer(publish_own=True):
            self._tidy(compact)

    # ----------------------------------------------------------------------------- landing
    def land(
        self,
        incoming: pa.Table,
        rejects: pa.Table | None = None,
        source: str = "",
        tidy: bool = True,
        publish: bool = True,
    ) -> LandResult:
        """Land validated signals (`INCOMING_COLUMNS`) and rejects (`location, reason, raw`).

        `source` names where they came from; a `source` column of `incoming` or `rejects` names
        it row by row instead (a batch that spans several files).

        Assigns `seq`, `signal_id` and `received_at`, defaults `timestamp` to `received_at`, and
        flags every signal whose idempotency key was seen before (in history or earlier in this
        batch) as a duplicate of the first copy. Returns only after everything is durable.
        `tidy=False` leaves compaction to a later `tidy()` (after the caller acknowledged).
        `publish=False` acknowledges once the files and the index are durable (steps 1-3 of the
        module docstring) and leaves the table commit to `settle()`, or to any reader or writer,
        which publishes it before it reads or lands: what the HTTP API does, so that many
        requests share one table commit.
        """
        n_rejects = 0 if rejects is None else rejects.num_rows
        if incoming.num_rows == 0 and n_rejects == 0:
            return LandResult(0, 0, 0, None)
        with self._writer():
            seq0, batch, last_received = self.index.counters()
            received_us = max(time.time_ns() // 1000, last_received + 1)
            table = self._stamp(incoming, seq0, received_us, source)
            table, new_keys = flag_duplicates(self.index, table)
            plans = self._plan_files(table, rejects, batch, received_us, source)
            self.index.intend(batch, [path for path, _, _, _ in plans])
            try:
                written = self._write_files(plans)
            except (OSError, WriteError) as exc:  # e.g. disk full: undo now, leave nothing
                for path, _, _, _ in plans:
                    self._delete(path)
                self.index.finish(batch)
                where = str(self.root) if self.storage.local else self.storage.warehouse_uri
                cause = exc.__cause__ if isinstance(exc, WriteError) else exc
                raise LandingError(write_failure(cause, where, "nothing was landed")) from exc
            faults.point("land.files-written")
            self.index.commit(batch, new_keys, seq0 + table.num_rows, received_us)
            faults.point("land.indexed")
            if publish:
                for kind in (SIGNALS, REJECTS):
                    files = [df for k, df in written if k == kind]
                    if files:
                        self._commit(kind, files, batch)
                faults.point("land.committed")
                self.index.finish(batch)
            else:
                self._pending.update((p[0], df) for p, (_, df) in zip(plans, written, strict=True))
            self._untidy.update(p[2] for p in plans if p[1] == SIGNALS)
            if tidy:
                self._tidy()
        flags = table["is_duplicate"].to_numpy(zero_copy_only=False).astype(bool)
        duplicates = int(flags.sum())
        return LandResult(
            ingested=table.num_rows - duplicates,
            duplicates=duplicates,
            failed=n_rejects,
            batch=batch,
            duplicate_flags=flags,
        )

    def tidy(self) -> None:
        """Compact what `land(..., tidy=False)` left (a no-op when nothing is pending)."""
        if self._untidy or self._pending:
            with self._writer(publish_own=True):
                self._tidy()

    def _tidy(self, compact: bool = True) -> None:
        """Compaction (with `compact`), garbage collection and snapshot expiry after a commit. The
        batch is already durable, so a failure here must not fail the landing (a caller would
        retry what was acknowledged): it is logged, and the next landing compacts again."""
        try:
            for date in sorted(self._untidy) if compact else ():
                self._compact(SIGNALS, date)
                self._untidy.discard(date)
            self.collect_garbage()
            for kind in (SIGNALS, REJECTS):
                table = self.table(kind, refresh=False)
                if len(table.metadata.snapshots) > SNAPSHOTS_KEPT * 2:
                    expire_snapshots(table, keep=SNAPSHOTS_KEPT)
        except Exception:  # noqa: BLE001 - see docstring
            logging.getLogger(__name__).exception("lake compaction failed; will retry later")

    def _stamp(self, incoming: pa.Table, seq0: int, received_us: int, source: str) -> pa.Table:
        n = incoming.num_rows
        seqs = pa.array(np.arange(seq0, seq0 + n, dtype=np.int64))
        received = pa.array(np.full(n, received_us, dtype=np.int64)).cast(
            pa.timestamp("us", tz="UTC")
        )
        ts = incoming["timestamp"].cast(pa.timestamp("us", tz="UTC"))
        columns = {
            "seq": seqs,
            "signal_id": signal_ids(seqs),
            "received_at": received,
            "timestamp": pc.coalesce(ts, received),
        }
        for name in INCOMING_COLUMNS[1:]:
            columns[name] = incoming[name].cast(pa.string())
        columns["is_duplicate"] = pa.nulls(n, pa.bool_())
        columns["duplicate_of"] = pa.nulls(n, pa.string())
        columns["source"] = _sources(incoming, source)
        columns["shard_key"] = _shard_keys_of(columns)
        return pa.table(columns, schema=SIGNAL_SCHEMA)

    def _plan_files(
        self, table: pa.Table, rejects: pa.Table | None, batch: int, received_us: int, source: str
    ) -> list[tuple[str, str, str, pa.Table]]:
        """(path, kind, date, rows) of each file a landing writes."""
        plans: list[tuple[str, str, str, pa.Table]] = []
        if table.num_rows:
            dates = pc.cast(table["timestamp"], pa.date32())
            days = sorted(pc.unique(dates).to_pylist())
            for day in days:
                part = table if len(days) == 1 else table.filter(pc.equal(dates, day))
                date = day.isoformat()
                plans.append((self.location(SIGNALS, date, batch), SIGNALS, date, by_shard(part)))
        if rejects is not None and rejects.num_rows:
            received = pa.array([received_us] * rejects.num_rows, pa.int64())
            full = pa.table(
                {
                    "received_at": received.cast(pa.timestamp("us", tz="UTC")),
                    "source": _sources(rejects, source),
                    "location": rejects["location"].cast(pa.string()),
                    "reason": rejects["reason"].cast(pa.string()),
                    "raw": rejects["raw"].cast(pa.string()),
                },
                schema=REJECT_SCHEMA,
            )
            date = time.strftime("%Y-%m-%d", time.gmtime(received_us / 1e6))
            plans.append((self.location(REJECTS, date, batch), REJECTS, date, full))
        return plans

    def _write_files(self, plans: list[tuple[str, str, str, pa.Table]]) -> list[tuple[str, object]]:
        """Write each planned file durably; (kind, Iceberg DataFile) of each."""
        written, sums = [], []
        local = self.storage.local  # local files: their directories are fsync'd once, at the end
        new_dirs = {Path(p).parent for p, *_ in plans if local and not Path(p).parent.exists()}
        for path, kind, _, table in plans:
            faults.point("land.write")
            rows = SHARD_ROW_GROUP_ROWS if kind == SIGNALS else ROW_GROUP_ROWS
            metadata, recorded = self.objects.write_parquet(path, table, rows)
            sums.append(recorded)
            written.append((kind, self._data_file(kind, path, metadata, recorded[1])))
        if local:
            self.objects.sync_dirs([path for path, *_ in plans], new_dirs)
        self.index.record_sums(sums)
        return written

    def _data_file(self, kind: str, path: str, metadata: pq.FileMetaData, size: int):
        """The Iceberg entry of a file just written (from its footer, without reading it back)."""
        from pyiceberg.io.pyarrow import (
            compute_statistics_plan,
            data_file_statistics_from_parquet_metadata,
            parquet_path_to_id_mapping,
        )
        from pyiceberg.manifest import DataFile, DataFileContent, FileFormat

        meta = self.table(kind, refresh=False).metadata
        schema = meta.schema()
        stats = data_file_statistics_from_parquet_metadata(
            parquet_metadata=metadata,
            stats_columns=compute_statistics_plan(schema, meta.properties),
            parquet_column_mapping=parquet_path_to_id_mapping(schema),
        )
        return DataFile.from_args(
            content=DataFileContent.DATA,
            file_path=file_uri(path),
            file_format=FileFormat.PARQUET,
            partition=stats.partition(meta.spec(), schema),
            file_size_in_bytes=size,
            sort_order_id=None,
            spec_id=meta.default_spec_id,
            equality_ids=None,
            key_metadata=None,
            **stats.to_serialized_dict(),
        )

    def _commit(self, kind: str, added: list, batch: int, removed: list = ()) -> None:
        """One Iceberg commit: append `added` (and drop `removed`, a compaction's replace)."""
        table = self.table(kind)
        props = {_BATCH_PROPERTY: str(batch)}
        with table.transaction() as tx:
            snapshot = tx.update_snapshot(snapshot_properties=props)
            producer = snapshot.overwrite() if removed else snapshot.merge_append()
            with producer as change:
                for data_file in added:
                    change.append_data_file(data_file)
                for data_file in removed:
                    change.delete_data_file(data_file)
        if self.storage.local:
            fsync_commit(table)

    # --------------------------------------------------------------------------- compaction
    def _compact(self, kind: str, date: str) -> None:
        """Merge files of one partition by size tier so the file count stays bounded."""
        while True:
            tiers: dict[int, list[LakeFile]] = {}
            for lf in (f for f in self._listing(kind) if f.date == date):
                tiers.setdefault(max(lf.rows, 1).bit_length() // 2, []).append(lf)
            group = next((g for _, g in sorted(tiers.items()) if len(g) >= COMPACT_FANIN), None)
            if group is None:
                return
            _, batch, _ = self.index.counters()
            merged = by_shard(pa.concat_tables(self._read_current(lf) for lf in group))
            path = self.location(kind, date, batch)
            replaced = [lf.path for lf in group]
            self.index.intend(batch, [path], replaces=replaced)
            ((_, new),) = self._write_files([(path, kind, date, merged)])
            # stamped before the commit: a kept snapshot taken at or after it no longer lists them
            replaced_at = time.time_ns()
            self._commit(kind, [new], batch, removed=[lf.data_file for lf in group])
            self.index.finish(batch, bury=replaced, at_ns=replaced_at)

    def collect_garbage(self) -> None:
        """Delete replaced files once the grace period has passed and no kept snapshot lists
        them (a snapshot older than the replacement may still be read)."""
        cutoff = time.time_ns() - int(GC_GRACE_SECONDS * 1e9)
        oldest = min(
            (
                s.timestamp_ms
                for kind in (SIGNALS, REJECTS)
                for s in self.table(kind, refresh=False).metadata.snapshots
            ),
            default=None,
        )
        if oldest is not None:
            cutoff = min(cutoff, oldest * 1_000_000)
        expired = [path for path, at_ns in self.index.graves() if at_ns <= cutoff]
        for path in expired:
            self._delete(path)
        if expired:
            self.index.unbury(expired)

    def _delete(self, path: str) -> None:
        self.index.forget_sums([path])
        self.objects.delete(path)

    def maintain(self, retention: dt.timedelta, keep: int = 10) -> dict[str, int]:
        """Expire snapshots older than `retention` (always keeping the newest `keep`), then
        delete replaced files no kept snapshot lists. Returns the count expired per table."""
        expired = {}
        with self._writer(publish_own=True):
            now = dt.datetime.now(dt.UTC)
            for kind in (SIGNALS, REJECTS):
                expired[kind] = expire_snapshots(self.table(kind), keep, older_than=now - retention)
            self.collect_garbage()
        return expired

    # ------------------------------------------------------------------------------ reading
    def _listing(self, kind: str) -> list[LakeFile]:
        """Every live file of the table's current snapshot (cached per snapshot)."""
        table = self.table(kind)
        snapshot = table.current_snapshot()
        sid = snapshot.snapshot_id if snapshot else None
        cached = self._listings.get(kind)
        if cached is not None and cached[0] == sid:
            return cached[1]
        files = []
        ids = {f.name: f.field_id for f in table.schema().fields}
        seq_id, key_id = (ids["seq"], ids.get("shard_key")) if kind == SIGNALS else (None, None)
        if snapshot is not None:
            for manifest in snapshot.manifests(table.io):
                for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
                    data_file = entry.data_file
                    path = local_path(data_file.file_path)
                    low = data_file.lower_bounds or {}
                    high = data_file.upper_bounds or {}
                    files.append(
                        LakeFile(
                            path=path,
                            kind=kind,
                            date=_day(data_file.partition[0]),
                            rows=data_file.record_count,
                            min_seq=_LONG.unpack(low[seq_id])[0] if seq_id in low else 0,
                            max_seq=_LONG.unpack(high[seq_id])[0] if seq_id in high else 0,
                            batch=int(path.rsplit("part-", 1)[1].split(".")[0]),
                            keyed=kind == SIGNALS and key_id in low,
                            data_file=data_file,
                        )
                    )
        files.sort(key=lambda lf: (lf.min_seq, lf.batch))
        self._listings[kind] = (sid, files)
        return files

    def files(self, date: str | None = None, kind: str = SIGNALS) -> list[LakeFile]:
        """The live files (a consistent snapshot), optionally of one partition, oldest first."""
        self._publish_if_pending()
        files = self._listing(kind)
        return files if date is None else [lf for lf in files if lf.date == date]

    def read(self, lf: LakeFile) -> pa.Table:
        """One file's rows (local or on the object store)."""
        return self.objects.read(lf.path)

    def _read_current(self, lf: LakeFile) -> pa.Table:
        """One file's rows in the current schema (a signal file written before shard keys gets
        them)."""
        table = self.read(lf)
        if lf.kind == SIGNALS and "shard_key" not in table.column_names:
            table = table.append_column("shard_key", _shard_keys_of(table))
        return table.select(SIGNAL_SCHEMA.names if lf.kind == SIGNALS else REJECT_SCHEMA.names)

    def verify(self, files: list[LakeFile], deep: bool = False) -> list[str]:
        """One line per damaged file: missing, or not the size the catalog records, or (`deep`,
        or a local file modified since it was written) not the checksum recorded when it was."""
        return verify_files(
            self.index,
            [(lf.path, lf.data_file.file_size_in_bytes) for lf in files],
            self.objects,
            deep,
        )

    def check(self, files: list[LakeFile]) -> None:
        """`verify` (cheaply) what a run is about to read; raise on the first damaged file."""
        problems = self.verify(files)
        if problems:
            raise IntegrityError(
                f"damaged lake file {problems[0]}; nothing derived from it is published "
                "(restore the file from a backup, then tally run; tally verify checks everything)"
            )

    def partitions(self) -> dict[str, int]:
        """Signal partitions (`YYYY-MM-DD`) and their version: the last batch that changed them."""
        self._publish_if_pending()
        out: dict[str, int] = {}
        for lf in self._listing(SIGNALS):
            out[lf.date] = max(out.get(lf.date, 0), lf.batch)
        return out

    def first_copies(self, keys: list[str]) -> dict[str, int]:
        """For each idempotency key ever accepted: the landing sequence number of its first copy."""
        packed = [idem_key(k) for k in keys]
        found = self.index.history(sorted(set(packed)))
        return {k: found[p] for k, p in zip(keys, packed, strict=True) if p in found}

    def stats(self) -> dict[str, int]:
        next_seq, next_batch, _ = self.index.counters()
        return {
            "signals": next_seq - 1,
            "batches": next_batch - 1,
            "idempotency_keys": self.index.key_count(),
            "files": len(self._listing(SIGNALS)),
        }


# Signal files are sorted by shard key: row groups this small let a shard skip most of a day's
# file (4 shards of a 330,000-row day read 3 or 4 of its 11 row groups).
SHARD_ROW_GROUP_ROWS = 32 * 1024


def _shard_keys_of(signals) -> pa.Array:
    """The shard keys of signal rows (a table or a dict of columns): of each row's customer."""
    return shard_keys(pc.coalesce(signals["customer_id"], signals["external_customer_id"]))


def by_shard(signals: pa.Table) -> pa.Table:
    """Signal rows sorted by shard key, then landing sequence: a shard's rows sit together, so
    the row-group statistics of `shard_key` let a shard's steps skip the others' rows. A file of
    one row group (or one key) gains nothing from it and keeps its order."""
    if signals.num_rows <= SHARD_ROW_GROUP_ROWS:
        return signals
    bounds = pc.min_max(signals["shard_key"])
    if bounds["min"] == bounds["max"]:
        return signals
    order = pc.sort_indices(signals, [("shard_key", "ascending"), ("seq", "ascending")])
    return signals.take(order)


def release(root: Path) -> None:
    """Close what this process caches for the lake at `root` (tests that open many lakes)."""
    from pipelines.landing.index import close_env

    root = Path(root)
    forget(storage(root))
    close_env(root / "_index")

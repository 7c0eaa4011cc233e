"""The engine's outputs published as Iceberg tables, beside the lake's (docs/storage.md).

The billing run writes each day's outputs as Parquet under `<home>/engine/` (DuckDB `COPY`), where
the engine and the warehouse read them. Once a run's checks pass, `publish` makes the same files
the current snapshot of one Iceberg table per output, in the lake's catalog and warehouse, so any
Iceberg reader (Trino, Spark, pyiceberg) sees the checked numbers and nothing half-done:

    <namespace>.fact_signal       priced signals, by day of `timestamp`
    <namespace>.signal_rollup     per-day rollups, by `day`
    <namespace>.balance_snapshot  the ledger: one row per day, recipient and currency, by `date`
    <namespace>.grant_balance     each grant's state at the end of each day, by `date`
    <namespace>.credit_event      the ledger's grants, expiries and adjustments (one file per day)

Publishing costs what changed: a day whose files did not change since the last publish is left as
it is; the changed days of a table are replaced in one commit (hard links on a local warehouse, an
upload to S3 when shared). Output tables keep only their recent snapshots: they are derived data,
re-published by any run.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.core import faults
from pipelines.core.home import Home
from pipelines.landing.lake import Lake
from pipelines.storage.catalog import open_catalog
from pipelines.storage.files import file_digest
from pipelines.storage.iceberg import expire_snapshots, file_uri, local_path
from pipelines.storage.integrity import verify_files

# output -> (column, transform) of its partitioning (None: by file, one per day)
OUTPUTS: dict[str, tuple[str, str] | None] = {
    "fact_signal": ("timestamp", "day"),
    "signal_rollup": ("day", "identity"),
    "balance_snapshot": ("date", "identity"),
    "grant_balance": ("date", "identity"),
    "credit_event": None,
}
_BATCH_PROPERTY = "tally.published"


def _day_files(engine_dir: Path, name: str) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for part in sorted((engine_dir / name).glob("date=*")):
        files = sorted(part.glob("*.parquet"))
        if files:
            out[part.name.removeprefix("date=")] = files
    return out


def _published_name(path: Path) -> str:
    """A name that changes whenever the engine's file does (files under a table never change)."""
    st = path.stat()
    return f"{path.stem}-{st.st_mtime_ns}-{st.st_size}.parquet"


def _schema(files: list[Path]) -> pa.Schema:
    """The table schema of an output: its files' columns, all nullable."""
    schema = pq.read_schema(files[0])
    return pa.schema([pa.field(f.name, f.type, nullable=True) for f in schema])


def _table(lake: Lake, name: str, files: list[Path]):
    from pyiceberg.exceptions import NoSuchTableError, TableAlreadyExistsError
    from pyiceberg.transforms import DayTransform, IdentityTransform

    catalog = open_catalog(lake.storage)
    identifier = f"{lake.storage.namespace}.{name}"
    try:
        table = catalog.load_table(identifier)
    except NoSuchTableError:
        lake.table("signals", refresh=False)  # creates the namespace
        try:
            spec = OUTPUTS[name]
            metrics = {"write.metadata.metrics.default": "none"}  # what DuckDB writes varies
            if spec is not None:
                metrics[f"write.metadata.metrics.column.{spec[0]}"] = "full"
            table = catalog.create_table(identifier, schema=_schema(files), properties=metrics)
        except TableAlreadyExistsError:
            table = catalog.load_table(identifier)
        spec = OUTPUTS[name]
        if spec is not None:
            column, transform = spec
            with table.update_spec() as update:
                update.add_field(
                    column, DayTransform() if transform == "day" else IdentityTransform(), "date"
                )
        mapping = table.schema().name_mapping.model_dump_json()
        with table.transaction() as tx:
            tx.set_properties(**{"schema.name-mapping.default": mapping})
    new = _schema(files)
    if set(new.names) - set(table.schema().column_names):  # e.g. a hot key added
        with table.update_schema() as update:
            update.union_by_name(new)
        mapping = table.schema().name_mapping.model_dump_json()
        with table.transaction() as tx:
            tx.set_properties(**{"schema.name-mapping.default": mapping})
    return table


def _live(table) -> dict[str, dict[str, object]]:
    """Published files per day: {day: {file name: DataFile}}."""
    out: dict[str, dict[str, object]] = {}
    snapshot = table.current_snapshot()
    if snapshot is None:
        return out
    for manifest in snapshot.manifests(table.io):
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
            path = entry.data_file.file_path
            day = path.rsplit("/date=", 1)[1].split("/", 1)[0]
            out.setdefault(day, {})[path.rsplit("/", 1)[1]] = entry.data_file
    return out


@dataclass(frozen=True)
class Published:
    changed: dict[str, int]  # days replaced per table
    files: dict[str, list[str]]  # each table's files now (local paths or s3:// URLs)


def publish(home: Home, keep_seconds: float = 600) -> Published:
    """Make each output table's current snapshot the engine's current files."""
    from pyiceberg.io.pyarrow import parquet_file_to_data_file

    lake = Lake(home.lake)
    changed: dict[str, int] = {}
    files: dict[str, list[str]] = {}
    for name in OUTPUTS:
        local = _day_files(home.engine_dir, name)
        changed[name], files[name] = 0, []
        if not local:
            continue
        table = _table(lake, name, next(iter(local.values())))
        live = _live(table)
        base = table.location().rstrip("/") + "/data"
        added, removed, doomed, sums = [], [], [], []
        for day in sorted(set(local) | set(live)):
            want = {_published_name(p): p for p in local.get(day, [])}
            have = live.get(day, {})
            if set(want) == set(have):
                continue
            for file_name, source in want.items():
                target = f"{base}/date={day}/{file_name}"
                if file_name not in have:
                    lake.objects.place(source, target)
                    added.append(
                        parquet_file_to_data_file(table.io, table.metadata, file_uri(target))
                    )
                    st = source.stat()
                    key = local_path(target)
                    sums.append((key, st.st_size, st.st_mtime_ns, file_digest(source)))
            for file_name, data_file in have.items():
                if file_name not in want:
                    removed.append(data_file)
                    doomed.append(data_file.file_path)
        changed[name] = len({f.file_path.rsplit("/date=", 1)[1][:10] for f in added + removed})
        now = {p for day in live.values() for p in (f.file_path for f in day.values())}
        now = (now - {f.file_path for f in removed}) | {f.file_path for f in added}
        files[name] = sorted(local_path(p) for p in now)
        # stamped before the commit: a snapshot taken at or after it no longer lists them
        replaced_at = time.time_ns()
        if not added and not removed:
            continue
        lake.index.record_sums(sums)
        faults.point("publish.outputs")
        with table.transaction() as tx:
            props = {_BATCH_PROPERTY: dt.datetime.now(dt.UTC).isoformat()}
            with tx.update_snapshot(snapshot_properties=props).overwrite() as change:
                for data_file in added:
                    change.append_data_file(data_file)
                for data_file in removed:
                    change.delete_data_file(data_file)
        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=keep_seconds)
        expire_snapshots(table, keep=1, older_than=cutoff)
        lake.index.bury([local_path(p) for p in doomed], replaced_at)
    with lake.index.writer():
        lake.collect_garbage()
    return Published(changed, files)


def verify(home: Home, deep: bool = True) -> tuple[int, list[str]]:
    """(files checked, one line per damaged file) of every published output table."""
    lake = Lake(home.lake)
    catalog = open_catalog(lake.storage)
    files: list[tuple[str, int]] = []
    for name in OUTPUTS:
        try:
            table = catalog.load_table(f"{lake.storage.namespace}.{name}")
        except Exception:  # noqa: BLE001 - not published yet
            continue
        for day in _live(table).values():
            for data_file in day.values():
                path = data_file.file_path
                files.append((local_path(path), data_file.file_size_in_bytes))
    return len(files), verify_files(lake.index, files, lake.objects, deep)

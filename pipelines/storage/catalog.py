"""Where the lake's tables live: an Apache Iceberg catalog, embedded or shared.

One code path, two deployments, chosen by the environment (docs/storage.md):

- **embedded** (default): a SQLite catalog at `<home>/lake/catalog.db` and the table files under
  `<home>/lake/warehouse/`. Nothing to start.
- **shared**: `TALLY_CATALOG_URI=postgresql+psycopg2://user:pw@host/db` and
  `TALLY_WAREHOUSE_URI=s3://bucket/prefix` (credentials and endpoint from the usual `AWS_*`
  variables, `AWS_ENDPOINT_URL` for an S3-compatible server). Several ingest processes and hosts
  land into one lake; the idempotency index moves to the same PostgreSQL database.

`TALLY_CATALOG_NAMESPACE` (default `tally`) names the Iceberg namespace, so one catalog can hold
several lakes. Any engine with an Iceberg reader sees `<namespace>.signals` and
`<namespace>.rejects` (docs/storage.md shows Trino, Spark, DuckDB and Polars).
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

if TYPE_CHECKING:
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.table import Table

CATALOG_ENV = "TALLY_CATALOG_URI"
WAREHOUSE_ENV = "TALLY_WAREHOUSE_URI"
NAMESPACE_ENV = "TALLY_CATALOG_NAMESPACE"
CATALOG_NAME = "tally"  # the catalog_name column of the SQL catalog (other engines name it)

# Table properties: appends merge small manifests (a lake of many small HTTP batches keeps a
# bounded manifest count), and old metadata files are removed after each commit.
TABLE_PROPERTIES = {
    "format-version": "2",
    "commit.manifest-merge.enabled": "true",
    "commit.manifest.min-count-to-merge": "16",
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "20",
    "write.parquet.compression-codec": "zstd",
    # column bounds for what readers prune by (Tally writes statistics for these alone)
    "write.metadata.metrics.default": "none",
    "write.metadata.metrics.column.seq": "full",
    "write.metadata.metrics.column.timestamp": "full",
    "write.metadata.metrics.column.received_at": "full",
    "write.metadata.metrics.column.shard_key": "full",
}


@dataclass(frozen=True)
class Storage:
    """The catalog and warehouse a lake uses (see the module docstring)."""

    catalog_uri: str
    warehouse_uri: str
    namespace: str

    @property
    def shared(self) -> bool:
        return not self.catalog_uri.startswith("sqlite")

    @property
    def embedded(self) -> bool:
        """The default: catalog and files inside the lake directory (moves with the home)."""
        return not os.environ.get(CATALOG_ENV) and not os.environ.get(WAREHOUSE_ENV)

    @property
    def local(self) -> bool:
        """True when the table files are on a local disk (fsync applies)."""
        return self.warehouse_uri.startswith("file://")

    @property
    def pg_dsn(self) -> str:
        """The catalog database as a libpq URL (for the shared idempotency index)."""
        return re.sub(r"^postgresql\+\w+://", "postgresql://", self.catalog_uri)


def storage(lake_root: Path) -> Storage:
    """The storage of the lake at `lake_root` (its directory holds the embedded catalog)."""
    catalog = os.environ.get(CATALOG_ENV) or f"sqlite:///{lake_root / 'catalog.db'}"
    warehouse = os.environ.get(WAREHOUSE_ENV) or (lake_root / "warehouse").as_uri()
    if catalog.startswith("postgresql://"):
        catalog = "postgresql+psycopg2://" + catalog.removeprefix("postgresql://")
    if not (catalog.startswith("sqlite:///") or catalog.startswith("postgresql+")):
        raise ValueError(
            f"{CATALOG_ENV} must be a sqlite:/// or postgresql:// URL, not {_redact(catalog)}"
        )
    if urlparse(warehouse).scheme not in ("file", "s3"):
        raise ValueError(f"{WAREHOUSE_ENV} must be a file:// or s3:// URL, not {warehouse}")
    namespace = os.environ.get(NAMESPACE_ENV) or "tally"
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,40}", namespace):
        raise ValueError(
            f"{NAMESPACE_ENV} must be lower-case letters, digits and _ ({namespace!r})"
        )
    return Storage(catalog, warehouse.rstrip("/"), namespace)


def _redact(uri: str) -> str:
    return re.sub(r"://[^@/]*@", "://***@", uri)


def s3_properties() -> dict[str, str]:
    """pyiceberg's S3 settings from the standard AWS environment variables."""
    props = {}
    for key, env in (
        ("s3.endpoint", "AWS_ENDPOINT_URL"),
        ("s3.access-key-id", "AWS_ACCESS_KEY_ID"),
        ("s3.secret-access-key", "AWS_SECRET_ACCESS_KEY"),
        ("s3.region", "AWS_REGION"),
    ):
        if os.environ.get(env):
            props[key] = os.environ[env]
    props.setdefault("s3.region", os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    return props


_CATALOGS: dict[Storage, SqlCatalog] = {}
_LOCK = threading.Lock()


def open_catalog(where: Storage) -> SqlCatalog:
    """The catalog (one per process and storage; creating the embedded one on first use)."""
    from pyiceberg.catalog.sql import SqlCatalog

    with _LOCK:
        catalog = _CATALOGS.get(where)
        if catalog is None:
            if where.local:
                Path(urlparse(where.warehouse_uri).path).mkdir(parents=True, exist_ok=True)
            if not where.shared:
                Path(where.catalog_uri.removeprefix("sqlite:///")).parent.mkdir(
                    parents=True, exist_ok=True
                )
            props = {"uri": where.catalog_uri, "warehouse": where.warehouse_uri}
            if not where.local:
                props |= s3_properties()
            catalog = SqlCatalog(CATALOG_NAME, **props)
            _CATALOGS[where] = catalog
        return catalog


def forget(where: Storage) -> None:
    """Drop the cached catalog (tests that create many lakes)."""
    with _LOCK:
        catalog = _CATALOGS.pop(where, None)
    if catalog is not None:
        catalog.engine.dispose()


def iceberg_type(arrow_type):
    """The Iceberg type of a lake column's Arrow type (the lake uses these four)."""
    import pyarrow as pa
    from pyiceberg.types import BooleanType, IntegerType, LongType, StringType, TimestamptzType

    if pa.types.is_timestamp(arrow_type):
        return TimestamptzType()
    for check, iceberg in (
        (pa.types.is_int64, LongType),
        (pa.types.is_int32, IntegerType),
        (pa.types.is_string, StringType),
        (pa.types.is_boolean, BooleanType),
    ):
        if check(arrow_type):
            return iceberg()
    raise TypeError(f"no Iceberg type for {arrow_type}")


def table(where: Storage, name: str, schema, partition_field: str) -> Table:
    """`<namespace>.<name>`, created (partitioned by the UTC day of `partition_field`) if new;
    columns `schema` has and the table lacks are added (a lake from an earlier version)."""
    with _CREATE_LOCK:  # threads of one process: one creator (processes: see below)
        return _table(where, name, schema, partition_field)


_CREATE_LOCK = threading.Lock()


def _table(where: Storage, name: str, schema, partition_field: str) -> Table:
    from pyiceberg.exceptions import NamespaceAlreadyExistsError
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.transforms import DayTransform
    from pyiceberg.types import NestedField

    catalog = open_catalog(where)
    identifier = f"{where.namespace}.{name}"
    try:
        return _evolve(where, catalog, identifier, catalog.load_table(identifier), schema)
    except Exception as exc:  # noqa: BLE001 - NoSuchTableError, or a catalog not yet created
        if type(exc).__name__ not in ("NoSuchTableError", "NoSuchNamespaceError"):
            raise
    try:
        catalog.create_namespace(where.namespace)
    except NamespaceAlreadyExistsError:
        pass
    except Exception:  # noqa: BLE001 - another process or thread created it at the same moment
        if not catalog.namespace_exists(where.namespace):
            raise
    fields = [
        NestedField(i, f.name, iceberg_type(f.type), required=False)
        for i, f in enumerate(schema, start=1)
    ]
    source = next(f.field_id for f in fields if f.name == partition_field)
    spec = PartitionSpec(
        PartitionField(source_id=source, field_id=1000, transform=DayTransform(), name="date")
    )
    try:
        iceberg_schema = Schema(*fields)
        # The files carry no Iceberg field ids: every reader maps columns by name.
        mapping = {"schema.name-mapping.default": iceberg_schema.name_mapping.model_dump_json()}
        return catalog.create_table(
            identifier, iceberg_schema, partition_spec=spec, properties=TABLE_PROPERTIES | mapping
        )
    except Exception:  # noqa: BLE001 - TableAlreadyExistsError, or the same race in the database
        return catalog.load_table(identifier)


def _evolve(where: Storage, catalog: SqlCatalog, identifier: str, table: Table, schema) -> Table:
    """Add the columns of `schema` that `table` lacks (optional, at the end: files written before
    read them as null), with their name mapping and metrics; another process may do it first."""
    from pyiceberg.exceptions import CommitFailedException

    from pipelines.storage.iceberg import fsync_commit

    for _ in range(20):
        known = {f.name for f in table.schema().fields}
        missing = [f for f in schema if f.name not in known]
        if not missing:
            return table
        try:
            with table.transaction() as tx:
                with tx.update_schema() as update:
                    for f in missing:
                        update.add_column(f.name, iceberg_type(f.type))
                mapping = tx.table_metadata.schema().name_mapping.model_dump_json()
                metrics = {
                    k: v
                    for k, v in TABLE_PROPERTIES.items()
                    if k.startswith("write.metadata.metrics.column.")
                }
                tx.set_properties({"schema.name-mapping.default": mapping} | metrics)
            if where.local:
                fsync_commit(table)
        except CommitFailedException:
            time.sleep(random.uniform(0.05, 0.25))  # other writers committed meanwhile
        table = catalog.load_table(identifier)
    raise RuntimeError(
        f"could not add {', '.join(f.name for f in missing)} to table {identifier}: other "
        "commits kept winning; retry (nothing was written)"
    )

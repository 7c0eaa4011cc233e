"""The signal lake: durable, atomic, hive-partitioned Parquet, and the catalog of what is in it.

Layout under `<home>/lake/`:

    signals/date=YYYY-MM-DD/part-<batch>.parquet   accepted signals (duplicates included, flagged)
    rejects/date=YYYY-MM-DD/part-<batch>.parquet   rejected signals, as received, with reasons
    _catalog/                                      LMDB environment: the source of truth

The catalog (one LMDB environment, so every change is one atomic, fsync'd transaction) holds:
- `files`: every live Parquet file, with its partition, rows and sequence range;
- `idem`: every idempotency key ever accepted -> the landing sequence number of its first copy
  (decimal text);
- `parts`: per signal partition, its `version` (the last batch that changed it);
- `meta`: counters (next sequence number, next batch number, last `received_at`).

Landing one batch (under an exclusive writer lock shared by every process):
1. record an *intent* naming the files about to be written (committed);
2. write each file as `*.tmp`, fsync, rename to its final name, fsync the directories;
3. commit the catalog: files, idempotency keys, counters, and clear the intent.
A signal is acknowledged only after step 3. A crash before it leaves no catalog entry; the next
writer finds the intent and deletes the orphans, so the client's retry lands the batch cleanly.
Readers list
files from the catalog (`Lake.files`), never by globbing, and never see a partial file: files only
appear under their final name once complete and fsync'd.

Small batches are merged by size tier (`compact`), so a partition holds a bounded number of files
(at most `3 * tiers`, about 30) however many tiny batches arrive. Replaced files are deleted after a
grace period so that a reader holding an older listing can finish.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import lmdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

if TYPE_CHECKING:
    import polars as pl

SIGNALS = "signals"
REJECTS = "rejects"
COMPACT_FANIN = 4  # merge a size tier once it holds this many files
SMALL_BATCH = 20_000  # rows up to which duplicates are found with plain lists (HTTP requests)
GC_GRACE_SECONDS = float(os.environ.get("TALLY_GC_GRACE_SECONDS", "600"))
_I64 = struct.Struct(">q")

SIGNAL_SCHEMA = pa.schema(
    [
        ("seq", pa.int64()),
        ("signal_id", pa.string()),
        ("received_at", pa.timestamp("us", tz="UTC")),
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("event_name", pa.string()),
        ("customer_id", pa.string()),
        ("external_customer_id", pa.string()),
        ("product_id", pa.string()),
        ("external_product_id", pa.string()),
        ("customer_unit", pa.string()),
        ("data", pa.string()),
        ("idempotency_key", pa.string()),
        ("is_duplicate", pa.bool_()),
        ("duplicate_of", pa.string()),
        ("source", pa.string()),
    ]
)
REJECT_SCHEMA = pa.schema(
    [
        ("received_at", pa.timestamp("us", tz="UTC")),
        ("source", pa.string()),
        ("location", pa.string()),
        ("reason", pa.string()),
        ("raw", pa.string()),
    ]
)
# What a validated batch must carry before landing assigns ids, times and duplicate flags.
INCOMING_COLUMNS = [
    "timestamp",
    "event_name",
    "customer_id",
    "external_customer_id",
    "product_id",
    "external_product_id",
    "customer_unit",
    "data",
    "idempotency_key",
]


@dataclass(frozen=True)
class LandResult:
    """What one landing committed: the numbers the caller acknowledges."""

    ingested: int
    duplicates: int
    failed: int
    batch: int | None
    # Per accepted signal, in the order given to `land`: True where it was a duplicate.
    duplicate_flags: np.ndarray | None = None


@dataclass(frozen=True)
class LakeFile:
    path: Path
    kind: str
    date: str
    rows: int
    min_seq: int
    max_seq: int
    batch: int


def signal_id(seq: int) -> str:
    """The public id of the signal landed with sequence number `seq` (time-ordered, unique)."""
    return f"sig_{seq:016d}"


def _signal_ids(seqs: pa.Array) -> pa.Array:
    padded = pc.utf8_lpad(pc.cast(seqs, pa.string()), 16, "0")
    return pc.binary_join_element_wise("sig_", padded, "")


def _idem_key(key: str) -> bytes:
    """The catalog key of an idempotency key.

    LMDB keys are 1..511 bytes: keys up to 400 UTF-8 bytes are stored as `k<key>`, longer ones by
    SHA-256 digest as `h<digest>` (the prefixes keep the two spaces apart, and allow "").
    """
    raw = key.encode()
    return b"k" + raw if len(raw) <= 400 else b"h" + hashlib.sha256(raw).digest()


def _packed_keys(keys: pl.Expr) -> pl.Expr:
    """`_idem_key` for a column, vectorized (digests only for the rare long keys)."""
    import polars as pl  # only landing needs it: readers start faster without

    short = pl.concat_str(pl.lit("k"), keys).cast(pl.Binary)
    return (
        pl.when(keys.str.len_bytes() <= 400)
        .then(short)
        .otherwise(keys.map_elements(_idem_key, return_dtype=pl.Binary))
    )


def _sources(table: pa.Table, source: str) -> pa.Array:
    """Each row's source: the table's own `source` column, else `source` for every row."""
    if "source" in table.column_names:
        return table["source"].cast(pa.string())
    return pa.repeat(pa.scalar(source, pa.string()), table.num_rows)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
_STATISTICS = {"seq", "timestamp", "received_at", "date", "occurred_at"}


def write_parquet_atomic(table: pa.Table, path: Path) -> None:
    """Write `table` to `path`: the file appears complete or not at all (caller fsyncs the dir)."""
    tmp = temp_path(path)
    with open(tmp, "wb") as fh:
        pq.write_table(
            table,
            fh,
            compression="zstd",
            compression_level=1,
            row_group_size=256 * 1024,
            use_dictionary=[c for c in table.column_names if c in _LOW_CARDINALITY],
            write_statistics=[c for c in table.column_names if c in _STATISTICS],
        )
    publish_file(tmp, path)


def temp_path(path: Path) -> Path:
    """Where to write `path` before `publish_file` (never matched by `*.parquet` globs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(path.name + ".tmp")


def publish_file(tmp: Path, path: Path) -> None:
    """fsync `tmp` and rename it to `path`: readers see the whole file or the previous one."""
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


_ENVS: dict[Path, lmdb.Environment] = {}
_ENVS_LOCK = threading.Lock()


def _open_env(path: Path) -> lmdb.Environment:
    # LMDB forbids opening one environment twice in a process: share it.
    with _ENVS_LOCK:
        env = _ENVS.get(path)
        if env is None:
            path.mkdir(parents=True, exist_ok=True)
            env = lmdb.open(
                str(path), map_size=1 << 38, max_dbs=8, sync=True, metasync=True, max_readers=512
            )
            _ENVS[path] = env
        return env


class Lake:
    """The landed signals of one home: write with `land`, read with `files`/`partitions`."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._catalog = self.root / "_catalog"
        self._env = _open_env(self._catalog)
        self._db = {
            name: self._env.open_db(name.encode())
            for name in ("meta", "idem", "files", "parts", "tomb", "intent")
        }
        self._thread_lock = threading.Lock()
        self._untidy: set[str] = set()  # partitions landed into since the last compaction

    # ----------------------------------------------------------------- writer lock and recovery
    @contextmanager
    def _writer(self) -> Iterator[None]:
        """Exclusive across threads and processes; recovers a crashed writer's leftovers first."""
        with self._thread_lock:
            with open(self._catalog / "writer.lock", "a+b") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    self._recover()
                    yield
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)

    def _recover(self) -> None:
        with self._env.begin(write=True) as txn:
            cursor = txn.cursor(db=self._db["intent"])
            leftovers = [(k, json.loads(v)) for k, v in cursor]
            for key, paths in leftovers:
                for rel in paths:
                    (self.root / (rel + ".tmp")).unlink(missing_ok=True)
                    if txn.get(rel.encode(), db=self._db["files"]) is None:
                        (self.root / rel).unlink(missing_ok=True)
                txn.delete(key, db=self._db["intent"])

    def _intend(self, batch: int, paths: list[str]) -> None:
        with self._env.begin(write=True) as txn:
            txn.put(_I64.pack(batch), json.dumps(paths).encode(), db=self._db["intent"])

    def _meta(self, txn: lmdb.Transaction, name: str, default: int = 0) -> int:
        raw = txn.get(name.encode(), db=self._db["meta"])
        return default if raw is None else _I64.unpack(raw)[0]

    def _set_meta(self, txn: lmdb.Transaction, name: str, value: int) -> None:
        txn.put(name.encode(), _I64.pack(value), db=self._db["meta"])

    # ----------------------------------------------------------------------------- landing
    def land(
        self,
        incoming: pa.Table,
        rejects: pa.Table | None = None,
        source: str = "",
        tidy: bool = True,
    ) -> LandResult:
        """Land validated signals (`INCOMING_COLUMNS`) and rejects (`location, reason, raw`).

        `source` names where they came from; a `source` column of `incoming` or `rejects` names
        it row by row instead (a batch that spans several files).

        Assigns `seq`, `signal_id` and `received_at`, defaults `timestamp` to `received_at`, and
        flags every signal whose idempotency key was seen before (in history or earlier in this
        batch) as a duplicate of the first copy. Returns only after everything is durable.
        `tidy=False` leaves compaction to a later `tidy()` (after the caller acknowledged).
        """
        n_rejects = 0 if rejects is None else rejects.num_rows
        if incoming.num_rows == 0 and n_rejects == 0:
            return LandResult(0, 0, 0, None)
        with self._writer():
            with self._env.begin() as txn:
                seq0 = self._meta(txn, "next_seq", 1)
                batch = self._meta(txn, "next_batch", 1)
                last_received = self._meta(txn, "last_received_us", 0)
            received_us = max(time.time_ns() // 1000, last_received + 1)
            table = self._stamp(incoming, seq0, received_us, source)
            table, new_keys = self._flag_duplicates(table)
            files = self._plan_files(table, rejects, batch, received_us, source)
            self._intend(batch, [rel for rel, _, _ in files])
            written = self._write_files(files)
            with self._env.begin(write=True) as txn:
                cursor = txn.cursor(db=self._db["idem"])
                cursor.putmulti(new_keys, overwrite=False)
                for lf in written:
                    self._add_file(txn, lf)
                self._set_meta(txn, "next_seq", seq0 + table.num_rows)
                self._set_meta(txn, "next_batch", batch + 1)
                self._set_meta(txn, "last_received_us", received_us)
                txn.delete(_I64.pack(batch), db=self._db["intent"])
            self._untidy.update(lf.date for lf in written if lf.kind == SIGNALS)
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
        if self._untidy:
            with self._writer():
                self._tidy()

    def _tidy(self) -> None:
        """Compaction and garbage collection after a commit. The batch is already durable, so a
        failure here must not fail the landing (a caller would retry what was acknowledged): it
        is logged, and the next landing compacts again."""
        try:
            for date in sorted(self._untidy):
                self._compact(SIGNALS, date)
                self._untidy.discard(date)
            self._collect_garbage()
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
            "signal_id": _signal_ids(seqs),
            "received_at": received,
            "timestamp": pc.coalesce(ts, received),
        }
        for name in INCOMING_COLUMNS[1:]:
            columns[name] = incoming[name].cast(pa.string())
        columns["is_duplicate"] = pa.nulls(n, pa.bool_())
        columns["duplicate_of"] = pa.nulls(n, pa.string())
        columns["source"] = _sources(incoming, source)
        return pa.table(columns, schema=SIGNAL_SCHEMA)

    def _flag_duplicates(self, table: pa.Table) -> tuple[pa.Table, list[tuple[bytes, bytes]]]:
        """First received wins, forever: flag later copies; return the new keys to index."""
        small = table.num_rows <= SMALL_BATCH
        dup_of, new_keys = (self._duplicates_small if small else self._duplicates_large)(table)
        n = table.num_rows
        if dup_of is None:
            return table.set_column(
                table.schema.get_field_index("is_duplicate"),
                "is_duplicate",
                pa.array(np.zeros(n, dtype=bool)),
            ), new_keys
        dup_arr = pa.array(dup_of, pa.int64())
        is_dup = dup_arr.is_valid()
        ids = pc.if_else(
            is_dup, _signal_ids(pc.fill_null(dup_arr, 0)), pa.scalar(None, pa.string())
        )
        table = table.set_column(
            table.schema.get_field_index("is_duplicate"), "is_duplicate", is_dup
        )
        table = table.set_column(table.schema.get_field_index("duplicate_of"), "duplicate_of", ids)
        return table, new_keys

    def _history(self, packed: list[bytes]) -> dict[bytes, int]:
        """The first copy's sequence number of each key already landed (`packed` sorted:
        sorted keys walk the B-tree in order, several times faster than random order)."""
        with self._env.begin(db=self._db["idem"]) as txn:
            return {k: int(v) for k, v in txn.cursor().getmulti(packed)}

    def _duplicates_small(
        self, table: pa.Table
    ) -> tuple[list[int | None] | None, list[tuple[bytes, bytes]]]:
        """Per-row lists: for the small batches of HTTP requests, cheaper than a DataFrame."""
        keys = table["idempotency_key"].to_pylist()
        seq0 = table["seq"][0].as_py() if table.num_rows else 0
        first: dict[bytes, int] = {}
        dup_of: list[int | None] = [None] * len(keys)
        any_dup = False
        for i, key in enumerate(keys):
            if key is None:
                continue
            packed = _idem_key(key)
            if packed in first:
                dup_of[i], any_dup = first[packed], True
            else:
                first[packed] = seq0 + i  # seqs are consecutive in a stamped batch
        ordered = sorted(first)
        history = self._history(ordered)
        if history:
            any_dup = True
            for i, key in enumerate(keys):
                if key is not None:
                    dup_of[i] = history.get(_idem_key(key), dup_of[i])
        new_keys = [(k, str(first[k]).encode()) for k in ordered]
        return (dup_of if any_dup else None), new_keys

    def _duplicates_large(
        self, table: pa.Table
    ) -> tuple[list[int | None] | None, list[tuple[bytes, bytes]]]:
        """Vectorized in Polars for large batches (files); the few duplicates resolved in Python."""
        import polars as pl

        keyed = pl.from_arrow(table.select(["seq", "idempotency_key"])).with_columns(
            packed=_packed_keys(pl.col("idempotency_key"))
        )
        first_in_batch = pl.col("packed").is_not_null() & pl.col("packed").is_first_distinct()
        first = keyed.filter(first_in_batch).select("packed", "seq").sort("packed")
        packed = first["packed"].to_list()
        history = self._history(packed)
        new_keys = list(
            zip(packed, first["seq"].cast(pl.String).cast(pl.Binary).to_list(), strict=True)
        )
        dup_mask = keyed.select(
            pl.col("packed").is_not_null()
            & (~first_in_batch | pl.col("packed").is_in(list(history)))
        ).to_series()
        if not dup_mask.any():
            return None, new_keys
        in_batch = dict(zip(packed, first["seq"].to_list(), strict=True))
        dup_of: list[int | None] = [None] * table.num_rows
        rows = keyed.with_row_index("row").filter(dup_mask)
        for row, key in zip(rows["row"].to_list(), rows["packed"].to_list(), strict=True):
            dup_of[row] = history.get(key, in_batch[key])
        return dup_of, new_keys

    def _plan_files(
        self, table: pa.Table, rejects: pa.Table | None, batch: int, received_us: int, source: str
    ) -> list[tuple[str, str, pa.Table]]:
        plans: list[tuple[str, str, pa.Table]] = []
        if table.num_rows:
            dates = pc.cast(table["timestamp"], pa.date32())
            days = sorted(pc.unique(dates).to_pylist())
            for day in days:
                # a filter per day keeps landing order within the day; it copies chunk by chunk
                # (a sort and take over a batch of many chunks costs several times more)
                part = table if len(days) == 1 else table.filter(pc.equal(dates, day))
                date = day.isoformat()
                rel = f"{SIGNALS}/date={date}/part-{batch:012d}.parquet"
                plans.append((rel, date, part))
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
            plans.append((f"{REJECTS}/date={date}/part-{batch:012d}.parquet", date, full))
        return plans

    def _write_files(self, plans: list[tuple[str, str, pa.Table]]) -> list[LakeFile]:
        written = []
        dirs: set[Path] = set()
        for rel, date, table in plans:
            path = self.root / rel
            new_dir = not path.parent.exists()
            write_parquet_atomic(table, path)
            dirs.add(path.parent)
            if new_dir:
                dirs.update({path.parent.parent, path.parent.parent.parent})
            kind = rel.split("/", 1)[0]
            seqs = table["seq"] if kind == SIGNALS else None
            batch = int(path.stem.split("-")[1])
            written.append(
                LakeFile(
                    path=path,
                    kind=kind,
                    date=date,
                    rows=table.num_rows,
                    min_seq=pc.min(seqs).as_py() if seqs is not None else 0,
                    max_seq=pc.max(seqs).as_py() if seqs is not None else 0,
                    batch=batch,
                )
            )
        for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
            fsync_dir(d)
        return written

    def _add_file(self, txn: lmdb.Transaction, lf: LakeFile) -> None:
        rel = lf.path.relative_to(self.root).as_posix()
        record = {
            k: getattr(lf, k) for k in ("kind", "date", "rows", "min_seq", "max_seq", "batch")
        }
        txn.put(rel.encode(), json.dumps(record).encode(), db=self._db["files"])
        if lf.kind == SIGNALS:
            key = lf.date.encode()
            old = txn.get(key, db=self._db["parts"])
            part = json.loads(old) if old else {"version": 0}
            part["version"] = max(part["version"], lf.batch)
            txn.put(key, json.dumps(part).encode(), db=self._db["parts"])

    # --------------------------------------------------------------------------- compaction
    def _compact(self, kind: str, date: str) -> None:
        """Merge files of one partition by size tier so the file count stays bounded."""
        while True:
            tiers: dict[int, list[LakeFile]] = {}
            for lf in self.files(date=date, kind=kind):
                tiers.setdefault(max(lf.rows, 1).bit_length() // 2, []).append(lf)
            group = next((g for _, g in sorted(tiers.items()) if len(g) >= COMPACT_FANIN), None)
            if group is None:
                return
            with self._env.begin(write=True) as txn:
                batch = self._meta(txn, "next_batch", 1)
                self._set_meta(txn, "next_batch", batch + 1)
            merged = pa.concat_tables(pq.read_table(lf.path) for lf in group).sort_by("seq")
            rel = f"{kind}/date={date}/part-{batch:012d}.parquet"
            self._intend(batch, [rel])
            (new,) = self._write_files([(rel, date, merged)])
            now = _I64.pack(time.time_ns())
            with self._env.begin(write=True) as txn:
                self._add_file(txn, new)
                for lf in group:
                    old = lf.path.relative_to(self.root).as_posix().encode()
                    txn.delete(old, db=self._db["files"])
                    txn.put(old, now, db=self._db["tomb"])
                txn.delete(_I64.pack(batch), db=self._db["intent"])

    def _collect_garbage(self) -> None:
        cutoff = time.time_ns() - int(GC_GRACE_SECONDS * 1e9)
        with self._env.begin(write=True, db=self._db["tomb"]) as txn:
            expired = [k for k, v in txn.cursor() if _I64.unpack(v)[0] <= cutoff]
            for key in expired:
                (self.root / key.decode()).unlink(missing_ok=True)
                txn.delete(key)

    # ------------------------------------------------------------------------------ reading
    def files(self, date: str | None = None, kind: str = SIGNALS) -> list[LakeFile]:
        """The live files (a consistent snapshot), optionally of one partition, oldest first."""
        out = []
        prefix = f"{kind}/" if date is None else f"{kind}/date={date}/"
        with self._env.begin(db=self._db["files"]) as txn:
            cursor = txn.cursor()
            if cursor.set_range(prefix.encode()):
                for key, value in cursor:
                    rel = key.decode()
                    if not rel.startswith(prefix):
                        break
                    rec = json.loads(value)
                    out.append(LakeFile(path=self.root / rel, **rec))
        return sorted(out, key=lambda lf: lf.min_seq)

    def partitions(self) -> dict[str, int]:
        """Signal partitions (`YYYY-MM-DD`) and their version: the last batch that changed them."""
        with self._env.begin(db=self._db["parts"]) as txn:
            return {k.decode(): json.loads(v)["version"] for k, v in txn.cursor()}

    def first_copies(self, keys: list[str]) -> dict[str, int]:
        """For each idempotency key ever accepted: the landing sequence number of its first copy."""
        packed = [_idem_key(k) for k in keys]
        with self._env.begin(db=self._db["idem"]) as txn:
            found = dict(txn.cursor().getmulti(packed))
        return {k: int(found[p]) for k, p in zip(keys, packed, strict=True) if p in found}

    def stats(self) -> dict[str, int]:
        with self._env.begin() as txn:
            return {
                "signals": self._meta(txn, "next_seq", 1) - 1,
                "batches": self._meta(txn, "next_batch", 1) - 1,
                "idempotency_keys": txn.stat(self._db["idem"])["entries"],
                "files": txn.stat(self._db["files"])["entries"],
            }

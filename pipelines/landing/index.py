"""The lake's index: idempotency keys, counters, landing intents and replaced files.

What must be shared by every process that lands into one lake, beside the Iceberg tables:
- `idem`: each idempotency key ever accepted (packed, see `pipelines.landing.dedup`) -> the landing
  sequence number of its first copy ("first copy wins", forever);
- counters: the next sequence number, the next batch number, the last `received_at`;
- intents: the files a landing or compaction is writing, and whether its index commit is done
  (recovery rolls a committed landing forward and deletes the leftovers of any other);
- graves: files replaced by compaction, deleted after a grace period.

Two implementations, chosen with the catalog (`pipelines.storage.catalog`): `LocalIndex` (LMDB in
`<home>/lake/_index`, fsync'd transactions, an flock as the writer lock) and `PostgresIndex` (tables
in the catalog's database, the keys hash-partitioned, `INSERT ... ON CONFLICT DO NOTHING`, and an
advisory lock as the writer lock, so writers on several hosts take turns).
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import lmdb

from pipelines.storage.catalog import Storage

_I64 = struct.Struct(">q")
WRITING = "writing"  # files are being written: recovery deletes those not in the table
COMMITTING = "committing"  # keys and counters committed: recovery commits the files


class Intent(Protocol):
    batch: int


class Index(Protocol):
    def writer(self) -> Iterator[None]: ...
    def counters(self) -> tuple[int, int, int]: ...
    def history(self, packed: list[bytes]) -> dict[bytes, int]: ...
    def intend(self, batch: int, files: list[str], replaces: list[str] = ...) -> None: ...
    def commit(
        self, batch: int, keys: list[tuple[bytes, int]], next_seq: int, last_received_us: int
    ) -> None: ...
    def finish(self, batch: int, bury: list[str] = ..., at_ns: int = ...) -> None: ...
    def intents(self) -> list[tuple[int, str, dict]]: ...
    def bury(self, paths: list[str], at_ns: int) -> None: ...
    def record_sums(self, rows: list[tuple[str, int, int, str]]) -> None: ...
    def sums(self, paths: list[str]) -> dict[str, tuple[int, int, str]]: ...
    def forget_sums(self, paths: list[str]) -> None: ...
    def graves(self) -> list[tuple[str, int]]: ...
    def unbury(self, paths: list[str]) -> None: ...
    def key_count(self) -> int: ...
    def close(self) -> None: ...


# ------------------------------------------------------------------------------------- LMDB
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


def close_env(path: Path) -> None:
    """Close the environment this process shares for `path` (if open)."""
    with _ENVS_LOCK:
        env = _ENVS.pop(path, None)
    if env is not None:
        env.close()


class LocalIndex:
    """The embedded index: one LMDB environment (every change one fsync'd transaction)."""

    def __init__(self, path: Path):
        self.path = path
        self._env = _open_env(path)
        self._db = {
            n: self._env.open_db(n.encode()) for n in ("meta", "idem", "intent", "tomb", "sums")
        }
        self._thread_lock = threading.Lock()

    @contextmanager
    def writer(self) -> Iterator[None]:
        with self._thread_lock, open(self.path / "writer.lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _meta(self, txn: lmdb.Transaction, name: str, default: int) -> int:
        raw = txn.get(name.encode(), db=self._db["meta"])
        return default if raw is None else _I64.unpack(raw)[0]

    def _set(self, txn: lmdb.Transaction, name: str, value: int) -> None:
        txn.put(name.encode(), _I64.pack(value), db=self._db["meta"])

    def counters(self) -> tuple[int, int, int]:
        with self._env.begin() as txn:
            return (
                self._meta(txn, "next_seq", 1),
                self._meta(txn, "next_batch", 1),
                self._meta(txn, "last_received_us", 0),
            )

    def history(self, packed: list[bytes]) -> dict[bytes, int]:
        # sorted keys walk the B-tree in order, several times faster than random order
        with self._env.begin(db=self._db["idem"]) as txn:
            return {k: int(v) for k, v in txn.cursor().getmulti(packed)}

    def intend(self, batch: int, files: list[str], replaces: list[str] = ()) -> None:
        record = {"state": WRITING, "files": files, "replaces": list(replaces)}
        with self._env.begin(write=True) as txn:
            txn.put(_I64.pack(batch), json.dumps(record).encode(), db=self._db["intent"])
            self._set(txn, "next_batch", max(batch + 1, self._meta(txn, "next_batch", 1)))

    def commit(
        self, batch: int, keys: list[tuple[bytes, int]], next_seq: int, last_received_us: int
    ) -> None:
        with self._env.begin(write=True) as txn:
            txn.cursor(db=self._db["idem"]).putmulti(
                ((k, str(v).encode()) for k, v in keys), overwrite=False
            )
            self._set(txn, "next_seq", next_seq)
            self._set(txn, "last_received_us", last_received_us)
            raw = txn.get(_I64.pack(batch), db=self._db["intent"])
            record = json.loads(raw) | {"state": COMMITTING}
            txn.put(_I64.pack(batch), json.dumps(record).encode(), db=self._db["intent"])

    def finish(self, batch: int, bury: list[str] = (), at_ns: int = 0) -> None:
        with self._env.begin(write=True) as txn:
            self._bury(txn, bury, at_ns)
            txn.delete(_I64.pack(batch), db=self._db["intent"])

    def bury(self, paths: list[str], at_ns: int) -> None:
        """Files no current snapshot lists, to delete once no kept snapshot does."""
        with self._env.begin(write=True) as txn:
            self._bury(txn, paths, at_ns)

    def _bury(self, txn, paths: list[str], at_ns: int) -> None:
        for path in paths:
            txn.put(path.encode(), _I64.pack(at_ns), db=self._db["tomb"])

    def intents(self) -> list[tuple[int, str, dict]]:
        with self._env.begin(db=self._db["intent"]) as txn:
            out = []
            for key, value in txn.cursor():
                record = json.loads(value)
                out.append((_I64.unpack(key)[0], record["state"], record))
            return out

    def graves(self) -> list[tuple[str, int]]:
        with self._env.begin(db=self._db["tomb"]) as txn:
            return [(k.decode(), _I64.unpack(v)[0]) for k, v in txn.cursor()]

    def unbury(self, paths: list[str]) -> None:
        with self._env.begin(write=True, db=self._db["tomb"]) as txn:
            for path in paths:
                txn.delete(path.encode())

    def record_sums(self, rows: list[tuple[str, int, int, str]]) -> None:
        """(path, size, mtime_ns, sha256) of files just written."""
        with self._env.begin(write=True, db=self._db["sums"]) as txn:
            for path, size, mtime, digest in rows:
                txn.put(path.encode(), json.dumps([size, mtime, digest]).encode())

    def sums(self, paths: list[str]) -> dict[str, tuple[int, int, str]]:
        with self._env.begin(db=self._db["sums"]) as txn:
            found = {p: txn.get(p.encode()) for p in paths}
        return {p: tuple(json.loads(v)) for p, v in found.items() if v is not None}

    def forget_sums(self, paths: list[str]) -> None:
        with self._env.begin(write=True, db=self._db["sums"]) as txn:
            for path in paths:
                txn.delete(path.encode())

    def relocate(self, old: str, new: str) -> None:
        """Rewrite the paths of intents, graves and checksums from prefix `old` to `new` (a
        moved home)."""
        with self._env.begin(write=True) as txn:
            for db in ("tomb", "sums"):
                for key, value in list(txn.cursor(db=self._db[db])):
                    path = key.decode()
                    if path.startswith(old):
                        txn.delete(key, db=self._db[db])
                        txn.put((new + path[len(old) :]).encode(), value, db=self._db[db])
            for key, value in list(txn.cursor(db=self._db["intent"])):
                record = json.loads(value)
                for field in ("files", "replaces"):
                    record[field] = [
                        new + p[len(old) :] if p.startswith(old) else p for p in record[field]
                    ]
                txn.put(key, json.dumps(record).encode(), db=self._db["intent"])

    def key_count(self) -> int:
        with self._env.begin() as txn:
            return txn.stat(self._db["idem"])["entries"]

    def close(self) -> None:
        close_env(self.path)


# -------------------------------------------------------------------------------- PostgreSQL
KEY_SHARDS = 16
_DDL = """
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.meta (name text PRIMARY KEY, value bigint NOT NULL);
CREATE TABLE IF NOT EXISTS {schema}.idem (key bytea PRIMARY KEY, seq bigint NOT NULL)
    PARTITION BY HASH (key);
{shards}
CREATE TABLE IF NOT EXISTS {schema}.intent (batch bigint PRIMARY KEY, record jsonb NOT NULL);
CREATE TABLE IF NOT EXISTS {schema}.tomb (path text PRIMARY KEY, at_ns bigint NOT NULL);
CREATE TABLE IF NOT EXISTS {schema}.sums (
    path text PRIMARY KEY, size bigint NOT NULL, mtime_ns bigint NOT NULL, sha256 text NOT NULL
);
"""


class PostgresIndex:
    """The shared index: tables in schema `<namespace>_index` of the catalog's database."""

    def __init__(self, where: Storage):
        import psycopg2

        self.schema = f"{where.namespace}_index"
        self._dsn = where.pg_dsn
        self._lock_id = int.from_bytes(hashlib.sha256(self.schema.encode()).digest()[:8], "big")
        self._lock_id -= 1 << 63 if self._lock_id >= 1 << 63 else 0
        self._thread_lock = threading.RLock()
        self._con = psycopg2.connect(self._dsn)
        shards = "\n".join(
            f"CREATE TABLE IF NOT EXISTS {self.schema}.idem_{i} PARTITION OF {self.schema}.idem "
            f"FOR VALUES WITH (MODULUS {KEY_SHARDS}, REMAINDER {i});"
            for i in range(KEY_SHARDS)
        )
        with self._thread_lock, self._con, self._con.cursor() as cur:
            # one creator at a time (CREATE ... IF NOT EXISTS races in PostgreSQL)
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_id ^ 1,))
            cur.execute(_DDL.format(schema=self.schema, shards=shards))

    @contextmanager
    def _tx(self) -> Iterator:
        with self._thread_lock, self._con, self._con.cursor() as cur:
            yield cur

    @contextmanager
    def writer(self) -> Iterator[None]:
        with self._thread_lock:
            with self._con, self._con.cursor() as cur:
                cur.execute("SELECT pg_advisory_lock(%s)", (self._lock_id,))
            try:
                yield
            finally:
                with self._con, self._con.cursor() as cur:
                    cur.execute("SELECT pg_advisory_unlock(%s)", (self._lock_id,))

    def counters(self) -> tuple[int, int, int]:
        with self._tx() as cur:
            cur.execute(f"SELECT name, value FROM {self.schema}.meta")
            meta = dict(cur.fetchall())
        return meta.get("next_seq", 1), meta.get("next_batch", 1), meta.get("last_received_us", 0)

    def _set(self, cur, name: str, value: int) -> None:
        cur.execute(
            f"INSERT INTO {self.schema}.meta VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    def _load(self, cur, table: str, columns: str, rows: list[tuple]) -> None:
        """COPY `rows` into a temporary table (bytea values as hex)."""
        cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {table} ({columns}) ON COMMIT DROP")
        buf = io.StringIO()
        for row in rows:
            buf.write("\t".join(_copy_text(v) for v in row) + "\n")
        buf.seek(0)
        cur.copy_expert(f"COPY {table} FROM STDIN", buf)

    def history(self, packed: list[bytes]) -> dict[bytes, int]:
        if not packed:
            return {}
        with self._tx() as cur:
            if len(packed) <= 1000:
                cur.execute(
                    f"SELECT key, seq FROM {self.schema}.idem WHERE key = ANY(%s)",
                    ([bytes(k) for k in packed],),
                )
            else:
                self._load(cur, "probe", "key bytea", [(k,) for k in packed])
                cur.execute(f"SELECT i.key, i.seq FROM probe JOIN {self.schema}.idem i USING (key)")
            return {bytes(k): v for k, v in cur.fetchall()}

    def intend(self, batch: int, files: list[str], replaces: list[str] = ()) -> None:
        record = {"state": WRITING, "files": files, "replaces": list(replaces)}
        with self._tx() as cur:
            cur.execute(
                f"INSERT INTO {self.schema}.intent VALUES (%s, %s)", (batch, json.dumps(record))
            )
            cur.execute(f"SELECT value FROM {self.schema}.meta WHERE name = 'next_batch'")
            found = cur.fetchone()
            self._set(cur, "next_batch", max(batch + 1, found[0] if found else 1))

    def commit(
        self, batch: int, keys: list[tuple[bytes, int]], next_seq: int, last_received_us: int
    ) -> None:
        with self._tx() as cur:
            if keys:
                self._load(cur, "incoming", "key bytea, seq bigint", keys)
                cur.execute(
                    f"INSERT INTO {self.schema}.idem SELECT key, seq FROM incoming "
                    "ON CONFLICT (key) DO NOTHING"
                )
            self._set(cur, "next_seq", next_seq)
            self._set(cur, "last_received_us", last_received_us)
            cur.execute(
                f"UPDATE {self.schema}.intent SET record = record || %s WHERE batch = %s",
                (json.dumps({"state": COMMITTING}), batch),
            )

    def finish(self, batch: int, bury: list[str] = (), at_ns: int = 0) -> None:
        with self._tx() as cur:
            self._bury(cur, bury, at_ns)
            cur.execute(f"DELETE FROM {self.schema}.intent WHERE batch = %s", (batch,))

    def bury(self, paths: list[str], at_ns: int) -> None:
        with self._tx() as cur:
            self._bury(cur, paths, at_ns)

    def _bury(self, cur, paths: list[str], at_ns: int) -> None:
        for path in paths:
            cur.execute(
                f"INSERT INTO {self.schema}.tomb VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (path, at_ns),
            )

    def intents(self) -> list[tuple[int, str, dict]]:
        with self._tx() as cur:
            cur.execute(f"SELECT batch, record FROM {self.schema}.intent ORDER BY batch")
            return [(b, r["state"], r) for b, r in cur.fetchall()]

    def graves(self) -> list[tuple[str, int]]:
        with self._tx() as cur:
            cur.execute(f"SELECT path, at_ns FROM {self.schema}.tomb")
            return cur.fetchall()

    def unbury(self, paths: list[str]) -> None:
        with self._tx() as cur:
            cur.execute(f"DELETE FROM {self.schema}.tomb WHERE path = ANY(%s)", (list(paths),))

    def record_sums(self, rows: list[tuple[str, int, int, str]]) -> None:
        with self._tx() as cur:
            for row in rows:
                cur.execute(
                    f"INSERT INTO {self.schema}.sums VALUES (%s, %s, %s, %s) "
                    "ON CONFLICT (path) DO UPDATE SET size = excluded.size, "
                    "mtime_ns = excluded.mtime_ns, sha256 = excluded.sha256",
                    row,
                )

    def sums(self, paths: list[str]) -> dict[str, tuple[int, int, str]]:
        with self._tx() as cur:
            cur.execute(
                f"SELECT path, size, mtime_ns, sha256 FROM {self.schema}.sums WHERE path = ANY(%s)",
                (list(paths),),
            )
            return {p: (size, mtime, digest) for p, size, mtime, digest in cur.fetchall()}

    def forget_sums(self, paths: list[str]) -> None:
        with self._tx() as cur:
            cur.execute(f"DELETE FROM {self.schema}.sums WHERE path = ANY(%s)", (list(paths),))

    def key_count(self) -> int:
        with self._tx() as cur:
            cur.execute(f"SELECT count(*) FROM {self.schema}.idem")
            return cur.fetchone()[0]

    def close(self) -> None:
        self._con.close()


def _copy_text(value) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\\\x" + bytes(value).hex()
    return str(value)


def open_index(where: Storage, lake_root: Path) -> LocalIndex | PostgresIndex:
    """The index that goes with the catalog: PostgreSQL when the catalog is, else local."""
    return PostgresIndex(where) if where.shared else LocalIndex(lake_root / "_index")

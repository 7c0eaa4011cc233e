"""Dagster's instance for a Tally home: its state lives in `<home>/dagster`, never in a checkout.

`dagster.yaml` (at the top of the repository, and written into `<home>/dagster/` by `tally`) names
the classes below. Each is Dagster's own SQLite/local class with one difference: without a
`base_dir` in the configuration, it uses `<TALLY_HOME>/dagster` (default `./data/dagster`). So
plain `dagster dev` from a checkout needs only `TALLY_HOME`, and `tally` sets `DAGSTER_HOME` to
that directory. The shared deployment replaces `storage` with PostgreSQL (see docs/dagster.md).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from dagster import Field, StringSource
from dagster._core.events import ASSET_EVENTS, BATCH_WRITABLE_EVENTS
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.local_compute_log_manager import LocalComputeLogManager
from dagster._core.storage.root import LocalArtifactStorage
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlalchemy_compat import db_result
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from pipelines.core.home import resolve_home


def dagster_dir(home: str | None = None) -> Path:
    """`<home>/dagster`: Dagster's runs, event logs, schedules and compute logs for the home."""
    return resolve_home(home).root / "dagster"


_ENGINES: OrderedDict[str, Engine] = OrderedDict()  # one engine per SQLite file, most recent last
_MAX_ENGINES = 16  # a long-lived process (daemon, webserver) sees a new file per run
_ENGINES_LOCK = threading.Lock()


def _engine(url: str, **connect_args) -> Engine:
    """The process's engine for one of Dagster's SQLite files in a home.

    Dagster's own SQLite classes create an engine for every operation, so every event of a run
    opened a new connection and compiled its SQL again. Here each file keeps one engine, with its
    statement cache and a small pool of open connections in WAL mode with `synchronous=NORMAL`
    (a commit no longer waits for the disk): together about 20 ms an event here, most of a 60-day
    billing run's orchestration time. A power loss can lose the last run events, never billing
    data (the lake and the engine's files are written and fsync'd by Tally): a lost
    materialization record only makes a day run again. A forked child drops the pooled
    connections it inherited (`_after_fork`)."""
    with _ENGINES_LOCK:  # the webserver and the daemon ask from many threads
        engine = _ENGINES.get(url)
        if engine is None:
            engine = create_engine(url, pool_size=2, max_overflow=-1, connect_args=connect_args)
            event.listen(engine, "connect", _quick_commits)
            _ENGINES[url] = engine
            while len(_ENGINES) > _MAX_ENGINES:
                _ENGINES.popitem(last=False)[1].dispose()  # connections in use finish first
        else:
            _ENGINES.move_to_end(url)
        return engine


def _quick_commits(connection, _record) -> None:
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")


def _after_fork() -> None:
    global _ENGINES_LOCK
    _ENGINES_LOCK = threading.Lock()  # another thread may have held it at the fork
    for engine in _ENGINES.values():
        engine.dispose(close=False)  # the parent's connections stay the parent's


os.register_at_fork(after_in_child=_after_fork)


@contextmanager
def _transaction(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn, conn.begin():
        yield conn


_BATCHED = ASSET_EVENTS & BATCH_WRITABLE_EVENTS  # what `store_event` mirrors into the index alike


class _RunStorage(SqliteRunStorage):
    def connect(self) -> Iterator[Connection]:  # ty: ignore[invalid-method-override]
        return _transaction(_engine(self._conn_string))


class _ScheduleStorage(SqliteScheduleStorage):
    def connect(self) -> Iterator[Connection]:  # ty: ignore[invalid-method-override]
        return _transaction(_engine(self._conn_string))


class _EventLogStorage(SqliteEventLogStorage):
    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = _engine(self.conn_string_for_shard(shard), timeout=SQLITE_BUSY_TIMEOUT_SECONDS)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with _transaction(engine) as conn:
                yield conn

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """Dagster's `store_event` for a batch of one run's asset events (a step's per-partition
        materializations, a run's planned events, Tally's observations of its sources): one
        transaction per file instead of two or three per event. Anything else: one by one."""
        if len({e.run_id for e in events}) != 1 or not all(
            e.is_dagster_event and e.dagster_event_type in _BATCHED for e in events
        ):
            return super().store_event_batch(events)
        statements = [self.prepare_insert_event(e) for e in events]
        with self.run_connection(events[0].run_id) as conn:
            for statement in statements:
                conn.execute(statement)
        with self.index_transaction() as conn:
            ids = []
            for statement in statements:
                with db_result(conn, statement) as result:
                    ids.append(result.inserted_primary_key[0])
            self._store_asset_event_tags(conn, events, ids)
            for event, event_id in zip(events, ids, strict=True):
                self._store_asset_event(conn, event, event_id)

    def wipe(self) -> None:
        mine = self.conn_string_for_shard("_").removesuffix("_.db")
        with _ENGINES_LOCK:
            for url in [u for u in _ENGINES if u.startswith(mine)]:
                _ENGINES.pop(url).dispose()  # Dagster deletes the files: no connection holds them
        super().wipe()


_OPTIONAL_BASE = {"base_dir": Field(StringSource, is_required=False)}


class HomeSqliteStorage(DagsterSqliteStorage):
    """Dagster's SQLite storage, by default in `<TALLY_HOME>/dagster`, each file with one engine."""

    def __init__(self, base_dir: str, inst_data=None):  # Dagster's, with the classes above
        # Dagster hands the event log its batches (a step's per-partition materializations, a
        # run's planned events) only when this is set; `store_event_batch` above writes them.
        os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", "1000")
        self.base_dir = base_dir
        self._run_storage = _RunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = _EventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = _ScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        super(DagsterSqliteStorage, self).__init__()

    @classmethod
    def config_type(cls):
        return _OPTIONAL_BASE

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        base = config_value.get("base_dir") or str(dagster_dir())
        return cls.from_local(base_dir=base, inst_data=inst_data)


class HomeArtifactStorage(LocalArtifactStorage):
    """Dagster's local artifact storage, by default in `<TALLY_HOME>/dagster`."""

    @classmethod
    def config_type(cls):
        return _OPTIONAL_BASE

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        base = config_value.get("base_dir") or str(dagster_dir())
        return LocalArtifactStorage(base_dir=base, inst_data=inst_data)


class HomeComputeLogManager(LocalComputeLogManager):
    """Dagster's local compute logs, by default in `<TALLY_HOME>/dagster/logs`."""

    @classmethod
    def config_type(cls):
        return _OPTIONAL_BASE

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        base = config_value.get("base_dir") or str(dagster_dir() / "logs")
        return LocalComputeLogManager(base_dir=base, inst_data=inst_data)

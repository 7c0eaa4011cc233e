"""Dagster's instance for a Tally home: its state lives in `<home>/dagster`, never in a checkout.

`dagster.yaml` (at the top of the repository, and written into `<home>/dagster/` by `tally`) names
the classes below. Each is Dagster's own SQLite/local class with one difference: without a
`base_dir` in the configuration, it uses `<TALLY_HOME>/dagster` (default `./data/dagster`). So
plain `dagster dev` from a checkout needs only `TALLY_HOME`, and `tally` sets `DAGSTER_HOME` to
that directory. The shared deployment replaces `storage` with PostgreSQL (see docs/dagster.md).
"""

from __future__ import annotations

import sqlite3
from collections import OrderedDict
from pathlib import Path

from dagster import Field, StringSource
from dagster._core.storage.local_compute_log_manager import LocalComputeLogManager
from dagster._core.storage.root import LocalArtifactStorage
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage
from sqlalchemy import event
from sqlalchemy.engine import Engine

from pipelines.lib.home import resolve_home


def dagster_dir(home: str | None = None) -> Path:
    """`<home>/dagster`: Dagster's runs, event logs, schedules and compute logs for the home."""
    return resolve_home(home).root / "dagster"


_QUICK: set[Path] = set()  # the directories of the instances created below
_ANCHORS: OrderedDict[str, sqlite3.Connection] = OrderedDict()  # the most recent files
_MAX_ANCHORS = 16  # a long-lived process (daemon, webserver) sees a new file per run


@event.listens_for(Engine, "connect")
def _quick_commits(connection, _record) -> None:
    """Dagster's SQLite files in WAL mode with `synchronous=NORMAL`: a commit no longer waits
    for the disk (about 40 ms an event here, most of a billing run's orchestration time). A power
    loss can lose the last run events, never billing data (the lake and the engine's files are
    written and fsync'd by Tally): a lost materialization record only makes a day run again."""
    if not _QUICK or not isinstance(connection, sqlite3.Connection):
        return
    files = [row[2] for row in connection.execute("PRAGMA database_list") if row[1] == "main"]
    if files and files[0] and any(Path(files[0]).is_relative_to(d) for d in _QUICK):
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        if files[0] in _ANCHORS:
            _ANCHORS.move_to_end(files[0])
        else:
            # Dagster opens a connection per operation; the last one to close checkpoints the
            # WAL (an fsync). One connection kept open per file makes closing cheap.
            anchor = sqlite3.connect(files[0], check_same_thread=False)
            anchor.execute("PRAGMA schema_version").fetchall()  # maps the WAL index: holds it
            _ANCHORS[files[0]] = anchor
            while len(_ANCHORS) > _MAX_ANCHORS:
                _ANCHORS.popitem(last=False)[1].close()


_OPTIONAL_BASE = {"base_dir": Field(StringSource, is_required=False)}


class HomeSqliteStorage(DagsterSqliteStorage):
    """Dagster's SQLite storage, by default in `<TALLY_HOME>/dagster`."""

    @classmethod
    def config_type(cls):
        return _OPTIONAL_BASE

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        base = config_value.get("base_dir") or str(dagster_dir())
        _QUICK.add(Path(base).resolve())
        return DagsterSqliteStorage.from_local(base_dir=base, inst_data=inst_data)


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

"""`tally migrate`: move a lake of the earlier format (Parquet files listed by an LMDB catalog in
`<lake>/_catalog`) into the Iceberg tables, with every signal, sequence number, duplicate flag,
reject and idempotency key preserved.

Safe to run again after a crash: files are hard-linked (or copied, or uploaded) to their new
place, registered under one landing intent (recovery commits what a crash left), and the old
catalog and files are removed only at the end.
"""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import lmdb

from pipelines.landing.errors import LEGACY_CATALOG
from pipelines.landing.lake import Lake
from pipelines.landing.schema import REJECTS, SIGNALS

_I64 = struct.Struct(">q")


def _legacy(root: Path) -> tuple[list[tuple[str, dict]], dict[str, int], lmdb.Environment]:
    env = lmdb.open(str(root / LEGACY_CATALOG), max_dbs=8, readonly=True, lock=False)
    files = []
    meta = {}
    with env.begin() as txn:
        for key, value in txn.cursor(db=env.open_db(b"files", txn=txn)):
            files.append((key.decode(), json.loads(value)))
        for key, value in txn.cursor(db=env.open_db(b"meta", txn=txn)):
            meta[key.decode()] = _I64.unpack(value)[0]
    return files, meta, env


def _keys(env: lmdb.Environment, chunk: int = 500_000):
    """The old index's keys (same packing as today's) with their first copy's sequence number."""
    with env.begin() as txn:
        batch = []
        for key, value in txn.cursor(db=env.open_db(b"idem", txn=txn)):
            batch.append((bytes(key), int(value)))
            if len(batch) >= chunk:
                yield batch
                batch = []
        if batch:
            yield batch


def migrate(lake_root: Path, say: Callable[[str], None] = lambda _: None) -> dict[str, int]:
    """Move the legacy lake at `lake_root` into the Iceberg tables; returns what moved."""
    root = Path(lake_root)
    if not (root / LEGACY_CATALOG / "data.mdb").exists():
        return {}
    files, meta, env = _legacy(root)
    lake = Lake(root, legacy_ok=True)
    batch = meta.get("next_batch", 1)
    targets = []
    for rel, record in sorted(files, key=lambda f: (f[1]["kind"], f[1]["min_seq"])):
        kind = record["kind"]
        assert kind in (SIGNALS, REJECTS), kind
        targets.append((root / rel, lake.location(kind, record["date"], record["batch"])))
    say(f"{len(targets):,} files, {meta.get('next_seq', 1) - 1:,} signals")
    with lake.index.writer():
        listed = {lf.path for kind in (SIGNALS, REJECTS) for lf in lake.files(kind=kind)}
        todo = [(old, new) for old, new in targets if new not in listed]
        lake.index.intend(batch, [new for _, new in todo])
        for old, new in todo:
            lake.objects.place(old, new)
        moved_keys = 0
        for keys in _keys(env):
            lake.index.commit(batch, keys, meta.get("next_seq", 1), meta.get("last_received_us", 0))
            moved_keys += len(keys)
        lake.index.commit(batch, [], meta.get("next_seq", 1), meta.get("last_received_us", 0))
        say(f"{moved_keys:,} idempotency keys")
        lake._recover()  # registers the files of the committing intent, then clears it
    env.close()
    shutil.rmtree(root / LEGACY_CATALOG)
    for kind in (SIGNALS, REJECTS):
        shutil.rmtree(root / kind, ignore_errors=True)
    return {"files": len(targets), "keys": moved_keys, "signals": meta.get("next_seq", 1) - 1}

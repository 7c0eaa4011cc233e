"""kill -9 a landing process mid-batch: every acknowledged signal survives exactly once, and no
reader (catalog-driven or globbing the directory) ever sees a partial file. In both storage
deployments: embedded, and PostgreSQL + S3."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.compute as pc

from pipelines.landing.ingest import ingest_signals
from pipelines.landing.lake import Lake

WRITER = r"""
import sys
from pathlib import Path
from pipelines.landing.lake import Lake
from pipelines.landing.ingest import ingest_signals
sys.path.insert(0, sys.argv[3])
from test_crash import batch
lake = Lake(Path(sys.argv[1]))
start = int(sys.argv[2])
for b in range(start, start + 1000):
    ingest_signals(lake, batch(b))
    print(f"ack {b}", flush=True)
"""

READER = r"""
import glob, sys, time, os
from pathlib import Path
import pyarrow.parquet as pq
from pipelines.landing.lake import Lake
lake = Lake(Path(sys.argv[1]))
reads = errors = 0
deadline = time.time() + 120
while not os.path.exists(sys.argv[2]) and time.time() < deadline:
    files = lake.files()
    for f in files:
        try:
            lake.read(f)
            reads += 1
        except FileNotFoundError:
            pass  # replaced by compaction and collected: gone, never partial
        except Exception as exc:
            errors += 1
            print(f"partial read {f.path}: {exc}", flush=True)
    if not lake.storage.local:
        continue
    for p in glob.glob(lake.data_glob("signals")):
        try:
            pq.read_table(p)
            reads += 1
        except FileNotFoundError:
            pass  # replaced by compaction and collected: gone, never partial
        except Exception as exc:
            errors += 1
            print(f"partial read {p}: {exc}", flush=True)
print(f"reads {reads} errors {errors}", flush=True)
"""

BATCH = 20_000


def batch(b: int) -> list[dict]:
    return [
        {
            "eventName": "chat_message",
            "customer": {"externalCustomerId": f"cus_{i % 7}"},
            "attribution": {"externalProductId": "chatbot"},
            "timestamp": f"2026-11-{1 + i % 9:02d}T{i % 24:02d}:00:00Z",
            "data": {"external_user_id": f"usr_{i % 50}", "i": i, "pad": "x" * 100},
            "idempotencyKey": f"b{b}-{i}",
        }
        for i in range(BATCH)
    ]


def _run_until_killed(root: Path, start: int, acks_wanted: int) -> list[int]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root), str(start), str(Path(__file__).parent)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    acked = []
    assert writer.stdout is not None
    for line in writer.stdout:
        acked.append(int(line.split()[1]))
        if len(acked) >= acks_wanted:
            break
    time.sleep(0.05 + 0.1 * (start % 3))  # land somewhere inside the next batch
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    return acked


def test_kill_9_mid_batch_loses_nothing_acknowledged(tmp_path, storage_mode):
    root = tmp_path / "lake"
    Lake(root)  # create the catalog before the reader starts
    stop = tmp_path / "stop"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(root), str(stop)], stdout=subprocess.PIPE, text=True
    )
    acked: list[int] = []
    start = 0
    for round_ in range(3 if storage_mode == "embedded" else 2):  # moto is slow: 2 there
        got = _run_until_killed(root, start, acks_wanted=2 + round_)
        acked += got
        in_flight = got[-1] + 1
        # The client retries the unacknowledged batch, as the SDK does after a failure.
        lake = Lake(root)
        retry = ingest_signals(lake, batch(in_flight))
        assert retry.ingested + retry.duplicates == BATCH
        acked.append(in_flight)
        start = in_flight + 1
    stop.touch()
    out, _ = reader.communicate(timeout=120)
    assert "errors 0" in out, out
    assert int(out.split("reads ")[1].split()[0]) > 0

    lake = Lake(root)
    tables = [lake.read(f) for f in lake.files()]
    keys: list[str] = []
    for t in tables:
        keys += t.filter(pc.invert(t["is_duplicate"]))["idempotency_key"].to_pylist()
    assert len(keys) == len(set(keys)), "an idempotency key was accepted twice"
    expected = {f"b{b}-{i}" for b in acked for i in range(BATCH)}
    assert expected <= set(keys), "an acknowledged signal is missing"
    assert not list(root.rglob("*.tmp")), "a temporary file survived recovery"
    assert lake.index.intents() == [], "recovery left an intent behind"

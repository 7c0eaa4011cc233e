"""`tally serve`'s group commit (pipelines/api/ingest.py): under a steady stream the committer
publishes to the tables every SETTLE_SECONDS without compacting; at a pause (or every
COMPACT_SECONDS) it compacts too, so a day's file count stays bounded and nothing is lost."""

from __future__ import annotations

import json
import time

from pipelines.api import ingest
from pipelines.landing.lake import COMPACT_FANIN, Lake
from pipelines.landing.validate import validate


def _request(start: int, n: int = 20):
    docs = [
        json.dumps(
            {
                "eventName": "email_sent",
                "customer": {"externalCustomerId": "cus_acme"},
                "attribution": {"externalProductId": "outreach"},
                "timestamp": "2026-11-03T10:00:00Z",
                "data": {"external_user_id": "usr_1"},
                "idempotencyKey": f"k{i}",
            }
        ).encode()
        for i in range(start, start + n)
    ]
    return validate(docs)


def _stream(committer: ingest.Committer, seconds: float, first: int = 0) -> int:
    """Requests one after another for `seconds` (never idle for IDLE_SECONDS); returns the next
    key number."""
    n, until = first, time.monotonic() + seconds
    while time.monotonic() < until:
        ack = committer.submit(_request(n), f"req{n}").result(timeout=30)
        assert (ack.ingested, ack.duplicates) == (20, 0)
        n += 20
    return n


def test_a_steady_stream_publishes_without_compacting_and_a_pause_compacts(tmp_path, monkeypatch):
    monkeypatch.setattr(ingest, "SETTLE_SECONDS", 0.05)
    monkeypatch.setattr(ingest, "IDLE_SECONDS", 0.3)
    monkeypatch.setattr(ingest, "COMPACT_SECONDS", 3600.0)
    lake = Lake(tmp_path / "lake")
    settles: list[bool] = []
    settle = lake.settle

    def recording(compact: bool = True) -> None:
        settles.append(compact)
        settle(compact=compact)

    monkeypatch.setattr(lake, "settle", recording)
    committer = ingest.Committer(lake)
    try:
        sent = _stream(committer, 1.0)
        assert settles and not any(settles)  # published under the stream, never compacted
        published = len(lake.table("signals").inspect.files())  # the tables as published
        assert published >= COMPACT_FANIN
        deadline = time.monotonic() + 10
        while not any(settles) and time.monotonic() < deadline:
            time.sleep(0.05)  # the pause
        assert settles[-1] is True
        files = lake.files()
        assert len(files) < published
        assert sum(f.rows for f in files) == sent  # every acknowledged signal, once

        monkeypatch.setattr(ingest, "COMPACT_SECONDS", 0.2)  # a stream longer than that
        settles.clear()
        _stream(committer, 1.0, first=sent)
        assert True in settles and False in settles
    finally:
        committer.close()
        lake.close()

"""`tally serve`'s group commit (pipelines/api/ingest.py): under a steady stream the committer
publishes to the tables every SETTLE_SECONDS without compacting; at a pause (or every
COMPACT_SECONDS) it compacts too, so a day's file count stays bounded and nothing is lost."""

from __future__ import annotations

import json
import time

from pipelines.api import ingest
from pipelines.landing.lake import COMPACT_FANIN, Lake
from pipelines.landing.schema import SIGNAL_SCHEMA, SIGNALS
from pipelines.landing.validate import validate
from pipelines.storage.catalog import table as catalog_table


def _docs(start: int, n: int) -> list[bytes]:
    return [
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


def _request(start: int, n: int = 20):
    return validate(_docs(start, n))


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
    monkeypatch.setattr(ingest, "IDLE_SECONDS", 2.0)  # a stalled test thread is no pause
    monkeypatch.setattr(ingest, "COMPACT_SECONDS", 3600.0)
    lake = Lake(tmp_path / "lake")
    settles: list[bool] = []
    settle = lake.settle

    def recording(compact: bool = True) -> None:
        settle(compact=compact)
        settles.append(compact)  # once done: the test reads what it left

    monkeypatch.setattr(lake, "settle", recording)
    committer = ingest.Committer(lake)
    try:
        sent = _stream(committer, 1.0)
        assert settles and not any(settles)  # published under the stream, never compacted
        published = len(_table_files(lake))  # the table as published
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


def _table_files(lake: Lake):
    """The signals table's files as an outside reader sees them: loaded from the catalog afresh
    (not the lake's own table object, which the committer thread uses), nothing published first."""
    return catalog_table(lake.storage, SIGNALS, SIGNAL_SCHEMA, "timestamp").inspect.files()


def _in_table(lake: Lake) -> int:
    """Signals the Iceberg table lists, read as an outside reader would."""
    return sum(_table_files(lake)["record_count"].to_pylist())


def test_ack_committed_puts_every_acknowledged_signal_in_the_table_first(tmp_path, monkeypatch):
    monkeypatch.setattr(ingest, "IDLE_SECONDS", 30.0)  # no settle during the test
    monkeypatch.setattr(ingest, "SETTLE_SECONDS", 30.0)
    for committed, visible in ((False, 0), (True, 20)):
        lake = Lake(tmp_path / f"lake-{committed}")
        committer = ingest.Committer(lake, ack_committed=committed)
        try:
            ack = committer.submit(_request(0), "req").result(timeout=30)
            assert ack.ingested == 20
            assert _in_table(lake) == visible  # durable either way; in the table only if asked
        finally:
            committer.close()  # settles: the durable batch is in the table afterwards
        assert _in_table(lake) == 20
        lake.close()


def test_tally_serve_ack_committed_over_http(home, monkeypatch):
    """`tally serve --ack committed` (create_app's flag): a 200 means the signals are already
    in the table an outside Iceberg reader lists."""
    monkeypatch.setattr(ingest, "IDLE_SECONDS", 30.0)  # no settle could have published them
    monkeypatch.setattr(ingest, "SETTLE_SECONDS", 30.0)
    from starlette.testclient import TestClient

    from pipelines.api.app import create_app

    app = create_app(home, ["t"], ack_committed=True)
    body = {"signals": [json.loads(doc) for doc in _docs(0, 7)]}
    with TestClient(app, headers={"Authorization": "Bearer t"}) as client:
        reply = client.post("/api/v2/signals/bulk", json=body)
        assert reply.status_code == 200, reply.text
        assert _in_table(Lake(home.lake)) == 7

"""Validation and landing rules (docs/concepts.md), through every entry point."""

from __future__ import annotations

import glob
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import start_tally
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.landing import readers
from pipelines.landing.ingest import ingest_signals
from pipelines.landing.lake import Lake
from pipelines.landing.readers import IngestError, ingest_file, ingest_files, worker_pool
from pipelines.landing.validate import validate

EXACT = '{"n": 12345678901234567890, "x": 0.1, "Team": "a", "team": "b", "u": "é"}'


def sig(**over) -> dict:
    base = {
        "eventName": "email_sent",
        "customer": {"externalCustomerId": "cus_acme"},
        "attribution": {"externalProductId": "outreach"},
        "timestamp": "2026-11-03T10:00:00Z",
        "data": {"external_user_id": "usr_1"},
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not ...}


def landed(lake: Lake) -> list[dict]:
    files = [str(f.path) for f in lake.files()]
    if not files:
        return []
    rel = duckdb.sql(
        "select *, date::VARCHAR as date from read_parquet($files, hive_partitioning=true) "
        "order by seq",
        params={"files": files},
    )
    return [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]


def rejects(lake: Lake) -> list[dict]:
    files = [str(f.path) for f in lake.files(kind="rejects")]
    if not files:
        return []
    rel = duckdb.sql("select * from read_parquet($f)", params={"f": files})
    return [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]


REJECTIONS = [
    (sig(eventName=...), "eventName is missing"),
    (sig(eventName=""), "eventName is empty"),
    (sig(eventName=7), "eventName must be a string"),
    (sig(eventName="e" * 257), "eventName is 257 characters, over the 256 limit"),
    (sig(customer=...), "customer is missing"),
    (sig(customer={}), "customer has no non-empty customerId or externalCustomerId"),
    (sig(customer={"externalCustomerId": ""}), "customer has no non-empty"),
    (sig(customer={"externalCustomerId": 5}), "customer.externalCustomerId must be a string"),
    (sig(customer="cus_acme"), "customer must be an object"),
    (sig(timestamp="yesterday"), "timestamp 'yesterday' is not an RFC3339 date-time"),
    (sig(timestamp="2026-11-03"), "is not an RFC3339 date-time"),
    (sig(timestamp="2026-11-03T10:00:00"), "has no time zone"),
    (sig(timestamp=1700000000), "timestamp 1700000000 is not an RFC3339"),
    (sig(data=[1, 2]), "data must be a JSON object, got an array"),
    (sig(data="x"), "data must be a JSON object, got a string"),
    (sig(data=3), "data must be a JSON object, got a number"),
    (sig(data={"k": "v" * 70_000}), "over the 64 KiB limit"),
    (sig(idempotencyKey=12), "idempotencyKey must be a string"),
    (sig(idempotencyKey="k" * 257), "idempotencyKey is 257 characters, over the 256 limit"),
    (sig(attribution="outreach"), "attribution must be an object or null"),
]


@pytest.mark.parametrize(("signal", "reason"), REJECTIONS)
def test_each_rejection_has_a_specific_reason(signal, reason, lake):
    raw = json.dumps(signal).encode()
    report = ingest_signals(lake, [raw, json.dumps(sig()).encode()])
    assert (report.ingested, report.failed) == (1, 1)
    assert reason in report.errors[0][1]
    kept = rejects(lake)
    assert len(kept) == 1 and kept[0]["raw"] == raw.decode() and reason in kept[0]["reason"]


def test_not_json_and_not_an_object_are_rejected(lake):
    report = ingest_signals(lake, [b"{nope", b"[1]", b'"s"'])
    reasons = [r for _, r in report.errors]
    assert reasons[0].startswith("invalid JSON")
    assert reasons[1] == "a signal must be a JSON object, got an array"
    assert report.failed == 3 and report.ingested == 0


def test_limits_are_inclusive(lake):
    data = {"k": "v" * (64 * 1024 - 8)}
    assert len(json.dumps(data, separators=(",", ":"))) == 64 * 1024
    ok = [sig(eventName="e" * 256, idempotencyKey="k" * 256, data=data)]
    report = ingest_signals(lake, ok)
    assert (report.ingested, report.failed) == (1, 0)
    one_more = ingest_signals(lake, [sig(data={"k": "v" * (64 * 1024 - 7)})])
    assert one_more.failed == 1 and "65537 bytes" in one_more.errors[0][1]


def test_nulls_for_optional_fields_are_accepted(lake):
    report = ingest_signals(
        lake, [sig(attribution=None, timestamp=None, data=None, idempotencyKey=None)]
    )
    assert report.ingested == 1
    row = landed(lake)[0]
    assert row["data"] is None and row["external_product_id"] is None
    assert row["timestamp"] == row["received_at"]


def test_data_is_byte_exact_through_every_entry_point(lake, tmp_path):
    line = (
        '{"eventName":"e","customer":{"externalCustomerId":"c"},"data":'
        + EXACT
        + ',"idempotencyKey":"jsonl"}'
    )
    (tmp_path / "a.jsonl").write_text(line + "\n", encoding="utf-8")
    (tmp_path / "b.json").write_text('{"signals": [' + line.replace("jsonl", "json") + "]}")
    pq.write_table(
        pa.table(
            {
                "eventName": ["e"],
                "externalCustomerId": ["c"],
                "data": [EXACT],
                "idempotencyKey": ["parquet"],
            }
        ),
        tmp_path / "c.parquet",
    )
    for name in ("a.jsonl", "b.json", "c.parquet"):
        assert ingest_file(lake, tmp_path / name).ingested == 1
    python = json.loads(EXACT, parse_float=lambda s: __import__("decimal").Decimal(s))
    assert ingest_signals(lake, [sig(data=python, idempotencyKey="py")]).ingested == 1
    rows = landed(lake)
    assert [r["data"] for r in rows[:3]] == [EXACT] * 3
    # From Python objects: same keys, order, case and digits (compact separators).
    assert rows[3]["data"] == EXACT.replace(": ", ":").replace(", ", ",")
    assert json.loads(rows[3]["data"])["n"] == 12345678901234567890


def test_ids_times_and_partitions(lake):
    report = ingest_signals(
        lake,
        [
            sig(timestamp="2026-11-03T23:30:00-02:00"),  # 2026-11-04 01:30 UTC
            sig(timestamp="2026-11-03T00:00:00Z"),
            sig(timestamp=None),
        ],
    )
    assert report.ingested == 3
    rows = landed(lake)
    ids = [r["signal_id"] for r in rows]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert rows[0]["date"] == "2026-11-04"
    assert rows[0]["timestamp"] == datetime(2026, 11, 4, 1, 30, tzinfo=UTC)
    assert rows[1]["date"] == "2026-11-03"
    assert rows[2]["timestamp"] == rows[2]["received_at"]
    assert rows[2]["date"] == rows[2]["received_at"].date().isoformat()
    later = ingest_signals(lake, [sig()])
    assert later.ingested == 1
    rows = landed(lake)
    assert rows[-1]["signal_id"] > ids[-1] and rows[-1]["received_at"] > rows[0]["received_at"]
    paths = [f.path for f in lake.files()]
    assert all(Path(p).parent.name.startswith("date=") and p.endswith(".parquet") for p in paths)


def test_customer_and_product_id_forms(lake):
    ingest_signals(
        lake,
        [
            sig(customer={"customerId": "cus_internal", "externalCustomerId": "ext"}),
            sig(attribution={"productId": "prod_1"}),
            sig(attribution={}),
        ],
    )
    a, b, c = landed(lake)
    assert (a["customer_id"], a["external_customer_id"]) == ("cus_internal", None)
    assert (b["product_id"], b["external_product_id"]) == ("prod_1", None)
    assert (c["product_id"], c["external_product_id"]) == (None, None)


def test_idempotency_first_received_wins_forever(lake):
    first = ingest_signals(
        lake,
        [
            sig(idempotencyKey="k1", data={"v": 1}),
            sig(idempotencyKey="k1", data={"v": 2}),
            sig(idempotencyKey="k2"),
        ],
    )
    assert (first.ingested, first.duplicates) == (2, 1)
    retry = ingest_signals(
        lake,
        [
            sig(idempotencyKey="k1", data={"v": 3}),
            sig(idempotencyKey="k2"),
            sig(idempotencyKey="k3"),
        ],
    )
    assert (retry.ingested, retry.duplicates) == (1, 2)
    rows = landed(lake)
    originals = [r for r in rows if not r["is_duplicate"]]
    dups = [r for r in rows if r["is_duplicate"]]
    assert [json.loads(r["data"])["v"] for r in originals if r["idempotency_key"] == "k1"] == [1]
    assert len(dups) == 3  # kept for audit, never lost
    k1 = next(r["signal_id"] for r in originals if r["idempotency_key"] == "k1")
    assert {r["duplicate_of"] for r in dups if r["idempotency_key"] == "k1"} == {k1}
    # Signals without a key are never duplicates of each other.
    assert ingest_signals(lake, [sig(), sig()]).duplicates == 0


def test_long_and_empty_idempotency_keys(lake):
    long_key = "é" * 256  # 512 UTF-8 bytes: stored by digest
    report = ingest_signals(
        lake,
        [
            sig(idempotencyKey=long_key),
            sig(idempotencyKey=""),
            sig(idempotencyKey=long_key[:-1] + "e"),
            sig(idempotencyKey=long_key),
            sig(idempotencyKey=""),
        ],
    )
    assert (report.ingested, report.duplicates) == (3, 2)


def test_idempotency_across_processes(home, tmp_path):
    """Two `tally ingest` processes on one home share one idempotency index."""
    f = tmp_path / "s.jsonl"
    f.write_text("".join(json.dumps(sig(idempotencyKey=f"k{i}")) + "\n" for i in range(50)))
    procs = [start_tally("ingest", str(f), home=home, text=True) for _ in range(2)]
    outs = [p.communicate()[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    totals = sorted(outs)
    assert totals == [
        "ingested 0  duplicates 50  failed 0\n",
        "ingested 50  duplicates 0  failed 0\n",
    ]


def test_jsonl_errors_name_file_and_line(lake, tmp_path):
    f = tmp_path / "in.jsonl"
    f.write_text(json.dumps(sig()) + "\n\n" + "oops\n" + json.dumps(sig(customer={})) + "\n")
    seen = []
    report = ingest_file(lake, f, on_errors=seen.extend)
    assert report.ingested == 1 and report.failed == 2
    assert [loc for loc, _ in seen] == [f"{f}:3", f"{f}:4"]


@pytest.mark.parametrize("pooled", [False, True])
def test_files_in_small_ranges_and_batches_keep_lines_sources_and_counts(
    pooled, tmp_path, monkeypatch
):
    """Ranges of a few bytes (lines cross every boundary, one is longer than a read, the last has
    no newline), batches spanning files, landing in the background: each file's report, each bad
    line's number and each row's source are those of one plain pass over the lines."""
    monkeypatch.setattr(readers, "CHUNK_BYTES", 100)
    long_data = {"external_user_id": "usr_1", "pad": "x" * 70_000}  # > 64 KiB: rejected
    files = []
    for n in range(3):
        f = tmp_path / f"f{n}.jsonl"
        lines = [json.dumps(sig(idempotencyKey=f"k{i % 7}")) for i in range(20)]
        lines[5] = "oops"
        lines[9] = ""
        lines[12] = json.dumps(sig(data=long_data))
        f.write_text("\n".join(lines))  # no newline after the last line
        files.append(f)
    lake = Lake(tmp_path / f"lake-{pooled}")
    seen = []
    pool = worker_pool(2) if pooled else None
    try:
        reports = ingest_files(lake, files, on_errors=seen.extend, pool=pool, batch_rows=8)
    finally:
        if pool:
            pool.shutdown()
    assert [(r.ingested, r.duplicates, r.failed) for r in reports] == [
        (7, 10, 2),  # keys k0..k6 are new in the first file only
        (0, 17, 2),
        (0, 17, 2),
    ]
    expected = [
        (6, "invalid JSON: JSON is malformed: invalid character (byte 0)"),
        (13, "data is 70040 bytes serialized, over the 64 KiB limit"),
    ]
    assert seen == [(f"{f}:{line}", reason) for f in files for line, reason in expected]
    rows = landed(lake)
    assert len(rows) == 51
    assert {r["source"] for r in rows} == {str(f) for f in files}
    con = duckdb.connect()
    con.read_parquet([str(x.path) for x in lake.files()]).create_view("l")
    per_source = dict(con.sql("SELECT source, count(*) FROM l GROUP BY ALL").fetchall())
    assert per_source == {str(f): 17 for f in files}
    firsts = con.sql("SELECT source, seq FROM l WHERE NOT is_duplicate ORDER BY seq").fetchall()
    assert {src for src, _ in firsts} == {str(files[0])}


@pytest.mark.parametrize("pooled", [False, True])
def test_a_bad_file_stops_the_ingest_after_the_files_before_it_landed_whole(pooled, lake, tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text("".join(json.dumps(sig(idempotencyKey=f"g{i}")) + "\n" for i in range(30)))
    bad = tmp_path / "bad.json"
    bad.write_text('{"rows": []}')
    never = tmp_path / "never.jsonl"
    never.write_text(json.dumps(sig(idempotencyKey="never")) + "\n")
    pool = worker_pool(2) if pooled else None
    try:
        with pytest.raises(IngestError, match='"signals" list'):
            ingest_files(lake, [good, bad, never], pool=pool, batch_rows=1000)
    finally:
        if pool:
            pool.shutdown()
    assert sorted(r["idempotency_key"] for r in landed(lake)) == sorted(f"g{i}" for i in range(30))


def test_json_file_shapes_and_bad_files(lake, tmp_path):
    (tmp_path / "list.json").write_text(json.dumps([sig(), sig(eventName="")]))
    report = ingest_file(lake, tmp_path / "list.json")
    assert (report.ingested, report.failed) == (1, 1)
    assert report.errors[0][0].endswith("list.json:[1]")
    (tmp_path / "bad.json").write_text('{"rows": []}')
    with pytest.raises(IngestError, match='"signals" list'):
        ingest_file(lake, tmp_path / "bad.json")
    (tmp_path / "x.csv").write_text("a,b")
    with pytest.raises(IngestError, match="unsupported file type"):
        ingest_file(lake, tmp_path / "x.csv")


def test_parquet_with_snake_case_columns(lake, tmp_path):
    table = pa.table(
        {
            "event_name": ["e", None],
            "external_customer_id": ["c", "c"],
            "external_product_id": ["p", None],
            "timestamp": pa.array(
                [datetime(2026, 11, 2, tzinfo=UTC)] * 2, pa.timestamp("us", tz="UTC")
            ),
            "idempotency_key": ["a", "b"],
        }
    )
    pq.write_table(table, tmp_path / "s.parquet")
    report = ingest_file(lake, tmp_path / "s.parquet")
    assert (report.ingested, report.failed) == (1, 1)
    assert report.errors[0] == (f"{tmp_path / 's.parquet'}:row 2", "eventName is missing")
    assert landed(lake)[0]["external_product_id"] == "p"


def test_validate_is_pure_and_keeps_order():
    docs = [json.dumps(sig(eventName=f"e{i}")).encode() for i in range(5)]
    docs.insert(2, b"{}")
    v = validate(docs)
    assert v.accepted.column("event_name").to_pylist() == [f"e{i}" for i in range(5)]
    assert v.reject_index == [2]


def test_compaction_bounds_files_and_keeps_every_row(lake, monkeypatch):
    monkeypatch.setattr("pipelines.landing.lake.GC_GRACE_SECONDS", 0.0)
    for b in range(60):
        ingest_signals(lake, [sig(idempotencyKey=f"{b}-{i}") for i in range(3)])
    files = lake.files()
    assert len(files) <= 6, [f.rows for f in files]
    rows = landed(lake)
    assert len(rows) == 180 and len({r["signal_id"] for r in rows}) == 180
    # replaced files stay while a kept snapshot lists them; expiring the snapshots frees them
    assert len(glob.glob(lake.data_glob("signals"))) > 6
    expired = lake.maintain(retention=timedelta(0), keep=1)
    assert expired["signals"] > 0
    assert len(glob.glob(lake.data_glob("signals"))) == len(lake.files()) <= 6
    assert len(landed(lake)) == 180
    assert not list(lake.root.rglob("*.tmp"))
    assert lake.partitions()["2026-11-03"] >= 60


def test_recovery_removes_orphans_of_a_crashed_batch(lake):
    ingest_signals(lake, [sig(idempotencyKey="a")])
    orphan = Path(lake.location("signals", "2026-11-03", 999999))
    orphan.write_bytes(b"PAR1 half")
    lake.index.intend(999999, [str(orphan)])  # a writer died while writing its files
    report = ingest_signals(lake, [sig(idempotencyKey="b")])
    assert report.ingested == 1 and not orphan.exists()
    assert len(landed(lake)) == 2
    assert lake.index.intents() == []


def test_recovery_rolls_a_committed_batch_forward(lake, monkeypatch):
    """A writer that died after indexing the keys but before the table commit: the next writer
    commits its files, so the client's retry finds every signal a duplicate of a landed one."""
    ingest_signals(lake, [sig(idempotencyKey="a")])

    def crash(*args, **kwargs):
        raise OSError("killed")

    with monkeypatch.context() as patch:
        patch.setattr(Lake, "_commit", crash)
        with pytest.raises(OSError):
            ingest_signals(lake, [sig(idempotencyKey="b"), sig(idempotencyKey="c")])
    # The next reader (or writer) commits the batch: its files and keys were durable.
    assert {r["idempotency_key"] for r in landed(lake)} == {"a", "b", "c"}
    retry = ingest_signals(lake, [sig(idempotencyKey="b"), sig(idempotencyKey="c")])
    assert (retry.ingested, retry.duplicates) == (0, 2)
    rows = landed(lake)
    first = [r["idempotency_key"] for r in rows if not r["is_duplicate"]]
    assert sorted(first) == ["a", "b", "c"] and lake.index.intents() == []


@given(
    batches=st.lists(
        st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "c", "", "x" * 500])), max_size=8),
        min_size=1,
        max_size=5,
    )
)
@settings(max_examples=40)
def test_small_and_large_batch_duplicate_paths_agree(batches, tmp_path_factory):
    """HTTP-sized batches find duplicates with lists, file-sized ones with Polars: same flags."""
    from pipelines.landing import dedup

    results = []
    for small in (0, 1_000_000):
        lake = Lake(tmp_path_factory.mktemp("lake"))
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(dedup, "SMALL_BATCH", small)
            for batch in batches:
                ingest_signals(lake, [sig(idempotencyKey=k) for k in batch])
        results.append(
            [(r["idempotency_key"], r["is_duplicate"], r["duplicate_of"]) for r in landed(lake)]
        )
    assert results[0] == results[1]

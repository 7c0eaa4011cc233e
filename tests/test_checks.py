"""The publishing checks catch what they guard against (pipelines/billing/checks.py), and the
idempotency check re-verifies exactly the part files that are new or rewritten."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import pytest

from pipelines.billing import checks
from pipelines.billing.engine import run_engine
from pipelines.core.home import Home
from pipelines.landing.lake import Lake
from pipelines.landing.readers import ingest_file
from pipelines.pricing.config import load_config
from pipelines.pricing.price import fact_signal_files
from pipelines.synth import synth

DAY = "2026-11-02"


@pytest.fixture(params=["lookups", "query"])
def home(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    """A processed home; each test runs with both first-copy strategies: lake index lookups and
    the set-based query over every landed key (chosen by the share of the lake to verify)."""
    monkeypatch.setattr(checks, "SCAN_SHARE", float("inf") if request.param == "lookups" else 0)
    work = synth(tmp_path / "w", signals=1500, days=3, customers=2, seed=5, start=date(2026, 11, 1))
    home = Home(tmp_path / "home")
    (home.root / "config").mkdir(parents=True)
    for f in work.config_dir.glob("*.yaml"):
        (home.config_dir / f.name).write_text(f.read_text())
    lake = Lake(home.lake)
    for path in work.signal_files:
        ingest_file(lake, path)
    run_engine(home)
    return home


def _tamper(home: Home, sql: str) -> Path:
    """Write a late part for DAY from `sql` over view `day_rows` (the day's priced rows)."""
    files = [str(p) for p in fact_signal_files(home.engine_dir, DAY)]
    out = home.engine_dir / "fact_signal" / f"date={DAY}" / "late-9999999999999999.parquet"
    con = duckdb.connect()
    con.read_parquet(files).create_view("day_rows")
    con.execute(f"COPY ({sql}) TO '{out}' (FORMAT parquet)")
    return out


def test_clean_run_passes_and_records_verified_parts(home: Home) -> None:
    days = sorted(Lake(home.lake).partitions())
    assert checks.idempotency(home, days) == []
    assert checks.signal_status(home, days) == []
    assert checks.conservation(home, load_config(home.config_dir), days[-1]) == []
    record = json.loads((home.engine_dir / "checks" / "first_copies.json").read_text())
    assert set(record) == {str(p) for d in days for p in fact_signal_files(home.engine_dir, d)}


def test_a_signal_priced_twice_is_caught(home: Home) -> None:
    _tamper(home, "SELECT * FROM day_rows WHERE idempotency_key IS NOT NULL LIMIT 1")
    offenders = checks.idempotency(home, [DAY])
    assert [problem for _, problem in offenders][:1] == [2]  # the key counted twice
    assert any("appears 2 times" in p for _, p in checks.signal_status(home, [DAY]))


def test_a_charged_copy_that_is_not_the_first_is_caught_in_a_new_part(home: Home) -> None:
    assert checks.idempotency(home, [DAY]) == []  # verifies and records data.parquet
    # A row whose key's first copy is another signal: the sequence number says which row it is.
    bad = _tamper(
        home,
        "SELECT * REPLACE (seq + 1000000 AS seq) FROM day_rows "
        "WHERE idempotency_key IS NOT NULL LIMIT 1",
    )
    # the in-days count also sees the key twice; the first-copy lookup names the new part's row
    offenders = checks.idempotency(home, [DAY])
    assert "charged copy is not the first received" in {p for _, p in offenders}
    bad.unlink()
    assert checks.idempotency(home, [DAY]) == []


def test_a_rewritten_part_is_verified_again(home: Home) -> None:
    assert checks.idempotency(home, [DAY]) == []
    (data,) = [p for p in fact_signal_files(home.engine_dir, DAY) if p.name == "data.parquet"]
    con = duckdb.connect()
    rows = con.read_parquet(str(data)).filter("idempotency_key IS NOT NULL").limit(1)
    key = rows.fetchall()[0][rows.columns.index("idempotency_key")]
    con.read_parquet(str(data)).create_view("d")
    tmp = data.with_name("rewrite.tmp")
    con.execute(
        f"COPY (SELECT * REPLACE (CASE WHEN idempotency_key = $k THEN seq + 1000000 ELSE seq END "
        f"AS seq) FROM d) TO '{tmp}' (FORMAT parquet)",
        {"k": key},
    )
    tmp.replace(data)  # same path, new content: the record's size/mtime no longer match
    offenders = checks.idempotency(home, [DAY])
    assert offenders == [(key, "charged copy is not the first received")]


def test_a_lake_without_files_does_not_break_the_check(home: Home, monkeypatch) -> None:
    """With no landed files listed, the first copies come from the lake's index (no query over
    an empty file list)."""
    monkeypatch.setattr(Lake, "files", lambda self, *a, **k: [])
    assert checks.idempotency(home, [DAY]) == []

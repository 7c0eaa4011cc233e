"""Faults at deterministic points (pipelines/lib/faults.py): a landing killed inside its commit is
retried exactly once, a full disk is one line and leaves nothing behind, and a billing run killed
while publishing leaves the published warehouse readable and unchanged."""

from __future__ import annotations

import glob
import json
from pathlib import Path

import pytest
from conftest import tally

from pipelines.lib.home import Home
from pipelines.lib.lake import REJECTS, SIGNALS, Lake, release
from pipelines.lib.sql import connect

KILLED = 137


def signals_file(path: Path, n: int, prefix: str, day: str = "2026-11-03") -> Path:
    lines = [
        json.dumps(
            {
                "eventName": "email_sent",
                "customer": {"externalCustomerId": "cus_1"},
                "attribution": {"externalProductId": "prod_1"},
                "timestamp": f"{day}T10:{i % 60:02d}:00Z",
                "data": {"i": i},
                "idempotencyKey": f"{prefix}-{i}",
            }
        )
        for i in range(n)
    ]
    path.write_text("\n".join(lines + ["{not json"]) + "\n")
    return path


def first_copies(home: Home) -> list[str]:
    lake = Lake(home.lake)
    keys = []
    for f in lake.files():
        table = lake.read(f)
        keys += [
            k
            for k, d in zip(
                table["idempotency_key"].to_pylist(), table["is_duplicate"].to_pylist(), strict=True
            )
            if not d
        ]
    release(home.lake)
    return keys


@pytest.mark.parametrize(
    ("point", "storage_mode"),
    [
        ("land.files-written", "embedded"),
        ("land.indexed", "embedded"),
        ("land.committed", "embedded"),
        ("land.indexed", "shared"),
    ],
    indirect=["storage_mode"],
)
def test_a_landing_killed_inside_its_commit_lands_exactly_once_on_retry(
    point, storage_mode, home: Home, tmp_path: Path
):
    batch = signals_file(tmp_path / "batch.jsonl", 50, "k")
    killed = tally("ingest", str(batch), home=home, check=False, TALLY_FAULT=point)
    assert killed.returncode == KILLED and "ingested" not in killed.stdout
    retry = tally("ingest", str(batch), home=home, check=False)
    assert retry.returncode == 1  # the one bad line: rejected (kept), exit 1
    ingested = int(retry.stdout.split("ingested ")[1].split()[0].replace(",", ""))
    duplicates = int(retry.stdout.split("duplicates ")[1].split()[0].replace(",", ""))
    # Killed before its index commit, the batch is undone; after it, rolled forward.
    assert (ingested, duplicates) == ((50, 0) if point == "land.files-written" else (0, 50))
    keys = first_copies(home)
    assert sorted(keys) == sorted(f"k-{i}" for i in range(50)), "a key landed twice or never"
    lake = Lake(home.lake)
    assert lake.index.intents() == []
    assert len(lake.files(kind=REJECTS)) >= 1
    if lake.storage.local:
        on_disk = set(glob.glob(lake.data_glob(SIGNALS)))
        assert on_disk == {f.path for f in lake.files()}, "an orphan file survived"
        assert not list(home.lake.rglob("*.tmp"))


def test_a_full_disk_is_one_line_and_leaves_nothing_behind(home: Home, tmp_path: Path):
    tally("ingest", str(signals_file(tmp_path / "a.jsonl", 10, "a")), home=home, check=False)
    before = set(glob.glob(Lake(home.lake).data_glob(SIGNALS)))
    release(home.lake)
    full = tally(
        "ingest",
        str(signals_file(tmp_path / "b.jsonl", 10, "b")),
        home=home,
        check=False,
        TALLY_FAULT="enospc@land.write",
    )
    assert full.returncode == 2
    assert full.stderr.strip().splitlines() == [
        f"error: no space left on the device of {home.lake}: nothing was landed; free space "
        "and retry"
    ]
    lake = Lake(home.lake)
    assert set(glob.glob(lake.data_glob(SIGNALS))) == before
    assert lake.index.intents() == [] and not list(home.lake.rglob("*.tmp"))
    assert lake.stats()["signals"] == 10
    release(home.lake)
    again = tally("ingest", str(tmp_path / "b.jsonl"), home=home, check=False)
    assert "ingested 10  duplicates 0" in again.stdout


BALANCES = "SELECT * FROM balance_snapshot ORDER BY ALL"
SIGNALS_SQL = "SELECT count(*), sum(credits) FROM fact_signal"


@pytest.mark.parametrize("point", ["publish.outputs", "publish.warehouse"])
def test_a_run_killed_while_publishing_keeps_the_old_warehouse(point, tmp_path: Path):
    home, days = small_home(tmp_path)
    now = {"TALLY_NOW": "2026-11-10T06:00:00Z"}
    tally("ingest", *map(str, days[:2]), home=home, check=False)
    tally("run", home=home, **now)

    def published() -> tuple:
        con = connect(home.warehouse, read_only=True)
        try:
            return con.execute(BALANCES).fetchall(), con.execute(SIGNALS_SQL).fetchall()
        finally:
            con.close()

    old = published()
    tally("ingest", str(days[2]), home=home, check=False)
    killed = tally("run", home=home, check=False, TALLY_FAULT=point, **now)
    assert killed.returncode == KILLED
    assert published() == old, "the published warehouse changed under a run that did not finish"
    tally("run", home=home, **now)
    new = published()
    assert new[1][0][0] > old[1][0][0]


def small_home(tmp_path: Path, days: int = 3) -> tuple[Home, list[Path]]:
    work = tmp_path / "synth"
    tally(
        "synth", "--out", str(work), "--signals", "2000", "--days", str(days), home=tmp_path / "h"
    )
    home = Home(tmp_path / "h")
    home.config_dir.mkdir(parents=True, exist_ok=True)
    for config in (work / "config").glob("*.yaml"):
        (home.config_dir / config.name).write_text(config.read_text())
    return home, sorted((work / "signals").glob("*.jsonl"))


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_damaged_files_stop_the_run_and_verify_names_them(tmp_path: Path):
    home, days = small_home(tmp_path)
    now = {"TALLY_NOW": "2026-11-10T06:00:00Z"}
    tally("ingest", *map(str, days), home=home, check=False)
    tally("run", home=home, **now)
    assert "all intact" in tally("verify", home=home).stdout

    con = connect(home.warehouse, read_only=True)
    before = con.execute(SIGNALS_SQL).fetchall()
    con.close()
    lake = Lake(home.lake)
    damaged = Path(lake.files(date="2026-11-02")[0].path)
    release(home.lake)
    flip_a_byte(damaged)
    checked = tally("verify", home=home, check=False)
    assert checked.returncode == 1
    assert f"damaged: {damaged}: its content changed since it was written" in checked.stderr
    assert "1 of " in checked.stderr

    # The run reads that day again (a late signal arrived): it stops, naming the file.
    late = signals_file(tmp_path / "late.jsonl", 1, "late", day="2026-11-02")
    tally("ingest", str(late), home=home, check=False)
    run = tally("run", home=home, check=False, **now)
    assert run.returncode != 0
    assert f"damaged lake file {damaged}: its content changed" in run.stderr
    con = connect(home.warehouse, read_only=True)
    assert con.execute(SIGNALS_SQL).fetchall() == before, "published from a damaged file"
    con.close()

    # A published engine output, truncated: tally verify names it too.
    published = sorted((home.lake / "warehouse" / "tally" / "fact_signal").rglob("*.parquet"))[0]
    published.write_bytes(published.read_bytes()[:100])
    checked = tally("verify", "--quick", home=home, check=False)
    assert f"damaged: {published}: 100 bytes, the catalog records" in checked.stderr


def test_a_damaged_engine_output_stops_the_ledger(tmp_path: Path):
    """The ledger resumes from the previous day's balances: damaged, they stop the run."""
    home, days = small_home(tmp_path)
    now = {"TALLY_NOW": "2026-11-10T06:00:00Z"}
    tally("ingest", *map(str, days), home=home, check=False)
    tally("run", home=home, **now)
    checkpoint = home.engine_dir / "balance_snapshot" / "date=2026-11-02" / "data.parquet"
    flip_a_byte(checkpoint)
    late = signals_file(tmp_path / "late.jsonl", 1, "late", day="2026-11-03")
    tally("ingest", str(late), home=home, check=False)
    run = tally("run", home=home, check=False, **now)
    assert run.returncode != 0
    assert f"damaged engine output {checkpoint}: its content changed" in run.stderr

"""Faults at deterministic points (pipelines/core/faults.py): a landing killed inside its commit is
retried exactly once, a full disk is one line and leaves nothing behind, and a billing run killed
while publishing leaves the published warehouse readable and unchanged."""

from __future__ import annotations

import glob
import json
import subprocess
from pathlib import Path

import pytest
from conftest import tally

from pipelines.core.home import Home
from pipelines.core.sql import connect
from pipelines.landing.lake import Lake, release
from pipelines.landing.schema import REJECTS, SIGNALS

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


def published(home: Home) -> tuple:
    con = connect(home.warehouse, read_only=True)
    try:
        return con.execute(BALANCES).fetchall(), con.execute(SIGNALS_SQL).fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("point", ["publish.outputs", "publish.warehouse"])
def test_a_run_killed_while_publishing_keeps_the_old_warehouse(point, tmp_path: Path):
    home, days = small_home(tmp_path)
    now = {"TALLY_NOW": "2026-11-10T06:00:00Z"}
    tally("ingest", *map(str, days[:2]), home=home, check=False)
    tally("run", home=home, **now)

    old = published(home)
    tally("ingest", str(days[2]), home=home, check=False)
    killed = tally("run", home=home, check=False, TALLY_FAULT=point, **now)
    assert killed.returncode == KILLED
    assert published(home) == old, "the published warehouse changed under an unfinished run"
    tally("run", home=home, **now)
    new = published(home)
    assert new[1][0][0] > old[1][0][0]


def leftovers(home: Home) -> list[Path]:
    """Temporary files a failed write left in the engine, the lake or beside the warehouse."""
    where = (home.engine_dir, home.lake, home.warehouse.parent)
    return [p for d in where if d.exists() for p in d.rglob("*.tmp") if p.is_file()]


def test_a_full_disk_during_a_run_is_one_line_and_publishes_nothing(tmp_path: Path):
    home, days = small_home(tmp_path)
    now = {"TALLY_NOW": "2026-11-10T06:00:00Z"}
    tally("ingest", *map(str, days[:2]), home=home, check=False)
    tally("run", home=home, **now)
    old = published(home)
    tally("ingest", str(days[2]), home=home, check=False)
    full = tally("run", home=home, check=False, TALLY_FAULT="enospc@write", **now)
    assert full.returncode == 1
    errors = [line for line in full.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, full.stderr
    assert "no space left on the device of " in errors[0]
    assert "nothing was published" in errors[0] and "free space and retry" in errors[0]
    assert "Traceback" not in full.stderr + full.stdout
    assert leftovers(home) == []
    assert published(home) == old
    tally("run", home=home, **now)
    assert published(home)[1][0][0] > old[1][0][0]


def test_a_real_full_disk_under_the_engine(tmp_path: Path):
    """The engine's directory on a filesystem too small for the run (a tmpfs): DuckDB's and
    PyArrow's own "No space left on device" become the same one line; once the filesystem has
    room, the run finishes with the numbers of a run that never failed."""
    reference, days = small_home(tmp_path / "reference")
    now = {"TALLY_NOW": "2026-11-10T06:00:00Z"}
    tally("ingest", *map(str, days), home=reference, check=False)
    tally("run", home=reference, **now)

    home, _ = small_home(tmp_path / "full")
    tally("ingest", *map(str, days), home=home, check=False)
    home.engine_dir.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(home.engine_dir)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {mounted.stderr.strip()}")
    try:
        full = tally("run", home=home, check=False, **now)
        assert full.returncode == 1
        errors = [line for line in full.stderr.splitlines() if line.strip()]
        assert len(errors) == 1, full.stderr
        assert f"no space left on the device of {home.engine_dir}/" in errors[0], errors[0]
        assert "Traceback" not in full.stderr + full.stdout
        assert leftovers(home) == [] and not home.warehouse.exists()
        subprocess.run(["mount", "-o", "remount,size=256m", str(home.engine_dir)], check=True)
        tally("run", home=home, **now)
        assert published(home) == published(reference)
    finally:
        subprocess.run(["umount", "-l", str(home.engine_dir)], check=False)


def test_duckdb_full_disk_errors_are_recognised(tmp_path: Path):
    """DuckDB reports a full disk as text (IOException): `no_space` must read it."""
    import duckdb

    from pipelines.storage.files import WriteError, atomic, no_space

    con = duckdb.connect()
    with pytest.raises(duckdb.IOException) as raised:
        con.execute("COPY (SELECT range::VARCHAR AS x FROM range(300000)) TO '/dev/full'")
    assert no_space(raised.value)
    assert not no_space(duckdb.IOException("IO Error: Cannot open file: Permission denied"))
    target = tmp_path / "x.parquet"
    with pytest.raises(WriteError, match="no space left on the device of"):
        with atomic(target) as tmp:
            tmp.write_bytes(b"partial")
            raise raised.value
    assert list(tmp_path.iterdir()) == []


def small_home(tmp_path: Path, days: int = 3) -> tuple[Home, list[Path]]:
    tmp_path.mkdir(parents=True, exist_ok=True)
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

"""Billing runs whose steps execute outside the `tally run` process, split by customer shard:
Dagster's multiprocess executor on this machine (`tally run --workers N`), and the shared
deployment, where two Celery workers (`tally worker`) take the shards' steps from Redis while
Dagster's instance lives in PostgreSQL and the lake in PostgreSQL + S3. Either way the warehouse
equals the embedded, in-process, one-shard result, row for row."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

from conftest import tally, tally_command, tally_env

from pipelines.core.home import Home
from pipelines.core.sql import connect

NOW = {"TALLY_NOW": "2026-11-10T06:00:00Z"}
TABLES = {
    # every column but when each copy was received (the two homes landed the same files apart)
    "fact_signal": "SELECT * EXCLUDE (received_at) FROM fact_signal",
    "balance_snapshot": "SELECT * FROM balance_snapshot",
    "fact_credit_transaction": "SELECT * FROM fact_credit_transaction",
}


def workload(tmp_path: Path) -> tuple[Path, list[Path]]:
    """A multi-customer workload over several days (synthetic, seeded)."""
    work = tmp_path / "synth"
    tmp_path.mkdir(parents=True, exist_ok=True)
    tally("synth", "--out", str(work), "--signals", "3000", "--days", "4", home=tmp_path / "x")
    return work / "config", sorted((work / "signals").glob("*.jsonl"))


def new_home(root: Path, config: Path) -> Home:
    home = Home(root)
    home.config_dir.mkdir(parents=True)
    for f in config.glob("*.yaml"):
        (home.config_dir / f.name).write_text(f.read_text())
    return home


def warehouse_rows(home: Home) -> dict[str, list]:
    con = connect(home.warehouse, read_only=True)
    try:
        return {name: sorted(con.execute(sql).fetchall()) for name, sql in TABLES.items()}
    finally:
        con.close()


def reference(tmp_path: Path) -> tuple[dict, Path, list[Path]]:
    config, days = workload(tmp_path)
    home = new_home(tmp_path / "embedded", config)
    tally("ingest", *map(str, days), home=home, check=False)
    tally("run", home=home, **NOW)
    return warehouse_rows(home), config, days


def test_run_with_workers_on_this_machine_equals_in_process(tmp_path: Path):
    expected, config, days = reference(tmp_path)
    assert all(expected.values())
    home = new_home(tmp_path / "multiprocess", config)
    tally("ingest", *map(str, days), home=home, check=False)
    run = tally("run", "--workers", "2", home=home, TALLY_SHARDS="2", **NOW)
    assert "warehouse: published" in run.stdout
    assert warehouse_rows(home) == expected


def test_celery_workers_on_the_shared_deployment_equal_the_embedded_run(
    tmp_path: Path, services, redis_url: str, monkeypatch
):
    expected, config, days = reference(tmp_path)
    namespace = "w" + uuid.uuid4().hex[:12]
    shared = services.env(namespace) | {
        "TALLY_DAGSTER_STORAGE": services.new_database(f"dagster_{namespace}"),
        "TALLY_EXECUTOR": "celery",
        "TALLY_CELERY_BROKER": redis_url.rsplit("/", 1)[0] + "/1",
        "TALLY_SHARDS": "2",  # each day's pricing and ledger: two steps, one per worker
        **NOW,
    }
    home = new_home(tmp_path / "shared", config)
    logs = [tmp_path / f"worker{i}.log" for i in (1, 2)]
    workers = [
        subprocess.Popen(
            tally_command("worker", "--name", f"w{i}-{namespace}"),
            env=tally_env(home, **shared),
            stdout=open(log, "wb"),  # noqa: SIM115 - the worker owns it
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
        for i, log in zip((1, 2), logs, strict=True)
    ]
    try:
        tally("ingest", *map(str, days), home=home, check=False, **shared)
        run = tally("run", home=home, **shared)
        assert "warehouse: published" in run.stdout
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            try:
                w.wait(timeout=30)
            except subprocess.TimeoutExpired:
                w.kill()
    for key, value in services.env(namespace).items():  # the views read the bucket
        monkeypatch.setenv(key, value)
    assert warehouse_rows(home) == expected
    # Both workers took steps: the run really was fanned out.
    done = [log.read_text().count("succeeded in") for log in logs]
    assert all(n >= 1 for n in done), done
    # The lake is in the bucket, Dagster's runs in PostgreSQL: nothing local but the engine.
    assert not (home.lake / "catalog.db").exists()
    assert not (home.root / "dagster" / "history").exists()

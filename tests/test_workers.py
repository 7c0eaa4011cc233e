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


def test_the_daemon_runs_the_sensors_queued_run_on_the_shared_deployment(
    tmp_path: Path, services, monkeypatch
):
    """Dagster on PostgreSQL with the queued run coordinator: `dagster-daemon` evaluates the
    billing sensor, the run it asks for waits in the queue until the daemon launches it, and the
    warehouse equals the embedded run."""
    import os
    import signal
    import sys
    import time

    import dagster as dg

    expected, config, days = reference(tmp_path)
    namespace = "q" + uuid.uuid4().hex[:12]
    shared = services.env(namespace) | {
        "TALLY_DAGSTER_STORAGE": services.new_database(f"dagster_{namespace}"),
        **NOW,
    }
    home = new_home(tmp_path / "queued", config)
    tally("ingest", *map(str, days), home=home, check=False, **shared)
    dagster_home = home.root / "dagster" / "shared"
    assert "QueuedRunCoordinator" in (dagster_home / "dagster.yaml").read_text()
    env = tally_env(home, **shared) | {"DAGSTER_HOME": str(dagster_home)}
    log = tmp_path / "daemon.log"
    daemon = subprocess.Popen(
        [sys.executable, "-m", "dagster._daemon", "run", "-m", "pipelines.definitions"],
        env=env,
        cwd=dagster_home,
        stdout=open(log, "wb"),  # noqa: SIM115 - the daemon owns it
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    for key, value in env.items():
        if key.startswith(("TALLY_", "DAGSTER_", "AWS_")):
            monkeypatch.setenv(key, value)
    try:
        with dg.DagsterInstance.get() as instance:
            deadline = time.monotonic() + 240
            runs: list = []
            while time.monotonic() < deadline:
                runs = instance.get_runs()
                if runs and all(r.is_finished for r in runs):
                    break
                assert daemon.poll() is None, log.read_text()[-3000:]
                time.sleep(1)
            assert runs, "the sensor asked for no run:\n" + log.read_text()[-3000:]
            for run in runs:
                assert run.status == dg.DagsterRunStatus.SUCCESS, log.read_text()[-3000:]
                assert run.tags.get("dagster/sensor_name") == "billing_sensor"
                kinds = [
                    e.dagster_event.event_type
                    for e in instance.all_logs(run.run_id)
                    if e.dagster_event is not None
                ]
                queued = kinds.index(dg.DagsterEventType.RUN_ENQUEUED)
                assert queued < kinds.index(dg.DagsterEventType.RUN_STARTING)
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
    assert warehouse_rows(home) == expected  # the views read the bucket (env set above)

"""The billing run split by customer shard, on 1, 2 and 4 worker processes or Celery workers.

    python -m benchmarks.workers --signals 2000000 [--shards 4] [--workers 1,2,4] [--celery 1,2,4]
        [--repeat 1]

One seeded workload (31 days) is landed once; then, on copies of that landed home, the full
`tally run` (from an empty engine and Dagster instance) for:
- one shard, in the `tally run` process (the default deployment: the baseline);
- `--shards` shards, in the `tally run` process (what the split itself costs);
- `--shards` shards on Dagster's multiprocess executor with each of `--workers` processes;
- with `--celery 1,2,4`: `--shards` shards on the Celery executor with that many warm `tally worker`
  processes (Dagster's instance on PostgreSQL, Redis as the broker: both started on loopback
  ports by `tests/services.py`, as in CI; the lake stays embedded).
Each row gives the wall time (median of `--repeat`), the CPU time of the process tree (in-process
runs only), the speedup against the baseline, and whether its warehouse equals the baseline's
(every row of fact_signal without received_at, balance_snapshot and fact_credit_transaction: the
count and the sum of the rows' hashes).
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from benchmarks.harness import WORK, prepare_home, workload

NOW = "2026-12-03T06:00:00Z"
DIGEST = """
SELECT (SELECT (count(*), sum(hash(r)::HUGEINT))
        FROM (SELECT * EXCLUDE (received_at) FROM fact_signal) AS r),
       (SELECT (count(*), sum(hash(r)::HUGEINT)) FROM balance_snapshot AS r),
       (SELECT (count(*), sum(hash(r)::HUGEINT)) FROM fact_credit_transaction AS r)
"""


def landed(signals: int, work: Path) -> Path:
    home = work / f"workers-{signals}" / "landed"
    if (home / "lake").exists():
        return home
    wl = workload(signals, work)
    prepare_home(home, wl)
    tally(home, ["ingest", *map(str, wl.history)], ok=(0, 1))
    return home


def tally(home: Path, args: list[str], ok=(0,), **env: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process tree) of `tally ARGS` on `home`."""
    environ = {**os.environ, "TALLY_HOME": str(home), "TALLY_NOW": NOW, **env}
    for key in ("DAGSTER_HOME", "TALLY_DAGSTER_STORAGE", "TALLY_EXECUTOR", "TALLY_SHARDS"):
        if key not in env:
            environ.pop(key, None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args], env=environ, capture_output=True
    )
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in ok:
        raise RuntimeError(f"tally {' '.join(args)}: {proc.stderr.decode()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def celery_run(home: Path, services, workers: int, env: dict[str, str]) -> tuple[float, None]:
    """Wall time of `tally run` on `workers` warm Celery workers (started, ready, then stopped)."""
    name = f"b{uuid.uuid4().hex[:10]}"
    env = env | {
        "TALLY_DAGSTER_STORAGE": services.new_database(f"dagster_{name}"),
        "TALLY_EXECUTOR": "celery",
        "TALLY_CELERY_BROKER": services.redis_url.rsplit("/", 1)[0] + f"/{workers}",
    }
    environ = {**os.environ, "TALLY_HOME": str(home), "TALLY_NOW": NOW, **env}
    logs = [home / f"worker-{i}.log" for i in range(workers)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "pipelines.cli", "worker", "--name", f"w{i}-{name}"],
            env=environ,
            stdout=open(log, "wb"),  # noqa: SIM115 - the worker owns it
            stderr=subprocess.STDOUT,
        )
        for i, log in enumerate(logs)
    ]
    # Dagster creates its tables in a new PostgreSQL database on first use: a one-off, not timed.
    init = (
        "import dagster, pathlib; from pipelines.core.home import ensure_instance; "
        f"dagster.DagsterInstance.from_config(str(ensure_instance(pathlib.Path({str(home)!r}))))"
    )
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", init], env=environ, check=True)
    print(f"  (Dagster's tables created in {time.perf_counter() - started:.1f} s)", file=sys.stderr)
    try:
        deadline = time.monotonic() + 120
        while not all(" ready." in log.read_text(errors="replace") for log in logs):
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"Celery workers did not start: see {logs[0]}")
            time.sleep(0.2)
        wall, _ = tally(home, ["run"], **env)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)
    return wall, None


def start_services():
    """PostgreSQL and Redis on loopback ports (the test suite's helper)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    import services

    reason = services.missing()
    if reason:
        raise SystemExit(f"--celery needs PostgreSQL and redis-server: {reason}")
    found = services.start()
    if found.redis_url is None:
        found.stop()
        raise SystemExit("--celery needs redis-server (Debian's redis-server package)")
    return found


def digest(home: Path) -> tuple:
    from pipelines.core.sql import connect

    con = connect(home / "warehouse.duckdb", read_only=True)
    try:
        return con.execute(DIGEST).fetchone()
    finally:
        con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=2_000_000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--celery", default="", help="Celery worker counts, e.g. 1,2,4")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--work", type=Path, default=WORK)
    args = parser.parse_args()
    base = landed(args.signals, args.work)
    configs = [("1 shard, in process", {}, [])]
    configs.append((f"{args.shards} shards, in process", {"TALLY_SHARDS": str(args.shards)}, []))
    shards = {"TALLY_SHARDS": str(args.shards)}
    for n in (int(w) for w in args.workers.split(",") if w):
        plural = "es" if n > 1 else ""
        configs.append(
            (f"{args.shards} shards, {n} worker process{plural}", shards, ["--workers", str(n)])
        )
    for n in (int(w) for w in args.celery.split(",") if w):
        plural = "s" if n > 1 else ""
        configs.append((f"{args.shards} shards, {n} Celery worker{plural}", shards, ["celery", n]))
    services = start_services() if args.celery else None
    rows, reference = [], None
    try:
        for name, env, extra in configs:
            walls, cpus = [], []
            for _ in range(args.repeat):
                home = base.parent / "run"
                shutil.rmtree(home, ignore_errors=True)
                home.mkdir()
                shutil.copytree(base / "config", home / "config")
                shutil.copytree(base / "lake", home / "lake")
                if extra[:1] == ["celery"]:
                    wall, cpu = celery_run(home, services, extra[1], env)
                else:
                    wall, cpu = tally(home, ["run", *extra], **env)
                walls.append(wall)
                cpus.append(cpu)
            found = digest(home)
            reference = reference or found
            # The step processes of the multiprocess executor fork from its server, and Celery
            # workers are processes of their own: their CPU time is not this tree's.
            cpu = statistics.median(cpus) if not extra else None
            rows.append((name, statistics.median(walls), cpu, found == reference))
            print(f"{name}: {rows[-1][1]:.1f} s", file=sys.stderr, flush=True)
    finally:
        if services is not None:
            services.stop()
    baseline = rows[0][1]
    print(f"\n{args.signals:,} signals, 31 days, {os.cpu_count()} cores\n")
    print("| run | wall (s) | CPU (s) | speedup | warehouse equal |")
    print("|---|---:|---:|---:|---|")
    for name, wall, cpu, equal in rows:
        cpu_text = "-" if cpu is None else f"{cpu:.1f}"
        print(f"| {name} | {wall:.1f} | {cpu_text} | {baseline / wall:.2f}x | {equal} |")


if __name__ == "__main__":
    main()

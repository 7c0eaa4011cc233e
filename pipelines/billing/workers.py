"""Where a billing run's steps execute: in the `tally run` process (embedded, the default), in
one process per step on this machine, or on Celery workers anywhere (shared deployment).

`TALLY_EXECUTOR` picks one: `in_process` (default), `multiprocess` (Dagster's multiprocess
executor, `TALLY_WORKERS` processes at a time, default the number of cores) or `celery` (steps are
queued on the broker `TALLY_CELERY_BROKER`, e.g. `redis://host:6379/0`, and run by `tally worker`
processes on any host that reaches the broker, the Dagster storage, the catalog and the bucket).
Out-of-process executors need a Dagster instance every worker can reach: the home's SQLite one on
one machine, PostgreSQL (`TALLY_DAGSTER_STORAGE`) beyond it.
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import dagster as dg

EXECUTOR_ENV = "TALLY_EXECUTOR"
WORKERS_ENV = "TALLY_WORKERS"
BROKER_ENV = "TALLY_CELERY_BROKER"
BACKEND_ENV = "TALLY_CELERY_BACKEND"
EXECUTORS = ("in_process", "multiprocess", "celery")


class WorkerError(RuntimeError):
    """The executor settings are not usable (one line for the CLI)."""


def executor_name() -> str:
    name = os.environ.get(EXECUTOR_ENV, "").strip() or "in_process"
    if name not in EXECUTORS:
        raise WorkerError(f"{EXECUTOR_ENV}={name!r}: use one of {', '.join(EXECUTORS)}")
    if name == "celery" and not os.environ.get(BROKER_ENV):
        raise WorkerError(f"{EXECUTOR_ENV}=celery needs {BROKER_ENV} (e.g. redis://host:6379/0)")
    return name


def workers() -> int:
    raw = os.environ.get(WORKERS_ENV, "").strip()
    try:
        n = int(raw) if raw else os.cpu_count() or 1
    except ValueError:
        raise WorkerError(f"{WORKERS_ENV}={raw!r} is not a number of processes") from None
    if n < 1:
        raise WorkerError(f"{WORKERS_ENV} must be at least 1, not {n}")
    return n


def executor() -> dg.ExecutorDefinition:
    """The billing run's executor, as the environment selects it (read when the code loads)."""
    import dagster as dg  # here: `tally run` reads the settings above before loading Dagster

    name = executor_name()
    if name == "celery":
        from dagster_celery import celery_executor

        return celery_executor.configured(
            {
                "broker": {"env": BROKER_ENV},
                "backend": {"env": BACKEND_ENV if os.environ.get(BACKEND_ENV) else BROKER_ENV},
            },
            name="tally_celery",
        )
    if name == "multiprocess":
        # The cores are shared by the steps that run at once: each step's DuckDB and pricing
        # threads get their share (settings given explicitly are kept).
        share = str(max(1, (os.cpu_count() or 1) // workers()))
        os.environ.setdefault("TALLY_DUCKDB_THREADS", share)
        os.environ.setdefault("TALLY_PRICING_THREADS", share)
        # Step processes fork from a server that has imported and built the code location once:
        # a step starts without importing Dagster and Tally anew (pipelines/billing/preload.py).
        return dg.multiprocess_executor.configured(
            {
                "max_concurrent": workers(),
                "start_method": {"forkserver": {"preload_modules": ["pipelines.billing.preload"]}},
            }
        )
    return dg.in_process_executor


def out_of_process() -> bool:
    return executor_name() != "in_process"


def recon_job(name: str):
    """The job as a pointer every worker process can load (`pipelines.definitions:defs`)."""
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    repo = ReconstructableRepository.for_module(
        "pipelines.definitions", "defs", working_directory=os.getcwd()
    )
    return repo.get_reconstructable_job(name)


def worker_main(concurrency: int, name: str | None = None) -> None:
    """Run a Celery worker for billing-run steps in this process (`tally worker`): it takes
    steps from the `dagster` queue of the broker and runs each in a child process."""
    broker = os.environ.get(BROKER_ENV)
    if not broker:
        raise WorkerError(f"tally worker needs {BROKER_ENV} (e.g. redis://host:6379/0)")
    backend = os.environ.get(BACKEND_ENV) or broker
    os.environ[EXECUTOR_ENV] = "celery"  # the definitions the worker loads use the same executor
    from dagster_celery.app import app

    app.conf.update(broker_url=broker, result_backend=backend, worker_prefetch_multiplier=1)
    app.worker_main(
        [
            "worker",
            "--loglevel=INFO",
            f"--concurrency={concurrency}",
            "--prefetch-multiplier=1",
            "-Q",
            "dagster",
            "-n",
            name or f"tally-{os.getpid()}@{socket.gethostname()}",
        ]
    )

"""Shared fixtures and helpers: every test gets its own temporary home (nothing is written into
the checkout); `tally(...)` and `start_tally(...)` run the real command in a subprocess; one
hypothesis profile for every property test."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from pipelines.core.home import Home
from pipelines.landing.lake import Lake

# --- hypothesis: one profile for every property test --------------------------------------------
# Property tests run whole engine runs per example, so no per-example deadline, and fixtures they
# share (temporary directories) are reset by the tests themselves. A test may pin its own
# `max_examples`; the `slow` profile (loaded under `-m slow`) gives unpinned ones ten times more.
_COMMON = {
    "deadline": None,
    "suppress_health_check": [
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
    "print_blob": True,
}
settings.register_profile("tally", max_examples=100, **_COMMON)
settings.register_profile("tally-slow", max_examples=1000, **_COMMON)
# Test modules import their helpers from here (`from conftest import tally`), which runs this
# module a second time: keep a profile of ours already chosen. Hypothesis loads its own `ci`
# profile when it sees a CI environment (which checks fixtures we reset ourselves): replace it too.
if settings.get_current_profile_name() in ("default", "ci"):
    settings.load_profile("tally")


def pytest_configure(config: pytest.Config) -> None:
    """`-m slow` runs the slow tests, which are property tests at a larger example count."""
    markexpr = config.getoption("markexpr", default="") or ""
    if "slow" in markexpr and "not slow" not in markexpr:
        settings.load_profile("tally-slow")


# --- Dagster: no instance leaks from one test into the next -------------------------------------


@pytest.fixture(autouse=True)
def _no_leaked_dagster_instance():
    """Entering a Dagster instance sets a context-wide state storage that holds a weak reference
    to it; a test that leaves one entered (and whose instance is later collected) would make the
    next in-process definitions load fail ("undefined DagsterInstance weakref"). Each test starts
    without one."""
    from dagster._core.storage.defs_state.base import set_defs_state_storage

    with set_defs_state_storage(None):
        yield


# --- storage: embedded (SQLite + a local directory) or shared (PostgreSQL + S3) -------------------


@pytest.fixture(scope="session")
def services():
    """A real PostgreSQL and S3 server for this session (tests/services.py)."""
    import services as servers

    reason = servers.missing()
    if reason:
        if os.environ.get("TALLY_REQUIRE_SERVICES"):
            pytest.fail(f"shared-storage servers required but unavailable: {reason}")
        pytest.skip(f"shared storage not tested: {reason}")
    running = servers.start()
    yield running
    running.stop()


@pytest.fixture()
def redis_url(services) -> str:
    """The session's Redis (the Celery broker of the shared deployment)."""
    if services.redis_url is None:
        reason = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("TALLY_REQUIRE_SERVICES"):
            pytest.fail(f"Redis required but unavailable: {reason}")
        pytest.skip(f"Celery workers not tested: {reason}")
    return services.redis_url


@pytest.fixture(params=["embedded", "shared"])
def storage_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test in both deployments; shared ones in a namespace (and bucket prefix) of their
    own. Subprocesses inherit the choice through the environment."""
    if request.param == "shared":
        running = request.getfixturevalue("services")
        for key, value in running.env("t" + uuid.uuid4().hex[:12]).items():
            monkeypatch.setenv(key, value)
    return request.param


# --- homes --------------------------------------------------------------------------------------


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    root = tmp_path / "home"
    root.mkdir()
    monkeypatch.setenv("TALLY_HOME", str(root))
    return Home(root)


@pytest.fixture()
def lake(home: Home) -> Lake:
    return Lake(home.lake)


# --- the `tally` command in a subprocess --------------------------------------------------------


def tally_env(home: Path | Home, **extra: str) -> dict[str, str]:
    """The environment of a `tally` subprocess on `home`: Dagster's state in that home (not in a
    DAGSTER_HOME inherited from `./dev.sh`), wide tables, plus `extra` variables."""
    root = home.root if isinstance(home, Home) else home
    env = {**os.environ, "TALLY_HOME": str(root), "COLUMNS": "200"}
    env.pop("DAGSTER_HOME", None)
    env.pop("TALLY_DAGSTER_STORAGE", None)
    env.update(extra)
    return env


def tally_command(*args: str) -> list[str]:
    """The argv of `tally ARGS` run by this interpreter (the code under test)."""
    return [sys.executable, "-m", "pipelines.cli", *args]


def tally(
    *args: str,
    home: Path | Home,
    check: bool = True,
    timeout: float = 600,
    cwd: Path | str | None = None,
    **extra_env: str,
) -> subprocess.CompletedProcess[str]:
    """Run `tally ARGS` on `home` and wait for it (in `cwd`, default the home's parent); with
    `check`, a non-zero exit fails the test showing both outputs. Other keyword arguments become
    environment variables (`TALLY_NOW="..."`)."""
    root = home.root if isinstance(home, Home) else home
    proc = subprocess.run(
        tally_command(*args),
        env=tally_env(root, **extra_env),
        text=True,
        capture_output=True,
        cwd=root.parent if cwd is None else cwd,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"tally {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def start_tally(
    *args: str, home: Path | Home, text: bool = False, **extra_env: str
) -> subprocess.Popen:
    """Start `tally ARGS` on `home` without waiting (a server, or processes that race); its
    stdout and stderr are pipes."""
    root = home.root if isinstance(home, Home) else home
    return subprocess.Popen(
        tally_command(*args),
        env=tally_env(root, **extra_env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=text,
        cwd=root.parent,
    )

"""The real Dagster UI, driven through its GraphQL API the way its buttons drive it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
from conftest import tally, tally_command, tally_env

NOW = "2026-11-08T06:00:00Z"  # partitions 2026-11-01..2026-11-07
DAY = "2026-11-05"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        payload = json.loads(response.read())
    assert "errors" not in payload, payload["errors"]
    return payload["data"]


LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchPipelineExecution(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""

RUN = """query Run($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"""

MATERIALIZATIONS = """
query Mats($key: AssetKeyInput!, $partitions: [String!]) {
  assetOrError(assetKey: $key) {
    ... on Asset {
      assetMaterializations(partitions: $partitions) {
        partition
        metadataEntries {
          label
          ... on IntMetadataEntry { intValue }
          ... on JsonMetadataEntry { jsonString }
        }
      }
    }
  }
}"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """A demo home, billed with the clock pinned."""
    home = tmp_path_factory.mktemp("ui") / "data"
    tally("demo", home=home, TALLY_NOW=NOW)
    return home


def start_ui(home: Path) -> tuple[int, subprocess.Popen]:
    """`tally ui` on `home`, answering GraphQL: (port, process)."""
    port = _free_port()
    proc = subprocess.Popen(
        tally_command("ui", "--port", str(port)),
        env=tally_env(home, TALLY_NOW=NOW),
        cwd=home.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            _graphql(port, "{ version }")
            return port, proc
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("the Dagster UI did not start within 120 s")
            time.sleep(1)


@pytest.fixture()
def ui(demo):
    """(port, home, process) of a `tally ui` of its own, stopped after the test."""
    port, proc = start_ui(demo)
    yield port, demo, proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_the_materialize_button_prices_exactly_that_partition(ui) -> None:
    port, home, _ = ui
    params = {
        "selector": {
            "repositoryLocationName": "tally",
            "repositoryName": "__repository__",
            "pipelineName": "__ASSET_JOB",
            "assetSelection": [{"path": ["fact_signal"]}],
            "assetCheckSelection": [],
        },
        "mode": "default",
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": DAY}]},
    }
    launched = _graphql(port, LAUNCH, {"params": params})["launchPipelineExecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    deadline = time.monotonic() + 180
    while (status := _graphql(port, RUN, {"id": run_id})["runOrError"]["status"]) not in (
        "SUCCESS",
        "FAILURE",
        "CANCELED",
    ):
        assert time.monotonic() < deadline, f"run {run_id} still {status}"
        time.sleep(1)
    assert status == "SUCCESS"

    mats = _graphql(
        port, MATERIALIZATIONS, {"key": {"path": ["fact_signal"]}, "partitions": [DAY]}
    )["assetOrError"]["assetMaterializations"]
    latest = mats[0]
    assert latest["partition"] == DAY
    entries = {e["label"]: e for e in latest["metadataEntries"]}
    import duckdb

    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    (rows,) = con.execute(
        "SELECT count(*) FROM fact_signal WHERE timestamp >= $d::DATE AND timestamp < $d::DATE + 1",
        {"d": DAY},
    ).fetchall()[0]
    con.close()
    assert entries["row_count"]["intValue"] == rows > 0
    statuses = json.loads(entries["statuses"]["jsonString"])
    assert sum(statuses.values()) == rows


def test_ui_stops_everything_it_started_and_writes_nothing_outside_the_home(ui) -> None:
    port, home, proc = ui
    tree = [proc, *psutil.Process(proc.pid).children(recursive=True)]
    assert len(tree) > 2  # tally ui, dagster dev, the webserver, the daemon, ...
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    deadline = time.monotonic() + 30
    while any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in tree[1:]):
        assert time.monotonic() < deadline, "processes outlived tally ui"
        time.sleep(0.5)
    leftovers = {".nux", "logs", ".logs_queue", "history", "storage"}
    assert not leftovers & {p.name for p in home.parent.iterdir()}
    assert (home / "dagster" / "dagster.yaml").exists()
    assert not leftovers & {p.name for p in Path(__file__).resolve().parents[1].iterdir()}
    assert os.path.exists(home / "dagster")

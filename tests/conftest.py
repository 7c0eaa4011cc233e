"""Shared fixtures: every test gets its own temporary home; nothing is written into the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipelines.lib.home import Home
from pipelines.lib.lake import Lake

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    root = tmp_path / "home"
    root.mkdir()
    monkeypatch.setenv("TALLY_HOME", str(root))
    return Home(root)


@pytest.fixture()
def lake(home: Home) -> Lake:
    return Lake(home.lake)


def tally_env(home: Home) -> dict[str, str]:
    """Environment for running the `tally` command in a subprocess against `home`."""
    env = dict(os.environ)
    env["TALLY_HOME"] = str(home.root)
    return env

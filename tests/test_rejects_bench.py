"""The rejects benchmark (benchmarks/rejects.py) at a smoke size: both files
ingest completely, every bad signal is rejected with its reason. No timing is asserted here; the
2M measurement is a manual run (`python -m benchmarks.rejects --signals 2000000`)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import rejects
from pipelines.landing.lake import Lake


def test_rejects_benchmark_smoke(tmp_path: Path) -> None:
    result = rejects.main(["--signals", "3000", "--work", str(tmp_path)])
    assert result["signals"] == 3000
    assert result["land_s"] > 0 and result["reject_s"] > 0
    assert {"time_ratio", "rss_ratio", "ok"} <= set(result)
    bad = (tmp_path / "rejects" / "bad-3000.jsonl").read_text().splitlines()
    assert json.loads(bad[0])["timestamp"].endswith(" 00:00:00+00")
    assert Lake(tmp_path / "rejects-home-bad" / "lake").files(kind="rejects")

"""The benchmark harness at size smoke: every figure present, positive and sane; landing
complete; the peers' totals equal Tally's. No timing is asserted. Plus the peers' pricing on edge
cases with known answers, and the scaling verdict and report."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchmarks import incremental, peers, report, run, scaling
from benchmarks.harness import Bench, Workload
from pipelines.landing.schema import SIGNAL_SCHEMA
from pipelines.pricing.config import parse_config

FIGURES = {
    1: {"landing"},
    2: {"floor", "run", "ratio", "rss", "noop"},
    4: {"increment_30"},
    5: {"hot", "arbitrary", "arb_ratio"},
    6: {f"peer_{e}{suffix}" for e in peers.ENGINES for suffix in ("", "_ratio", "_rss")},
    7: {"http_raw", "http_sdk"},
}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    root = tmp_path_factory.mktemp("bench")
    results = root / "results"
    # Only the main home's 30 days of history for figure 4: each other history costs two more
    # `tally run`s (about 20 s at this size), and this test must stay under a minute.
    argv = ["--size", "smoke", "--repeat", "1", "--histories", ""]
    result = run.main([*argv, "--work", str(root / "work"), "--results", str(results)])
    return result, results


def test_every_figure_is_present_positive_and_finite(smoke: tuple[dict, Path]) -> None:
    result, _ = smoke
    rows = {f["key"]: f for f in result["figures"]}
    for fig, keys in FIGURES.items():
        assert keys <= {k for k, f in rows.items() if f["fig"] == fig}, fig
    for key, f in rows.items():
        assert f["runs"] == 1, key
        assert math.isfinite(f["median"]) and f["min"] <= f["median"] <= f["max"], key
        assert f["median"] > 0, key
    assert rows["rss"]["median"] < result["machine"]["memory_gib"] * 2**30 / 1e9
    assert rows["peer_chdb_ratio"]["median"] == pytest.approx(
        rows["peer_chdb"]["median"] / rows["run"]["median"]
    )  # all signals: no per-signal scaling below the plain-Python sample size


def test_landing_counts_every_synthetic_signal(smoke: tuple[dict, Path]) -> None:
    result, _ = smoke
    landing = result["checks"]["landing"]
    assert landing["ok"]
    assert landing["landed"] + landing["rejected"] == landing["lines"] == result["landed_lines"]
    assert landing["rejected"] > 0  # the workload's dirt: some lines must fail
    assert result["info"]["incremental"]["added_signals"] > 0


def test_peers_match_tally_exactly(smoke: tuple[dict, Path]) -> None:
    result, _ = smoke
    landing = result["checks"]["landing"]
    for engine in peers.ENGINES:
        check = result["checks"][f"peer_{engine}"]
        assert check["ok"] and check["differing_groups"] == 0, engine
        assert check["groups"] > 30  # customers x days
        assert 0.9 * landing["landed"] < check["signals"] < landing["landed"]  # minus duplicates


def test_results_files(smoke: tuple[dict, Path]) -> None:
    result, results = smoke
    assert json.loads((results / "smoke.json").read_text()) == json.loads(json.dumps(result))
    markdown = (results / "smoke.md").read_text()
    for f in result["figures"]:
        assert f"| {f['figure']} |" in markdown
    assert "](smoke.svg)" in markdown and "**NO**" not in markdown
    assert (results / "smoke.svg").read_text().lstrip().startswith("<?xml")


CONFIG = """
currencies: [{key: credits, name: Credits}]
customers: [{external_id: cus_a, name: A}]
products:
  - external_id: doc
    name: Documents
    pricing:
      - {event: doc, currency: credits, credit_cost: 1.5, quantity_path: $.q,
         until: 2026-11-16T00:00:00Z}
      - {event: doc, currency: credits, credit_cost: 1.25, quantity_path: $.q,
         from: 2026-11-16T00:00:00Z}
      - {event: chat, currency: credits, credit_cost: 0.25, quantity_path: '$["a.b"].q'}
      - {event: mail, currency: credits, credit_cost: 1}
"""
# (day of November, customer, product, event, data, duplicate?) -> credits of that day
CASES = [
    (1, "cus_a", "doc", "doc", '{"q":2.5}', False, "3.75"),
    (1, "cus_a", "doc", "doc", '{"q":2.5}', True, None),  # a duplicate: never counted
    (2, "cus_a", "doc", "doc", '{"q":"2.5"}', False, "3.75"),
    (3, "cus_a", "doc", "doc", '{"q":null}', False, "1.5"),
    (4, "cus_a", "doc", "doc", "{}", False, "1.5"),
    (5, "cus_a", "doc", "doc", '{"q":0.000003}', False, "0.000005"),  # 0.0000045: half away
    (6, "cus_a", "doc", "doc", '{"q":-3}', False, "0"),
    (7, "cus_a", "doc", "doc", '{"q":true}', False, "0"),
    (8, "cus_a", "doc", "doc", '{"q":"abc"}', False, "0"),
    (9, "cus_a", "doc", "doc", '{"q":0.1234567890123}', False, "0"),  # 13 decimal places
    (10, "cus_a", "doc", "doc", '{"q":1e19}', False, "0"),
    (11, "cus_a", "doc", "doc", '{"q":999999999999999999}', False, "1499999999999999998.5"),
    (12, "cus_x", "doc", "doc", '{"q":1}', False, "0"),  # unknown customer
    (13, "cus_a", "nope", "doc", '{"q":1}', False, "0"),  # unknown product
    (14, "cus_a", None, "doc", '{"q":1}', False, "0"),  # unattributed
    (15, "cus_a", "doc", "doc", '{"q":1e2}', False, "150"),
    (16, "cus_a", "doc", "doc", '{"q":2}', False, "2.5"),  # the second rule from midnight
    (17, "cus_a", "doc", "other", '{"q":1}', False, "0"),  # no rule for this event
    (18, "cus_a", "doc", "mail", '{"q":"junk"}', False, "1"),  # fixed cost: data ignored
    (19, "cus_a", "doc", "chat", '{"a.b":{"q":0.000002}}', False, "0.000001"),  # a literal dot
    (20, "cus_a", "doc", "chat", '{"a":{"b":{"q":5}}}', False, "0.25"),  # ...not a path: 1
]


def _signals_file(tmp_path: Path) -> str:
    rows = [
        {
            "seq": i + 1,
            "signal_id": f"sig_{i + 1:016d}",
            "received_at": datetime(2026, 12, 1, tzinfo=UTC),
            "timestamp": datetime(2026, 11, day, tzinfo=UTC),
            "event_name": event,
            "external_customer_id": customer,
            "external_product_id": product,
            "data": data,
            "is_duplicate": duplicate,
        }
        for i, (day, customer, product, event, data, duplicate, _) in enumerate(CASES)
    ]
    path = tmp_path / "signals" / "date=2026-11-01" / "part-1.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, SIGNAL_SCHEMA), path)
    return str(path)


@pytest.mark.parametrize("engine", peers.ENGINES)
def test_peers_price_edge_cases_exactly(engine: str, tmp_path: Path) -> None:
    files, config = [_signals_file(tmp_path)], parse_config({"c.yaml": CONFIG})
    if engine == "chdb":
        totals = peers.chdb_totals(files, config)
    elif engine == "polars":
        totals = peers.polars_totals(files, config)
    else:
        totals = peers.python_totals(files, config, None)
    expected = {
        (customer, f"2026-11-{day:02d}"): (1, Decimal(credits))
        for day, customer, _, _, _, _, credits in CASES
        if credits is not None
    }
    wrong = {k: (totals.get(k), v) for k, v in expected.items() if totals.get(k) != v}
    assert wrong == {} and totals.keys() == expected.keys()


def _size(name: str, signals: int, run_s: float, noop: float = 3.0) -> dict:
    stats = {"median": run_s, "min": run_s, "max": run_s}
    return {
        "size": name,
        "signals": signals,
        "run": stats,
        "rss_gb": {"median": 1.0, "min": 1.0, "max": 1.0},
        "noop": {"median": noop, "min": noop, "max": noop},
        "per_million": (run_s - noop) / (signals / 1e6),
    }


def test_scaling_verdict_and_report(tmp_path: Path) -> None:
    linear = scaling.verdict([_size("1m", 10**6, 13.0), _size("10m", 10**7, 110.0)])
    assert linear["linear"] and linear["sizes"][1]["growth"] == pytest.approx(1.07)
    worse = scaling.verdict([_size("1m", 10**6, 13.0), _size("10m", 10**7, 140.0)])
    assert not worse["linear"] and worse["sizes"][1]["growth"] == pytest.approx(1.37)
    report.write_scaling({"machine": {"cores": 2}, **worse}, tmp_path)
    markdown = (tmp_path / "scaling.md").read_text()
    assert "**not linear**" in markdown and "| 10m | 10,000,000 | 140.0 |" in markdown
    assert "](scaling.svg)" in markdown and (tmp_path / "scaling.svg").exists()
    assert json.loads((tmp_path / "scaling.json").read_text())["linear"] is False


def test_incremental_histories_and_ratios(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Figure 4's bookkeeping, with `tally` replaced: which days each home lands, what is timed."""
    names = [f"day-2026-11-{d:02d}.jsonl" for d in range(1, 31)] + ["day-2026-12-01.jsonl"]
    wl = Workload(tmp_path, tuple(tmp_path / n for n in names), dict.fromkeys(names, 100))
    bench = Bench("smoke", wl, tmp_path, histories=(0, 1, 10), repeat=1)
    bench.add("noop", 2, "run with nothing to do", "s", 3.0)
    walls = {"home": 8.0, "home-history-0": 9.0, "home-history-1": 5.0, "home-history-10": 6.0}
    landed: dict[str, list[str]] = {}

    def fake_tally(home: Path, *args: str) -> tuple[float, int, str]:
        if args[0] == "ingest":
            landed.setdefault(home.name, []).extend(Path(a).name for a in args[1:])
        return walls[home.name], 0, ""

    monkeypatch.setattr(incremental, "tally", fake_tally)
    monkeypatch.setattr(incremental, "prepare_home", lambda home, wl: None)
    incremental.measure(bench)
    assert landed["home-history-10"] == names[20:]  # the last 10 days, then day 31
    assert landed["home-history-1"] == names[29:] and landed["home-history-0"] == names[30:]
    assert landed["home"] == names[30:]  # the main home already holds the 30 days
    last = {key: f.values[-1] for key, f in bench.figures.items()}
    assert last["increment_0"] == 6.0 and last["increment_1"] == 2.0
    assert last["increment_10"] == 3.0 and last["increment_30"] == 5.0
    assert last["increment_ratio_10_1"] == 1.5 and last["increment_ratio_30_1"] == 2.5
    assert last["increment_ratio_30_0"] == pytest.approx(5 / 6)
    assert bench.info["incremental"] == {
        "added_file": names[30],
        "added_signals": 100,
        "histories": [0, 1, 10, 30],
    }

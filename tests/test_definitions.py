"""The Dagster code location loads, and holds what the UI shows."""

from __future__ import annotations

import dagster as dg


def test_definitions_load(home, monkeypatch):
    monkeypatch.setenv("TALLY_HOME", str(home.root))
    from pipelines.definitions import defs

    d = defs()
    job = d.resolve_job_def("billing_run")
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} >= {
        "fact_signal",
        "balance_snapshot",
        "warehouse",
    }
    assert d.resolve_schedule_def("daily_billing").cron_schedule == "15 0 * * *"
    assert d.resolve_sensor_def("billing_sensor").description
    checks = {k.name for k in d.resolve_asset_graph().asset_check_keys}
    assert checks == {"conservation", "one_status_per_signal", "idempotency_charged_once"}
    for key in ("fact_signal", "balance_snapshot", "warehouse"):
        spec = d.resolve_assets_def(key).specs_by_key[dg.AssetKey(key)]
        assert spec.description
        assert (spec.partitions_def is None) == (key == "warehouse")
    graph = d.resolve_asset_graph()
    sources = {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).is_observable}
    assert sources == {"signals", "pricing_config", "credit_grants"}
    assert graph.get(dg.AssetKey("fact_signal")).parent_keys == {
        dg.AssetKey("signals"),
        dg.AssetKey("pricing_config"),
    }

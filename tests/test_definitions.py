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


def test_an_instance_file_naming_the_old_module_is_updated(tmp_path, monkeypatch):
    """A home whose dagster.yaml was written before the modules moved into their stages loads:
    the old instance module's name is replaced in place, the user's other edits are kept."""
    from pipelines.core.home import INSTANCE_YAML, ensure_instance

    monkeypatch.delenv("TALLY_DAGSTER_STORAGE", raising=False)
    monkeypatch.setenv("TALLY_HOME", str(tmp_path))
    (tmp_path / "dagster").mkdir()
    old = INSTANCE_YAML.replace("pipelines.billing.instance", "pipelines.lib.instance")
    (tmp_path / "dagster" / "dagster.yaml").write_text(old + "# kept edit\n")
    path = ensure_instance(tmp_path)
    text = (path / "dagster.yaml").read_text()
    assert "pipelines.lib.instance" not in text
    assert text == INSTANCE_YAML + "# kept edit\n"
    instance = dg.DagsterInstance.from_config(str(path))
    assert instance.get_runs() == []  # the storage module loads
    instance.dispose()

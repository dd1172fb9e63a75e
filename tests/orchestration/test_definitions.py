import dagster as dg

from orchestration.definitions import defs


def test_definitions_load_with_every_stage():
    repo = defs.get_repository_def()
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    from offline_rl.domains import domain_names

    stages = ("transitions", "candidates", "ope", "gate", "export")
    for domain in domain_names():
        assert {f"{domain}_{stage}" for stage in stages} <= keys
        groups = {repo.asset_graph.get(dg.AssetKey(f"{domain}_{s}")).group_name for s in stages}
        assert groups == {domain}
        stage_tags = {repo.asset_graph.get(dg.AssetKey(f"{domain}_{s}")).tags["stage"]
                      for s in stages}
        assert stage_tags == {"transitions", "training", "evaluation", "promotion", "export"}
    assert repo.asset_graph.get(dg.AssetKey("raw_clickstream")).group_name == "ingestion"


def test_jobs_schedule_and_blocking_gate_check():
    assert {"nightly_data", "nightly", "ingest", "transitions"} <= {j.name for j in defs.jobs}
    # the jobs take their partitions from their assets, so the schedule resolves with them;
    # it starts a night's data, whose success starts the nightly stages
    schedule = defs.resolve_schedule_def("nightly_schedule")
    assert schedule.job_name == "nightly_data" and schedule.cron_schedule == "0 2 * * *"
    sensor = defs.resolve_sensor_def("nightly_after_data_sensor")
    assert sensor.job_name == "nightly"
    from assets.promotion import gate_assets

    recommendation_gate = next(a for a in gate_assets if a.key.path[-1] == "recommendation_gate")

    specs = {s.name: s for s in recommendation_gate.check_specs}
    assert specs["promotion_evidence"].blocking


def test_training_depends_on_a_rolling_window_of_transitions():
    repo = defs.get_repository_def()
    node = repo.asset_graph.get(dg.AssetKey("recommendation_candidates"))
    assert dg.AssetKey("recommendation_transitions") in node.parent_keys


def test_loading_the_code_location_imports_neither_torch_nor_d3rlpy():
    """The webserver, `dagster asset list` and every step process load the definitions: the
    trainer, FQE and the export builder import torch and d3rlpy only when a step needs them."""
    import subprocess
    import sys

    code = ("import sys, orchestration.definitions; "
            "print(sorted(m for m in ('torch', 'd3rlpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_a_night_is_two_jobs_one_per_partitions_definition():
    """Days of logs (raw tables, transitions) and nights (every later stage) are two
    partitions definitions, so a shop's nights can start after its first day of logs; together
    the two jobs of a night cover every asset once."""
    from orchestration import partitions

    data, nightly = defs.resolve_job_def("nightly_data"), defs.resolve_job_def("nightly")
    data_keys = data.asset_layer.executable_asset_keys
    night_keys = nightly.asset_layer.executable_asset_keys
    graph = defs.resolve_asset_graph()
    assert not data_keys & night_keys
    assert data_keys | night_keys == set(graph.get_all_asset_keys())
    assert {graph.get(k).tags.get("stage", "ingestion") for k in data_keys} == {
        "ingestion", "transitions"}
    assert {graph.get(k).tags["stage"] for k in night_keys} == {
        "training", "evaluation", "promotion", "export", "monitor"}
    assert data.partitions_def == partitions.daily and nightly.partitions_def == partitions.nights

import dagster as dg

from orchestration.definitions import defs


def test_definitions_load_with_every_stage():
    repo = defs.get_repository_def()
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    from offline_rl.domains import DOMAIN_NAMES

    stages = ("transitions", "candidates", "ope", "gate", "export")
    for domain in DOMAIN_NAMES:
        assert {f"{domain}_{stage}" for stage in stages} <= keys
        groups = {repo.asset_graph.get(dg.AssetKey(f"{domain}_{s}")).group_name for s in stages}
        assert groups == {domain}
        stage_tags = {repo.asset_graph.get(dg.AssetKey(f"{domain}_{s}")).tags["stage"]
                      for s in stages}
        assert stage_tags == {"transitions", "training", "evaluation", "promotion", "export"}
    assert repo.asset_graph.get(dg.AssetKey("raw_clickstream")).group_name == "ingestion"


def test_jobs_schedule_and_blocking_gate_check():
    assert {"nightly", "ingest", "transitions"} <= {j.name for j in defs.jobs}
    # the jobs take their partitions from their assets, so the schedule resolves with them
    schedule = defs.resolve_schedule_def("nightly_schedule")
    assert schedule.job_name == "nightly" and schedule.cron_schedule == "0 2 * * *"
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

import dagster as dg

from orchestration.definitions import defs


def test_definitions_load_with_every_stage():
    repo = defs.get_repository_def()
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    assert {"raw_clickstream", "recommendation_transitions", "recommendation_candidates",
            "recommendation_ope", "recommendation_gate", "recommendation_export"} <= keys
    groups = {repo.asset_graph.get(dg.AssetKey(k)).group_name for k in keys}
    assert {"ingestion", "transitions", "training", "evaluation", "promotion"} <= groups


def test_jobs_schedule_and_blocking_gate_check():
    assert {"nightly", "ingest", "transitions"} <= {j.name for j in defs.jobs}
    schedule = next(iter(defs.schedules))
    assert schedule.job_name == "nightly"
    from assets.promotion import recommendation_gate

    specs = {s.name: s for s in recommendation_gate.check_specs}
    assert specs["promotion_evidence"].blocking


def test_training_depends_on_a_rolling_window_of_transitions():
    repo = defs.get_repository_def()
    node = repo.asset_graph.get(dg.AssetKey("recommendation_candidates"))
    assert dg.AssetKey("recommendation_transitions") in node.parent_keys

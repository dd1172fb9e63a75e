"""A domain is one module: a sixth domain written as one file outside the package
(``plugin/toy_search_domain.py``) and named in ``$OFFLINE_RL_DOMAINS`` appears in the registry,
the simulated shop and its truth, the command line, the landing contract and its rules, the
generated docs and the Dagster definitions, and a night runs it end to end, with no other
edit. The checks run in a fresh interpreter, as the definitions are built when imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN = Path(__file__).parent / "plugin"
ROOT = Path(__file__).resolve().parents[3]

SCRIPT = r'''
import contextlib, datetime as dt, io, json, sys
from pathlib import Path

import dagster as dg
import polars as pl

home = Path(sys.argv[1])
facts = {}

from offline_rl.domains import domain_names, get_domain
facts["registry"] = list(domain_names())

from offline_rl.cli import main
for command in (["domains"], ["schemas"]):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(command) == 0
    facts[command[0]] = out.getvalue()

from offline_rl.shop import write_landing
DAYS = [dt.date(2026, 10, 1), dt.date(2026, 10, 2)]
summary = write_landing(home, days=2, start=DAYS[0], seed=4, events_per_day=40_000)
facts["rows"] = summary.rows
facts["served"] = summary.served

out = io.StringIO()
with contextlib.redirect_stdout(out):
    assert main(["--home", str(home), "rollout", "--domain", "search", "--policy", "behavior",
                 "--episodes", "20000", "--scenario", "default",
                 "--json", str(home / "truth.json")]) == 0
facts["truth"] = json.loads((home / "truth.json").read_text())
err = io.StringIO()
with contextlib.redirect_stderr(err):
    facts["unknown_domain_exit"] = main(["--home", str(home), "rollout", "--domain", "nope",
                                         "--policy", "behavior"])
facts["unknown_domain_error"] = err.getvalue()

# a row that breaks the toy's own value rule (sort must be 0, 1 or 2), in its own file
day_two = home / "landing" / "search_queries" / "date=2026-10-02"
first = pl.read_parquet(next(day_two.glob("*.parquet")))
bad = first.head(1).with_columns(event_id=pl.lit("bad-q0"), sort=pl.lit(7, pl.Int32))
bad.write_parquet(day_two / "part-bad.parquet")

from orchestration.definitions import defs
keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
facts["assets"] = sorted(k for k in keys if "search" in k)
facts["nightly_has_search"] = any(
    "search" in k.to_user_string()
    for k in defs.resolve_job_def("nightly").asset_layer.selected_asset_keys)

from assets.evaluation import ope_asset
from assets.ingestion import raw_assets
from assets.promotion import export_asset, gate_asset
from assets.training import candidates_asset
from assets.transitions import transitions_asset
from orchestration.resources import DataHome

domain = get_domain("search")
raw = [a for a in raw_assets if a.key.to_user_string() == "raw_search_queries"]
transitions = transitions_asset(domain)
stages = [candidates_asset(domain), ope_asset(domain), gate_asset(domain), export_asset(domain)]
resources = {"data_home": DataHome(home=str(home))}
instance = dg.DagsterInstance.ephemeral()
for day in DAYS:
    assert dg.materialize(raw, partition_key=str(day), resources=resources,
                          instance=instance).success
assert dg.materialize([*raw, transitions], partition_key=str(DAYS[0]), resources=resources,
                      instance=instance, selection=[transitions]).success
tiny = {"ops": {
    "search_candidates": {"config": {"n_steps": 600, "seed": 0, "device": "cpu",
                                     "algorithms": ["bc", "double_dqn"], "settle_days": 0}},
    "search_ope": {"config": {"fqe_steps": 400, "n_bootstrap": 100, "device": "cpu"}},
}}
result = dg.materialize([*raw, transitions, *stages], partition_key=str(DAYS[1]),
                        resources=resources, instance=instance, run_config=tiny,
                        selection=[transitions, *stages])
facts["night_success"] = result.success
facts["checks"] = {f"{c.asset_key.to_user_string()}:{c.check_name}": c.passed
                   for c in result.get_asset_check_evaluations()}

from offline_rl.data.warehouse import Warehouse
from offline_rl.paths import DataPaths
paths = DataPaths(home)
wh = Warehouse(paths.warehouse)
logged = wh.read_partitions("search_transitions", DAYS[0], DAYS[1])
facts["transitions"] = logged.height
returns = logged.group_by("episode_id").agg(pl.col("reward").sum())["reward"]
facts["logged_return"] = [returns.mean(), returns.std() / returns.len() ** 0.5]
out = io.StringIO()
with contextlib.redirect_stdout(out):
    assert main(["--home", str(home), "quarantine", "--dataset", "search_queries"]) == 0
facts["quarantine"] = out.getvalue()
facts["decision"] = wh.query("registry/select_decision", domain="search",
                             day=DAYS[1]).row(0, named=True)
facts["export"] = sorted(p.name for p in (paths.exports / "search").iterdir()) \
    if (paths.exports / "search").is_dir() else []
print("FACTS " + json.dumps(facts, default=str))
'''


@pytest.fixture(scope="module")
def facts(tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("toy_home")
    env = {**os.environ, "OFFLINE_RL_DOMAINS": "toy_search_domain",
           "OFFLINE_RL_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(PLUGIN)])}
    (home / "dagster").mkdir()
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(home)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("FACTS "))
    return {**json.loads(line.removeprefix("FACTS ")), "home": str(home)}


def test_registry_lists_the_sixth_domain_after_the_five(facts):
    assert facts["registry"] == ["recommendation", "cart", "inventory", "ads", "pricing",
                                "search"]


def test_generated_docs_describe_it(facts):
    assert "## search" in facts["domains"] and "Search sort order" in facts["domains"]
    assert "`search_queries` → `raw_search_queries`" in facts["domains"]
    assert "## `search_queries` → `raw_search_queries` (search)" in facts["schemas"]
    assert "| `sort` | int32 | no |  | one of 0, 1, 2 |" in facts["schemas"]


def test_the_shop_logs_it_and_its_truth_matches_the_logs(facts):
    assert facts["rows"]["search_queries"] > 2000
    assert facts["served"]["search"] == "shop_rule"
    truth = facts["truth"]
    assert truth["episodes"] == 20_000 and 1.0 < truth["mean"] < 3.0
    # the behaviour policy's true value is what its logs earned, per session
    mean, se = facts["logged_return"]
    assert abs(mean - truth["mean"]) < 4 * (se ** 2 + truth["stderr"] ** 2) ** 0.5
    assert facts["unknown_domain_exit"] == 2
    assert "unknown domain 'nope'" in facts["unknown_domain_error"]
    assert "pricing, search" in facts["unknown_domain_error"]


def test_the_five_domains_logs_are_unchanged_by_a_sixth(facts, tmp_path):
    import datetime as dt

    import polars as pl

    from offline_rl.shop import write_landing

    five = write_landing(tmp_path, days=2, start=dt.date(2026, 10, 1), seed=4,
                         events_per_day=40_000)
    assert five.rows == {k: v for k, v in facts["rows"].items() if k != "search_queries"}
    for path in five.written:
        other = Path(facts["home"]) / path.relative_to(tmp_path)
        assert pl.read_parquet(path).equals(pl.read_parquet(other)), path


def test_definitions_and_a_night_run_it(facts):
    assert {"raw_search_queries", "search_transitions", "search_candidates", "search_ope",
            "search_gate", "search_export"} <= set(facts["assets"])
    assert facts["nightly_has_search"]
    assert facts["night_success"]
    assert facts["transitions"] > 2000
    assert facts["checks"] and all(facts["checks"].values()), facts["checks"]
    assert "search_transitions:transitions_contract" in facts["checks"]
    assert facts["decision"]["promoted"], facts["decision"]["reasons"]
    assert facts["decision"]["export_version"] in facts["export"]


def test_its_value_rules_quarantine_a_bad_row(facts):
    assert "bad-q0" in facts["quarantine"]
    assert "sort" in facts["quarantine"] and "is not one of 0, 1, 2" in facts["quarantine"]

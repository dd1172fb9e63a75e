"""``offline-rl ope`` on a night's held-out episodes reproduces that night's gate estimates.

A tiny recommendation night runs through the pipeline functions (ingest, transitions, two
trained candidates, the nightly evaluation). Its held-out episodes are then exported as a
logs file, the way a user would hand them to ``offline-rl ope``, and each candidate is valued
by the command, given either as its action probabilities (a table) or as an export: every
estimate and interval must equal that candidate's ``ope_estimates`` rows.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import tempfile
from pathlib import Path

import polars as pl
import pytest

from offline_rl.algos.training import TrainingConfig, load_candidate
from offline_rl.cli import build_parser, run
from offline_rl.data.schemas import SOURCES
from offline_rl.data.warehouse import Warehouse
from offline_rl.domains import get_domain
from offline_rl.export.build import build_export
from offline_rl.export.registry import publish
from offline_rl.ope.evaluate import OPEConfig
from offline_rl.paths import DataPaths
from offline_rl.pipeline import (
    BEHAVIOR,
    OPE_CONFIG_FILE,
    build_transitions_partition,
    evaluate_candidates,
    evaluation_window,
    ingest_partition,
    train_candidates,
)
from offline_rl.shop import write_landing

DOMAIN = get_domain("recommendation")
DAYS = [dt.date(2026, 10, 1), dt.date(2026, 10, 2)]
NIGHT = DAYS[1]
# small but not trivial: a few hundred held-out sessions, FQE refitted three times
OPE = OPEConfig(fqe_steps=200, n_bootstrap=100, fqe_refits=3, device="cpu")
CANDIDATES = ["bc", "double_dqn"]


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """The night's data home, its held-out episodes as a logs file (rows shuffled: the
    command sorts them), and each candidate's folder."""
    home = tmp_path_factory.mktemp("home")
    paths = DataPaths(home)
    write_landing(home, days=len(DAYS), start=DAYS[0], seed=3, events_per_day=4000)
    for day in DAYS:
        for source in DOMAIN.sources:
            ingest_partition(paths, SOURCES[source], day)
    for day in DAYS:
        build_transitions_partition(paths, DOMAIN, day)
    training = TrainingConfig(n_steps=300, steps_per_epoch=300, batch_size=64, seed=0,
                              device="cpu")
    train_candidates(paths, DOMAIN, NIGHT, CANDIDATES, training, window_days=2,
                     eval_fraction=0.5, settle_days=0)
    evaluate_candidates(paths, DOMAIN, NIGHT, OPE)

    root, names, window = evaluation_window(paths, DOMAIN, NIGHT)
    assert names == CANDIDATES
    held = window.evaluation
    assert 200 <= window.eval_episodes <= 1000
    logs = pl.DataFrame({
        "episode_id": held.episode, "step": held.step, "action": held.actions,
        "reward": held.rewards, "behavior_prob": held.behavior_prob,
        **{column: held.observations[:, j] for j, column in enumerate(DOMAIN.feature_columns)},
    })
    logs_file = home / "heldout.parquet"
    logs.sample(fraction=1.0, shuffle=True, seed=1).write_parquet(logs_file)
    return paths, root, held, logs_file


def _gate_rows(paths: DataPaths, policy: str) -> dict[str, dict]:
    frame = Warehouse(paths.warehouse).query("registry/select_estimates", domain=DOMAIN.name,
                                             day=NIGHT)
    return {r["estimator"]: r for r in frame.filter(pl.col("policy") == policy)
            .iter_rows(named=True)}


def _table(held, algo, path: Path) -> Path:
    """The candidate's action probabilities at the held-out decisions (its greedy action: 1)."""
    pl.DataFrame({"episode_id": held.episode, "step": held.step,
                  "action": algo.predict(held.observations), "prob": 1.0}).write_parquet(path)
    return path


def _export(paths: DataPaths, root: Path, name: str) -> Path:
    """The candidate published as an export, the way a promotion publishes it."""
    training = json.loads((root / name / "training.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        built = build_export(load_candidate(root / name), Path(tmp),
                             feature_names=training["feature_schema"]["names"],
                             action_map=training["action_map"])
        return publish(paths.home / "user_exports", DOMAIN.name, built.torchscript,
                       {**built.manifest, "algorithm": training["algorithm"]},
                       extra_files=built.extra_files).path


def _ope(argv: list[str]) -> int:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert "ope" in sub.choices
    return run(parser, ["ope", *argv])


def _night_settings(root: Path) -> list[str]:
    """The night's recorded OPE settings as ``ope`` options."""
    recorded = json.loads((root / OPE_CONFIG_FILE).read_text())
    assert {k: recorded[k] for k in ("alpha", "n_bootstrap", "fqe_steps", "fqe_refits",
                                     "seed")} == {"alpha": OPE.alpha, "n_bootstrap": 100,
                                                  "fqe_steps": 200, "fqe_refits": 3, "seed": 0}
    return ["--alpha", str(recorded["alpha"]), "--n-bootstrap", str(recorded["n_bootstrap"]),
            "--fqe-steps", str(recorded["fqe_steps"]), "--fqe-refits",
            str(recorded["fqe_refits"]), "--seed", str(recorded["seed"])]


@pytest.mark.parametrize("name, kind", [("bc", "table"), ("double_dqn", "table"),
                                        ("double_dqn", "export")])
def test_ope_on_the_held_out_episodes_gives_the_gates_estimates(night, tmp_path, name, kind):
    paths, root, held, logs_file = night
    if kind == "table":
        target = _table(held, load_candidate(root / name), tmp_path / "target.parquet")
        where = ["--domain", DOMAIN.name]  # the domain's action count, as the night used
    else:
        target = _export(paths, root, name)
        where = []  # the export's manifest gives the action count
    out = tmp_path / "ope.json"
    assert _ope(["--logs", str(logs_file), "--target", str(target), "--json", str(out),
                 *where, *_night_settings(root)]) == 0
    record = json.loads(out.read_text())
    assert record["target_kind"] == kind

    gate = _gate_rows(paths, name)
    assert set(record["estimates"]) == set(gate) == {"ipw", "snipw", "pdis", "snpdis", "dm",
                                                     "dr", "sndr"}
    for estimator, row in gate.items():  # exactly: the same computation on the same data
        got = record["estimates"][estimator]
        assert (got["value"], got["low"], got["high"]) == \
            (row["value"], row["low"], row["high"]), estimator
    details = json.loads(gate["dr"]["details"])
    assert record["details"]["refit_replicates"]["values"] == \
        details["refit_replicates"]["values"]
    stored = {**details["diagnostics"], "estimator_disagreement": details["disagreement"]}
    assert record["diagnostics"] == {k: v if math.isfinite(v) else None  # JSON: null
                                     for k, v in stored.items()}
    behavior = _gate_rows(paths, BEHAVIOR)["on_policy"]
    assert (record["behavior_value"], record["behavior_interval"]["low"],
            record["behavior_interval"]["high"]) == \
        (behavior["value"], behavior["low"], behavior["high"])
    d3rlpy_only = ("device", "fqe_reward_scale")  # settings of the d3rlpy FQE backend
    recorded = json.loads((root / OPE_CONFIG_FILE).read_text())
    assert {k: v for k, v in record["details"]["config"].items() if k not in d3rlpy_only} == \
        {k: v for k, v in recorded.items() if k not in d3rlpy_only}


def test_other_settings_give_other_numbers(night, tmp_path):
    """The match above is not vacuous: another FQE seed moves the model-based estimates and
    leaves the importance-weighted ones (they involve no model) where they were."""
    paths, root, held, logs_file = night
    target = _table(held, load_candidate(root / "bc"), tmp_path / "target.parquet")
    out = tmp_path / "ope.json"
    settings = _night_settings(root)
    settings[settings.index("--seed") + 1] = "1"
    assert _ope(["--logs", str(logs_file), "--target", str(target), "--json", str(out),
                 "--domain", DOMAIN.name, *settings]) == 0
    estimates = json.loads(out.read_text())["estimates"]
    gate = _gate_rows(paths, "bc")
    for estimator in ("dm", "dr", "sndr"):
        assert estimates[estimator]["value"] != gate[estimator]["value"], estimator
    for estimator in ("ipw", "pdis"):
        assert estimates[estimator]["value"] == gate[estimator]["value"], estimator


def test_the_options_default_to_the_nightly_settings():
    """Every option ``ope`` takes from OPEConfig defaults to OPEConfig's value."""
    from offline_rl.ope.command import OPE_SETTINGS

    args = build_parser().parse_args(["ope", "--logs", "x.parquet", "--target", "t.parquet"])
    defaults = dataclasses.asdict(OPEConfig())
    names = [name for name, *_ in OPE_SETTINGS]
    assert {"alpha", "n_bootstrap", "fqe_steps", "fqe_refits", "seed"} <= set(names)
    assert {n: getattr(args, n) for n in names} == {n: defaults[n] for n in names}


def test_ope_served_on_the_held_out_episodes_gives_the_promise(night, tmp_path):
    """A promotion's promise (the policy valued as served) is what ``ope --served`` says on
    the night's held-out episodes with the night's settings."""
    from offline_rl.export.exploration import Exploration
    from offline_rl.pipeline import serving_promise

    paths, root, _, logs_file = night
    training = json.loads((root / "double_dqn" / "training.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        built = build_export(load_candidate(root / "double_dqn"), Path(tmp),
                             feature_names=training["feature_schema"]["names"],
                             action_map=training["action_map"],
                             exploration=Exploration("epsilon", 0.15))
        promise = serving_promise(paths, DOMAIN, NIGHT, built, "dr")
        target = publish(paths.home / "served_exports", DOMAIN.name, built.torchscript,
                         {**built.manifest, "algorithm": training["algorithm"]},
                         extra_files=built.extra_files).path
    out = tmp_path / "ope.json"
    assert _ope(["--logs", str(logs_file), "--target", str(target), "--served", "--json",
                 str(out), *_night_settings(root)]) == 0
    record = json.loads(out.read_text())
    assert "as served (epsilon, epsilon 0.15)" in record["details"]["target"]
    for estimator in ("ipw", "pdis", "dm", "dr"):
        got, promised = record["estimates"][estimator], promise["estimates"][estimator]
        assert (got["value"], got["low"], got["high"]) == \
            (promised["value"], promised["low"], promised["high"]), estimator
    assert (promise["value"], promise["low"]) == (promise["estimates"]["dr"]["value"],
                                                  promise["estimates"]["dr"]["low"])
    # the served policy explores, so it is worth something else than the greedy one
    greedy = _gate_rows(paths, "double_dqn")["ipw"]["value"]
    assert record["estimates"]["ipw"]["value"] != greedy

"""The serving head: exploration around the greedy action, propensities, TorchScript = ONNX."""

from __future__ import annotations

import json

import numpy as np
import pytest

from offline_rl.export.exploration import (
    Exploration,
    allowed_actions,
    draw,
    per_decision_ess,
    serving_probabilities,
)

FEATURES = ["a", "b", "c", "d", "e", "f"]  # the conftest's tiny models' schema
ACTIONS = {"0": "books", "1": "games", "2": "music", "3": "toys"}


def _build(trained, tmp_path, name="double_dqn", exploration=None, mask=None):
    from offline_rl.export.build import build_export

    return build_export(trained(name), tmp_path, feature_names=FEATURES, action_map=ACTIONS,
                        action_mask_feature=mask,
                        exploration=exploration or Exploration("epsilon", 0.2))


def _published(built, tmp_path):
    from offline_rl.export.loader import POLICY_FILE, load_latest
    from offline_rl.export.registry import publish

    files = built.extra_files
    publish(tmp_path / "exports", "demo", built.files[POLICY_FILE], built.manifest,
            extra_files=files)
    return load_latest(tmp_path / "exports", "demo")


@pytest.mark.parametrize("name", ["double_dqn", "bc"])
def test_epsilon_serving_matches_formula_and_onnx(name, trained, tmp_path):
    from offline_rl.export.build import run_serving_onnx

    built = _build(trained, tmp_path / "b", name=name)
    assert built.manifest["exploration"] == {"kind": "epsilon", "epsilon": 0.2,
                                             "temperature": 1.0}
    policy = _published(built, tmp_path)
    x = np.random.default_rng(3).normal(size=(4000, len(FEATURES))).astype(np.float32)
    greedy, values = policy.predict_with_values(x)
    served = policy.sample(x, np.random.default_rng(7))
    probs = serving_probabilities(greedy, values, np.ones((len(x), 4), bool),
                                  policy.exploration)
    np.testing.assert_allclose(served.probs, probs, atol=1e-6)
    # greedy gets 1 - eps + eps/4, the others eps/4
    np.testing.assert_allclose(served.probs[np.arange(len(x)), greedy], 0.85, atol=1e-6)
    np.testing.assert_allclose(served.propensity, probs[np.arange(len(x)), served.action],
                               atol=1e-6)
    # the served actions follow the distribution: about 85% greedy
    share = float((served.action == greedy).mean())
    assert abs(share - 0.85) < 0.03
    # the same random stream serves the same actions; the ONNX head serves them too
    again = policy.sample(x, np.random.default_rng(7))
    np.testing.assert_array_equal(again.action, served.action)
    u = np.random.default_rng(7).random(len(x))
    o_action, o_prop, o_probs = run_serving_onnx(built.serving_onnx, x, u)
    np.testing.assert_array_equal(o_action, served.action)
    np.testing.assert_allclose(o_prop, served.propensity, atol=1e-6)
    np.testing.assert_array_equal(draw(served.probs, u), served.action)


def test_softmax_serving_respects_the_mask(trained, tmp_path):
    mask = ["c", "d", "e", "f"]
    built = _build(trained, tmp_path / "b", exploration=Exploration("softmax", 0.05, 0.5),
                   mask=mask)
    policy = _published(built, tmp_path)
    x = np.random.default_rng(5).normal(size=(3000, len(FEATURES))).astype(np.float32)
    x[:50, 2:6] = -1.0  # nothing allowed: -1 with propensity 1
    served = policy.sample(x, np.random.default_rng(1))
    allowed, any_allowed = allowed_actions(x, [2, 3, 4, 5], 4)
    assert (served.action[:50] == -1).all() and (served.propensity[:50] == 1.0).all()
    rows = np.flatnonzero(any_allowed)
    assert allowed[rows, served.action[rows]].all()  # never a masked action
    assert (served.probs[rows][~allowed[rows]] == 0).all()
    greedy, values = policy.predict_with_values(x)
    expected = serving_probabilities(greedy, values, allowed, policy.exploration)
    np.testing.assert_allclose(served.probs, expected, atol=1e-5)
    # the logged propensities are recomputed from the manifest and the features alone
    manifest = json.loads((policy.path / "manifest.json").read_text())
    names = manifest["feature_schema"]["names"]
    index = [names.index(m) for m in manifest["action_mask_feature"]]
    recomputed = serving_probabilities(
        greedy, values, allowed_actions(x, index, 4)[0],
        Exploration.from_dict(manifest["exploration"]))
    np.testing.assert_allclose(recomputed[rows, served.action[rows]], served.propensity[rows],
                               atol=1e-5)


def test_export_without_exploration_has_no_serving_head(trained, tmp_path):
    from offline_rl.export.build import build_export
    from offline_rl.export.loader import ExportError

    built = build_export(trained("double_dqn"), tmp_path / "b", feature_names=FEATURES,
                         action_map=ACTIONS)
    assert "exploration" not in built.manifest and built.serving_torchscript is None
    policy = _published(built, tmp_path)
    with pytest.raises(ExportError, match="no serving head"):
        policy.sample(np.zeros((2, len(FEATURES))), np.random.default_rng(0))


def test_tampered_serving_head_is_refused(trained, tmp_path):
    from offline_rl.export.loader import SERVING_POLICY_FILE, ExportError, load_latest

    policy = _published(_build(trained, tmp_path / "b"), tmp_path)
    target = policy.path / SERVING_POLICY_FILE
    target.write_bytes(target.read_bytes()[:-10])
    with pytest.raises(ExportError, match="checksum mismatch"):
        load_latest(tmp_path / "exports", "demo")


def test_exploration_validation_and_ess_figure():
    with pytest.raises(ValueError, match="kind"):
        Exploration("boltzmann")
    with pytest.raises(ValueError, match="epsilon"):
        Exploration(epsilon=1.5)
    with pytest.raises(ValueError, match="temperature"):
        Exploration("softmax", temperature=0.0)
    # a target that agrees with the served greedy action everywhere keeps most of the data
    assert per_decision_ess(0.1, 4, 0.0) == pytest.approx(0.925)
    # one that always disagrees keeps epsilon / n_actions of it
    assert per_decision_ess(0.1, 4, 1.0) == pytest.approx(0.025)
    assert per_decision_ess(0.0, 4, 0.5) == 0.0
    # the closed form matches weights drawn from the served distribution
    rng = np.random.default_rng(0)
    n, k, eps, d = 200_000, 5, 0.15, 0.4
    greedy = np.zeros(n, dtype=np.int64)
    target = np.where(rng.random(n) < d, 1 + rng.integers(0, k - 1, n), 0)
    probs = serving_probabilities(greedy, np.zeros((n, k)), np.ones((n, k), bool),
                                  Exploration(epsilon=eps))
    logged = draw(probs, rng.random(n))
    w = (logged == target) / probs[np.arange(n), logged]
    assert w.mean() ** 2 / (w ** 2).mean() == pytest.approx(per_decision_ess(eps, k, d),
                                                              rel=0.03)


def test_predict_prints_the_served_action_and_its_propensity(trained, tmp_path, capsys):
    from offline_rl.cli import build_parser, run
    from offline_rl.export.loader import POLICY_FILE
    from offline_rl.export.registry import publish

    built = _build(trained, tmp_path / "b")
    home = tmp_path / "home"
    publish(home / "exports", "cart", built.files[POLICY_FILE], built.manifest,
            extra_files=built.extra_files)
    x = np.random.default_rng(4).normal(size=(50, len(FEATURES))).astype(np.float32)
    pl_frame = __import__("polars").DataFrame(x, schema=FEATURES)
    pl_frame.write_csv(tmp_path / "rows.csv")
    out = tmp_path / "pred.json"
    argv = ["--home", str(home), "predict", "--domain", "cart", "--features",
            str(tmp_path / "rows.csv"), "--seed", "3"]
    assert run(build_parser(), [*argv, "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["exploration"]["epsilon"] == 0.2 and record["seed"] == 3
    served = np.array([r["served_action"] for r in record["rows"]])
    propensity = np.array([r["propensity"] for r in record["rows"]])
    greedy = np.array([r["action"] for r in record["rows"]])
    # epsilon 0.2 over 4 actions: 0.85 on the greedy action, 0.05 on the others
    np.testing.assert_allclose(propensity, np.where(served == greedy, 0.85, 0.05), atol=1e-6)
    assert 0 < (served != greedy).sum() < 25
    assert run(build_parser(), argv) == 0
    text = capsys.readouterr().out
    assert "served with epsilon exploration (epsilon 0.2), draws seeded 3" in text
    header = next(line for line in text.splitlines() if line.startswith("row\t"))
    assert header.split("\t")[3:5] == ["served", "propensity"]


def test_predict_warns_or_refuses_outside_the_training_ranges(trained, tmp_path, capsys):
    from offline_rl.cli import build_parser, run
    from offline_rl.export.loader import POLICY_FILE
    from offline_rl.export.registry import publish

    built = _build(trained, tmp_path / "b")
    home = tmp_path / "home"
    ranges = {name: [-5.0, 5.0] for name in FEATURES}
    publish(home / "exports", "cart", built.files[POLICY_FILE],
            {**built.manifest, "feature_ranges": ranges}, extra_files=built.extra_files)
    x = np.zeros((3, len(FEATURES)), dtype=np.float32)
    x[2, 1] = 1e30
    __import__("polars").DataFrame(x, schema=FEATURES).write_csv(tmp_path / "rows.csv")
    argv = ["--home", str(home), "predict", "--domain", "cart", "--features",
            str(tmp_path / "rows.csv")]
    assert run(build_parser(), argv) == 0
    err = capsys.readouterr().err
    assert "1 row(s)" in err and "first row 3" in err and "b = 1e+30 outside [-5, 5]" in err
    assert run(build_parser(), [*argv, "--strict"]) == 2
    assert "outside the range of the policy's training data" in capsys.readouterr().err


def test_predict_warns_or_refuses_a_broken_one_hot_group(trained, tmp_path, capsys):
    """Two levels of a one-hot group set at once stay inside every feature's range; the
    manifest's groups catch them."""
    from offline_rl.cli import build_parser, run
    from offline_rl.export.loader import POLICY_FILE
    from offline_rl.export.registry import publish

    built = _build(trained, tmp_path / "b")
    home = tmp_path / "home"
    publish(home / "exports", "cart", built.files[POLICY_FILE],
            {**built.manifest, "feature_ranges": {n: [0.0, 1.0] for n in FEATURES},
             "one_hot_groups": {"seg": ["a", "b", "c"]}}, extra_files=built.extra_files)
    x = np.zeros((3, len(FEATURES)), dtype=np.float32)
    x[:, 0] = 1.0
    x[1, 1] = 1.0  # a and b
    __import__("polars").DataFrame(x, schema=FEATURES).write_csv(tmp_path / "rows.csv")
    argv = ["--home", str(home), "predict", "--domain", "cart", "--features",
            str(tmp_path / "rows.csv")]
    assert run(build_parser(), argv) == 0
    out = capsys.readouterr()
    assert "1 row(s)" in out.err and "break a one-hot group" in out.err
    assert "first row 2 (1-based, header excluded): seg: a = 1, b = 1, c = 0" in out.err
    assert "outside the range" not in out.err
    predicted = [line.split("\t")[0] for line in out.out.splitlines() if "\t" in line]
    assert predicted == ["row", "1", "2", "3"]  # every row is still predicted
    assert run(build_parser(), [*argv, "--strict"]) == 2
    assert "break a one-hot group" in capsys.readouterr().err


def test_one_hot_groups_are_found_from_the_training_rows():
    from offline_rl.export.loader import one_hot_groups

    names = ["segment_0", "segment_1", "segment_2", "device_mobile", "device_desktop",
             "log_value", "shown_home", "shown_toys", "weekday_mon", "weekday_tue"]
    x = np.array([[1, 0, 0, 0, 1, 0.3, 1, 1, 1, 0],
                  [0, 0, 1, 1, 0, 0.7, 0, 0, 1, 0],
                  [0, 1, 0, 1, 0, 0.1, 0, 1, 1, 0]], dtype=np.float32)
    # shown_*: binary but not one per row; a group whose level never occurs (weekday_tue)
    # is still one group
    assert one_hot_groups(x, names) == {
        "segment": ["segment_0", "segment_1", "segment_2"],
        "device": ["device_mobile", "device_desktop"],
        "weekday": ["weekday_mon", "weekday_tue"]}
    assert one_hot_groups(x[:0], names) == {}
    x[1, 0] = 0.5  # no longer binary
    assert "segment" not in one_hot_groups(x, names)

"""An export as an MLflow pyfunc model serves what the export serves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("mlflow")

from offline_rl.export.build import build_export  # noqa: E402
from offline_rl.export.exploration import Exploration  # noqa: E402
from offline_rl.export.loader import load_latest  # noqa: E402
from offline_rl.export.registry import publish  # noqa: E402


@pytest.fixture(scope="module")
def export(trained, features, action_map, tmp_path_factory):
    """A published DoubleDQN export with an epsilon-greedy serving head, and its pyfunc."""
    import mlflow.pyfunc

    from offline_rl.tracking import _save_pyfunc

    tmp = tmp_path_factory.mktemp("pyfunc")
    built = build_export(trained("double_dqn"), tmp / "built", feature_names=features,
                         action_map=action_map, exploration=Exploration("epsilon", 0.3))
    publish(tmp / "exports", "shop", built.torchscript, {**built.manifest, "candidate": "x"},
            extra_files=built.extra_files)
    policy = load_latest(tmp / "exports", "shop")
    _save_pyfunc(tmp / "exports" / "shop" / "v0001", tmp / "model")
    return policy, mlflow.pyfunc.load_model(str(tmp / "model"))


def _rows(features, n=64, seed=3):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(n, len(features))) * 3, columns=features)


def test_predict_serves_the_exports_actions_and_propensities(export, features):
    policy, model = export
    rows = _rows(features)
    out = model.predict(rows, params={"seed": 7})
    served = policy.sample(rows.to_numpy(np.float32), np.random.default_rng(7))
    np.testing.assert_array_equal(out["action"].to_numpy(), served.action)
    np.testing.assert_allclose(out["propensity"].to_numpy(), served.propensity)
    np.testing.assert_allclose(out[[f"p_{i}" for i in range(4)]].to_numpy(), served.probs)
    np.testing.assert_array_equal(out["greedy_action"].to_numpy(),
                                  policy.predict(rows.to_numpy(np.float32)))
    # epsilon 0.3 over 4 actions: 0.775 for the greedy action, 0.075 for the others
    assert set(np.round(out["propensity"], 6)) <= {0.775, 0.075}
    assert (out["action"] != out["greedy_action"]).any()


def test_a_uniform_column_fixes_the_draw_and_columns_are_taken_by_name(export, features):
    policy, model = export
    rows = _rows(features, n=16)
    uniform = np.linspace(0, 0.999, 16)
    shuffled = rows[features[::-1]].assign(uniform=uniform, note=1.0)
    out = model.predict(shuffled)
    served = policy._serve(rows.to_numpy(np.float32), uniform)
    np.testing.assert_array_equal(out["action"].to_numpy(), served.action)
    np.testing.assert_allclose(out["propensity"].to_numpy(), served.propensity)


def test_a_missing_feature_column_is_refused_by_name(export, features):
    _, model = export
    with pytest.raises(Exception, match=features[2]):
        model.predict(_rows(features).drop(columns=[features[2]]))


def test_rows_unlike_the_training_data_are_warned_about(trained, features, action_map,
                                                        tmp_path):
    """The pyfunc model (and any serving caller of the loader) is told what ``predict``
    prints: features outside the training ranges, a broken one-hot group."""
    import warnings

    from offline_rl.export.loader import OutsideTrainingData
    from offline_rl.export.pyfunc import serve

    built = build_export(trained("double_dqn"), tmp_path / "built", feature_names=features,
                         action_map=action_map, exploration=Exploration("epsilon", 0.3))
    manifest = {**built.manifest, "feature_ranges": {n: [0.0, 1.0] for n in features},
                "one_hot_groups": {"g": list(features[:2])}}
    publish(tmp_path / "exports", "shop", built.torchscript, manifest,
            extra_files=built.extra_files)
    policy = load_latest(tmp_path / "exports", "shop")
    rows = pd.DataFrame(np.zeros((3, len(features))), columns=features)
    rows.iloc[:, 0] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rows like the training data: no warning at all
        serve(policy, rows, seed=0)
    rows.iloc[1, 1] = 1.0   # two levels of the group
    rows.iloc[2, 2] = 50.0  # far outside its range
    with pytest.warns(OutsideTrainingData) as caught:
        out = serve(policy, rows, seed=0)
    texts = [str(w.message) for w in caught]
    assert any("1 row(s) have features outside the range" in t and "first row 2 (0-based)" in t
               for t in texts), texts
    assert any("1 row(s) break a one-hot group" in t and "first row 1 (0-based)" in t
               for t in texts), texts
    assert len(out) == 3  # still served

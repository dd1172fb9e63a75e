"""The exported graphs (TorchScript and ONNX) reproduce the d3rlpy model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from offline_rl.export.build import (
    build_export,
    reference_outputs,
    reward_multiplier,
    run_onnx,
)
from offline_rl.export.loader import ExportError

# the same as the conftest's ``features`` and ``action_map`` fixtures
FEATURES = ["a", "b", "c", "d", "e", "f"]
ACTIONS = {"0": "books", "1": "games", "2": "music", "3": "toys"}


@pytest.fixture(autouse=True)
def _same_schema(features, action_map):
    assert (features, action_map) == (FEATURES, ACTIONS)


def _inputs(n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, len(FEATURES))) * 4).astype(np.float32)


def _torchscript(path, x):
    module = torch.jit.load(str(path))
    with torch.no_grad():
        action, values = module(torch.from_numpy(x))
    return action.numpy(), values.numpy()


@pytest.mark.parametrize("name", ["double_dqn", "bc", "cql", "bcq"])
def test_torchscript_and_onnx_match_the_model(name, trained, tmp_path):
    algo = trained(name)
    built = build_export(algo, tmp_path, feature_names=FEATURES, action_map=ACTIONS)
    assert built.manifest["outputs"]["values"]["kind"] == ("log_prob" if name == "bc"
                                                          else "q_value")
    for n in (1, 300):
        x = _inputs(n, seed=n)
        actions = algo.predict(x)
        ts_actions, ts_values = _torchscript(built.torchscript, x)
        onnx_actions, onnx_values = run_onnx(built.onnx, x)
        assert ts_actions.dtype == onnx_actions.dtype == np.int64
        assert ts_values.shape == onnx_values.shape == (n, len(ACTIONS))
        np.testing.assert_array_equal(ts_actions, actions)
        np.testing.assert_array_equal(onnx_actions, actions)
        _, ref_values = reference_outputs(algo, x)
        np.testing.assert_allclose(ts_values, ref_values, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(onnx_values, ref_values, rtol=1e-4, atol=1e-4)
        if name == "bc":
            np.testing.assert_allclose(np.exp(ts_values).sum(axis=1), 1.0, rtol=1e-5)
        else:  # the values are d3rlpy's predict_value for every action
            for a in range(len(ACTIONS)):
                np.testing.assert_allclose(
                    ts_values[:, a], algo.predict_value(x, np.full(n, a)) / reward_multiplier(algo),
                    rtol=1e-5, atol=1e-5)
            if name != "bcq":  # BCQ picks among the actions its behaviour model finds likely
                np.testing.assert_array_equal(ts_actions, ts_values.argmax(axis=1))


def test_scaler_is_inside_the_graph(trained, built_double_dqn):
    algo = trained("double_dqn")
    assert built_double_dqn.manifest["observation_scaler"] == "StandardObservationScaler"
    x = _inputs(50)
    unscaled_q = algo.impl.q_function[0](torch.from_numpy(x)).q_value.detach().numpy()
    _, values = _torchscript(built_double_dqn.torchscript, x)
    assert not np.allclose(values, unscaled_q, atol=1e-3)  # so raw features go in


@pytest.mark.parametrize("name", ["double_dqn", "bc"])
def test_action_mask_features(name, trained, tmp_path):
    algo = trained(name)
    mask_features = ["c", "d", "e", "f"]  # feature > 0: that action is allowed
    built = build_export(algo, tmp_path, feature_names=FEATURES, action_map=ACTIONS,
                         action_mask_feature=mask_features)
    assert built.manifest["action_mask_feature"] == mask_features
    x = _inputs(400)
    allowed = x[:, 2:6] > 0
    assert (~allowed.any(axis=1)).any() and allowed.all(axis=1).any()
    _, ref_values = reference_outputs(algo, x)
    expected = np.where(allowed.any(axis=1), np.where(allowed, ref_values, -np.inf).argmax(1), -1)
    for actions, values in (_torchscript(built.torchscript, x), run_onnx(built.onnx, x)):
        np.testing.assert_array_equal(actions, expected)
        np.testing.assert_allclose(values, ref_values, rtol=1e-4, atol=1e-4)  # never masked
        ok = actions >= 0
        assert allowed[np.arange(len(x))[ok], actions[ok]].all()


def test_mask_given_as_prefix_and_bad_masks(trained, tmp_path):
    algo = trained("bc")
    names = FEATURES[:2] + [f"ok_{n}" for n in ACTIONS.values()]
    built = build_export(algo, tmp_path / "p", feature_names=names, action_map=ACTIONS,
                         action_mask_feature="ok_")
    assert built.manifest["action_mask_feature"] == [f"ok_{n}" for n in ACTIONS.values()]
    with pytest.raises(ExportError, match="not in the feature schema: nope"):
        build_export(algo, tmp_path / "q", feature_names=FEATURES, action_map=ACTIONS,
                     action_mask_feature=["a", "b", "c", "nope"])
    with pytest.raises(ExportError, match="one per action"):
        build_export(algo, tmp_path / "r", feature_names=FEATURES, action_mask_feature=["a"])
    with pytest.raises(ExportError, match="feature schema has 5 names"):
        build_export(algo, tmp_path / "s", feature_names=FEATURES[:5])


def test_onnx_file_is_valid_and_self_describing(built_double_dqn):
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(built_double_dqn.onnx))
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["features"]
    assert [o.name for o in model.graph.output] == ["action", "values"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_onnx_reference_evaluator_agrees(built_double_dqn):
    reference = pytest.importorskip("onnx.reference")
    x = _inputs(64)
    actions, values = reference.ReferenceEvaluator(str(built_double_dqn.onnx)).run(
        None, {"features": x})
    ts_actions, ts_values = _torchscript(built_double_dqn.torchscript, x)
    np.testing.assert_array_equal(actions, ts_actions)
    np.testing.assert_allclose(values, ts_values, rtol=1e-4, atol=1e-4)


def test_q_values_are_exported_in_reward_units(trained, built_double_dqn):
    algo = trained("double_dqn")  # trained on rewards * 0.1
    x = np.random.default_rng(3).normal(size=(7, algo.impl.observation_shape[0])).astype(
        np.float32)
    module = torch.jit.load(str(built_double_dqn.torchscript))
    with torch.no_grad():
        _, values = (t.numpy() for t in module(torch.from_numpy(x)))
    scaled = algo.predict_value(x, np.zeros(len(x), dtype=np.int64))
    np.testing.assert_allclose(values[:, 0], scaled / 0.1, rtol=1e-4, atol=1e-5)

"""Action masks in training targets, greedy actions, save/load and the export."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from chain_mdp import (
    FEATURES,
    FIRST,
    MASK,
    N_ACTIONS,
    SECOND,
    chain_dataset,
    random_rows,
    tiny_config,
    with_,
)

from offline_rl.algos.masking import allowed_actions, apply_action_mask, mask_indices_of
from offline_rl.algos.training import (
    build_candidate,
    fit_steps,
    load_candidate,
    train_candidate,
)

Q_LEARNERS = ["dqn", "double_dqn", "cql", "bcq"]
ALL = [*Q_LEARNERS, "bc"]
FORBIDDEN = 2  # never allowed in the chain's states


@pytest.fixture(scope="module")
def chain():
    return chain_dataset()


def _head(algo) -> torch.nn.Linear:
    """The output layer that scores actions (Q-values, or BC's logits)."""
    from d3rlpy.algos.qlearning.torch.bc_impl import DiscreteBCImpl

    impl = algo.impl
    return impl._modules.imitator._fc if isinstance(impl, DiscreteBCImpl) \
        else impl.q_function[0]._fc


def _boost(algo, action: int, amount: float) -> None:
    """Adds ``amount`` to one action's score everywhere (online and target networks)."""
    with torch.no_grad():
        _head(algo).bias[action] += amount
    if hasattr(algo.impl, "update_target"):
        algo.impl.update_target()


def _q(algo, x: np.ndarray) -> np.ndarray:
    return np.stack([algo.predict_value(x, np.full(len(x), a)) for a in range(N_ACTIONS)],
                    axis=1)


def _build(name, chain, masked: bool, **changes):
    # a BCQ filter of 1e-6 admits every action, so its target is the best (allowed) Q too
    config = with_(tiny_config(), bcq_action_flexibility=1e-6, **changes)
    return build_candidate(name, chain, config, mask_indices=MASK if masked else None)


def test_allowed_rows_and_rows_that_allow_nothing():
    obs = torch.tensor([[9.0, 1, 0, 1], [9.0, 0, 0, 0], [9.0, 0.5, -1, 0]])
    allowed = allowed_actions(obs, torch.tensor([1, 2, 3]))
    assert allowed.tolist() == [[True, False, True], [True, True, True], [True, False, False]]


@pytest.mark.parametrize("name", Q_LEARNERS)
def test_target_bootstraps_from_the_best_allowed_next_action(name, chain):
    next_obs = torch.from_numpy(np.stack([SECOND, FIRST, SECOND]))
    batch = SimpleNamespace(next_observations=next_obs)
    targets = {}
    for masked in (False, True):
        algo = _build(name, chain, masked)
        _boost(algo, FORBIDDEN, 1000.0)  # the forbidden action looks best by far
        with torch.no_grad():
            targets[masked] = algo.impl.compute_target(batch).reshape(-1).numpy()
        q_next = _q(algo, next_obs.numpy())
    # both builds start from the same seeded weights: the same Q, different choices
    np.testing.assert_allclose(targets[False], q_next[:, FORBIDDEN], rtol=1e-5)
    assert (targets[False] > 900).all()
    np.testing.assert_allclose(targets[True], q_next[:, :FORBIDDEN].max(axis=1), rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("name", ALL)
def test_greedy_actions_never_masked(name, chain):
    x = random_rows(400, seed=3)
    allowed = x[:, MASK] > 0
    unmasked = _build(name, chain, masked=False)
    _boost(unmasked, FORBIDDEN, 1000.0)
    assert (unmasked.predict(x) == FORBIDDEN).all()  # without the mask it picks it everywhere
    algo = _build(name, chain, masked=True)
    _boost(algo, FORBIDDEN, 1000.0)
    actions = algo.predict(x)
    assert allowed[np.arange(len(x)), actions].all()
    if name in ("dqn", "double_dqn", "cql"):  # the best allowed Q-value, as the export does
        best = np.where(allowed, _q(algo, x), -np.inf).argmax(axis=1)
        np.testing.assert_array_equal(actions, best)
    # values are not masked: predict_value still reports the boosted action's Q
    if name != "bc":
        assert (_q(algo, x)[:, FORBIDDEN] > 900).all()
    # a row whose mask allows nothing is unmasked (an action index is always defined)
    none = x[:5].copy()
    none[:, MASK] = 0
    assert (algo.predict(none) == FORBIDDEN).all()


def test_bcq_restricts_its_behaviour_model_to_allowed_actions(chain):
    algo = build_candidate("bcq", chain, with_(tiny_config(), bcq_action_flexibility=0.3),
                           mask_indices=MASK)
    with torch.no_grad():  # behaviour model: action 2 near-certain, then 1, then 0
        algo.impl._modules.imitator._fc.bias[:] = torch.tensor([0.0, 5.0, 20.0])
        algo.impl.q_function[0]._fc.bias[:] = torch.tensor([50.0, 0.0, 100.0])
    x = random_rows(50, seed=4)
    x[:, MASK] = [1, 1, 0]
    # among allowed actions only 1 is likely (0 is e^-5 as probable); Q would prefer 0
    assert (algo.predict(x) == 1).all()
    x[:, MASK] = [1, 0, 0]
    assert (algo.predict(x) == 0).all()


def test_conservative_penalty_runs_over_allowed_actions(chain):
    algo = _build("cql", chain, masked=True)
    obs = torch.from_numpy(np.stack([FIRST, SECOND]))
    act = torch.tensor([[0], [1]])
    with torch.no_grad():
        penalty = float(algo.impl._compute_conservative_loss(obs, act))
        q = algo.impl._q_func_forwarder.compute_expected_q(obs)
    allowed_q = q[:, :FORBIDDEN]
    expected = (torch.logsumexp(allowed_q, dim=1) - q[[0, 1], [0, 1]]).mean()
    assert penalty == pytest.approx(float(expected), rel=1e-5)
    everything = (torch.logsumexp(q, dim=1) - q[[0, 1], [0, 1]]).mean()
    assert penalty != pytest.approx(float(everything), rel=1e-3)


@pytest.mark.parametrize("name", ["dqn", "double_dqn"])
def test_learning_with_a_huge_forbidden_value(name, chain):
    """The forbidden action is never logged, so nothing corrects its huge initial Q: only the
    mask keeps it out of the targets. Masked, Q(FIRST) converges to gamma * 1. (CQL's penalty
    pushes an unlogged action down by itself; its masked target is tested above.)"""
    states = np.stack([FIRST, SECOND])
    first_values = {}
    for masked in (False, True):
        algo = _build(name, chain, masked, learning_rate=5e-3, target_update_interval=25,
                      gamma=0.9)
        _boost(algo, FORBIDDEN, 30.0)
        for _ in fit_steps(algo, chain, n_steps=300, steps_per_epoch=300, batch_size=32):
            pass
        q = _q(algo, states)
        first_values[masked] = q[0, :FORBIDDEN].max()
        if masked:
            assert algo.predict(states)[1] == 0
            assert FORBIDDEN not in algo.predict(states)
            assert q[1, 0] == pytest.approx(1.0, abs=0.15)
        else:
            assert (algo.predict(states) == FORBIDDEN).all()
    assert first_values[True] == pytest.approx(0.9, abs=0.15)
    assert first_values[False] > 10  # bootstrapped from the forbidden action


@pytest.mark.parametrize("name", ALL)
def test_mask_survives_save_and_load(name, chain, tmp_path):
    import d3rlpy

    train_candidate(name, chain, tiny_config(), tmp_path / name, mask_indices=MASK)
    record = json.loads((tmp_path / name / "training.json").read_text())
    assert record["mask_indices"] == MASK
    algo = load_candidate(tmp_path / name)
    assert mask_indices_of(algo) == MASK
    raw = d3rlpy.load_learnable(str(tmp_path / name / "model.d3"), device="cpu")
    _boost(algo, FORBIDDEN, 1000.0)
    _boost(raw, FORBIDDEN, 1000.0)
    x = random_rows(200, seed=5)
    allowed = x[:, MASK] > 0
    assert (raw.predict(x) == FORBIDDEN).all()
    actions = algo.predict(x)
    assert allowed[np.arange(len(x)), actions].all()
    apply_action_mask(raw, MASK)
    np.testing.assert_array_equal(raw.predict(x), actions)


def test_mask_from_context_and_disagreements(chain, tmp_path):
    context = {"feature_schema": {"names": FEATURES},
               "action_mask_feature": ["allow_0", "allow_1", "allow_2"]}
    algo = build_candidate("dqn", chain, tiny_config(), context=context)
    assert mask_indices_of(algo) == MASK
    with pytest.raises(ValueError, match="disagree"):
        build_candidate("dqn", chain, tiny_config(), context=context, mask_indices=[0, 1, 2])
    with pytest.raises(ValueError, match="one feature per action"):
        build_candidate("dqn", chain, tiny_config(), mask_indices=[3, 4])
    with pytest.raises(ValueError, match="outside"):
        build_candidate("dqn", chain, tiny_config(), mask_indices=[3, 4, 6])


def test_unsupported_algorithm_and_scaler_are_refused(chain):
    import d3rlpy
    from d3rlpy.preprocessing import StandardObservationScaler

    sac = d3rlpy.algos.DiscreteSACConfig(batch_size=8).create(device="cpu")
    sac.build_with_dataset(chain)
    with pytest.raises(ValueError, match="not supported for DiscreteSAC"):
        apply_action_mask(sac, MASK)
    scaled = d3rlpy.algos.DQNConfig(observation_scaler=StandardObservationScaler()
                                    ).create(device="cpu")
    scaled.build_with_dataset(chain)
    with pytest.raises(ValueError, match="observation scaler"):
        apply_action_mask(scaled, MASK)


@pytest.mark.parametrize("name", ALL)
def test_export_with_the_mask_chooses_the_same_actions(name, chain, tmp_path):
    from offline_rl.export.build import build_export

    train_candidate(name, chain, tiny_config(), tmp_path / "model", mask_indices=MASK)
    algo = load_candidate(tmp_path / "model")
    built = build_export(algo, tmp_path / "export", feature_names=FEATURES,
                         action_mask_feature=[FEATURES[i] for i in MASK])
    x = random_rows(300, seed=6)
    module = torch.jit.load(str(built.torchscript))
    with torch.no_grad():
        exported = module(torch.from_numpy(x))[0].numpy()
    actions = algo.predict(x)
    # BCQ included: the export restricts the behaviour model to allowed actions, as training
    np.testing.assert_array_equal(exported, actions)
    assert (x[:, MASK] > 0)[np.arange(len(x)), exported].all()

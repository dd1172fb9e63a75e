"""The candidate grid, train_candidate's contract and warm starts."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
import torch
from chain_mdp import FEATURES, chain_dataset, random_rows, tiny_config, with_

from offline_rl.algos.training import (
    ALGORITHMS,
    DEFAULT_CANDIDATES,
    build_candidate,
    load_candidate,
    train_candidate,
)

SCHEMA = {"feature_schema": {"names": FEATURES}, "action_map": {0: "a", 1: "b", 2: "c"}}


@pytest.fixture(scope="module")
def chain():
    return chain_dataset()


@pytest.fixture(scope="module")
def sources(chain, tmp_path_factory):
    """name -> a trained model directory (seed 0) recording SCHEMA."""
    root = tmp_path_factory.mktemp("sources")
    made = {}

    def get(name: str):
        if name not in made:
            made[name] = train_candidate(name, chain, tiny_config(), root / name,
                                         context=SCHEMA).directory
        return made[name]

    return get


def _params(algo) -> dict[str, torch.Tensor]:
    impl = algo.impl
    out = {}
    for field in ("q_funcs", "targ_q_funcs", "imitator"):
        module = getattr(impl.modules, field, None)
        if module is not None:
            out.update({f"{field}.{k}": v.detach().clone()
                        for k, v in module.state_dict().items()})
    return out


def test_grid_names_and_conservative_weights():
    assert set(DEFAULT_CANDIDATES) <= set(ALGORITHMS)
    algorithms = {name: algorithm for name, (algorithm, _) in ALGORITHMS.items()}
    assert algorithms == {"bc": "DiscreteBC", "bc_b0": "DiscreteBC", "dqn": "DQN",
                          "double_dqn": "DoubleDQN", "cql": "DiscreteCQL",
                          "cql_a0.1": "DiscreteCQL", "cql_a2": "DiscreteCQL",
                          "bcq": "DiscreteBCQ"}
    config = tiny_config()
    betas = {name: ALGORITHMS[name][1](config).beta for name in ("bc", "bc_b0")}
    assert betas == {"bc": 0.5, "bc_b0": 0.0}  # bc_b0's probabilities are not shrunk
    alphas = {name: ALGORITHMS[name][1](config).alpha for name in ("cql", "cql_a0.1", "cql_a2")}
    assert alphas == {"cql": config.cql_alpha, "cql_a0.1": 0.1, "cql_a2": 2.0}
    for name, (algorithm, factory) in ALGORITHMS.items():  # each builds its d3rlpy algorithm
        assert type(factory(config).create(device="cpu")).__name__ == algorithm, name


def test_grid_point_recorded_with_its_own_weight(chain, tmp_path):
    trained = train_candidate("cql_a2", chain, tiny_config(), tmp_path / "m")
    record = json.loads((trained.directory / "training.json").read_text())
    assert record["training_config"]["cql_alpha"] == 2.0
    assert record["d3rlpy_config"]["alpha"] == 2.0
    assert (record["name"], record["algorithm"]) == ("cql_a2", "DiscreteCQL")


def test_signature_keeps_positional_arguments_and_adds_keyword_only_ones():
    params = inspect.signature(train_candidate).parameters
    assert list(params)[:4] == ["name", "dataset", "config", "out_dir"]
    for name in ("context", "progress", "mask_indices", "init_from"):
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert params[name].default is None


def test_runs_exactly_n_steps_and_records_the_curve(chain, tmp_path):
    seen = []
    trained = train_candidate("double_dqn", chain, with_(tiny_config(), n_steps=7,
                                                          steps_per_epoch=3),
                              tmp_path / "m", progress=lambda n, s, m: seen.append((n, s)))
    assert [p["step"] for p in trained.learning_curve] == [3.0, 6.0, 7.0]
    assert seen == [("double_dqn", 3), ("double_dqn", 6), ("double_dqn", 7)]
    assert all(np.isfinite(p["loss"]) for p in trained.learning_curve)
    record = json.loads((tmp_path / "m" / "training.json").read_text())
    assert record["mask_indices"] is None and record["warm_start"] is None
    with pytest.raises(ValueError, match="unknown algorithm 'sac'"):
        train_candidate("sac", chain, tiny_config(), tmp_path / "x")
    with pytest.raises(ValueError, match="at least 1"):
        train_candidate("dqn", chain, with_(tiny_config(), n_steps=0), tmp_path / "x")


def test_cpu_threads_apply_while_training_only(chain, tmp_path):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = []
        train_candidate("dqn", chain, tiny_config(), tmp_path / "m",
                        progress=lambda *_: seen.append(torch.get_num_threads()))
        assert seen == [1, 1] and torch.get_num_threads() == 2
        seen.clear()
        train_candidate("dqn", chain, with_(tiny_config(), cpu_threads=None), tmp_path / "m",
                        progress=lambda *_: seen.append(torch.get_num_threads()))
        assert seen == [2, 2]
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="cpu_threads"):
        train_candidate("dqn", chain, with_(tiny_config(), cpu_threads=0), tmp_path / "x")


def test_same_seed_same_model(chain, tmp_path):
    x = random_rows(50, seed=1)
    values = []
    for run in ("a", "b"):
        train_candidate("cql", chain, tiny_config(), tmp_path / run)
        algo = load_candidate(tmp_path / run)
        values.append(algo.predict_value(x, np.zeros(len(x), dtype=np.int64)))
    np.testing.assert_array_equal(values[0], values[1])


@pytest.mark.parametrize("name", ["double_dqn", "bcq", "bc"])
def test_warm_start_begins_at_the_source_weights(name, chain, sources):
    source = load_candidate(sources(name))
    other_seed = with_(tiny_config(), seed=7)
    warm = build_candidate(name, chain, other_seed, init_from=sources(name), context=SCHEMA)
    cold = build_candidate(name, chain, other_seed)
    want, got, fresh = _params(source), _params(warm), _params(cold)
    assert want.keys() == got.keys() and want
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=0)
    assert any(not torch.equal(fresh[k], want[k]) for k in want)  # a scratch build differs
    x = random_rows(100, seed=2)
    np.testing.assert_array_equal(warm.predict(x), source.predict(x))


def test_q_learning_family_shares_weights_across_algorithms(chain, sources):
    warm = build_candidate("cql", chain, tiny_config(), init_from=sources("double_dqn"),
                           context=SCHEMA)
    source = load_candidate(sources("double_dqn"))
    x = random_rows(50, seed=3)
    for a in range(3):
        np.testing.assert_allclose(warm.predict_value(x, np.full(len(x), a)),
                                   source.predict_value(x, np.full(len(x), a)), rtol=1e-6)


def test_warm_started_training_is_recorded_and_stays_near_the_source(chain, sources, tmp_path):
    config = with_(tiny_config(), n_steps=3, seed=7)
    trained = train_candidate("double_dqn", chain, config, tmp_path / "warm", context=SCHEMA,
                              init_from=sources("double_dqn"))
    record = json.loads((trained.directory / "training.json").read_text())
    assert record["warm_start"] == str(sources("double_dqn"))
    train_candidate("double_dqn", chain, config, tmp_path / "cold", context=SCHEMA)
    source = _params(load_candidate(sources("double_dqn")))
    warm = _params(load_candidate(tmp_path / "warm"))
    cold = _params(load_candidate(tmp_path / "cold"))
    key = "q_funcs.0._fc.weight"
    # three Adam steps move each weight by about 3 * learning rate at most
    assert float((warm[key] - source[key]).abs().max()) <= 4 * config.learning_rate
    assert float((cold[key] - source[key]).abs().max()) > 10 * config.learning_rate


def test_warm_start_refuses_other_families_schemas_and_shapes(chain, sources):
    with pytest.raises(ValueError, match="another algorithm family"):
        build_candidate("bc", chain, tiny_config(), init_from=sources("double_dqn"))
    with pytest.raises(ValueError, match="another algorithm family"):
        build_candidate("bcq", chain, tiny_config(), init_from=sources("double_dqn"))
    renamed = {"feature_schema": {"names": [*FEATURES[:-1], "allow_two"]}}
    with pytest.raises(ValueError, match=r"feature schema differs \(added \['allow_two'\]"):
        build_candidate("double_dqn", chain, tiny_config(), init_from=sources("double_dqn"),
                        context=renamed)
    with pytest.raises(ValueError, match="action map differs"):
        build_candidate("double_dqn", chain, tiny_config(), init_from=sources("double_dqn"),
                        context={"action_map": {0: "a", 1: "b", 2: "z"}})
    with pytest.raises(ValueError, match="network 'q_funcs' differs"):
        build_candidate("double_dqn", chain, with_(tiny_config(), hidden_units=(8,)),
                        init_from=sources("double_dqn"))


def test_warm_start_refuses_other_observation_shapes(sources, tmp_path):
    import d3rlpy

    rng = np.random.default_rng(0)
    wider = d3rlpy.dataset.MDPDataset(
        rng.normal(size=(40, len(FEATURES) + 1)).astype(np.float32), rng.integers(0, 3, 40),
        np.zeros(40, dtype=np.float32), (np.arange(40) % 10 == 9).astype(np.float32),
        action_space=d3rlpy.ActionSpace.DISCRETE, action_size=3)
    with pytest.raises(ValueError, match=r"observation shape \(6,\) there, \(7,\) here"):
        build_candidate("double_dqn", wider, tiny_config(), init_from=sources("double_dqn"))
    with pytest.raises(FileNotFoundError, match="no trained model"):
        build_candidate("double_dqn", wider, tiny_config(), init_from=tmp_path / "nothing")

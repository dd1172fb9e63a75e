"""The vectorised sampler holds exactly d3rlpy's transitions."""

from __future__ import annotations

import numpy as np
import pytest

from offline_rl.algos.sampling import TransitionArrays


def _dataset(terminals, timeouts, n_features=3, seed=0):
    import d3rlpy

    n = len(terminals)
    rng = np.random.default_rng(seed)
    return d3rlpy.dataset.MDPDataset(
        rng.normal(size=(n, n_features)).astype(np.float32), rng.integers(0, 4, n),
        rng.normal(size=n).astype(np.float32), np.asarray(terminals, dtype=np.float32),
        timeouts=np.asarray(timeouts, dtype=np.float32),
        action_space=d3rlpy.ActionSpace.DISCRETE, action_size=4)


def _d3rlpy_rows(dataset) -> np.ndarray:
    """Every transition d3rlpy's picker can return, flattened to one row each."""
    from d3rlpy.dataset import BasicTransitionPicker

    picker = BasicTransitionPicker()
    rows = []
    for episode in dataset.episodes:
        for i in range(episode.transition_count):
            t = picker(episode, i)
            rows.append(np.concatenate([t.observation, t.action, t.reward, t.next_observation,
                                        t.next_action, [t.terminal]]).astype(np.float32))
    return np.stack(rows)


def _rows(arrays: TransitionArrays) -> np.ndarray:
    return np.concatenate([arrays.observations, arrays.actions, arrays.rewards,
                           arrays.next_observations, arrays.next_actions, arrays.terminals],
                          axis=1)


def test_same_transitions_as_d3rlpy_with_terminals_and_timeouts():
    # episodes: 3 steps ending, 2 steps cut (timeout), 1 step ending, 4 steps cut
    terminals = [0, 0, 1, 0, 0, 1, 0, 0, 0, 0]
    timeouts = [0, 0, 0, 0, 1, 0, 0, 0, 0, 1]
    dataset = _dataset(terminals, timeouts)
    arrays = TransitionArrays.from_dataset(dataset)
    expected = _d3rlpy_rows(dataset)
    assert arrays.size == len(expected) == 3 + 1 + 1 + 3
    np.testing.assert_array_equal(_rows(arrays), expected)
    assert arrays.terminals.sum() == 2
    ended = arrays.terminals[:, 0] == 1
    assert (arrays.next_observations[ended] == 0).all()


def test_batches_are_d3rlpy_mini_batches_of_whole_transitions():
    from d3rlpy.dataset import TransitionMiniBatch

    dataset = _dataset([0, 1] * 50, [0] * 100)
    arrays = TransitionArrays.from_dataset(dataset)
    rng = np.random.default_rng(0)
    batch = arrays.sample(64, rng)
    assert isinstance(batch, TransitionMiniBatch)
    assert batch.observations.shape == (64, 3) and batch.intervals.shape == (64, 1)
    # every sampled row is one of the transitions (whole rows: observation with its next one)
    table = {tuple(r) for r in _rows(arrays)}
    sampled = np.concatenate([batch.observations, batch.actions, batch.rewards,
                              batch.next_observations, batch.next_actions, batch.terminals],
                             axis=1)
    assert all(tuple(r) in table for r in sampled)
    # uniform over transitions: the mean over many draws approaches the dataset's mean
    big = arrays.sample(20_000, rng)
    assert abs(big.rewards.mean() - arrays.rewards.mean()) < 0.05
    # reproducible from the seed
    a = arrays.sample(8, np.random.default_rng(5)).observations
    b = arrays.sample(8, np.random.default_rng(5)).observations
    np.testing.assert_array_equal(a, b)


def test_default_draws_are_d3rlpys_batches():
    terminals = ([0] * 4 + [1]) * 30
    timeouts = [0] * 150
    timeouts[72] = 1  # one episode cut short in the middle
    dataset = _dataset(terminals, timeouts)
    arrays = TransitionArrays.from_dataset(dataset)
    for seed in (0, 1):
        np.random.seed(seed)
        ours = arrays.sample(64)
        np.random.seed(seed)
        theirs = dataset.sample_transition_batch(64)
        for field in ("observations", "actions", "rewards", "next_observations",
                      "next_actions", "terminals", "intervals"):
            np.testing.assert_array_equal(getattr(ours, field), getattr(theirs, field),
                                          err_msg=field)


def test_a_dataset_without_transitions_is_refused():
    with pytest.raises(ValueError, match="has no (episodes|transitions)"):
        TransitionArrays.from_dataset(_dataset([0, 0], [1, 1]))

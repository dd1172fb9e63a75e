import numpy as np
import pytest

from offline_rl.simulator.base import DomainEnv, true_value
from offline_rl.simulator.recommendation import RecommendationSimulator, simulate_sessions
from offline_rl.simulator.world import make_world


@pytest.fixture(scope="module")
def sim():
    return RecommendationSimulator(make_world())


def test_behaviour_probabilities_are_valid_and_damped_for_repeats(sim):
    state = sim.reset(1000, np.random.default_rng(0))
    probs = sim.behavior_probs(state)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert probs.min() >= sim.config.behavior_epsilon / sim.n_actions - 1e-12
    state.shown[:, 0] = 3
    assert (sim.behavior_probs(state)[:, 0] < probs[:, 0]).all()


def test_logs_are_deterministic_for_a_seed(sim):
    users = np.arange(200)
    a = simulate_sessions(sim, users, np.random.default_rng(4))
    b = simulate_sessions(sim, users, np.random.default_rng(4))
    np.testing.assert_array_equal(a.action, b.action)
    np.testing.assert_array_equal(a.reward, b.reward)
    assert a.terminal.sum() == 200  # every session ends
    assert a.page.max() < sim.config.horizon


def test_personalised_policy_is_clearly_better_than_logging(sim):
    n_seg = sim.world.config.n_segments
    taste = sim.world.segment_taste

    def personalised(obs):
        seg = obs[:, :n_seg].argmax(axis=1)
        shown = obs[:, n_seg + 3:n_seg + 9] * sim.config.horizon
        return (taste[seg] - sim.config.fatigue * shown).argmax(axis=1)

    behaviour = true_value(sim, "behavior", episodes=20_000, seed=1)
    better = true_value(sim, personalised, episodes=20_000, seed=1)
    assert better.mean > 1.3 * behaviour.mean
    assert better.mean - behaviour.mean > 5 * (better.stderr + behaviour.stderr)


def test_true_value_rejects_bad_policies(sim):
    with pytest.raises(ValueError, match="outside"):
        true_value(sim, lambda o: np.full(len(o), 99), episodes=10)
    with pytest.raises(ValueError, match="unknown policy"):
        true_value(sim, "greedy", episodes=10)


def test_gym_env_round_trip(sim):
    env = DomainEnv(sim)
    obs, info = env.reset(seed=3)
    assert obs.shape == (sim.observation_size,) and obs.dtype == np.float32
    np.testing.assert_allclose(info["behavior_probs"].sum(), 1.0)
    done, steps, total = False, 0, 0.0
    while not done:
        obs, reward, done, truncated, info = env.step(env.action_space.sample())
        total += reward
        steps += 1
        assert not truncated
    assert 1 <= steps <= sim.config.horizon
    obs2, _ = env.reset(seed=3)
    np.testing.assert_array_equal(obs2, env.reset(seed=3)[0])


@pytest.mark.parametrize("domain", ["recommendation", "cart", "inventory", "ads", "pricing"])
def test_every_domain_has_an_env_and_ground_truth(domain):
    from offline_rl.shop import make_env, policy_value

    env = make_env(domain)
    obs, info = env.reset(seed=0)
    assert obs.shape == env.observation_space.shape
    assert abs(info["behavior_probs"].sum() - 1) < 1e-9
    a = policy_value(domain, "behavior", episodes=500, seed=0)
    b = policy_value(domain, "behavior", episodes=500, seed=0)
    assert a.mean == b.mean and a.stderr > 0

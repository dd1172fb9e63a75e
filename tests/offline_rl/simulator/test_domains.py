"""The cart, inventory, ads and pricing simulators and their landing-log generators."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from offline_rl.data.schemas import SOURCES
from offline_rl.simulator import ads, cart, inventory, pricing
from offline_rl.simulator.base import DomainEnv, sample_actions, true_value
from offline_rl.simulator.world import make_world

DOMAINS = {
    "cart": (cart.CartSimulator, cart.heuristic_policy, cart.generate_cart, ["cart"]),
    "inventory": (inventory.InventorySimulator, inventory.heuristic_policy,
                  inventory.generate_inventory, ["inventory_snapshots", "inventory_orders"]),
    "ads": (ads.AdsSimulator, ads.heuristic_policy, ads.generate_ads, ["ads"]),
    "pricing": (pricing.PricingSimulator, pricing.heuristic_policy, pricing.generate_pricing,
                ["pricing_changes", "pricing_sales"]),
}
MODULES = {"cart": cart, "inventory": inventory, "ads": ads, "pricing": pricing}
DAY = dt.date(2026, 10, 1)


@pytest.fixture(scope="module")
def world():
    return make_world()


def make_sim(world, domain: str):
    sim_cls = DOMAINS[domain][0]
    return sim_cls(world, MODULES[domain].SIMULATION.config)


@pytest.mark.parametrize("domain", DOMAINS)
def test_interface(world, domain):
    sim = make_sim(world, domain)
    assert sim.name == domain
    assert len(sim.feature_names) == sim.observation_size
    state = sim.reset(64, np.random.default_rng(0))
    obs = sim.observe(state)
    assert obs.dtype == np.float32 and obs.shape == (64, sim.observation_size)
    assert np.isfinite(obs).all() and np.abs(obs).max() < 10


@pytest.mark.parametrize("domain", DOMAINS)
def test_behavior_probs_valid_and_episodes_end(world, domain):
    sim = make_sim(world, domain)
    rng = np.random.default_rng(1)
    n = 2000
    state = sim.reset(n, rng)
    alive = np.ones(n, dtype=bool)
    for _ in range(200):
        probs = sim.behavior_probs(state)
        assert probs.shape == (n, sim.n_actions)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
        mask = sim.action_mask(state)
        if mask is None:
            assert (probs > 0).all()
        else:
            assert mask.dtype == bool and mask.shape == probs.shape and mask[:, 0].all()
            assert ((probs > 0) == mask).all()
        out = sim.step(state, sample_actions(probs, rng), rng)
        assert out.reward.dtype == np.float64 and out.done.dtype == bool
        assert np.isfinite(out.reward).all()
        alive &= ~out.done
        if not alive.any():
            break
    assert not alive.any(), "episodes did not end"
    # stepping finished episodes is harmless: no reward, still done, state unchanged
    before = sim.observe(state)
    out = sim.step(state, np.zeros(n, dtype=np.int64), rng)
    assert out.done.all() and (out.reward == 0).all()
    np.testing.assert_array_equal(sim.observe(state), before)


@pytest.mark.parametrize("domain", DOMAINS)
def test_true_value_deterministic_and_heuristic_beats_behavior(world, domain):
    sim = make_sim(world, domain)
    heuristic = DOMAINS[domain][1](sim)
    behavior = true_value(sim, "behavior", episodes=4000, seed=3)
    again = true_value(sim, "behavior", episodes=4000, seed=3)
    assert behavior == again
    assert true_value(sim, heuristic, episodes=4000, seed=3) == true_value(
        sim, heuristic, episodes=4000, seed=3)
    better = true_value(sim, heuristic, episodes=4000, seed=3)
    se = np.hypot(behavior.stderr, better.stderr)
    assert better.mean > behavior.mean + 3 * se, (behavior, better)


def test_inventory_masked_action_raises(world):
    sim = make_sim(world, "inventory")
    biggest = sim.n_actions - 1
    with pytest.raises(ValueError, match="masks out"):
        true_value(sim, lambda obs: np.full(obs.shape[0], biggest), episodes=500)


@pytest.mark.parametrize("domain", DOMAINS)
def test_env_reset_step(world, domain):
    env = DomainEnv(make_sim(world, domain))
    obs, info = env.reset(seed=5)
    assert obs.shape == env.observation_space.shape and obs.dtype == np.float32
    np.testing.assert_allclose(info["behavior_probs"].sum(), 1.0)
    for _ in range(100):
        mask = info["action_mask"]
        action = int(np.flatnonzero(mask)[-1]) if mask is not None else 1
        obs, reward, terminated, truncated, info = env.step(action)
        assert isinstance(reward, float) and not truncated
        if terminated:
            break
    assert terminated


@pytest.mark.parametrize("domain", DOMAINS)
def test_generator_frames_match_schema_and_are_reproducible(world, domain):
    generate, names = DOMAINS[domain][2], DOMAINS[domain][3]
    config = MODULES[domain].SIMULATION.config
    frames = generate(world, config, DAY, np.random.default_rng(11), 40_000)
    same = generate(world, config, DAY, np.random.default_rng(11), 40_000)
    other = generate(world, config, DAY, np.random.default_rng(12), 40_000)
    nxt = generate(world, config, DAY + dt.timedelta(days=1), np.random.default_rng(11), 40_000)
    assert sorted(frames) == sorted(names)
    for name in names:
        schema = SOURCES[name]
        frame = frames[name]
        assert frame.height > 0
        assert frame.schema == schema.polars_schema
        assert frame.equals(same[name])
        assert not frame.equals(other[name])
        nulls = frame.select(pl.col(c).null_count() for c in schema.required)
        assert nulls.sum_horizontal()[0] == 0
        assert frame[schema.key].n_unique() == frame.height
        # event ids do not collide with the next day's
        assert not set(frame[schema.key]).intersection(nxt[name][schema.key])
        assert frame[schema.time_column].min().date() == DAY
        if schema.probability_column:
            p = frame[schema.probability_column].drop_nulls()
            assert p.len() > 0 and ((p > 0) & (p <= 1)).all()
        floats = [c.name for c in schema.columns if c.dtype.is_float()]
        assert frame.select(pl.col(floats).is_nan().any()).sum_horizontal()[0] == 0


def test_generator_decisions_follow_the_logged_probabilities(world):
    """Logged actions are the behaviour policy's: masked inventory orders never appear."""
    frames = inventory.generate_inventory(world, inventory.SIMULATION.config, DAY,
                                          np.random.default_rng(0), 40_000)
    orders = frames["inventory_orders"]
    allowed = (orders["action_mask"].to_numpy() >> orders["action"].to_numpy()) & 1
    assert (allowed == 1).all()
    assert (orders.filter(pl.col("quantity") > 0)["arrival_date"].is_not_null()).all()
    fits = orders["inventory_position"] + orders["quantity"] <= orders["capacity"]
    assert (fits | (orders["action"] == 0)).all()

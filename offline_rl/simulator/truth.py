"""Ground truth for the simulated shop: which scenario wrote the logs, and policy values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from offline_rl.simulator.ads import AdsSimulator
from offline_rl.simulator.base import BEHAVIOR, DomainEnv, PolicyFn, RolloutResult, true_value
from offline_rl.simulator.cart import CartSimulator
from offline_rl.simulator.inventory import InventorySimulator
from offline_rl.simulator.pricing import PricingSimulator
from offline_rl.simulator.recommendation import RecommendationSimulator
from offline_rl.simulator.scenarios import get_scenario
from offline_rl.simulator.world import make_world

DOMAINS = ("recommendation", "cart", "inventory", "ads", "pricing")


def write_simulation_manifest(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, default=str))


def read_simulation_manifest(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def simulator_for(domain: str, scenario: str = "default") -> Any:
    """The simulator of ``domain`` in ``scenario`` (the shop that produced the logs)."""
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; choose one of: {', '.join(DOMAINS)}")
    scen = get_scenario(scenario)
    world = make_world(scen.world)
    if domain == "recommendation":
        return RecommendationSimulator(world, scen.recommendation)
    if domain == "cart":
        return CartSimulator(world, scen.cart)
    if domain == "inventory":
        return InventorySimulator(world, scen.inventory)
    if domain == "ads":
        return AdsSimulator(world, scen.ads)
    return PricingSimulator(world, scen.pricing)


def make_env(domain: str, scenario: str = "default") -> DomainEnv:
    """A gymnasium environment of one episode of ``domain`` (info carries behaviour probs)."""
    return DomainEnv(simulator_for(domain, scenario))


def policy_value(
    domain: str, policy: PolicyFn | str = BEHAVIOR, *, scenario: str = "default",
    episodes: int = 20_000, seed: int = 0,
) -> RolloutResult:
    """True expected return of ``policy`` in ``domain`` by simulator rollouts."""
    return true_value(simulator_for(domain, scenario), policy, episodes=episodes, seed=seed)


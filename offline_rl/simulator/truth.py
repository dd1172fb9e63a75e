"""Ground truth for the simulated shop: which scenario wrote the logs, and policy values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from offline_rl.simulator.base import BEHAVIOR, PolicyFn, RolloutResult, true_value
from offline_rl.simulator.recommendation import RecommendationSimulator
from offline_rl.simulator.scenarios import get_scenario
from offline_rl.simulator.world import make_world

DOMAINS = ("recommendation",)


def write_simulation_manifest(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, default=str))


def read_simulation_manifest(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def simulator_for(domain: str, scenario: str = "default") -> Any:
    """The simulator of ``domain`` in ``scenario`` (the shop that produced the logs)."""
    scen = get_scenario(scenario)
    world = make_world(scen.world)
    if domain == "recommendation":
        return RecommendationSimulator(world, scen.recommendation)
    raise ValueError(f"unknown domain {domain!r}; choose one of: {', '.join(DOMAINS)}")


def policy_value(
    domain: str, policy: PolicyFn | str = BEHAVIOR, *, scenario: str = "default",
    episodes: int = 20_000, seed: int = 0,
) -> RolloutResult:
    """True expected return of ``policy`` in ``domain`` by simulator rollouts."""
    return true_value(simulator_for(domain, scenario), policy, episodes=episodes, seed=seed)


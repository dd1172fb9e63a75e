"""Named simulator scenarios (``offline-rl simulate --scenario NAME``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from offline_rl.simulator.recommendation import RecommendationConfig
from offline_rl.simulator.world import WorldConfig

C = TypeVar("C")


@dataclass(frozen=True)
class Scenario:
    """A shop and its logging policies.

    Attributes:
        name: Scenario name.
        doc: What makes it interesting.
        world: Catalogue and users.
        domains: Per decision domain (by name), the configuration of its dynamics and logging
            rule where the scenario changes it; a domain it leaves out runs its default
            (``Simulation.config``).
    """

    name: str
    doc: str
    world: WorldConfig = field(default_factory=WorldConfig)
    domains: Mapping[str, Any] = field(default_factory=dict)

    def config_for(self, domain: str, default: C) -> C:
        """The configuration of ``domain`` in this scenario: its own, else ``default``."""
        chosen = self.domains.get(domain, default)
        if type(chosen) is not type(default):
            raise TypeError(f"scenario {self.name!r} configures {domain} with a "
                            f"{type(chosen).__name__}, not a {type(default).__name__}")
        return chosen


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("default", "The demo shop: four segments, popularity-based logging with 20% "
                 "exploration."),
        Scenario(
            "near_deterministic",
            "Logging policy explores little (2%): hard for importance sampling.",
            domains={"recommendation": RecommendationConfig(behavior_epsilon=0.02,
                                                            behavior_temperature=0.25)},
        ),
        Scenario(
            "weak_personalisation",
            "Segments barely differ: little to gain over the logging policy.",
            world=WorldConfig(segment_taste_scale=0.15),
        ),
    )
}


def get_scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(
            f"unknown scenario {name!r}; choose one of: {', '.join(sorted(SCENARIOS))}"
        ) from None

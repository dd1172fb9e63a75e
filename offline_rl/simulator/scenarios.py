"""Named simulator scenarios (``offline-rl simulate --scenario NAME``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from offline_rl.simulator.recommendation import RecommendationConfig
from offline_rl.simulator.world import WorldConfig


@dataclass(frozen=True)
class Scenario:
    """A shop and its logging policies.

    Attributes:
        name: Scenario name.
        doc: What makes it interesting.
        world: Catalogue and users.
        recommendation: Recommendation dynamics and behaviour policy.
    """

    name: str
    doc: str
    world: WorldConfig = field(default_factory=WorldConfig)
    recommendation: RecommendationConfig = field(default_factory=RecommendationConfig)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("default", "The demo shop: four segments, popularity-based logging with 20% "
                 "exploration."),
        Scenario(
            "near_deterministic",
            "Logging policy explores little (2%): hard for importance sampling.",
            recommendation=RecommendationConfig(behavior_epsilon=0.02, behavior_temperature=0.25),
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

"""Named simulator scenarios (``offline-rl simulate --scenario NAME``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from offline_rl.simulator.ads import AdsConfig
from offline_rl.simulator.cart import CartConfig
from offline_rl.simulator.inventory import InventoryConfig
from offline_rl.simulator.pricing import PricingConfig
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
        cart: Cart-intervention dynamics and behaviour policy.
        inventory: Replenishment dynamics and behaviour policy.
        ads: Ad-bidding dynamics and behaviour policy.
        pricing: Dynamic-pricing dynamics and behaviour policy.
    """

    name: str
    doc: str
    world: WorldConfig = field(default_factory=WorldConfig)
    recommendation: RecommendationConfig = field(default_factory=RecommendationConfig)
    cart: CartConfig = field(default_factory=CartConfig)
    inventory: InventoryConfig = field(default_factory=InventoryConfig)
    ads: AdsConfig = field(default_factory=AdsConfig)
    pricing: PricingConfig = field(default_factory=PricingConfig)


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

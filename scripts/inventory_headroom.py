"""How much better than the shop's replenishment rule can an order policy be? A direct search.

    .venv/bin/python scripts/inventory_headroom.py [--episodes 20000] [--seed 7]

The inventory domain's behaviour policy is a stochastic reorder point / order-up-to rule
(``offline_rl.simulator.inventory``: order when the inventory position falls below
``lead_time + behavior_safety_days`` days of demand, up to ``behavior_cycle_days`` more). This
script values the deterministic members of that rule family (exploration off, the softmax
nearly greedy) over a grid of safety and cycle days in the default shop, by simulator
rollouts with common random numbers, and prints the best ones against the behaviour policy.
It bounds what a candidate of the nightly job can be expected to gain: a gate that keeps the
incumbent when no candidate is 10% better is right if no policy the shop would run is.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools

from offline_rl.simulator.base import true_value
from offline_rl.simulator.inventory import SIMULATION, InventorySimulator
from offline_rl.simulator.scenarios import get_scenario
from offline_rl.simulator.world import make_world

SAFETY_DAYS = (0.5, 1.5, 2.5, 3.5, 5.0)
CYCLE_DAYS = (3.0, 5.0, 7.0, 10.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=20_000, help="rollouts per policy")
    parser.add_argument("--seed", type=int, default=7, help="seed of the rollouts")
    parser.add_argument("--scenario", default="default", help="simulator scenario")
    args = parser.parse_args()
    scenario = get_scenario(args.scenario)
    world = make_world(scenario.world)
    inventory = scenario.config_for("inventory", SIMULATION.config)
    behavior = true_value(InventorySimulator(world, inventory), "behavior",
                          episodes=args.episodes, seed=args.seed)
    print(f"behaviour policy (safety {inventory.behavior_safety_days:g} days, cycle "
          f"{inventory.behavior_cycle_days:g} days, "
          f"{inventory.behavior_epsilon:.0%} exploration): {behavior.mean:.1f} "
          f"± {behavior.stderr:.1f}")
    results = []
    for safety, cycle in itertools.product(SAFETY_DAYS, CYCLE_DAYS):
        config = dataclasses.replace(inventory, behavior_safety_days=safety,
                                     behavior_cycle_days=cycle, behavior_epsilon=0.0,
                                     behavior_temperature=0.05)
        value = true_value(InventorySimulator(world, config), "behavior",
                           episodes=args.episodes, seed=args.seed)
        results.append((value.mean, value.stderr, safety, cycle))
    results.sort(reverse=True)
    print(f"best of {len(results)} deterministic rules:")
    for mean, stderr, safety, cycle in results[:5]:
        print(f"  safety {safety:g} days, cycle {cycle:g} days: {mean:.1f} ± {stderr:.1f} "
              f"({mean / behavior.mean - 1:+.1%})")


if __name__ == "__main__":
    main()

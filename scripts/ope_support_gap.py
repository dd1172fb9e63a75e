"""Why off-policy estimates of a far-off policy can be confidently wrong: a measured example.

    .venv/bin/python scripts/ope_support_gap.py [--episodes 10000] [--seed 1]

In the inventory domain, the policy "never order" lets stock run out. This script logs
``--episodes`` episodes of the shop's behaviour policy, values "never order" from them with the
project's FQE (``offline_rl.ope.fqe_torch``, the direct method that doubly robust builds on) at
several training lengths, and compares with its true value from simulator rollouts. It then
counts, day by day, how many logged decisions look like the states "never order" reaches
(nearly empty shelves with nothing on order) against how often the policy itself is there.

The gap it shows is one of coverage, not of the regressor: the behaviour policy reorders
before the shelf empties, so the logs hold almost no empty shelf with nothing on order, and any
model of the logs has to guess the reward there from shelves that still had stock. No
estimator that uses only these logs can tell that guess from the truth; importance weights
cannot either (a 7-day deterministic policy keeps a handful of effective episodes). What
the domain's structure allows is different: orders do not change demand, so replaying the
logged weeks under the policy against their logged demand (``offline_rl.domains.
inventory_replay``, the inventory gate's headline) values it without a model; the script
prints that estimate too.
"""

from __future__ import annotations

import argparse

import numpy as np

from offline_rl.domains import get_domain
from offline_rl.ope.evaluate import next_rows
from offline_rl.ope.fqe_torch import FQESettings, fit_fqe
from offline_rl.simulator.base import true_value
from offline_rl.simulator.rollouts import behavior_rollouts

EMPTY_WEEKS = 0.1
"""A shelf with less than this many weeks of demand on hand counts as empty."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=10_000, help="logged episodes")
    parser.add_argument("--seed", type=int, default=1, help="seed of the logs and rollouts")
    parser.add_argument("--steps", type=int, nargs="+", default=[1500, 6000, 15000],
                        help="FQE gradient steps to try")
    args = parser.parse_args()

    domain = get_domain("inventory")
    sim = domain.make_simulator("default")
    features = list(domain.feature_names)
    stock, on_order = features.index("stock_weeks"), features.index("on_order_weeks")
    logs = behavior_rollouts(sim, args.episodes, seed=args.seed)
    never = np.zeros((logs.actions.shape[0], domain.n_actions))
    never[:, 0] = 1.0
    truth = true_value(sim, lambda obs: np.zeros(obs.shape[0], dtype=np.int64),
                       episodes=20_000, seed=args.seed + 1)
    behavior = true_value(sim, "behavior", episodes=20_000, seed=args.seed + 1)
    print(f"{args.episodes:,} logged episodes of the behaviour policy "
          f"(true value {behavior.mean:.1f}); 'never order' true value "
          f"{truth.mean:.1f} +- {truth.stderr:.1f}")
    first = logs.step == 0
    for steps in args.steps:
        fit = fit_fqe(logs.observations, logs.actions, logs.rewards.astype(np.float64),
                      next_rows(logs), never, horizon=int(logs.step.max()) + 1,
                      settings=FQESettings(steps=steps, seed=args.seed))
        dm = float(fit.q_all[first, 0].mean())
        print(f"  FQE direct method, {steps:>6,} steps: {dm:8.1f} "
              f"({100 * (dm / truth.mean - 1):+.0f}%)")
    returns = domain.replay.returns(domain.replay.prepare(logs),
                                    lambda obs: np.zeros(obs.shape[0], dtype=np.int64))
    replayed, se = float(returns.mean()), float(returns.std() / np.sqrt(returns.shape[0]))
    print(f"  demand replay of the logged weeks:  {replayed:8.1f} +- {se:.1f} "
          f"({100 * (replayed / truth.mean - 1):+.0f}%)")

    # where "never order" goes, and how much of the log is there
    rng = np.random.default_rng(args.seed + 2)
    state = sim.reset(20_000, rng)
    print(f"\nday  'never order' on an empty shelf   logged decisions on an empty shelf "
          f"with nothing on order (of {args.episodes:,})")
    for day in range(int(logs.step.max()) + 1):
        obs = sim.observe(state)
        empty = (obs[:, stock] < EMPTY_WEEKS) & (obs[:, on_order] == 0)
        at_day = logs.step == day
        logged = (logs.observations[at_day, stock] < EMPTY_WEEKS) \
            & (logs.observations[at_day, on_order] == 0)
        print(f"{day:>3}  {100 * empty.mean():>28.1f}%   {int(logged.sum()):>10}")
        sim.step(state, np.zeros(20_000, dtype=np.int64), rng)


if __name__ == "__main__":
    main()

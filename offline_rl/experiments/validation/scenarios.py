"""The validation scenarios: which logs, how much of them, and which incumbent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from offline_rl.algos.config import TrainingConfig
from offline_rl.ope.evaluate import OPEConfig
from offline_rl.ope.gate import GateConfig

if TYPE_CHECKING:  # the command line builds its parser without importing polars or torch
    from offline_rl.domains import Domain


CONSTRUCTED: tuple[str, ...] = ("worse", "rare", "near_bar", "early_late", "fqe_greedy", "spibb",
                                 "mixture")
"""Names of the constructed candidates (see ``offline_rl.experiments.validation``)."""

BEHAVIOR = "behavior"
"""The behaviour policy's name (``offline_rl.simulator.base.BEHAVIOR``)."""

NIGHTLY_TRAIN_STEPS = TrainingConfig.n_steps
"""Gradient steps per candidate of the nightly job."""

NIGHTLY_TRAIN_BATCH_SIZE = TrainingConfig.batch_size
"""Mini-batch size of the nightly job's training."""

VALIDATION_FQE_STEPS = OPEConfig.fqe_steps
"""FQE gradient steps per candidate: the nightly evaluation's."""

NEAR_BAR_OFFSET = 0.005
"""``near_bar_above``/``near_bar_below`` are aimed this share of the incumbent's true value
above and below the bar, and kept when their true value lands within the same distance of
that aim: between the bar and 1% of the incumbent's value beyond it, on their side."""

SPIBB_THRESHOLD = 0.05
"""The ``spibb`` candidate keeps the logging policy's probability of an action the behaviour
model gives less than this (set before any run, not tuned)."""

MIXTURE_SHARE = 0.5
"""The ``mixture`` candidate draws from the behaviour model with this probability and takes the
Q-learner's greedy action otherwise (set before any run, not tuned)."""

MIXTURE_BASE = "double_dqn"
"""The trained candidate whose greedy policy ``mixture`` mixes with the logging policy: the one
furthest from the logs among the nightly job's (the first Q-learner when it is not trained)."""

NEAR_BAR_SEARCH = 8
"""Bisection steps of the blend share of a near-bar candidate."""


# --------------------------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValidationScenario:
    """A kind of logged data the estimators and the gate are checked on.

    Attributes:
        name: Scenario name (``--scenarios``).
        doc: What makes it easy or hard.
        simulator_scenario: The simulator scenario (``offline_rl.simulator.scenarios``) that
            gives the shop and its behaviour policy.
        train_episodes: Behaviour episodes the candidates are trained on.
        eval_episodes: Held-out behaviour episodes the candidates are evaluated on.
        behavior_greed: Share of the behaviour policy's probability moved onto its most likely
            action: ``b'(a|s) = greed * 1[a = argmax b(.|s)] + (1 - greed) * b(a|s)``; 0 keeps
            the simulator's behaviour policy. The logs and the behaviour's true value both
            come from ``b'``.
        promoted_incumbent: The incumbent is an earlier promoted policy (the first trained
            algorithm, trained on an earlier, separate log of the same size) valued off-policy
            on the held-out episodes as the nightly job values the policy in production;
            False: the behaviour policy, valued on-policy.
    """

    name: str
    doc: str
    simulator_scenario: str = "default"
    train_episodes: int = 10_000
    eval_episodes: int = 10_000
    behavior_greed: float = 0.0
    promoted_incumbent: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.behavior_greed < 1.0:
            raise ValueError(f"behavior_greed: expected a number in [0, 1), got "
                             f"{self.behavior_greed!r}")
        if self.train_episodes < 1 or self.eval_episodes < 2:
            raise ValueError(f"{self.name}: need at least 1 training and 2 evaluation episodes")


VALIDATION_SCENARIOS: dict[str, ValidationScenario] = {
    s.name: s
    for s in (
        ValidationScenario(
            "default", "The shop's own behaviour policy and about a week of held-out sessions "
            "(10,000 episodes), as in the nightly run."),
        ValidationScenario(
            "small_data", "A small shop or a new domain: 1,000 episodes to train on and 1,000 "
            "to evaluate on.", train_episodes=1_000, eval_episodes=1_000),
        ValidationScenario(
            "near_deterministic", "The behaviour policy moves 90% of its probability onto its "
            "favourite action: most actions a candidate prefers are rarely logged.",
            behavior_greed=0.9),
        ValidationScenario(
            "little_to_gain", "Customer segments barely differ (the weak_personalisation "
            "shop): candidates are close to the behaviour policy and the margin decides.",
            simulator_scenario="weak_personalisation"),
        ValidationScenario(
            "promoted_incumbent", "Production after a promotion: the incumbent is an earlier "
            "promoted policy, valued off-policy on the held-out episodes like the candidates.",
            promoted_incumbent=True),
    )
}
"""Named validation scenarios."""

DEFAULT_SCENARIOS: tuple[str, ...] = ("default", "small_data", "near_deterministic",
                                      "little_to_gain", "promoted_incumbent")
"""Scenarios run when ``--scenarios`` is not given."""


class GreedierBehavior:
    """A domain simulator whose behaviour policy is pushed towards its favourite action.

    Everything but ``behavior_probs`` is the wrapped simulator's, so the dynamics are the
    shop's own; see ``ValidationScenario.behavior_greed`` for the probabilities.
    """

    def __init__(self, sim: Any, greed: float) -> None:
        self._sim = sim
        self._greed = float(greed)

    def behavior_probs(self, state: Any) -> np.ndarray:
        probs = np.asarray(self._sim.behavior_probs(state), dtype=np.float64)
        top = np.zeros_like(probs)
        top[np.arange(probs.shape[0]), probs.argmax(axis=1)] = 1.0
        return self._greed * top + (1.0 - self._greed) * probs

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sim, name)


def domain_gate(gate: GateConfig, domain: Domain) -> GateConfig:
    """``gate`` with the domain's calibrated settings where it leaves them unset."""
    return gate.for_domain(domain.gate_max_weight_share, domain.gate_headline)

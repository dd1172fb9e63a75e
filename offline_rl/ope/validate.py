"""Can the estimates and the gate be trusted? Off-policy evaluation checked against truth.

For every domain, validation scenario and seed, the whole nightly path runs on data whose
ground truth is known:

1. **Logs.** Behaviour-policy rollouts of the domain's simulator
   (:func:`offline_rl.simulator.rollouts.behavior_rollouts`): observations, actions, behaviour
   probabilities, rewards and episode ends, exactly what the transitions of those episodes
   would hold. A training set and a separate held-out evaluation set are drawn.
2. **Candidates.** A few cheap trained candidates
   (:func:`offline_rl.algos.training.train_candidate`, few gradient steps, their greedy
   policies honouring the domain's action mask) plus deliberately constructed ones:

   * ``worse``: the first trained Q-learner's greedy policy, except that in a fixed
     pseudo-random share of states (a hash of the observation) it takes the action that
     learner values least. It looks like a trained candidate and is usually truly worse
     than the behaviour policy: the gate must not promote it.
   * ``rare``: always the allowed action the training logs contain least often; its value
     rests on a handful of logged decisions.
   * ``near_bar_above`` / ``near_bar_below``: blends of the truly best and the truly worst
     of those (the best's action in a share of states chosen by a hash of the observation),
     the share bisected with simulator truth (every rollout, common random numbers) until
     the blend is worth between the bar and 1% of the incumbent's value above / below it:
     the decisions a margin exists for, where a false promotion is easiest.

3. **Estimates and decision.** Every candidate is evaluated on the held-out episodes with
   :func:`offline_rl.ope.evaluate.evaluate_policy`; the gate
   (:func:`offline_rl.ope.gate.decide`) compares them with the incumbent: the behaviour
   policy, valued on-policy from the same held-out logs, or (scenario ``promoted_incumbent``)
   an earlier promoted policy trained on an earlier log and valued off-policy, as the nightly
   job values the policy in production. Training and evaluation use the nightly job's
   settings (``NIGHTLY_TRAIN_STEPS``, ``OPEConfig``'s defaults).
4. **Truth.** :func:`offline_rl.simulator.base.true_value` of the behaviour policy and of
   every candidate (seeded rollouts, common random numbers across policies).

Figures, per domain and estimator (``summarise``):

* ``median_relative_error``: median over (run, candidate) of ``|estimate - truth| / |truth|``;
* ``rank_correlation``: Spearman correlation between the estimates and the true values of
  one run's candidates, averaged over runs (runs with fewer than three finite estimates or
  candidates of equal truth are left out);
* ``interval_coverage``: share of (run, candidate) whose interval contains the truth;
* ``pairwise_accuracy``: over the pairs of one run's candidates whose true values differ by
  more than the gate's margin (``margin * |truth(behaviour)|``), the share the estimates put
  in the true order. Rank correlation also scores pairs no estimator can order (two
  candidates a fraction of a percent apart, as behaviour cloning and CQL often are); the
  gate only ever has to separate values a margin apart, and this figure counts only those
  (``distinguishable_pairs`` of them);
* ``selection_regret``: how much truth is lost by picking the candidate with the highest
  estimate instead of the truly best candidate, ``(max truth - truth(argmax estimate)) /
  |truth(behaviour)|``, averaged over runs (off-policy selection's regret at 1);

and for the gate (one decision per run), with ``bar = truth(incumbent) * (1 + margin)``
(``margin * |truth|`` for a negative value):

* ``false_promotion_rate``: promotions of a candidate whose true value does not exceed the
  bar, over all decisions;
* ``missed_improvement_rate``: decisions that kept the incumbent although some candidate's
  true value exceeded the bar, over the decisions where such a candidate existed; and
  ``missed_beyond_zone_rate``, the same above ``bar + indifference * |truth(incumbent)|``
  (just above the bar, keeping the incumbent costs less than the zone);
* ``false_promotion_upper`` / ``missed_beyond_zone_upper``: exact one-sided 95%
  (Clopper-Pearson) upper bounds of those rates, what a claim from few decisions may say;
* ``power_curve``: the share of decisions that promoted, per bin of the best candidate's
  true gain over the incumbent, with exact 95% intervals;
* ``decision_regret``: truth lost by the decision against the best the gate could have done
  (promote the truly best candidate if it beats the behaviour policy, else keep it),
  ``(max(truth(behaviour), max truth) - truth(outcome)) / |truth(behaviour)|``, averaged.

The overall figures pool every domain; their estimator figures are those of each run's gate
headline (``run_headline``: ``replay`` for inventory, ``dr`` elsewhere; ``headline`` in the
result maps each domain to it). The same figures per validation scenario (``per_scenario``,
headline estimators and gate) show how the estimates and the gate fare with little data or
a near-deterministic logging policy, under which a candidate that leaves the logged actions
is valued mostly by the model's extrapolation.
``offline-rl validate-ope`` runs it and prints the tables.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats

from offline_rl.ope.gate import DEFAULT_HEADLINE, GateConfig, Incumbent, decide, promotion_bar
from offline_rl.ope.replay import REPLAY

if TYPE_CHECKING:  # the command line builds its parser without importing polars or torch
    from offline_rl.domains import Domain
    from offline_rl.ope.evaluate import OPEConfig

Progress = Callable[[str], None]

CONSTRUCTED: tuple[str, ...] = ("worse", "rare", "near_bar")
"""Names of the constructed candidates (see the module docstring)."""

BEHAVIOR = "behavior"
"""The behaviour policy's name (``offline_rl.simulator.base.BEHAVIOR``)."""

NIGHTLY_TRAIN_STEPS = 4000
"""Gradient steps per candidate of the nightly job (``TrainingConfig.n_steps``; a test keeps
them equal): validation trains what production trains."""

NIGHTLY_TRAIN_BATCH_SIZE = 256
"""Mini-batch size of the nightly job's training (``TrainingConfig.batch_size``)."""

VALIDATION_FQE_STEPS = 3000
"""FQE gradient steps per candidate: the nightly evaluation's (``OPEConfig.fqe_steps``)."""

NEAR_BAR_OFFSET = 0.005
"""``near_bar_above``/``near_bar_below`` are aimed this share of the incumbent's true value
above and below the bar, and kept when their true value lands within the same distance of
that aim: between the bar and 1% of the incumbent's value beyond it, on their side."""

NEAR_BAR_SEARCH = 8
"""Bisection steps of the blend share of a near-bar candidate."""

POWER_BINS: tuple[float, ...] = (-math.inf, 0.0, 0.02, 0.03, 0.05, 0.10, math.inf)
"""Edges of the power curve's bins: the best candidate's true gain over the incumbent, as a
share of the incumbent's true value."""


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


# --------------------------------------------------------------------------------------------
# Policies
# --------------------------------------------------------------------------------------------


def allowed_actions(obs: np.ndarray, mask_indices: Sequence[int] | None) -> np.ndarray | None:
    """``[n, n_actions]`` booleans from the observation's mask features (None: no mask)."""
    if not mask_indices:
        return None
    return np.asarray(obs)[:, list(mask_indices)] > 0.5


class GreedyPolicy:
    """A trained candidate's greedy policy (``train_candidate`` makes it honour the mask).

    ``action_values`` gives the algorithm's value of every action (Q-learners only:
    ``has_values`` is False for behaviour cloning).
    """

    def __init__(self, algo: Any, n_actions: int, mask_indices: Sequence[int] | None) -> None:
        self.algo = algo
        self.n_actions = n_actions
        self.mask_indices = list(mask_indices) if mask_indices else None
        self.has_values = type(algo).__name__ not in ("DiscreteBC", "BC")

    def action_values(self, obs: np.ndarray) -> np.ndarray:
        """``[n, n_actions]`` action values of the algorithm."""
        if not self.has_values:
            raise ValueError(f"{type(self.algo).__name__} has no action values")
        n = obs.shape[0]
        return np.stack([np.asarray(self.algo.predict_value(obs, np.full(n, a, dtype=np.int64)),
                                    dtype=np.float64) for a in range(self.n_actions)], axis=1)

    def predict(self, obs: np.ndarray) -> np.ndarray:
        return np.asarray(self.algo.predict(np.asarray(obs, dtype=np.float32))).astype(np.int64)


class PerturbedPolicy:
    """``base``'s greedy action, except its least-valued allowed action in ``share`` of states.

    The states are chosen by a hash of the observation (a fixed random projection's
    fractional part), so the policy is deterministic and the same state always gets the same
    action.
    """

    def __init__(self, base: GreedyPolicy, share: float, seed: int) -> None:
        if not base.has_values:
            raise ValueError("the perturbed policy needs a base with action values")
        self.base = base
        self.share = float(share)
        self._projection: np.ndarray | None = None
        self._seed = seed

    def _perturbed(self, obs: np.ndarray) -> np.ndarray:
        if self._projection is None:
            n_features: int = obs.shape[1]
            self._projection = np.random.default_rng(self._seed).normal(size=n_features)
        return state_hash(obs, self._projection) < self.share

    def predict(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32)
        values = self.base.action_values(obs)
        allowed = allowed_actions(obs, self.base.mask_indices)
        if allowed is None:
            allowed = np.ones(values.shape, dtype=bool)
        best = np.where(allowed, values, -np.inf).argmax(axis=1)
        worst = np.where(allowed, values, np.inf).argmin(axis=1)
        return np.where(self._perturbed(obs), worst, best).astype(np.int64)


def state_hash(obs: np.ndarray, projection: np.ndarray) -> np.ndarray:
    """A number in [0, 1) per observation: the fractional part of a scaled random projection,
    so the same state always gets the same number and shares of states can be chosen."""
    h = np.abs(np.asarray(obs, dtype=np.float64) @ projection) * 7919.0
    return h - np.floor(h)


class BlendPolicy:
    """``first``'s action in ``share`` of states (chosen by :func:`state_hash`), ``second``'s
    elsewhere: a deterministic policy whose value moves from ``second``'s (share 0) towards
    ``first``'s (share 1)."""

    def __init__(self, first: Any, second: Any, share: float, seed: int) -> None:
        self.first, self.second, self.share = first, second, float(share)
        self._seed = seed
        self._projection: np.ndarray | None = None

    def predict(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32)
        if self._projection is None:
            n_features: int = obs.shape[1]
            self._projection = np.random.default_rng(self._seed).normal(size=n_features)
        pick = state_hash(obs, self._projection) < self.share
        return np.where(pick, self.first.predict(obs), self.second.predict(obs)).astype(np.int64)


def near_bar_blend(value_of: Callable[[Any], float], best: Any, low: Any, target: float,
                   band: float, seed: int, steps: int = NEAR_BAR_SEARCH
                   ) -> tuple[BlendPolicy, float] | None:
    """A blend of ``best`` (truly above ``target``) and ``low`` (truly below) whose true value
    (``value_of``) is within ``band`` of ``target``, by bisection on the blend share; None
    when the bisection ends farther away (the value need not be monotone in the share)."""
    lo, hi = 0.0, 1.0
    found: tuple[BlendPolicy, float] | None = None
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        policy = BlendPolicy(best, low, mid, seed)
        value = value_of(policy)
        if found is None or abs(value - target) < abs(found[1] - target):
            found = (policy, value)
        if value < target:
            lo = mid
        else:
            hi = mid
    return found if found is not None and abs(found[1] - target) <= band else None


class RarePolicy:
    """Always the allowed action that the training logs contain least often."""

    def __init__(self, logged_actions: np.ndarray, n_actions: int,
                 mask_indices: Sequence[int] | None) -> None:
        counts = np.bincount(logged_actions, minlength=n_actions)
        self.order = np.argsort(counts, kind="stable")
        self.shares = counts / max(counts.sum(), 1)
        self.mask_indices = list(mask_indices) if mask_indices else None

    def predict(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs)
        allowed = allowed_actions(obs, self.mask_indices)
        if allowed is None:
            return np.full(obs.shape[0], self.order[0], dtype=np.int64)
        first = allowed[:, self.order].argmax(axis=1)
        return self.order[first].astype(np.int64)


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


def _default_ope() -> OPEConfig:
    from offline_rl.ope.evaluate import OPEConfig

    return OPEConfig(fqe_steps=VALIDATION_FQE_STEPS, device="cpu")


@dataclass(frozen=True)
class ValidationConfig:
    """What ``validate-ope`` runs.

    Attributes:
        domains: Domains to validate (registered names; an unregistered module of
            ``offline_rl.domains`` that defines ``DOMAIN`` is accepted too); empty: every
            registered domain.
        scenarios: Names of ``VALIDATION_SCENARIOS``.
        seeds: Runs per domain and scenario, with seeds ``first_seed .. first_seed + seeds - 1``
            (each seeds the logs, the training, FQE, the bootstrap and the truth rollouts).
        first_seed: The first of those seeds (a fresh range checks settings that were tuned
            on another).
        candidates: Algorithms trained per run (keys of
            ``offline_rl.algos.training.ALGORITHMS``, checked by :meth:`check`).
        constructed: Constructed candidates per run (subset of ``CONSTRUCTED``); ``worse``
            needs a trained candidate with action values.
        train_steps: Gradient steps per trained candidate (default: the nightly job's).
        train_batch_size: Mini-batch size of that training (default: the nightly job's).
        worse_share: Share of states in which ``worse`` takes its base's least-valued action.
        truth_episodes: Simulator rollouts per true value.
        indifference: Improvements count as missed only when a candidate is truly better than
            the bar by more than this share of the incumbent's true value (the indifference
            zone: just above the bar, keeping the incumbent is no error worth counting).
        episode_scale: Multiplies every scenario's episode counts (below 1 for quick checks;
            at least 20 episodes are kept).
        ope: Estimators, bootstrap and FQE settings of the evaluation.
        gate: The promotion gate's thresholds.
    """

    domains: tuple[str, ...] = ()
    scenarios: tuple[str, ...] = DEFAULT_SCENARIOS
    seeds: int = 2
    first_seed: int = 0
    candidates: tuple[str, ...] = ("bc", "cql", "double_dqn")
    constructed: tuple[str, ...] = CONSTRUCTED
    train_steps: int = NIGHTLY_TRAIN_STEPS
    train_batch_size: int = NIGHTLY_TRAIN_BATCH_SIZE
    worse_share: float = 0.5
    truth_episodes: int = 20_000
    indifference: float = 0.01
    episode_scale: float = 1.0
    ope: OPEConfig = field(default_factory=_default_ope)
    gate: GateConfig = field(default_factory=GateConfig)

    def __post_init__(self) -> None:
        unknown = [s for s in self.scenarios if s not in VALIDATION_SCENARIOS]
        if unknown:
            raise ValueError(f"unknown validation scenario(s) {unknown}; choose from "
                             f"{', '.join(VALIDATION_SCENARIOS)}")
        bad = [c for c in self.constructed if c not in CONSTRUCTED]
        if bad:
            raise ValueError(f"unknown constructed candidate(s) {bad}; choose from "
                             f"{', '.join(CONSTRUCTED)}")
        if self.seeds < 1:
            raise ValueError(f"seeds: expected at least 1, got {self.seeds}")
        if not self.scenarios:
            raise ValueError("scenarios: name at least one validation scenario")
        if self.gate.headline not in (None, REPLAY, *self.ope.estimators):
            raise ValueError(f"the gate's headline estimator {self.gate.headline!r} is not "
                             f"among the evaluated estimators {self.ope.estimators}")
        if not 0.0 < self.worse_share <= 1.0:
            raise ValueError(f"worse_share: expected a number in (0, 1], got {self.worse_share}")
        if self.indifference < 0:
            raise ValueError(f"indifference: expected a number >= 0, got {self.indifference}")
        if self.episode_scale <= 0:
            raise ValueError(f"episode_scale: expected a positive number, got "
                             f"{self.episode_scale}")

    def check(self) -> None:
        """Checks what needs the heavy imports: the algorithms and the domains exist."""
        from offline_rl.algos.training import ALGORITHMS

        bad = [c for c in self.candidates if c not in ALGORITHMS]
        if bad:
            raise ValueError(f"unknown candidate algorithm(s) {bad}; choose from "
                             f"{', '.join(ALGORITHMS)}")
        for name in self.domain_names():
            resolve_domain(name)

    def domain_names(self) -> tuple[str, ...]:
        from offline_rl.domains import DOMAIN_NAMES

        return self.domains or DOMAIN_NAMES


def resolve_domain(name: str) -> Domain:
    """A registered domain, or the ``DOMAIN`` of an unregistered ``offline_rl.domains`` module."""
    import importlib
    import importlib.util

    from offline_rl.domains import DOMAIN_NAMES, Domain, get_domain

    if name in DOMAIN_NAMES:
        return get_domain(name)

    module_name = f"offline_rl.domains.{name}"
    if not name.isidentifier() or importlib.util.find_spec(module_name) is None:
        raise ValueError(f"unknown domain {name!r}; choose one of: {', '.join(DOMAIN_NAMES)}")
    domain = getattr(importlib.import_module(module_name), "DOMAIN", None)
    if not isinstance(domain, Domain) or domain.name != name:
        raise ValueError(f"{module_name} does not define a Domain named {name!r} as DOMAIN")
    return domain


def domain_gate(gate: GateConfig, domain: Domain) -> GateConfig:
    """``gate`` with the domain's calibrated settings where it leaves them unset."""
    return gate.for_domain(domain.gate_max_weight_share, domain.gate_headline)


def run_seeds(seed: int, domain: str, scenario: str) -> dict[str, int]:
    """Independent seeds of one run's logs, training, evaluation and truth."""
    state = np.random.SeedSequence(
        [seed, zlib.crc32(domain.encode()), zlib.crc32(scenario.encode())]).generate_state(6)
    keys = ("train_logs", "eval_logs", "model", "truth", "perturbation", "earlier_logs")
    return {k: int(v % 2**31) for k, v in zip(keys, state, strict=True)}


# --------------------------------------------------------------------------------------------
# One run
# --------------------------------------------------------------------------------------------


def _episodes(count: int, scale: float) -> int:
    return max(20, int(round(count * scale)))


def _decision_record(decision: Any, truths: dict[str, float], bar: float, zone: float = 0.0
                     ) -> dict[str, Any]:
    """A gate decision next to the truth: promoted, false promotion, missed improvement (and
    missed improvement beyond the indifference zone: some candidate truly above
    ``bar + zone``)."""
    promoted = decision.candidate
    improving = any(t > bar for t in truths.values())
    beyond = any(t > bar + zone for t in truths.values())
    return {
        "promoted": decision.promoted,
        "candidate": promoted,
        "promoted_true_value": truths[promoted] if promoted else None,
        "false_promotion": bool(promoted is not None and truths[promoted] <= bar),
        "improvement_available": improving,
        "missed_improvement": bool(promoted is None and improving),
        "improvement_beyond_zone": beyond,
        "missed_beyond_zone": bool(promoted is None and beyond),
        "reasons": decision.reasons,
    }


def run_one(domain: Domain, scenario: ValidationScenario, seed: int, cfg: ValidationConfig,
            workdir: Path, progress: Progress | None = None) -> dict[str, Any]:
    """Logs, candidates, estimates, gate decision and truth of one (domain, scenario, seed)."""
    from offline_rl.algos.training import (
        TrainingConfig,
        auto_reward_scale,
        load_candidate,
        train_candidate,
    )
    from offline_rl.data.arrays import to_mdp_dataset
    from offline_rl.ope.evaluate import behavior_replicates, evaluate_behavior, evaluate_policy
    from offline_rl.ope.gate import evaluated_incumbent
    from offline_rl.ope.replay import prepare_replay
    from offline_rl.simulator.base import true_value
    from offline_rl.simulator.rollouts import behavior_rollouts

    say = progress or (lambda _m: None)
    started = time.perf_counter()
    seeds = run_seeds(seed, domain.name, scenario.name)
    sim = domain.make_simulator(scenario.simulator_scenario)
    if scenario.behavior_greed > 0:
        sim = GreedierBehavior(sim, scenario.behavior_greed)
    train = behavior_rollouts(sim, _episodes(scenario.train_episodes, cfg.episode_scale),
                              seed=seeds["train_logs"])
    held_out = behavior_rollouts(sim, _episodes(scenario.eval_episodes, cfg.episode_scale),
                                 seed=seeds["eval_logs"])
    n_actions = domain.n_actions
    mask = domain.mask_indices
    policies: dict[str, Any] = {}
    kinds: dict[str, str] = {}
    notes: list[str] = []
    if cfg.candidates:
        dataset = to_mdp_dataset(train, n_actions)
        tcfg = TrainingConfig(n_steps=cfg.train_steps, steps_per_epoch=cfg.train_steps,
                              batch_size=cfg.train_batch_size, seed=seeds["model"],
                              device="cpu", reward_scale=auto_reward_scale(train.rewards))
        for name in cfg.candidates:
            say(f"training {name} ({cfg.train_steps} steps on {len(train.actions):,} decisions)")
            train_candidate(name, dataset, tcfg, workdir / name, mask_indices=mask)
            policies[name] = GreedyPolicy(load_candidate(workdir / name), n_actions, mask)
            kinds[name] = "trained"
    base = next((p for p in policies.values() if p.has_values), None)
    if "worse" in cfg.constructed:
        if base is None:
            notes.append("worse left out: no trained candidate with action values")
        else:
            policies["worse"] = PerturbedPolicy(base, cfg.worse_share, seeds["perturbation"])
            kinds["worse"] = "constructed"
    if "rare" in cfg.constructed:
        policies["rare"] = RarePolicy(train.actions, n_actions, mask)
        kinds["rare"] = "constructed"
    if not policies:
        raise ValueError(f"{domain.name}/{scenario.name}: no candidate to evaluate")

    ope = dataclasses.replace(cfg.ope, seed=seeds["model"])
    gate = domain_gate(cfg.gate, domain)
    replay = prepare_replay(domain.replay, held_out)
    if replay is not None and not replay.available:
        notes.append(f"no replay estimate: {replay.reason}")

    def truth_of(policy: Any) -> Any:
        return true_value(sim, policy, episodes=cfg.truth_episodes, seed=seeds["truth"])

    say(f"true values ({cfg.truth_episodes:,} rollouts per policy)")
    truth_b = truth_of(BEHAVIOR)
    truths = {name: truth_of(policy.predict) for name, policy in policies.items()}
    behavior = evaluate_behavior(held_out, ope)
    behavior_reps = tuple(behavior_replicates(held_out, ope))
    if scenario.promoted_incumbent:
        if not cfg.candidates:
            raise ValueError(f"{scenario.name}: the earlier promoted policy is a trained "
                             "candidate; name at least one algorithm")
        algo = cfg.candidates[0]
        earlier = behavior_rollouts(sim, _episodes(scenario.train_episodes, cfg.episode_scale),
                                    seed=seeds["earlier_logs"])
        say(f"training the earlier promoted policy ({algo}, {cfg.train_steps} steps)")
        train_candidate(algo, to_mdp_dataset(earlier, n_actions), dataclasses.replace(
            tcfg, reward_scale=auto_reward_scale(earlier.rewards)), workdir / "incumbent",
            mask_indices=mask)
        incumbent_policy = GreedyPolicy(load_candidate(workdir / "incumbent"), n_actions, mask)
        incumbent_name = f"earlier:{algo}"
        incumbent_eval = evaluate_policy(incumbent_name, incumbent_policy, held_out, None, ope,
                                         n_actions=n_actions, replay=replay)
        incumbent = evaluated_incumbent(incumbent_eval, gate.headline_estimator)
        truth_i = truth_of(incumbent_policy.predict)
        incumbent_record: dict[str, Any] = {
            "name": incumbent_name, "true_value": truth_i.mean, "true_stderr": truth_i.stderr,
            **_evaluation_record(incumbent_eval)}
    else:
        incumbent = Incumbent(BEHAVIOR, behavior.value, behavior.low, behavior.high,
                              behavior_reps)
        truth_i = truth_b
        incumbent_record = {"name": BEHAVIOR, "true_value": truth_b.mean,
                            "true_stderr": truth_b.stderr}
    bar = promotion_bar(truth_i.mean, cfg.gate.margin)  # what truly counts as better
    scale = abs(truth_i.mean)
    if "near_bar" in cfg.constructed:
        ranked = sorted(truths, key=lambda n: truths[n].mean)
        low, best = ranked[0], ranked[-1]
        for name, offset in (("near_bar_above", NEAR_BAR_OFFSET),
                             ("near_bar_below", -NEAR_BAR_OFFSET)):
            target = bar + offset * scale
            if not truths[low].mean < target < truths[best].mean:
                notes.append(f"{name} left out: no candidate truly above and one below "
                             f"{target:.4g}")
                continue
            say(f"constructing {name}: a blend of {best} and {low} truly worth about "
                f"{target:.4g}")
            measured: dict[int, Any] = {}  # the bisection's truths, kept for the one found

            def blend_value(policy: Any, measured: dict[int, Any] = measured) -> float:
                measured[id(policy)] = truth_of(policy.predict)
                return measured[id(policy)].mean

            found = near_bar_blend(blend_value, policies[best], policies[low], target,
                                   NEAR_BAR_OFFSET * scale, seeds["perturbation"])
            if found is None:
                notes.append(f"{name} left out: no blend of {best} and {low} within "
                             f"{NEAR_BAR_OFFSET:.1%} of {target:.4g}")
                continue
            policies[name], kinds[name] = found[0], "constructed"
            truths[name] = measured[id(found[0])]

    evaluations = []
    for name, policy in policies.items():
        say(f"evaluating {name} on {int(held_out.episode.max()) + 1:,} held-out episodes")
        evaluations.append(evaluate_policy(name, policy, held_out, None, ope,
                                           n_actions=n_actions, replay=replay))
    decision = decide(evaluations, incumbent, gate)
    candidates = []
    for ev in evaluations:
        t = truths[ev.name]
        candidates.append({
            "kind": kinds[ev.name], "true_value": t.mean, "true_stderr": t.stderr,
            **_evaluation_record(ev),
            "passed_gate": next(v.passed for v in decision.verdicts if v.name == ev.name),
        })
    return {
        "domain": domain.name,
        "scenario": scenario.name,
        "seed": seed,
        "headline": gate.headline_estimator,
        "train_decisions": int(train.actions.shape[0]),
        "eval_episodes": int(held_out.episode.max()) + 1,
        "eval_decisions": int(held_out.actions.shape[0]),
        "behavior": {"true_value": truth_b.mean, "true_stderr": truth_b.stderr,
                     **behavior.as_dict(), "refit_replicates": list(behavior_reps)},
        "incumbent": incumbent_record,
        "bar": bar,
        "candidates": candidates,
        "decision": _decision_record(decision, {n: t.mean for n, t in truths.items()}, bar,
                                     cfg.indifference * scale),
        "notes": notes,
        "seconds": time.perf_counter() - started,
    }


def _evaluation_record(ev: Any) -> dict[str, Any]:
    """What :func:`_stored_evaluation` rebuilds an evaluation from."""
    return {"name": ev.name, "estimates": {k: e.as_dict() for k, e in ev.estimates.items()},
            "diagnostics": ev.diagnostics.as_dict(),
            "refit_replicates": ev.extra.get("refit_replicates")}


def incumbent_truth(run: dict[str, Any]) -> float:
    """The incumbent's true value (the behaviour policy's in runs from before incumbents)."""
    return (run.get("incumbent") or run["behavior"])["true_value"]


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation of two equally long sequences (``scipy.stats.spearmanr``;
    ties share their average rank).

    NaN if either sequence is constant or shorter than two. A NaN value ranks above every
    number and ties with the other NaNs (numpy's sort order), so it does not make the result
    NaN.
    """
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"spearman: expected two 1-D arrays of one length, got {a.shape} and "
                         f"{b.shape}")
    if a.shape[0] < 2:
        return math.nan
    # np.unique's codes keep the order and the ties (NaNs last, as one value), so their rank
    # correlation is the values' own, and spearmanr never meets a NaN
    codes = [np.unique(v, return_inverse=True)[1] for v in (a, b)]
    if any(c.max() == 0 for c in codes):  # constant: the correlation is undefined
        return math.nan
    return float(stats.spearmanr(*codes).statistic)


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else math.nan


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def _ordered_pairs(estimates: Sequence[float], truths: Sequence[float], tolerance: float
                   ) -> tuple[int, int]:
    """``(pairs in the true order, pairs)`` among those whose truths differ by more than
    ``tolerance`` (a tie in the estimates counts as out of order)."""
    e, t = np.asarray(estimates, dtype=np.float64), np.asarray(truths, dtype=np.float64)
    i, j = np.triu_indices(e.shape[0], k=1)
    apart = np.abs(t[i] - t[j]) > tolerance
    right = np.sign(e[i] - e[j]) == np.sign(t[i] - t[j])
    return int((right & apart).sum()), int(apart.sum())


def run_headline(run: dict[str, Any]) -> str:
    """The estimator a run's gate decided on (``dr`` in result files from before the
    per-domain headline)."""
    return run.get("headline") or DEFAULT_HEADLINE


def estimator_figures(runs: Sequence[dict[str, Any]], estimator: str | None,
                      margin: float = 0.0) -> dict[str, Any]:
    """Median relative error, mean rank correlation, pairwise order accuracy and coverage of
    one estimator (None: each run's gate headline, :func:`run_headline`); ``margin`` (the
    gate's) sets which pairs count as distinguishable."""
    errors: list[float] = []
    covered: list[float] = []
    correlations: list[float] = []
    right_pairs = pairs = 0
    regrets: list[float] = []
    for run in runs:
        est, true = [], []
        name = estimator or run_headline(run)
        for cand in run["candidates"]:
            e = cand["estimates"].get(name)
            if e is None or e["value"] is None or not math.isfinite(e["value"]):
                continue
            truth = cand["true_value"]
            if truth != 0:
                errors.append(abs(e["value"] - truth) / abs(truth))
            if math.isfinite(e["low"]) and math.isfinite(e["high"]):
                covered.append(float(e["low"] <= truth <= e["high"]))
            est.append(e["value"])
            true.append(truth)
        if len(est) >= 3:
            rho = spearman(est, true)
            if math.isfinite(rho):
                correlations.append(rho)
        scale = abs(incumbent_truth(run))
        right, total = _ordered_pairs(est, true, margin * scale)
        right_pairs += right
        pairs += total
        if est and scale > 0:
            best = max(c["true_value"] for c in run["candidates"])
            regrets.append((best - true[int(np.argmax(est))]) / scale)
    return {
        "median_relative_error": _median(errors),
        "rank_correlation": _mean(correlations),
        "pairwise_accuracy": right_pairs / pairs if pairs else math.nan,
        "selection_regret": _mean(regrets),
        "interval_coverage": _mean(covered),
        "estimates": len(errors),
        "ranked_runs": len(correlations),
        "distinguishable_pairs": pairs,
    }


def clopper_pearson_upper(events: int, trials: int, confidence: float = 0.95) -> float:
    """Exact one-sided upper confidence bound of a rate from ``events`` in ``trials``
    (Clopper-Pearson): 0 in 30 gives 9.5% at 95%. NaN without trials."""
    from scipy import stats

    if trials <= 0:
        return math.nan
    if events >= trials:
        return 1.0
    return float(stats.beta.ppf(confidence, events + 1, trials - events))


def power_curve(runs: Sequence[dict[str, Any]], edges: Sequence[float] = POWER_BINS
                ) -> list[dict[str, Any]]:
    """Probability of promotion against the best candidate's true gain over the incumbent
    (a share of its true value), per bin of ``edges``: decisions, promotions, the rate and
    its exact 95% interval (one-sided bounds each at 97.5%)."""
    gains, promoted = [], []
    for run in runs:
        base = incumbent_truth(run)
        if base == 0 or not run["candidates"]:
            continue
        gains.append((max(c["true_value"] for c in run["candidates"]) - base) / abs(base))
        promoted.append(bool(run["decision"]["promoted"]))
    out = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = [p for g, p in zip(gains, promoted, strict=True) if lo <= g < hi]
        n, k = len(inside), sum(inside)
        out.append({"gain_from": lo, "gain_to": hi, "decisions": n, "promotions": k,
                    "rate": k / n if n else math.nan,
                    "low": 1.0 - clopper_pearson_upper(n - k, n, 0.975) if n else math.nan,
                    "high": clopper_pearson_upper(k, n, 0.975)})
    return out


def decision_regret(behavior_truth: float, candidate_truths: Sequence[float],
                    promoted_truth: float | None) -> float:
    """Truth a decision left behind, as a share of the behaviour policy's true value: the best
    of the behaviour policy and the candidates, minus what the decision deploys (the promoted
    candidate, or the behaviour policy when ``promoted_truth`` is None). NaN for a behaviour
    value of 0."""
    if behavior_truth == 0:
        return math.nan
    best = max([behavior_truth, *candidate_truths])
    outcome = behavior_truth if promoted_truth is None else promoted_truth
    return (best - outcome) / abs(behavior_truth)


def gate_figures(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Promotions, false promotions (with their rate's exact 95% upper bound), missed
    improvements (all, and beyond the indifference zone, with its upper bound), the
    decisions' regret and the power curve."""
    decisions = len(runs)
    promoted = sum(r["decision"]["promoted"] for r in runs)
    false = sum(r["decision"]["false_promotion"] for r in runs)
    available = sum(r["decision"]["improvement_available"] for r in runs)
    missed = sum(r["decision"]["missed_improvement"] for r in runs)
    beyond = sum(r["decision"].get("improvement_beyond_zone", False) for r in runs)
    missed_beyond = sum(r["decision"].get("missed_beyond_zone", False) for r in runs)
    regrets = [decision_regret(incumbent_truth(r),
                               [c["true_value"] for c in r["candidates"]],
                               r["decision"]["promoted_true_value"]) for r in runs]
    return {
        "decisions": decisions,
        "promotions": promoted,
        "false_promotions": false,
        "improvements_available": available,
        "missed_improvements": missed,
        "false_promotion_rate": false / decisions if decisions else math.nan,
        "missed_improvement_rate": missed / available if available else 0.0,
        "false_promotion_upper": clopper_pearson_upper(false, decisions),
        "improvements_beyond_zone": beyond,
        "missed_beyond_zone": missed_beyond,
        "missed_beyond_zone_rate": missed_beyond / beyond if beyond else math.nan,
        "missed_beyond_zone_upper": clopper_pearson_upper(missed_beyond, beyond),
        "decision_regret": _mean([r for r in regrets if math.isfinite(r)]),
        "power_curve": power_curve(runs),
    }


def summarise(runs: Sequence[dict[str, Any]], estimators: Sequence[str],
              margin: float = 0.0) -> dict[str, Any]:
    """Per-domain estimator and gate figures, the headline estimators' and the gate's figures
    per validation scenario, and the overall headline figures (``margin``: the gate's).

    The headline figures pool each run's own gate headline (:func:`run_headline`: ``replay``
    for inventory, ``dr`` elsewhere); the per-domain tables add ``replay`` where runs have
    it. ``headline`` in the result maps each domain to its headline estimator.
    """
    def reported(part: Sequence[dict[str, Any]]) -> list[str]:
        replayed = REPLAY not in estimators and any(
            REPLAY in c["estimates"] for r in part for c in r["candidates"])
        return [*estimators, *([REPLAY] if replayed else [])]

    def groups(key: str) -> dict[str, list[dict[str, Any]]]:
        return {name: [r for r in runs if r[key] == name]
                for name in dict.fromkeys(r[key] for r in runs)}

    per_domain = {name: {"runs": len(part),
                         "estimators": {e: estimator_figures(part, e, margin)
                                        for e in reported(part)},
                         "gate": gate_figures(part)}
                  for name, part in groups("domain").items()}
    per_scenario = {name: {"runs": len(part),
                           "headline": estimator_figures(part, None, margin),
                           "gate": gate_figures(part)}
                    for name, part in groups("scenario").items()}
    head = estimator_figures(runs, None, margin)
    gate = gate_figures(runs)
    headline = {r["domain"]: run_headline(r) for r in runs}
    overall = {
        "scenarios": len(runs),
        "decisions": gate["decisions"],
        "median_relative_error": head["median_relative_error"],
        "rank_correlation": head["rank_correlation"],
        "pairwise_accuracy": head["pairwise_accuracy"],
        "interval_coverage": head["interval_coverage"],
        "false_promotion_rate": gate["false_promotion_rate"],
        "false_promotion_upper": gate["false_promotion_upper"],
        "missed_improvement_rate": gate["missed_improvement_rate"],
        "missed_beyond_zone_rate": gate["missed_beyond_zone_rate"],
        "missed_beyond_zone_upper": gate["missed_beyond_zone_upper"],
        "selection_regret": head["selection_regret"],
        "decision_regret": gate["decision_regret"],
    }
    return {"overall": overall, "headline": headline, "per_domain": per_domain,
            "per_scenario": per_scenario}


# --------------------------------------------------------------------------------------------
# Driver and output
# --------------------------------------------------------------------------------------------


def run_validation(cfg: ValidationConfig, progress: Progress | None = None,
                   checkpoint: Path | None = None) -> dict[str, Any]:
    """Every (domain, scenario, seed) run, the figures, and the configuration; with
    ``checkpoint``, the result so far is written there (JSON) after every run, with
    ``complete`` false until the last (a stopped validation keeps the runs it finished)."""
    say = progress or (lambda _m: None)
    cfg.check()
    domains = [resolve_domain(d) for d in cfg.domain_names()]
    jobs = [(d, VALIDATION_SCENARIOS[s], seed) for d in domains for s in cfg.scenarios
            for seed in range(cfg.first_seed, cfg.first_seed + cfg.seeds)]
    runs = []
    started = time.perf_counter()
    for i, (domain, scenario, seed) in enumerate(jobs, start=1):
        label = f"[{i}/{len(jobs)}] {domain.name}/{scenario.name} seed {seed}"

        def report(m: str, label: str = label) -> None:
            say(f"{label}: {m}")

        with tempfile.TemporaryDirectory(prefix="validate-ope-") as tmp:
            run = run_one(domain, scenario, seed, cfg, Path(tmp), report)
        d = run["decision"]
        outcome = (f"promoted {d['candidate']} (true {d['promoted_true_value']:.4g})"
                   if d["promoted"] else f"kept the incumbent ({run['incumbent']['name']})")
        flag = " FALSE PROMOTION" if d["false_promotion"] else (
            " missed improvement" if d["missed_improvement"] else "")
        say(f"{label}: behaviour true {run['behavior']['true_value']:.4g}, bar "
            f"{run['bar']:.4g}; {outcome}{flag} ({run['seconds']:.0f}s)")
        for note in run["notes"]:
            say(f"{label}: note: {note}")
        runs.append(run)
        if checkpoint is not None:
            write_json({**summarise(runs, cfg.ope.estimators, cfg.gate.margin),
                        "config": dataclasses.asdict(cfg), "runs": runs,
                        "seconds": time.perf_counter() - started,
                        "complete": len(runs) == len(jobs)}, checkpoint)
    figures = summarise(runs, cfg.ope.estimators, cfg.gate.margin)
    return {**figures, "config": dataclasses.asdict(cfg), "runs": runs,
            "seconds": time.perf_counter() - started, "complete": True}


def _nan(value: Any) -> float:
    return math.nan if value is None else float(value)


def _stored_evaluation(record: dict[str, Any]) -> Any:
    """A candidate's evaluation rebuilt from a run record (JSON nulls are NaN)."""
    from offline_rl.ope.diagnostics import Diagnostics
    from offline_rl.ope.estimators import Estimate
    from offline_rl.ope.evaluate import EvaluationDetails, PolicyEvaluation

    estimates = {k: Estimate(k, _nan(e["value"]), _nan(e["low"]), _nan(e["high"]),
                             _nan(e.get("stderr")))
                 for k, e in record["estimates"].items()}
    diagnostics = Diagnostics(**{k: _nan(v) for k, v in record["diagnostics"].items()})
    extra: EvaluationDetails = {"refit_replicates": record["refit_replicates"]} \
        if record.get("refit_replicates") else {}
    return PolicyEvaluation(record["name"], estimates, diagnostics, math.nan, extra)


def merge_results(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One result of the runs of several (e.g. one per domain, run side by side): their
    configurations must agree but for the domains and seeds."""
    if not results:
        raise ValueError("no result to merge")
    first = results[0]

    def comparable(config: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in config.items() if k not in ("domains", "seeds", "first_seed")}

    for other in results[1:]:
        if comparable(other["config"]) != comparable(first["config"]):
            raise ValueError("the results were run with different settings; merge only runs "
                             "of one configuration")
    domains = tuple(dict.fromkeys(d for r in results for d in r["config"]["domains"]))
    return {**first, "config": {**first["config"], "domains": list(domains)},
            "runs": [run for r in results for run in r["runs"]],
            "seconds": sum(r.get("seconds") or 0.0 for r in results)}


def replay_gate(result: dict[str, Any], gate: GateConfig) -> dict[str, Any]:
    """``result`` (``run_validation``'s, or its JSON) re-decided by another gate.

    The decisions and gate figures are recomputed from each run's stored estimates,
    diagnostics, refit replicates and true values: no training, FQE or rollouts, so gate
    settings can be compared on the same evaluations in seconds. Estimator figures are
    unchanged unless ``gate.headline`` changes which estimator the overall figures report
    (result files from before the ``replay`` estimator hold none: replayed with the inventory
    domain's ``replay`` headline, its candidates have no headline estimate and are kept out;
    set ``gate.headline`` to compare them on ``dr``).
    """
    from offline_rl.ope.gate import evaluated_incumbent

    zone = float(result["config"].get("indifference", 0.0))
    runs = []
    for run in result["runs"]:
        b = run["behavior"]
        run_gate = domain_gate(gate, resolve_domain(run["domain"]))
        stored = run.get("incumbent") or {}
        if stored.get("estimates") is not None:  # an earlier promoted policy, off-policy
            incumbent = evaluated_incumbent(_stored_evaluation(stored),
                                            run_gate.headline_estimator)
        else:
            incumbent = Incumbent(BEHAVIOR, _nan(b["value"]), _nan(b["low"]), _nan(b["high"]),
                                  tuple(b.get("refit_replicates") or ()))
        decision = decide([_stored_evaluation(c) for c in run["candidates"]], incumbent,
                          run_gate)
        truths = {c["name"]: c["true_value"] for c in run["candidates"]}
        passed = {v.name: v.passed for v in decision.verdicts}
        base = incumbent_truth(run)
        bar = promotion_bar(base, gate.margin)
        runs.append({**run, "bar": bar, "headline": run_gate.headline_estimator,
                     "candidates": [{**c, "passed_gate": passed[c["name"]]}
                                    for c in run["candidates"]],
                     "decision": _decision_record(decision, truths, bar, zone * abs(base))})
    config = {**result["config"], "gate": dataclasses.asdict(gate)}
    estimators = tuple(config["ope"]["estimators"])
    return {**summarise(runs, estimators, gate.margin), "config": config,
            "runs": runs, "seconds": result.get("seconds"), "replayed": True}


def _pct(value: float) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{100 * value:.1f}%"


def _num(value: float) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:+.2f}"


def format_validation(result: dict[str, Any]) -> str:
    """The tables ``validate-ope`` prints."""
    headline = result["headline"]
    level = 100 * (1 - result["config"]["ope"]["alpha"])
    lines = [f"{'domain':<16}{'estimator':<10}{'median rel. error':>18}{'rank corr.':>12}"
             f"{'pairs right':>13}{'regret@1':>10}{f'{level:g}% cov.':>10}{'n':>6}"]
    for name, part in result["per_domain"].items():
        for est, fig in part["estimators"].items():
            mark = " *" if est == headline.get(name) else ""
            lines.append(f"{name:<16}{est:<10}{_pct(fig['median_relative_error']):>18}"
                         f"{_num(fig['rank_correlation']):>12}"
                         f"{_pct(fig['pairwise_accuracy']):>13}"
                         f"{_pct(fig['selection_regret']):>10}"
                         f"{_pct(fig['interval_coverage']):>10}{fig['estimates']:>6}{mark}")
    if result["per_scenario"]:
        lines += ["", f"{'scenario':<20}{'runs':>5}{'head. error':>12}{'rank corr.':>12}"
                      f"{'pairs right':>13}{'regret@1':>10}{f'{level:g}% cov.':>10}"
                      f"{'false prom.':>13}{'missed':>10}{'regret':>9}"]
        for name, part in result["per_scenario"].items():
            fig, g = part["headline"], part["gate"]
            lines.append(f"{name:<20}{part['runs']:>5}{_pct(fig['median_relative_error']):>12}"
                         f"{_num(fig['rank_correlation']):>12}"
                         f"{_pct(fig['pairwise_accuracy']):>13}"
                         f"{_pct(fig['selection_regret']):>10}"
                         f"{_pct(fig['interval_coverage']):>10}"
                         f"{_pct(g['false_promotion_rate']):>13}"
                         f"{_pct(g['missed_improvement_rate']):>10}"
                         f"{_pct(g['decision_regret']):>9}")
    lines += ["", f"{'domain':<16}{'decisions':>10}{'promoted':>10}{'false promotions':>18}"
                  f"{'missed improvements':>21}{'regret':>9}"]
    for name, part in result["per_domain"].items():
        g = part["gate"]
        lines.append(f"{name:<16}{g['decisions']:>10}{g['promotions']:>10}"
                     f"{g['false_promotions']:>8} ({_pct(g['false_promotion_rate']):>6})"
                     f"{g['missed_improvements']:>5} of {g['improvements_available']:<3}"
                     f"({_pct(g['missed_improvement_rate']):>6})"
                     f"{_pct(g['decision_regret']):>9}")
    zone = result["config"].get("indifference", 0.0)
    lines += ["", f"power curve: promotions by the best candidate's true gain over the "
                  f"incumbent (bar: +{100 * result['config']['gate']['margin']:g}%, "
                  f"indifference zone to +{100 * (result['config']['gate']['margin'] + zone):g}%)",
              f"{'true gain':<18}{'decisions':>10}{'promoted':>10}{'rate':>8}{'95% interval':>18}"]
    for b in power_curve(result["runs"]):
        span = (f"< {100 * b['gain_to']:+g}%" if not math.isfinite(b["gain_from"]) else
                f">= {100 * b['gain_from']:+g}%" if not math.isfinite(b["gain_to"]) else
                f"{100 * b['gain_from']:+g}% to {100 * b['gain_to']:+g}%")
        lines.append(f"{span:<18}{b['decisions']:>10}{b['promotions']:>10}{_pct(b['rate']):>8}"
                     f"{'':>4}{_pct(b['low']):>6} - {_pct(b['high']):<6}")
    o = result["overall"]
    heads = ", ".join(f"{d} {e}" for d, e in headline.items())
    lines += ["", f"overall (the gate's headline estimators, marked *: {heads}): "
                  f"{o['scenarios']} scenarios, {o['decisions']} decisions; "
                  f"median relative error {_pct(o['median_relative_error'])}, "
                  f"rank correlation {_num(o['rank_correlation'])}, "
                  f"pairs a margin apart put in the true order "
                  f"{_pct(o['pairwise_accuracy'])}, "
                  f"interval coverage {_pct(o['interval_coverage'])}, "
                  f"false promotions {_pct(o['false_promotion_rate'])} of decisions "
                  f"(exact 95% upper bound {_pct(o['false_promotion_upper'])}), "
                  f"missed improvements {_pct(o['missed_improvement_rate'])}, beyond the "
                  f"indifference zone {_pct(o['missed_beyond_zone_rate'])} (upper bound "
                  f"{_pct(o['missed_beyond_zone_upper'])}); "
                  f"regret of the top-estimated candidate {_pct(o['selection_regret'])} "
                  f"and of the decision {_pct(o['decision_regret'])} of the incumbent's "
                  f"true value"]
    return "\n".join(lines)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    return value


def write_json(result: dict[str, Any], path: Path) -> None:
    """Writes the result as JSON (non-finite numbers become null)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_json_safe(result), indent=2, allow_nan=False) + "\n")


__all__ = [
    "CONSTRUCTED", "DEFAULT_SCENARIOS", "VALIDATION_SCENARIOS", "ValidationConfig",
    "ValidationScenario", "decision_regret", "format_validation", "replay_gate",
    "merge_results", "run_validation", "summarise", "spearman", "write_json",
]

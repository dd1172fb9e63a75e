"""One validation run (logs, candidates, estimates, decision and truth) and the driver over
domains, scenarios and seeds."""

from __future__ import annotations

import dataclasses
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from offline_rl.experiments.validation.figures import (
    KIND_CONSTRUCTED,
    KIND_TRAINED,
    summarise,
)
from offline_rl.experiments.validation.policies import (
    EarlyLatePolicy,
    GreedyPolicy,
    MixturePolicy,
    PerturbedPolicy,
    RarePolicy,
    SpibbPolicy,
    ValueGreedyPolicy,
    near_bar_blend,
    near_value,
    progress_step,
)
from offline_rl.experiments.validation.results import decide_night, write_json
from offline_rl.experiments.validation.scenarios import (
    BEHAVIOR,
    CONSTRUCTED,
    DEFAULT_SCENARIOS,
    MIXTURE_BASE,
    MIXTURE_SHARE,
    NEAR_BAR_OFFSET,
    NIGHTLY_TRAIN_BATCH_SIZE,
    NIGHTLY_TRAIN_STEPS,
    SPIBB_THRESHOLD,
    VALIDATION_FQE_STEPS,
    VALIDATION_SCENARIOS,
    GreedierBehavior,
    ValidationScenario,
    domain_gate,
)
from offline_rl.ope.gate import GateConfig, Incumbent, promotion_bar
from offline_rl.ope.replay import REPLAY

if TYPE_CHECKING:  # the command line builds its parser without importing polars or torch
    from offline_rl.domains import Domain
    from offline_rl.ope.evaluate import OPEConfig

Progress = Callable[[str], None]


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
            and ``spibb`` need a trained candidate with action values.
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
        from offline_rl.domains import get_domain

        for name in self.domain_names():
            get_domain(name)

    def domain_names(self) -> tuple[str, ...]:
        from offline_rl.domains import domain_names

        return self.domains or domain_names()


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
    from offline_rl.ope.evaluate import (
        StochasticTarget,
        behavior_replicates,
        behavior_terms,
        evaluate_behavior,
        evaluate_policy,
        evaluate_targets,
        fitted_q_function,
        with_episode_gains,
    )
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
            kinds[name] = KIND_TRAINED
    base = next((p for p in policies.values() if p.has_values), None)
    if "worse" in cfg.constructed:
        if base is None:
            notes.append("worse left out: no trained candidate with action values")
        else:
            policies["worse"] = PerturbedPolicy(base, cfg.worse_share, seeds["perturbation"])
            kinds["worse"] = KIND_CONSTRUCTED
    if "rare" in cfg.constructed:
        policies["rare"] = RarePolicy(train.actions, n_actions, mask)
        kinds["rare"] = KIND_CONSTRUCTED
    if not policies:
        raise ValueError(f"{domain.name}/{scenario.name}: no candidate to evaluate")

    ope = dataclasses.replace(cfg.ope, seed=seeds["model"])
    gate = domain_gate(cfg.gate, domain)
    replay = prepare_replay(domain.replay, held_out)
    if replay is not None and not replay.available:
        notes.append(f"no replay estimate: {replay.reason}")

    spibb_record: dict[str, float] = {}
    stay_near_logs = [n for n in ("spibb", "mixture") if n in cfg.constructed]
    if stay_near_logs and base is not None:
        from offline_rl.export.build import reference_values

        say(f"training {' and '.join(stay_near_logs)}'s behaviour model (bc_b0, "
            f"{cfg.train_steps} steps)")
        train_candidate("bc_b0", dataset, tcfg, workdir / "behavior_model", mask_indices=mask)
        behavior_model = load_candidate(workdir / "behavior_model")

        def behavior_log_probs(obs: np.ndarray) -> np.ndarray:
            return reference_values(behavior_model, obs)

        # stochastic candidates: valued exactly, sampled in the truth rollouts
        if "spibb" in cfg.constructed:
            spibb = SpibbPolicy(base.action_values, behavior_log_probs, SPIBB_THRESHOLD, mask)
            policies["spibb"] = StochasticTarget(spibb.probs, seed=ope.seed)
            kinds["spibb"] = KIND_CONSTRUCTED
            fallback = spibb.fallback(held_out.observations)
            spibb_record = {"threshold": SPIBB_THRESHOLD,
                            "fallback_share": float(fallback.mean())}
        if "mixture" in cfg.constructed:
            mixed = policies.get(MIXTURE_BASE)
            mixed = mixed if mixed is not None and mixed.has_values else base
            mixture = MixturePolicy(mixed.action_values, behavior_log_probs, MIXTURE_SHARE,
                                    mask)
            policies["mixture"] = StochasticTarget(mixture.probs, seed=ope.seed)
            kinds["mixture"] = KIND_CONSTRUCTED
    elif stay_near_logs:
        notes.append(f"{' and '.join(stay_near_logs)} left out: they need a trained Q-learner")

    if "fqe_greedy" in cfg.constructed:
        name = next((n for n, p in policies.items() if p is base), next(iter(policies)))
        say(f"constructing fqe_greedy: greedy on the evaluation's FQE of {name}")
        policies["fqe_greedy"] = ValueGreedyPolicy(
            fitted_q_function(name, policies[name], held_out, ope, n_actions), mask)
        kinds["fqe_greedy"] = KIND_CONSTRUCTED

    def truth_of(policy: Any) -> Any:
        return true_value(sim, _rolled_out(policy), episodes=cfg.truth_episodes,
                          seed=seeds["truth"])

    say(f"true values ({cfg.truth_episodes:,} rollouts per policy)")
    truth_b = truth_of(BEHAVIOR)
    truths = {name: truth_of(policy) for name, policy in policies.items()}
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
        incumbent_terms = incumbent_eval.episode_terms
        truth_i = truth_of(incumbent_policy)
        incumbent_record: dict[str, Any] = {
            "name": incumbent_name, "true_value": truth_i.mean, "true_stderr": truth_i.stderr,
            **_evaluation_record(incumbent_eval)}
    else:
        incumbent = Incumbent(BEHAVIOR, behavior.value, behavior.low, behavior.high,
                              behavior_reps)
        incumbent_terms = behavior_terms(held_out, ope)
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
                measured[id(policy)] = truth_of(policy)
                return measured[id(policy)].mean

            found = near_bar_blend(blend_value, policies[best], policies[low], target,
                                   NEAR_BAR_OFFSET * scale, seeds["perturbation"])
            if found is None:
                notes.append(f"{name} left out: no blend of {best} and {low} within "
                             f"{NEAR_BAR_OFFSET:.1%} of {target:.4g}")
                continue
            policies[name], kinds[name] = found[0], KIND_CONSTRUCTED
            truths[name] = measured[id(found[0])]
    if "early_late" in cfg.constructed:
        worst = PerturbedPolicy(base, 1.0, seeds["perturbation"]) if base is not None \
            else RarePolicy(train.actions, n_actions, mask)
        _add_early_late(domain, policies, kinds, truths, notes, worst, truth_of,
                        bar - NEAR_BAR_OFFSET * scale, NEAR_BAR_OFFSET * scale, say,
                        train.observations, seeds["perturbation"])

    say(f"evaluating {', '.join(policies)} on {int(held_out.episode.max()) + 1:,} held-out "
        "episodes")
    evaluations = evaluate_targets(list(policies.items()), held_out, ope, n_actions=n_actions,
                                   replay=replay)
    evaluations = with_episode_gains(evaluations, incumbent.name, incumbent_terms)
    record, fields = decide_night(evaluations, kinds, incumbent, gate,
                                  {n: t.mean for n, t in truths.items()}, bar,
                                  cfg.indifference * scale)
    candidates = [{"kind": kinds[ev.name], "true_value": truths[ev.name].mean,
                   "true_stderr": truths[ev.name].stderr, **_evaluation_record(ev),
                   **fields[ev.name]} for ev in evaluations]
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
        "decision": record,
        "notes": notes,
        **({"spibb": spibb_record} if spibb_record else {}),
        "seconds": time.perf_counter() - started,
    }


def _add_early_late(domain: Domain, policies: dict[str, Any], kinds: dict[str, str],
                    truths: dict[str, Any], notes: list[str], late: Any,
                    truth_of: Callable[[Any], Any], target: float, band: float,
                    say: Progress, logged: np.ndarray, seed: int) -> None:
    """Adds ``early_late``: the truly best policy so far early in the episode and ``late``
    (a trained Q-learner's least-valued action, else the rarest logged one) late, switching at the
    point of the domain's progress feature found by bisection that makes it truly worth
    ``target`` (within ``band``: just below the bar, so promoting it is a false promotion);
    ``logged``: observations whose progress feature gives its step
    (:class:`EarlyLatePolicy`)."""
    if domain.progress_feature is None:
        notes.append(f"early_late left out: {domain.name} declares no progress feature")
        return
    best = max(truths, key=lambda n: truths[n].mean)
    if not truths[best].mean > target:
        notes.append(f"early_late left out: no candidate truly above {target:.4g}")
        return
    index = domain.feature_names.index(domain.progress_feature)
    step = progress_step(logged[:, index])
    say(f"constructing early_late: {best} before a cut in {domain.progress_feature}, the "
        f"worst action after it, truly worth about {target:.4g}")
    measured: dict[int, Any] = {}

    def value(policy: Any) -> float:
        measured[id(policy)] = truth_of(policy)
        return float(measured[id(policy)].mean)

    # share 1: every decision early (positions stay below 1 + step)
    found = near_value(value, lambda share: EarlyLatePolicy(
        policies[best], late, share * (1.0 + step), index, step, seed), target, band)
    if found is None:
        notes.append(f"early_late left out: no cut in {domain.progress_feature} within "
                     f"{band:.4g} of {target:.4g}")
        return
    policies["early_late"], kinds["early_late"] = found[0], KIND_CONSTRUCTED
    truths["early_late"] = measured[id(found[0])]


def _rolled_out(policy: Any) -> Any:
    """What the truth rollouts run for a policy: ``BEHAVIOR`` as it is, a stochastic
    target's distribution (sampled from the action stream), else its actions."""
    from offline_rl.ope.evaluate import StochasticTarget
    from offline_rl.simulator.base import StochasticPolicy

    if isinstance(policy, str):
        return policy
    if isinstance(policy, StochasticTarget):
        return StochasticPolicy(policy.probs)
    return policy.predict


def _evaluation_record(ev: Any) -> dict[str, Any]:
    """What :func:`_stored_evaluation` rebuilds an evaluation from."""
    return {"name": ev.name, "estimates": {k: e.as_dict() for k, e in ev.estimates.items()},
            "diagnostics": ev.diagnostics.as_dict(),
            "refit_replicates": ev.extra.get("refit_replicates"),
            "episode_gains": ev.extra.get("episode_gains")}


# --------------------------------------------------------------------------------------------
# Driver and output
# --------------------------------------------------------------------------------------------


def run_validation(cfg: ValidationConfig, progress: Progress | None = None,
                   checkpoint: Path | None = None) -> dict[str, Any]:
    """Every (domain, scenario, seed) run, the figures, and the configuration; with
    ``checkpoint``, the result so far is written there (JSON) after every run, with
    ``complete`` false until the last (a stopped validation keeps the runs it finished)."""
    from offline_rl.domains import get_domain

    say = progress or (lambda _m: None)
    cfg.check()
    domains = [get_domain(d) for d in cfg.domain_names()]
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

"""The promotion gate: a candidate replaces the incumbent only on convincing evidence.

The gate decides on one *headline* estimator: doubly robust, or the domain's own
(``Domain.gate_headline``; inventory decides on ``replay``, its held-out weeks replayed under
the candidate against the logged demand, :mod:`offline_rl.ope.replay`). A candidate passes
when all of these hold (each failed rule becomes a reason):

1. **Lower bound beats the incumbent.** With ``paired`` (the default) and refit replicates
   for both policies: the lower end of the ``1 - alpha`` interval of the *gain*
   ``candidate - incumbent`` exceeds ``margin * |incumbent_value|``. The gain's replicate
   ``k`` is the candidate's headline estimate minus the incumbent's value, both on FQE
   refit resample ``k`` of the same held-out episodes (``offline_rl.ope.evaluate``), so
   the luck of which customers happened to be held out cancels, and the incumbent's own
   uncertainty counts; the interval is ``gain +- t(1 - alpha/2, K - 1) * sd``. Without
   replicates (or with ``paired=False``): the lower end of the candidate's own interval
   exceeds the bar ``incumbent_value + margin * |incumbent_value|``.
2. **Diagnostics.** The per-decision effective sample size fraction is at least
   ``min_ess_fraction`` and no single episode carries more than ``max_weight_share`` of the
   importance weight (unset: the domain's calibrated limit, ``Domain.gate_max_weight_share``,
   else 25%): the estimate rests on many logged decisions, not a few. An undefined (NaN)
   diagnostic fails its check (the weight share's only while its limit is below 1). Not
   applied to a headline that uses no importance weights (``UNWEIGHTED``: ``replay``).
3. **No contradiction.** No ``veto_with`` estimator's interval lies wholly below the bar
   (its upper end at or under it): an estimator built on other assumptions (importance
   sampling needs no model) must not say with confidence that the candidate falls short.
   Every ``confirm_with`` estimator's point estimate must also exceed the incumbent's value.

Why these defaults (``offline-rl validate-ope`` measures them against simulator truth): FQE
extrapolates to states the behaviour policy rarely visits, and there the model-based
estimates (and doubly robust, whose importance weights vanish on those trajectories) can be
confidently too high: a candidate that lets inventory run out looked 50% better than it
was. Per-decision importance sampling is noisy and biased low for far-off candidates, but it
is rarely confidently too low, so its interval is a veto rather than a vote: also requiring
its point estimate to beat the incumbent costs real improvements (figures below).

Measured on 30 runs (``offline-rl validate-ope --first-seed 100``: five domains, three
scenarios, two seeds; the first defaults were tuned on seeds 0-2): with these defaults no
decision promoted a candidate that was not truly better by the margin, and 12 of the 26
decisions that had a truly better candidate kept the incumbent (46%). Replayed on the same
estimates (``validate-ope --replay``): ``veto_min_ess=0`` keeps 14 out (candidates whose
per-decision IS estimates had no supported late steps were vetoed); ``select_by=
"lower_bound"`` promotes one candidate that was not truly better; ``paired=False`` decides
the same. With the cheaper 600-step candidates of an earlier validation, the gate promoted
one inventory policy that orders nothing (3.3% of decisions): FQE over-valued it by 50%
and its per-decision IS interval reached above the bar; ``confirm_with=("pdis",)`` would
have refused it but kept more improvements out. On 30 runs with fresh seeds
(``--first-seed 200``) the same defaults promoted nothing that was not truly better, and kept
the incumbent in 11 of the 26 decisions that had a better candidate (42%); replayed there,
``max_weight_share=0.5`` would have promoted 4 candidates that were not (13%), all of them in
inventory, which is why the limit became per domain (``Domain.gate_max_weight_share``). On
seeds 300-301, not used to choose anything, the gate with the per-domain limits promoted one
candidate that was not truly better (an inventory policy FQE over-valued, with healthy
weights; the uniform 25% limit promotes it too), and the per-domain limits changed two
decisions, both to a truly better candidate. Those inventory over-valuations are a coverage
gap, not an estimator setting: the shop's rule reorders before the shelf empties, so no
logged week shows what a candidate that lets it run dry earns, and FQE extrapolates. Demand
replay needs no such coverage; deciding inventory on it (18 runs: seeds 100-101, 200-201
and 300-301, three scenarios each) promoted no candidate that was not truly better and ranked
the candidates with a correlation of 0.97 (doubly robust on the same runs: 0.24).

Among passing candidates the one with the highest headline estimate is promoted
(``select_by``: every one of them cleared the bar with confidence, and this one is expected
to earn most); otherwise the incumbent stays. The incumbent is the behaviour policy (valued
on-policy from the logs) until a policy has been promoted, then the last promoted policy,
re-evaluated on the same data. An incumbent whose re-evaluation lacks the headline estimate
(inventory's replay, when the logs cannot be replayed) is kept, with that reason.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from offline_rl.ope.replay import REPLAY

if TYPE_CHECKING:
    from offline_rl.ope.evaluate import PolicyEvaluation


DEFAULT_HEADLINE = "dr"
"""The headline estimator of a domain without its own (``GateConfig.headline``)."""

DEFAULT_MAX_WEIGHT_SHARE = 0.25
"""The weight-share limit of a domain without a calibrated one (``GateConfig.max_weight_share``)."""


@dataclass(frozen=True)
class GateConfig:
    """Thresholds of the promotion gate.

    Attributes:
        headline: Estimator whose interval decides. ``None`` (the default): the domain's
            (``Domain.gate_headline``, see :meth:`for_domain`), else doubly robust
            (``DEFAULT_HEADLINE``). With ``replay`` (a domain's replay of the held-out
            episodes, :mod:`offline_rl.ope.replay`) rule 2 does not apply: the estimate uses
            no importance weights.
        margin: Required relative improvement of the lower bound over the incumbent's value.
        min_ess_fraction: Minimum per-decision effective sample size / logged decisions. An
            undefined (NaN) fraction does not reach it.
        max_weight_share: Maximum share of the total trajectory importance weight on one
            episode. Deterministic targets over multi-step sessions concentrate trajectory
            weights (the default demo shows ~15% on one of ~10,000 held-out episodes, with a
            per-decision ESS of 15-30%); per-decision estimators lean mostly on early steps,
            so the limit only refuses estimates that one episode dominates. While the limit is
            active (below 1), an undefined share (NaN: no logged episode followed the
            candidate to its end, so the trajectory weights sum to 0) blocks too: nothing
            shows that the weight is spread. A limit of 1 or more turns the check off, and
            then an undefined share does not block either. ``None`` (the default): the
            domain's calibrated limit (``Domain.gate_max_weight_share``, see
            :meth:`for_domain`), else ``DEFAULT_MAX_WEIGHT_SHARE``.
        veto_with: Estimators whose interval's upper end at or below the bar vetoes the
            candidate (one without a finite upper end does not veto).
        veto_min_ess: A veto counts only when at least this many effective episodes (Kish ESS
            of the trajectory weights) followed the candidate to the end. With fewer, the
            importance-sampling estimate's later steps rest on almost no data and its value
            is biased towards zero (a pricing season of 14 daily prices: no logged season
            follows a deterministic candidate throughout), which is absence of evidence, not
            a contradiction.
        select_by: Which passing candidate is promoted: the highest headline ``estimate`` (all
            of them cleared the bar with confidence; this one is expected to earn most) or the
            highest ``lower_bound`` (the safest).
        confirm_with: Estimators whose point estimates must also beat the incumbent.
        paired: Judge rule 1 on the paired gain over the incumbent when both carry refit
            replicates of the same resamples (see rule 1); False: the candidate's own
            interval against the incumbent's point value.
    """

    headline: str | None = None
    margin: float = 0.02
    min_ess_fraction: float = 0.02
    max_weight_share: float | None = None
    veto_with: tuple[str, ...] = ("pdis",)
    veto_min_ess: float = 10.0
    select_by: str = "estimate"
    confirm_with: tuple[str, ...] = ()
    paired: bool = True

    def __post_init__(self) -> None:
        if self.select_by not in ("estimate", "lower_bound"):
            raise ValueError(f"select_by: expected 'estimate' or 'lower_bound', got "
                             f"{self.select_by!r}")

    @property
    def weight_share_limit(self) -> float:
        """``max_weight_share``, or ``DEFAULT_MAX_WEIGHT_SHARE`` when left to the domain."""
        return DEFAULT_MAX_WEIGHT_SHARE if self.max_weight_share is None \
            else self.max_weight_share

    @property
    def headline_estimator(self) -> str:
        """``headline``, or ``DEFAULT_HEADLINE`` when left to the domain."""
        return self.headline or DEFAULT_HEADLINE

    def for_domain(self, calibrated: float | None, headline: str | None = None) -> GateConfig:
        """This gate with a domain's settings where its own are unset: ``calibrated`` is
        ``Domain.gate_max_weight_share`` (None: the domain has none), ``headline``
        ``Domain.gate_headline``."""
        share = self.max_weight_share if self.max_weight_share is not None else (
            DEFAULT_MAX_WEIGHT_SHARE if calibrated is None else calibrated)
        return replace(self, max_weight_share=share,
                       headline=self.headline or headline or DEFAULT_HEADLINE)


UNWEIGHTED: tuple[str, ...] = (REPLAY,)
"""Headline estimators that use no importance weights: rule 2 does not apply to them."""


def promotion_bar(value: float, margin: float) -> float:
    """What a candidate must beat: ``value`` plus ``margin`` of its size (``margin * |value|``,
    so the bar is above a negative value too)."""
    return value + margin * abs(value)


@dataclass(frozen=True)
class Incumbent:
    """What a candidate must beat.

    ``replicates``: the incumbent's value on each FQE refit resample of the evaluation data
    (its headline estimate's, or the behaviour policy's on-policy value), for the paired
    rule; empty when unknown. ``unavailable``: why the incumbent has no value to beat (its
    evaluation lacks the headline estimate); the gate then keeps the incumbent with that
    reason and judges no candidate.
    """

    name: str
    value: float
    low: float
    high: float
    replicates: tuple[float, ...] = ()
    unavailable: str | None = None


def evaluated_incumbent(evaluation: PolicyEvaluation, headline: str) -> Incumbent:
    """The incumbent that ``evaluation`` (the policy in production, re-evaluated on the
    day's data) gives under the ``headline`` estimator: its estimate and refit replicates,
    or, without that estimate, an incumbent whose ``unavailable`` says so (with the reason
    the evaluation recorded in ``extra[headline]``, if any)."""
    head = evaluation.estimates.get(headline)
    if head is None:
        why = evaluation.extra.get(headline)
        nan = math.nan
        return Incumbent(evaluation.name, nan, nan, nan, unavailable=(
            f"the incumbent {evaluation.name} has no {headline} estimate"
            + (f" ({why})" if isinstance(why, str) else "")))
    reps = refit_replicates(evaluation, headline)
    return Incumbent(evaluation.name, head.value, head.low, head.high, reps[0] if reps else ())


def refit_replicates(candidate: PolicyEvaluation, estimator: str
                     ) -> tuple[tuple[float, ...], float] | None:
    """``(replicates, alpha)`` of one estimator of an evaluation, if it recorded them."""
    block = candidate.extra.get("refit_replicates") or {}
    values = (block.get("values") or {}).get(estimator)
    if not values or "alpha" not in block:
        return None
    return tuple(float(v) for v in values), float(block["alpha"])


@dataclass(frozen=True)
class Gain:
    """The paired gain of a candidate over the incumbent: estimate and interval."""

    value: float
    low: float
    high: float
    resamples: int


def paired_gain(value: float, replicates: tuple[float, ...], incumbent: Incumbent,
                alpha: float) -> Gain | None:
    """``value - incumbent.value`` with a Student-t interval from paired replicates.

    None when the two replicate lists do not pair up (different lengths, fewer than two
    finite differences).
    """
    from offline_rl.ope.evaluate import t_interval

    if len(replicates) != len(incumbent.replicates):
        return None
    diffs = [c - i for c, i in zip(replicates, incumbent.replicates, strict=True)]
    gain = value - incumbent.value
    interval = t_interval(gain, diffs, alpha)  # NaN differences are left out
    if interval is None:
        return None
    low, high, _, resamples = interval
    return Gain(gain, low, high, resamples)


@dataclass(frozen=True)
class CandidateVerdict:
    """One candidate's outcome: ``lower_bound`` is the incumbent's value plus the lower end of
    the paired gain, or the lower end of the headline interval when the rule was not paired;
    ``estimate`` the headline point estimate. ``GateConfig.select_by`` picks which of the two
    ranks the passing candidates."""

    name: str
    passed: bool
    lower_bound: float
    reasons: list[str]
    estimate: float = float("nan")


@dataclass(frozen=True)
class Decision:
    """The gate's outcome, with every number it used."""

    promoted: bool
    candidate: str | None
    incumbent: Incumbent
    reasons: list[str]
    verdicts: list[CandidateVerdict] = field(default_factory=list)
    config: GateConfig = field(default_factory=GateConfig)

    def as_dict(self) -> dict[str, Any]:
        return {
            "promoted": self.promoted,
            "candidate": self.candidate,
            "incumbent": asdict(self.incumbent),
            "reasons": self.reasons,
            "verdicts": [asdict(v) for v in self.verdicts],
            "config": asdict(self.config),
        }


def judge(candidate: PolicyEvaluation, incumbent: Incumbent, cfg: GateConfig) -> CandidateVerdict:
    """Applies the three rules to one candidate."""
    reasons: list[str] = []
    ok = True
    headline = cfg.headline_estimator
    if headline not in candidate.estimates:
        why = candidate.extra.get(headline)
        return CandidateVerdict(candidate.name, False, float("nan"),
                                [f"{candidate.name}: no {headline} estimate"
                                 + (f" ({why})" if isinstance(why, str) else "")])
    head = candidate.estimates[headline]
    bar = promotion_bar(incumbent.value, cfg.margin)
    required = bar - incumbent.value
    reps = refit_replicates(candidate, headline) if cfg.paired else None
    gain = paired_gain(head.value, reps[0], incumbent, reps[1]) if reps else None
    lower = head.low if gain is None else incumbent.value + gain.low
    if gain is not None:
        text = (f"{candidate.name}: {headline} gain over incumbent {gain.value:+.3f} "
                f"[{gain.low:+.3f}, {gain.high:+.3f}] (paired on {gain.resamples} refit "
                f"resamples)")
        if gain.low > required:
            reasons.append(f"{text}: lower end > {cfg.margin:.0%} margin = {required:+.3f}")
        else:
            ok = False
            reasons.append(f"{text}: lower end does not exceed the {cfg.margin:.0%} margin "
                           f"= {required:+.3f}")
    elif head.low > bar:
        reasons.append(f"{candidate.name}: {headline} lower bound {head.low:.3f} > "
                       f"incumbent {incumbent.value:.3f} + {cfg.margin:.0%} margin = {bar:.3f}")
    else:
        ok = False
        reasons.append(f"{candidate.name}: {headline} lower bound {head.low:.3f} does not "
                       f"exceed incumbent {incumbent.value:.3f} + {cfg.margin:.0%} margin "
                       f"= {bar:.3f}")
    diag = candidate.diagnostics
    weighted = headline not in UNWEIGHTED
    fraction = diag.per_decision_ess_fraction
    if weighted and math.isnan(fraction):
        ok = False
        reasons.append(f"{candidate.name}: per-decision ESS fraction (per_decision_ess_fraction) "
                       f"is undefined (nan), so it does not reach the minimum "
                       f"{cfg.min_ess_fraction}")
    elif weighted and fraction < cfg.min_ess_fraction:
        ok = False
        reasons.append(f"{candidate.name}: per-decision ESS fraction {fraction:.4f} < "
                       f"{cfg.min_ess_fraction}")
    share, limit = diag.max_weight_share, cfg.weight_share_limit
    if weighted and limit < 1 and math.isnan(share):
        ok = False
        reasons.append(f"{candidate.name}: weight share (max_weight_share) is undefined (nan: "
                       f"the trajectory importance weights sum to 0, no logged episode "
                       f"followed the candidate to its end), so nothing shows that no episode "
                       f"holds more than {limit:.0%} of the importance weight")
    elif weighted and share > limit:
        ok = False
        reasons.append(f"{candidate.name}: one episode holds {share:.1%} of "
                       f"the importance weight (> {limit:.0%})")
    for name in cfg.veto_with:
        est = candidate.estimates.get(name)
        if est is None or not math.isfinite(est.high):
            continue
        if est.high <= bar:
            where = f"{candidate.name}: {name} interval [{est.low:.3f}, {est.high:.3f}] lies " \
                    f"below the bar {bar:.3f}"
            if not diag.ess >= cfg.veto_min_ess:  # NaN: no weights, no support either
                reasons.append(f"{where}, but only {diag.ess:.1f} effective episodes (< "
                               f"{cfg.veto_min_ess:g}) followed the candidate to the end: "
                               f"no veto")
                continue
            ok = False
            reasons.append(f"{where} (estimators contradict)")
    for name in cfg.confirm_with:
        est = candidate.estimates.get(name)
        if est is None:
            continue
        if est.value <= incumbent.value:
            ok = False
            reasons.append(f"{candidate.name}: {name} estimate {est.value:.3f} does not beat "
                           f"the incumbent {incumbent.value:.3f} (estimators contradict)")
    return CandidateVerdict(candidate.name, ok, lower, reasons, head.value)


def verify_promotion(evidence: dict[str, Any]) -> tuple[bool, float, float]:
    """Re-checks a recorded decision (``Decision.as_dict()``) from its own numbers.

    Returns ``(ok, lower_bound, bar)``: a decision that kept the incumbent is ok; a promotion
    is ok when the promoted candidate's verdict passed and its lower bound (the incumbent's
    value plus the paired gain's lower end, or the headline's lower end) exceeds the bar
    ``incumbent + margin * |incumbent|`` of the recorded config.
    """
    incumbent = float(evidence["incumbent"]["value"])
    bar = promotion_bar(incumbent, float(evidence["config"]["margin"]))
    if not evidence["promoted"]:
        return True, math.nan, bar
    verdict = next((v for v in evidence["verdicts"] if v["name"] == evidence["candidate"]),
                   None)
    if verdict is None:
        return False, math.nan, bar
    lower = float(verdict["lower_bound"])
    return bool(verdict["passed"]) and lower > bar, lower, bar


def decide(
    candidates: list[PolicyEvaluation], incumbent: Incumbent, cfg: GateConfig | None = None
) -> Decision:
    """Promotes the best passing candidate (``GateConfig.select_by``), or keeps the incumbent.

    An incumbent without a value (``Incumbent.unavailable``, or a NaN value) is kept, with the
    reason, and no candidate is judged: there is no bar to clear.
    """
    cfg = cfg or GateConfig()
    if cfg.headline is None:  # the decision records the estimator it decided on
        cfg = replace(cfg, headline=cfg.headline_estimator)
    if incumbent.unavailable is not None or math.isnan(incumbent.value):
        why = incumbent.unavailable or f"the incumbent {incumbent.name}'s value is undefined"
        return Decision(False, None, incumbent,
                        [f"kept incumbent {incumbent.name}: {why}, so no candidate can be "
                         f"judged against it"], [], cfg)
    verdicts = [judge(c, incumbent, cfg) for c in candidates]
    passing = [v for v in verdicts if v.passed]
    if not passing:
        reasons = [f"kept incumbent {incumbent.name}: no candidate passed the gate"]
        reasons += [r for v in verdicts for r in v.reasons]
        return Decision(False, None, incumbent, reasons, verdicts, cfg)
    best = max(passing, key=lambda v: v.estimate if cfg.select_by == "estimate"
               else v.lower_bound)
    reasons = [f"promoted {best.name} over {incumbent.name}"] + best.reasons
    reasons += [r for v in verdicts if v is not best for r in v.reasons]
    return Decision(True, best.name, incumbent, reasons, verdicts, cfg)

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
   exceeds the bar ``incumbent_value + margin * |incumbent_value|``. With several candidates
   the bound is taken at Holm's level (below); alone, a candidate is judged as stated. With
   ``paired_by="episodes"`` the paired gain's standard error is instead that of the mean of
   the two policies' per-episode doubly robust terms on the same held-out episodes
   (``sd / sqrt(n)``, Student's t with ``n - 1`` degrees of freedom), where the evaluation
   recorded them (``PolicyEvaluation.episode_gain``).
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

Why these defaults: FQE extrapolates to states the behaviour policy rarely visits, and there
the model-based estimates (and doubly robust, whose importance weights vanish on those
trajectories) can be confidently too high. Per-decision importance sampling is noisy and
biased low for far-off candidates, but it is rarely confidently too low, so its interval is
a veto rather than a vote. ``offline-rl validate-ope`` measures how often these defaults
promote a candidate that is not truly better and how often they keep a better one out; the
runs that chose them are in ``docs/gate.md``. What the code guarantees is rule 1's bound
below, under its assumptions: rules 2 and 3 only ever remove candidates, so they cannot
raise the chance of a false promotion above it.

**Several candidates a night** (``GateConfig.multiplicity``, default ``"holm"``). Rule 1 is
the one-sided test of ``H0_k: gain_k <= margin * |incumbent_value|``, with the p-value its
interval implies: ``p_k = P(T > (gain_k - margin * |incumbent_value|) / sd_k)``, ``T``
Student's t with ``K - 1`` degrees of freedom through the intervals' own quantile function
(``upper_tail``), so ``p_k < alpha / 2`` exactly when the ``1 - alpha`` interval's lower end
clears the margin; unpaired, ``(estimate - bar) / se`` with the standard error ``se`` that the
lower half of the candidate's own interval implies. Holm's step-down runs at family level
``alpha / 2`` over all ``m`` candidates of the night, those that fail another rule or have no
headline estimate included (a p-value of 1): in increasing order of p, the ``j``-th
hypothesis is rejected when its lower bound at one-sided level ``alpha / 2 / (m - j + 1)``
clears the margin, until the first that does not. Rule 1 passes the rejected ones; every
other rule still applies.

Guarantee. Suppose every candidate whose true gain is at most the margin has a valid p-value
(``P(p_k <= u) <= u``): ``(estimated gain - true gain) / sd`` of the refit replicates follows
Student's t with ``K - 1`` degrees of freedom (a normal estimator whose replicates' spread is
its standard error; asymptotically so with many held-out episodes and refits), the estimator
is unbiased for the true gain (FQE's extrapolation beyond the logs' coverage breaks this), and
the margin ``margin * |incumbent_value|`` is taken as known though the incumbent's value is
estimated, and no candidate was chosen or trained with the held-out episodes (a policy
picked for how the evaluation's own model values those episodes is a different, data-chosen
hypothesis: the validation's ``fqe_greedy`` measures what that costs; the nightly window
holds an episode out on every night or on none and never trains on it,
``offline_rl.pipeline.split_episodes``). Then, however the candidates' estimates depend on
each other, the probability that a night promotes a candidate not truly better than the
incumbent by the margin is at most ``alpha / 2`` (0.05 by default), for any number of
candidates: the promoted candidate's ``H0`` was rejected, and Holm rejects some true ``H0``
with probability at most ``alpha / 2``.
The bound is per night (over ``N`` nights at most ``N * alpha / 2`` false promotions are
expected); with ``"none"`` only ``m * alpha / 2`` bounds it. The price is power: among ``m``
candidates the best is first tested at ``alpha / 2 / m``.

Its false-promotion rate and its power, simulated
(``tests/offline_rl/ope/test_gate_multiplicity.py``), are in ``docs/gate.md``.

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

MULTIPLICITY: tuple[str, ...] = ("holm", "none")
PAIRED_BY: tuple[str, ...] = ("refits", "episodes")
"""Accepted values of ``GateConfig.paired_by``."""
"""Accepted values of ``GateConfig.multiplicity``."""

DEFAULT_ALPHA = 0.1
"""Two-sided level of the evaluation's intervals when no candidate records one (the default
``OPEConfig.alpha``; refit replicates record the level their intervals were built at)."""


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
        paired_by: What the paired gain's standard error comes from. ``"refits"`` (the
            default): the spread of the ``K`` FQE refit replicates, Student's t with ``K - 1``
            degrees of freedom (the model's own error counts; few replicates make the bound
            wide). ``"episodes"``: the per-episode differences of the two policies' terms on
            the same held-out episodes (``PolicyEvaluation.episode_gain``; doubly robust
            only), standard error ``sd / sqrt(n)`` with ``n - 1`` degrees of freedom. Doubly
            robust with the logged propensities has mean ``V(pi)`` whatever the Q-model (up
            to the weight clip ``OPEConfig.model_max_weight``), so with cross-fitted FQE
            (``OPEConfig.fqe_folds >= 2``) this is the estimator's own standard error, and
            far tighter. A candidate or estimator without recorded episode gains falls back
            to the refits. Not valid with the nightly evaluation's defaults (weights clipped
            at 10, no cross-fitting): there its one-sided 95% bound lay at or below the true
            gain for only 72% of the candidates (``docs/gate.md``), against 97% for the
            refits; hence not the default.
        multiplicity: How rule 1 treats the night's ``m`` candidates. ``"holm"`` (the
            default): Holm's step-down test of the ``m`` hypotheses ``H0_k: gain_k <= margin *
            |incumbent value|`` at family level ``alpha / 2`` (the one-sided level of the
            evaluation's ``1 - alpha`` intervals): the candidate with the ``j``-th smallest
            one-sided p-value is tested at level ``alpha / 2 / (m - j + 1)``, and only while
            every candidate before it was rejected. Every candidate evaluated that night
            counts in ``m``, including one that fails another rule or has no headline
            estimate. Guarantee: if each candidate's p-value is valid (the assumptions in the
            module docstring), the probability that the gate promotes a candidate that is
            not truly better than the incumbent by the margin is at most ``alpha / 2`` per
            night, whatever ``m`` and however the candidates' estimates depend on each other
            (the promoted candidate's ``H0`` was rejected, and Holm bounds the chance of
            rejecting any true ``H0``). With one candidate it decides exactly as ``"none"``.
            Cost: power; a truly better candidate among ``m`` must clear a stricter bound
            (figures in the module docstring). ``"none"``: each candidate at ``alpha / 2`` on
            its own (the chance that some not-better candidate passes grows with ``m``).
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
    multiplicity: str = "holm"
    paired_by: str = "refits"

    def __post_init__(self) -> None:
        if self.paired_by not in PAIRED_BY:
            raise ValueError(f"paired_by: expected one of {PAIRED_BY}, got {self.paired_by!r}")
        if self.select_by not in ("estimate", "lower_bound"):
            raise ValueError(f"select_by: expected 'estimate' or 'lower_bound', got "
                             f"{self.select_by!r}")
        if self.multiplicity not in MULTIPLICITY:
            raise ValueError(f"multiplicity: expected one of {MULTIPLICITY}, got "
                             f"{self.multiplicity!r}")

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
        why = evaluation.missing_reason(headline)
        nan = math.nan
        return Incumbent(evaluation.name, nan, nan, nan, unavailable=(
            f"the incumbent {evaluation.name} has no {headline} estimate"
            + (f" ({why})" if isinstance(why, str) else "")))
    reps = evaluation.replicates(headline)
    return Incumbent(evaluation.name, head.value, head.low, head.high, reps[0] if reps else ())


@dataclass(frozen=True)
class Gain:
    """The paired gain of a candidate over the incumbent: estimate, interval and the standard
    deviation ``sd`` of the ``resamples`` finite replicate differences."""

    value: float
    low: float
    high: float
    resamples: int
    sd: float = float("nan")


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
    low, high, sd, resamples = interval
    return Gain(gain, low, high, resamples, sd)


def quantile(p: float, df: int | None) -> float:
    """Quantile ``p`` of Student's t with ``df`` degrees of freedom (the intervals' own,
    :func:`offline_rl.ope.evaluate.student_t_quantile`), or of the standard normal (``df``
    None)."""
    from scipy import stats

    return float(stats.norm.ppf(p) if df is None else stats.t.ppf(p, df))


def upper_tail(t: float, df: int | None) -> float:
    """``P(T > t)`` for the distribution of :func:`quantile`, its inverse:
    ``upper_tail(quantile(1 - a, df), df) = a`` (to rounding), so a p-value below ``a`` says
    the same as ``t`` above the quantile ``1 - a`` that the intervals use. NaN ``t``: 1."""
    from scipy import stats

    if math.isnan(t):
        return 1.0
    return float(stats.norm.sf(t) if df is None else stats.t.sf(t, df))


@dataclass(frozen=True)
class BarTest:
    """Rule 1 of one candidate as a one-sided test of ``H0: true gain over the incumbent <=
    margin * |incumbent value|``.

    Paired: ``estimate`` is the gain (candidate minus incumbent), ``threshold`` the margin
    ``margin * |incumbent value|``, ``scale`` the standard deviation of the replicate
    differences with Student's t for ``df = resamples - 1``. Unpaired: ``estimate`` is the
    candidate's headline estimate, ``threshold`` the bar, and ``scale`` the standard error
    that the lower half of its own interval implies (``(estimate - low) / quantile(1 - alpha /
    2)``; Student's t when the candidate's refit replicates reproduce the interval, else
    normal, as for a percentile bootstrap). ``low``/``high``: the ``1 - alpha`` interval.
    ``p_value``: ``upper_tail((estimate - threshold) / scale, df)``, below a level ``a``
    exactly when :meth:`lower_at` ``(a)`` exceeds ``threshold``; at ``a = alpha / 2`` that is
    the interval's own lower end.
    """

    paired: bool
    estimate: float
    threshold: float
    low: float
    high: float
    alpha: float
    scale: float
    df: int | None
    resamples: int
    p_value: float
    basis: str = "refits"
    """What ``scale`` comes from: ``"refits"`` (``resamples`` refit replicates) or
    ``"episodes"`` (``resamples`` held-out episodes; ``GateConfig.paired_by``)."""

    def lower_at(self, level: float) -> float:
        """The lower end of the one-sided ``1 - level`` bound (``low`` at ``alpha / 2``)."""
        if level == self.alpha / 2:
            return self.low
        return self.estimate - self.scale * quantile(1.0 - level, self.df)

    def rejects(self, level: float) -> bool:
        """Whether ``H0`` is rejected at one-sided ``level``: the lower end exceeds the
        threshold (the rule of a single candidate at ``level = alpha / 2``)."""
        return bool(self.lower_at(level) > self.threshold)


def _p_value(estimate: float, threshold: float, scale: float, df: int | None) -> float:
    if scale == 0:  # no spread: the estimate is its own bound
        return 0.0 if estimate > threshold else 1.0
    return upper_tail((estimate - threshold) / scale, df)


def bar_test(candidate: PolicyEvaluation, incumbent: Incumbent, cfg: GateConfig,
             alpha: float = DEFAULT_ALPHA) -> BarTest | None:
    """Rule 1's test of ``candidate`` (None without a headline estimate): on the paired gain
    when ``cfg.paired`` and the replicates pair up, else on the candidate's own interval;
    ``alpha`` is the level assumed for an interval whose candidate records none."""
    from offline_rl.ope.evaluate import t_interval

    headline = cfg.headline_estimator
    head = candidate.estimates.get(headline)
    if head is None:
        return None
    own = candidate.replicates(headline)
    bar = promotion_bar(incumbent.value, cfg.margin)
    per_episode = candidate.episode_gain(incumbent.name, headline) \
        if cfg.paired and cfg.paired_by == "episodes" else None
    if per_episode is not None and per_episode["n"] >= 2:
        level = own[1] if own else alpha
        value, se, n = per_episode["gain"], per_episode["se"], per_episode["n"]
        half = quantile(1.0 - level / 2, n - 1) * se
        required = bar - incumbent.value
        return BarTest(True, value, required, value - half, value + half, level, se, n - 1,
                       n, _p_value(value, required, se, n - 1), basis="episodes")
    if cfg.paired and own:
        gain = paired_gain(head.value, own[0], incumbent, own[1])
        if gain is not None:
            required = bar - incumbent.value
            return BarTest(True, gain.value, required, gain.low, gain.high, own[1], gain.sd,
                           gain.resamples - 1, gain.resamples,
                           _p_value(gain.value, required, gain.sd, gain.resamples - 1))
    level = own[1] if own else alpha
    df: int | None = None
    resamples = 0
    if own:  # a refit interval is value +- t * sd of the replicates: the same t here
        interval = t_interval(head.value, own[0], level)
        if interval is not None and math.isclose(interval[0], head.low, rel_tol=1e-9,
                                                  abs_tol=1e-12):
            df, resamples = interval[3] - 1, interval[3]
    half = head.value - head.low
    scale = half / quantile(1.0 - level / 2, df) if half >= 0 else math.nan
    return BarTest(False, head.value, bar, head.low, head.high, level, scale, df, resamples,
                   _p_value(head.value, bar, scale, df))


@dataclass(frozen=True)
class Family:
    """How rule 1 treated the night's candidates: ``method`` (``GateConfig.multiplicity``),
    ``alpha`` the two-sided level of the evaluation's intervals, ``level`` the one-sided
    family level ``alpha / 2``, ``size`` the number of candidates (every one counts)."""

    method: str
    alpha: float
    level: float
    size: int


@dataclass(frozen=True)
class Rule1:
    """One candidate's place in the family: the ``level`` rule 1 tested it at, its ``rank``
    (1 = smallest p-value; Holm only) and whether its ``H0`` was ``rejected``;
    ``stopped_at`` is the rank at which Holm's step-down stopped (None: it did not)."""

    test: BarTest | None
    level: float
    rejected: bool
    rank: int = 1
    size: int = 1
    stopped_at: int | None = None


def family_alpha(candidates: list[PolicyEvaluation]) -> float:
    """The two-sided level of the night's intervals: the smallest one the candidates' refit
    replicates record (they share one evaluation config), else ``DEFAULT_ALPHA``."""
    levels = [float(block["alpha"]) for c in candidates
              if isinstance(block := c.extra.get("refit_replicates"), dict) and "alpha" in block]
    return min(levels) if levels else DEFAULT_ALPHA


def holm_levels(p_values: list[float], level: float) -> list[tuple[int, float]]:
    """``(rank, one-sided level)`` of each hypothesis in Holm's step-down at family ``level``:
    the ``j``-th smallest p-value (ties in list order; NaN as 1) is tested at
    ``level / (m - j + 1)``."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: (1.0 if math.isnan(p_values[i]) else p_values[i], i))
    out = [(0, math.nan)] * m
    for j, i in enumerate(order):
        out[i] = (j + 1, level / (m - j))
    return out


def rule1(tests: list[BarTest | None], cfg: GateConfig, alpha: float) -> list[Rule1]:
    """Rule 1 over the family ``tests`` (None: a candidate without a headline estimate, never
    rejected). ``"none"``: each at its own interval's ``alpha / 2``. ``"holm"``: Holm's
    step-down at family level ``alpha / 2``; in rank order, a hypothesis is rejected when its
    lower bound at its level exceeds the threshold and every earlier one was rejected, so
    the chance of rejecting any true ``H0`` is at most ``alpha / 2`` when the p-values are
    valid."""
    if cfg.multiplicity == "none":
        out = []
        for t in tests:
            level = (t.alpha if t is not None else alpha) / 2
            out.append(Rule1(t, level, t is not None and t.rejects(level)))
        return out
    m = len(tests)
    ranks = holm_levels([1.0 if t is None else t.p_value for t in tests], alpha / 2)
    by_rank = sorted(range(m), key=lambda i: ranks[i][0])
    rejected = [False] * m
    stopped_at: int | None = None
    for i in by_rank:
        rank, level = ranks[i]
        t = tests[i]
        if t is not None and t.rejects(level):
            rejected[i] = True
        else:
            stopped_at = rank
            break
    return [Rule1(t, ranks[i][1], rejected[i], ranks[i][0], m, stopped_at)
            for i, t in enumerate(tests)]


@dataclass(frozen=True)
class CandidateVerdict:
    """One candidate's outcome: ``lower_bound`` is the incumbent's value plus the lower end of
    the paired gain, or the lower end of the headline interval when the rule was not paired
    (both at the intervals' own one-sided ``alpha / 2``); ``estimate`` the headline point
    estimate. ``GateConfig.select_by`` picks which of the two ranks the passing candidates.
    ``p_value`` is rule 1's one-sided p-value (1 without a headline estimate), ``level`` the
    one-sided level rule 1 tested it at (Holm's adjusted level, or ``alpha / 2``), and
    ``adjusted_lower_bound`` the lower bound at that level, which rule 1 compared with the bar
    (NaN where the bound is undefined)."""

    name: str
    passed: bool
    lower_bound: float
    reasons: list[str]
    estimate: float = float("nan")
    p_value: float = float("nan")
    level: float = float("nan")
    adjusted_lower_bound: float = float("nan")


@dataclass(frozen=True)
class Decision:
    """The gate's outcome, with every number it used (``family``: how rule 1 treated the
    candidates; None when none was judged)."""

    promoted: bool
    candidate: str | None
    incumbent: Incumbent
    reasons: list[str]
    verdicts: list[CandidateVerdict] = field(default_factory=list)
    config: GateConfig = field(default_factory=GateConfig)
    family: Family | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "promoted": self.promoted,
            "candidate": self.candidate,
            "incumbent": asdict(self.incumbent),
            "reasons": self.reasons,
            "verdicts": [asdict(v) for v in self.verdicts],
            "config": asdict(self.config),
            "family": None if self.family is None else asdict(self.family),
        }


def _rule1_reason(name: str, headline: str, incumbent: Incumbent, cfg: GateConfig,
                  outcome: Rule1) -> str:
    t = outcome.test
    assert t is not None
    bar = promotion_bar(incumbent.value, cfg.margin)
    holm = cfg.multiplicity == "holm" and outcome.size > 1
    where = (f"Holm rank {outcome.rank} of {outcome.size} (p = {t.p_value:.3g}), one-sided "
             f"level {outcome.level:.4g}")
    if t.paired:
        basis = "held-out episodes" if t.basis == "episodes" else "refit resamples"
        text = (f"{name}: {headline} gain over incumbent {t.estimate:+.3f} "
                f"[{t.low:+.3f}, {t.high:+.3f}] (paired on {t.resamples} {basis})")
        if not holm:
            return (f"{text}: lower end > {cfg.margin:.0%} margin = {t.threshold:+.3f}"
                    if outcome.rejected else f"{text}: lower end does not exceed the "
                    f"{cfg.margin:.0%} margin = {t.threshold:+.3f}")
        text = f"{text}; {where}"
        if outcome.stopped_at is not None and outcome.rank > outcome.stopped_at:
            return f"{text}: not rejected, the step-down stopped at rank {outcome.stopped_at}"
        low = t.lower_at(outcome.level)
        return (f"{text}: lower end {low:+.3f} > {cfg.margin:.0%} margin = {t.threshold:+.3f}"
                if outcome.rejected else f"{text}: lower end {low:+.3f} does not exceed the "
                f"{cfg.margin:.0%} margin = {t.threshold:+.3f}")
    if not holm:
        return (f"{name}: {headline} lower bound {t.low:.3f} > incumbent "
                f"{incumbent.value:.3f} + {cfg.margin:.0%} margin = {bar:.3f}"
                if outcome.rejected else f"{name}: {headline} lower bound {t.low:.3f} does not "
                f"exceed incumbent {incumbent.value:.3f} + {cfg.margin:.0%} margin = {bar:.3f}")
    text = f"{name}: {headline} interval [{t.low:.3f}, {t.high:.3f}]; {where}"
    if outcome.stopped_at is not None and outcome.rank > outcome.stopped_at:
        return f"{text}: not rejected, the step-down stopped at rank {outcome.stopped_at}"
    low = t.lower_at(outcome.level)
    return (f"{text}: lower bound {low:.3f} > incumbent {incumbent.value:.3f} + "
            f"{cfg.margin:.0%} margin = {bar:.3f}" if outcome.rejected else
            f"{text}: lower bound {low:.3f} does not exceed incumbent {incumbent.value:.3f} + "
            f"{cfg.margin:.0%} margin = {bar:.3f}")


def judge(candidate: PolicyEvaluation, incumbent: Incumbent, cfg: GateConfig,
          outcome: Rule1 | None = None) -> CandidateVerdict:
    """Applies the three rules to one candidate; ``outcome`` is its rule 1 within the night's
    family (:func:`rule1`; None: judged alone, at its interval's ``alpha / 2``)."""
    reasons: list[str] = []
    ok = True
    headline = cfg.headline_estimator
    if headline not in candidate.estimates:
        why = candidate.missing_reason(headline)
        return CandidateVerdict(candidate.name, False, float("nan"),
                                [f"{candidate.name}: no {headline} estimate"
                                 + (f" ({why})" if isinstance(why, str) else "")],
                                p_value=1.0, level=math.nan if outcome is None else outcome.level)
    head = candidate.estimates[headline]
    bar = promotion_bar(incumbent.value, cfg.margin)
    if outcome is None or outcome.test is None:
        outcome = rule1([bar_test(candidate, incumbent, cfg, family_alpha([candidate]))],
                        replace(cfg, multiplicity="none"), family_alpha([candidate]))[0]
    t = outcome.test
    assert t is not None
    base = incumbent.value if t.paired else 0.0
    lower = base + t.low
    adjusted = base + t.lower_at(outcome.level)
    if not outcome.rejected:
        ok = False
    reasons.append(_rule1_reason(candidate.name, headline, incumbent, cfg, outcome))
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
    return CandidateVerdict(candidate.name, ok, lower, reasons, head.value, t.p_value,
                            outcome.level, adjusted)


def _p(verdict: dict[str, Any]) -> float:
    p = float(verdict.get("p_value", math.nan))
    return 1.0 if math.isnan(p) else p


def verify_promotion(evidence: dict[str, Any]) -> tuple[bool, float, float]:
    """Re-checks a recorded decision (``Decision.as_dict()``) from its own numbers.

    Returns ``(ok, lower_bound, bar)``: a decision that kept the incumbent is ok. A promotion
    is ok when the promoted candidate's verdict passed and its lower bound exceeds the bar
    ``incumbent + margin * |incumbent|`` of the recorded config. Under Holm
    (``config["multiplicity"] == "holm"``) that bound is the ``adjusted_lower_bound`` at the
    level recorded for it, and the record must show Holm's step-down reaching and rejecting
    it: the family (``evidence["family"]``) holds every verdict at level ``alpha / 2``; ordered
    by the recorded p-values, the verdicts up to the promoted one carry the levels ``family
    level / (m - j + 1)`` and each of their adjusted bounds exceeds the bar (the promoted
    one's ``lower_bound`` too). A record without the setting (written before it existed) and
    ``"none"`` are checked on ``lower_bound``, the one-sided ``alpha / 2`` bound.
    """
    incumbent = float(evidence["incumbent"]["value"])
    bar = promotion_bar(incumbent, float(evidence["config"]["margin"]))
    if not evidence["promoted"]:
        return True, math.nan, bar
    verdicts = evidence["verdicts"]
    verdict = next((v for v in verdicts if v["name"] == evidence["candidate"]), None)
    if verdict is None:
        return False, math.nan, bar
    if evidence["config"].get("multiplicity", "none") == "none":
        lower = float(verdict["lower_bound"])
        return bool(verdict["passed"]) and lower > bar, lower, bar
    lower = float(verdict.get("adjusted_lower_bound", math.nan))
    family = evidence.get("family") or {}
    m = int(family.get("size", -1))
    level = float(family.get("level", math.nan))
    alpha = float(family.get("alpha", math.nan))
    if family.get("method") != "holm" or m != len(verdicts) or not level == alpha / 2:
        return False, lower, bar
    ranks = holm_levels([_p(v) for v in verdicts], level)
    for i in sorted(range(m), key=lambda i: ranks[i][0]):
        v = verdicts[i]
        expected = ranks[i][1]
        bound = float(v.get("adjusted_lower_bound", math.nan))
        if not math.isclose(float(v.get("level", math.nan)), expected, rel_tol=1e-12) \
                or not bound > bar:
            return False, lower, bar  # a level other than Holm's, or the step-down stops
        if v is verdict:  # its alpha / 2 bound is above the adjusted one: both clear the bar
            return bool(verdict["passed"]) and float(v["lower_bound"]) > bar, lower, bar
    return False, lower, bar


def decide(
    candidates: list[PolicyEvaluation], incumbent: Incumbent, cfg: GateConfig | None = None
) -> Decision:
    """Promotes the best passing candidate (``GateConfig.select_by``), or keeps the incumbent.

    Rule 1 treats the candidates as one family (``GateConfig.multiplicity``); every candidate
    counts in it, whatever the other rules say of it. An incumbent without a value
    (``Incumbent.unavailable``, or a NaN value) is kept, with the reason, and no candidate is
    judged: there is no bar to clear.
    """
    cfg = cfg or GateConfig()
    if cfg.headline is None:  # the decision records the estimator it decided on
        cfg = replace(cfg, headline=cfg.headline_estimator)
    if incumbent.unavailable is not None or math.isnan(incumbent.value):
        why = incumbent.unavailable or f"the incumbent {incumbent.name}'s value is undefined"
        return Decision(False, None, incumbent,
                        [f"kept incumbent {incumbent.name}: {why}, so no candidate can be "
                         f"judged against it"], [], cfg)
    alpha = family_alpha(candidates)
    family = Family(cfg.multiplicity, alpha, alpha / 2, len(candidates))
    outcomes = rule1([bar_test(c, incumbent, cfg, alpha) for c in candidates], cfg, alpha)
    verdicts = [judge(c, incumbent, cfg, o) for c, o in zip(candidates, outcomes, strict=True)]
    note = [f"rule 1: Holm's step-down over {family.size} candidates at family level "
            f"{family.level:g} (one-sided)"] if cfg.multiplicity == "holm" and \
        family.size > 1 else []
    passing = [v for v in verdicts if v.passed]
    if not passing:
        reasons = [f"kept incumbent {incumbent.name}: no candidate passed the gate"]
        reasons += [r for v in verdicts for r in v.reasons] + note
        return Decision(False, None, incumbent, reasons, verdicts, cfg, family)
    best = max(passing, key=lambda v: v.estimate if cfg.select_by == "estimate"
               else v.lower_bound)
    reasons = [f"promoted {best.name} over {incumbent.name}"] + best.reasons
    reasons += [r for v in verdicts if v is not best for r in v.reasons] + note
    return Decision(True, best.name, incumbent, reasons, verdicts, cfg, family)

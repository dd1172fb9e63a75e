"""The validation's figures: estimator accuracy, the gate's error rates with exact bounds,
the power curve and decision regret."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from offline_rl.ope.gate import DEFAULT_HEADLINE
from offline_rl.ope.replay import REPLAY

POWER_BINS: tuple[float, ...] = (-math.inf, 0.0, 0.02, 0.03, 0.05, 0.10, math.inf)
"""Edges of the power curve's bins: the best candidate's true gain over the incumbent, as a
share of the incumbent's true value."""


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


KIND_TRAINED = "trained"
KIND_CONSTRUCTED = "constructed"
"""A run's candidates are of one of two kinds: ``KIND_TRAINED`` as the nightly job trains them (its
night's candidates), or ``KIND_CONSTRUCTED`` by the validation to probe the gate."""


def night_candidates(run: dict[str, Any]) -> list[dict[str, Any]]:
    """The candidates the nightly job itself would have had that night: the trained ones
    (every candidate of a run recorded without kinds). The run's decision, its false
    promotions, misses, regret and power are theirs."""
    return [c for c in run["candidates"] if c.get("kind") != KIND_CONSTRUCTED]


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
    """Probability of promotion against the best night candidate's (:func:`night_candidates`)
    true gain over the incumbent (a share of its true value), per bin of ``edges``:
    decisions, promotions, the rate and its exact 95% interval (one-sided bounds each at
    97.5%)."""
    gains, promoted = [], []
    for run in runs:
        base, night = incumbent_truth(run), night_candidates(run)
        if base == 0 or not night:
            continue
        gains.append((max(c["true_value"] for c in night) - base) / abs(base))
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
    """Of the runs' decisions (among the night's candidates, :func:`night_candidates`):
    promotions, false promotions (with their rate's exact 95% upper bound), missed
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
                               [c["true_value"] for c in night_candidates(r)],
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


def constructed_figures(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per constructed candidate (by name, in order of appearance): the runs it took part in;
    among those where it was truly at or below the bar, how often it passed the gate's test
    in a night that added it to the trained candidates (``false_passes``, with the rate's
    exact one-sided 95% upper bound) and how often that night promoted it
    (``promoted_below_bar``, from the candidate's ``promoted_when_added``); and the mean
    signed relative error of its headline estimate (above zero: the estimate flatters it),
    the figure that shows whether a candidate built to fool an estimator does."""
    out: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(c["name"] for r in runs for c in r["candidates"]
                              if c.get("kind") == KIND_CONSTRUCTED):
        present = below = passed = promoted = 0
        signed: list[float] = []
        for r in runs:
            c = next((c for c in r["candidates"] if c["name"] == name), None)
            if c is None:
                continue
            present += 1
            e = c["estimates"].get(run_headline(r))
            if e is not None and e["value"] is not None and math.isfinite(e["value"]) \
                    and c["true_value"] != 0:
                signed.append((e["value"] - c["true_value"]) / abs(c["true_value"]))
            if c["true_value"] <= r["bar"]:
                below += 1
                passed += bool(c.get("passed_gate"))
                promoted += bool(c.get("promoted_when_added"))
        out[name] = {"runs": present, "truly_below_bar": below, "false_passes": passed,
                     "false_pass_upper": clopper_pearson_upper(passed, below),
                     "promoted_below_bar": promoted,
                     "mean_signed_relative_error": _mean(signed)}
    return out


def gain_lower_coverage(runs: Sequence[dict[str, Any]], basis: str = "refits"
                        ) -> dict[str, Any]:
    """How often rule 1's paired lower bound lies at or below the true gain: over every
    (run, candidate) with a paired gain of the run's headline, the share whose one-sided
    ``1 - alpha / 2`` lower bound (the interval's lower end, as a lone candidate is judged)
    does not exceed the candidate's true value minus the incumbent's, next to that nominal
    level. ``basis``: the gain's standard error from the FQE ``"refits"`` or from the
    held-out ``"episodes"`` (``GateConfig.paired_by``; runs recorded before episode gains
    were kept have none)."""
    from offline_rl.ope.gate import Incumbent, paired_gain, quantile

    covered = pairs = 0
    nominal: set[float] = set()
    for run in runs:
        head = run_headline(run)
        stored = run.get("incumbent") or {}
        if stored.get("estimates"):  # an earlier promoted policy, valued off-policy
            inc_value = stored["estimates"].get(head, {}).get("value")
            inc_reps = ((stored.get("refit_replicates") or {}).get("values") or {}).get(head)
        else:
            inc_value = run["behavior"].get("value")
            inc_reps = run["behavior"].get("refit_replicates")
        truth = incumbent_truth(run)
        for c in run["candidates"]:
            block = c.get("refit_replicates") or {}
            value = c["estimates"].get(head, {}).get("value")
            if value is None or inc_value is None or "alpha" not in block:
                continue
            alpha = float(block["alpha"])
            if basis == "episodes":
                g = ((c.get("episode_gains") or {}).get(stored.get("name", "behavior"))
                     or {}).get(head)
                if not g or g["n"] < 2:
                    continue
                lower = g["gain"] - quantile(1.0 - alpha / 2, g["n"] - 1) * g["se"]
            else:
                reps = (block.get("values") or {}).get(head)
                if not reps or not inc_reps:
                    continue
                inc = Incumbent("incumbent", float(inc_value), math.nan, math.nan,
                                tuple(float(v) for v in inc_reps))
                gain = paired_gain(float(value), tuple(float(v) for v in reps), inc, alpha)
                if gain is None:
                    continue
                lower = gain.low
            pairs += 1
            covered += lower <= c["true_value"] - truth
            nominal.add(1.0 - alpha / 2)
    return {"pairs": pairs, "covered": covered,
            "coverage": covered / pairs if pairs else math.nan,
            "nominal": nominal.pop() if len(nominal) == 1 else math.nan}


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
        "gain_lower_coverage": {basis: gain_lower_coverage(runs, basis)
                                for basis in ("refits", "episodes")},
    }
    return {"overall": overall, "headline": headline, "per_domain": per_domain,
            "per_scenario": per_scenario, "constructed": constructed_figures(runs)}


def incumbent_truth(run: dict[str, Any]) -> float:
    """The incumbent's true value (the behaviour policy's in runs from before incumbents)."""
    return (run.get("incumbent") or run["behavior"])["true_value"]


def decision_record(decision: Any, truths: dict[str, float], bar: float, zone: float = 0.0
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

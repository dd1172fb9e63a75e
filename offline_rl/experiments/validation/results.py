"""Stored validation results: merging, re-deciding with other gate settings, the printed
tables and the JSON file."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from offline_rl.experiments.validation.figures import (
    KIND_CONSTRUCTED,
    KIND_TRAINED,
    decision_record,
    incumbent_truth,
    power_curve,
    summarise,
)
from offline_rl.experiments.validation.scenarios import BEHAVIOR, domain_gate
from offline_rl.ope.gate import GateConfig, Incumbent, decide, promotion_bar


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
    extra: EvaluationDetails = {}
    if record.get("refit_replicates"):
        extra["refit_replicates"] = record["refit_replicates"]
    if record.get("episode_gains"):  # runs recorded before these were kept have none
        extra["episode_gains"] = record["episode_gains"]
    return PolicyEvaluation(record["name"], estimates, diagnostics, math.nan, extra)


def decide_night(evaluations: Sequence[Any], kinds: dict[str, str], incumbent: Incumbent,
                 gate: GateConfig, truths: dict[str, float], bar: float, zone: float
                 ) -> tuple[dict[str, Any], dict[str, dict[str, bool]]]:
    """A run decided as the nightly job decides: ``(decision record, per candidate fields)``.

    The decision is the gate's over the trained candidates alone (``kinds``), the family the
    nightly job tests (Holm's correction over as many candidates as it has, not over the
    validation's constructed ones too); its record (:func:`decision_record`) judges it
    against their true values. Each constructed candidate is then decided in a night of its
    own that adds it to the trained ones: its ``passed_gate`` is its verdict there and
    ``promoted_when_added`` whether that night promoted it. A trained candidate's
    ``passed_gate`` is its verdict in the run's decision.
    """
    built = [e for e in evaluations if kinds.get(e.name) == KIND_CONSTRUCTED]
    trained = [e for e in evaluations if kinds.get(e.name) != KIND_CONSTRUCTED]
    night = decide(trained, incumbent, gate)
    fields = {v.name: {"passed_gate": v.passed} for v in night.verdicts}
    for extra in built:
        added = decide([*trained, extra], incumbent, gate)
        fields[extra.name] = {"passed_gate": next(v.passed for v in added.verdicts
                                                  if v.name == extra.name),
                              "promoted_when_added": added.candidate == extra.name}
    record = decision_record(night, {e.name: truths[e.name] for e in trained}, bar, zone)
    return record, fields


def merge_results(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One result of the runs of several (e.g. one per domain or per scenario, run side by
    side): their configurations must agree but for the domains, scenarios and seeds."""
    if not results:
        raise ValueError("no result to merge")
    first = results[0]

    # a gate setting added after a file was written is that file's default
    gate_defaults = json.loads(json.dumps(dataclasses.asdict(GateConfig())))

    def comparable(config: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in config.items()
               if k not in ("domains", "scenarios", "seeds", "first_seed")}
        if isinstance(out.get("gate"), dict):
            out["gate"] = {**gate_defaults, **out["gate"]}
        return out

    for other in results[1:]:
        if comparable(other["config"]) != comparable(first["config"]):
            raise ValueError("the results were run with different settings; merge only runs "
                             "of one configuration")
    domains = tuple(dict.fromkeys(d for r in results for d in r["config"]["domains"]))
    scenarios = tuple(dict.fromkeys(s for r in results
                                    for s in r["config"].get("scenarios") or ()))
    return {**first, "config": {**first["config"], "domains": list(domains),
                                "scenarios": list(scenarios)},
            "runs": [run for r in results for run in r["runs"]],
            "seconds": sum(r.get("seconds") or 0.0 for r in results)}


def replay_gate(result: dict[str, Any], gate: GateConfig, without: Sequence[str] = ()
                ) -> dict[str, Any]:
    """``result`` (``run_validation``'s, or its JSON) re-decided by another gate; ``without``:
    candidates left out, as if they had not been evaluated (the others' decisions, Holm's
    family included, are then those of a night without them).

    The decisions and gate figures are recomputed from each run's stored estimates,
    diagnostics, refit replicates and true values: no training, FQE or rollouts, so gate
    settings can be compared on the same evaluations in seconds. Estimator figures are
    unchanged unless ``gate.headline`` changes which estimator the overall figures report
    (result files from before the ``replay`` estimator hold none: replayed with the inventory
    domain's ``replay`` headline, its candidates have no headline estimate and are kept out;
    set ``gate.headline`` to compare them on ``dr``).
    """
    from offline_rl.domains import get_domain
    from offline_rl.ope.gate import evaluated_incumbent

    zone = float(result["config"].get("indifference", 0.0))
    runs = []
    for run in result["runs"]:
        if without:
            run = {**run, "candidates": [c for c in run["candidates"]
                                         if c["name"] not in without]}
        b = run["behavior"]
        run_gate = domain_gate(gate, get_domain(run["domain"]))
        stored = run.get("incumbent") or {}
        if stored.get("estimates") is not None:  # an earlier promoted policy, off-policy
            incumbent = evaluated_incumbent(_stored_evaluation(stored),
                                            run_gate.headline_estimator)
        else:
            incumbent = Incumbent(BEHAVIOR, _nan(b["value"]), _nan(b["low"]), _nan(b["high"]),
                                  tuple(b.get("refit_replicates") or ()))
        base = incumbent_truth(run)
        bar = promotion_bar(base, gate.margin)
        record, fields = decide_night(
            [_stored_evaluation(c) for c in run["candidates"]],
            {c["name"]: c.get("kind", KIND_TRAINED) for c in run["candidates"]}, incumbent,
            run_gate, {c["name"]: c["true_value"] for c in run["candidates"]}, bar,
            zone * abs(base))
        runs.append({**run, "bar": bar, "headline": run_gate.headline_estimator,
                     "candidates": [{**c, **fields[c["name"]]} for c in run["candidates"]],
                     "decision": record})
    config = {**result["config"], "gate": dataclasses.asdict(gate),
              **({"without": list(without)} if without else {})}
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
    if result.get("constructed"):
        lines += ["", f"{'constructed':<16}{'runs':>6}{'truly <= bar':>14}{'passed':>8}"
                      f"{'upper 95%':>11}{'promoted':>10}{'headline bias':>15}"]
        for name, c in result["constructed"].items():
            lines.append(f"{name:<16}{c['runs']:>6}{c['truly_below_bar']:>14}"
                         f"{c['false_passes']:>8}{_pct(c['false_pass_upper']):>11}"
                         f"{c['promoted_below_bar']:>10}"
                         f"{_pct(c['mean_signed_relative_error']):>15}")
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
    if result.get("constructed"):
        lines.append("decisions are the gate's over the trained candidates, as the nightly job "
                     "decides; a constructed candidate is judged in a night that adds it to "
                     "them (passed, promoted)")
    if "fqe_greedy" in (result.get("constructed") or {}):
        lines.append("fqe_greedy is tuned on the held-out episodes, outside the gate's "
                     "guarantee (candidates chosen without them)")
    for basis, c in (o.get("gain_lower_coverage") or {}).items():
        if c["pairs"]:
            lines.append(f"paired gain's lower bound (standard error from the {basis}) at or "
                         f"below the true gain: {c['covered']} of {c['pairs']} candidates "
                         f"({_pct(c['coverage'])}; nominal {_pct(c['nominal'])})")
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


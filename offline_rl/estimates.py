"""The day's off-policy evaluation results: the ``ope_estimates`` table, one row per domain,
night, policy and estimator.

This module is the table's one writer (``write_evaluations``) and reader
(``read_evaluations``). Each row holds one estimate with its interval; ``details`` (JSON,
the same on every row of a policy) holds the policy's diagnostics, the estimators'
disagreement, its role for the gate and its ``EvaluationDetails``. The behaviour policy's row
(``policy = 'behavior'``, estimator ``on_policy``) holds its on-policy value and, in
``details``, its value on every FQE refit resample (the gate's paired replicates).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import NamedTuple, cast

import polars as pl

from offline_rl.data.warehouse import Warehouse
from offline_rl.ope.diagnostics import Diagnostics
from offline_rl.ope.estimators import Estimate
from offline_rl.ope.evaluate import CANDIDATE, INCUMBENT, EvaluationDetails, PolicyEvaluation

__all__ = ["BEHAVIOR", "ESTIMATES_TABLE", "DayEvaluations", "read_evaluations",
           "write_evaluations"]

ESTIMATES_TABLE = "ope_estimates"
BEHAVIOR = "behavior"
"""The behaviour policy's name in the table (its on-policy estimate)."""
_OWN_KEYS = ("diagnostics", "disagreement", "role")
"""Keys of ``details`` that are ``PolicyEvaluation`` fields, not ``EvaluationDetails``."""


class DayEvaluations(NamedTuple):
    """A day's OPE results: the behaviour policy's on-policy estimate, its value on each FQE
    refit resample (for the gate's paired rule; empty if unknown) and every evaluation."""

    behavior: Estimate
    evaluations: list[PolicyEvaluation]
    behavior_replicates: tuple[float, ...] = ()


def write_evaluations(wh: Warehouse, domain: str, day: dt.date, results: DayEvaluations,
                      eval_episodes: int, eval_decisions: int) -> None:
    """Replaces the day's rows of ``domain`` with ``results`` (evaluated on
    ``eval_episodes`` held-out episodes, ``eval_decisions`` decisions), in one transaction."""
    rows = [{"policy": BEHAVIOR, "estimator": "on_policy", **results.behavior.as_dict(),
             "details": json.dumps({"refit_replicates": list(results.behavior_replicates)})}]
    for ev in results.evaluations:
        details = json.dumps({"diagnostics": ev.diagnostics.as_dict(),
                              "disagreement": ev.disagreement, "role": ev.role, **ev.extra})
        rows += [{"policy": ev.name, "estimator": k, **e.as_dict(), "details": details}
                 for k, e in ev.estimates.items()]
    frame = pl.DataFrame(rows).with_columns(
        domain=pl.lit(domain), partition_date=pl.lit(day, dtype=pl.Date),
        eval_episodes=pl.lit(eval_episodes), eval_decisions=pl.lit(eval_decisions),
    ).select("domain", "partition_date", "policy", "estimator", "value", "low", "high", "stderr",
             "eval_episodes", "eval_decisions", "details")
    wh.replace([(ESTIMATES_TABLE, frame, "registry/delete_estimates",
                 {"domain": domain, "day": day})],
               label=f"{ESTIMATES_TABLE} {domain} {day}")


def read_evaluations(wh: Warehouse, domain: str, day: dt.date) -> DayEvaluations:
    """The day's evaluations of ``domain`` as ``write_evaluations`` stored them
    (``ValueError`` when there are none)."""
    frame = wh.query("registry/select_estimates", domain=domain, day=day)
    if frame.is_empty():
        raise ValueError(f"no OPE estimates for {domain} on {day}; run evaluation first")
    behavior_row = frame.filter(pl.col("policy") == BEHAVIOR).row(0, named=True)
    behavior = Estimate(BEHAVIOR, behavior_row["value"], behavior_row["low"],
                        behavior_row["high"], behavior_row["stderr"])
    evaluations = []
    for (policy,), part in frame.filter(pl.col("policy") != BEHAVIOR).group_by(
            "policy", maintain_order=True):
        details = json.loads(part["details"][0])
        estimates = {r["estimator"]: Estimate(r["estimator"], r["value"], r["low"], r["high"],
                                              r["stderr"]) for r in part.iter_rows(named=True)}
        # rows written before roles were stored name the incumbent "incumbent:..."
        role = details.get("role") or (
            INCUMBENT if str(policy).startswith("incumbent:") else CANDIDATE)
        evaluations.append(PolicyEvaluation(
            name=str(policy), estimates=estimates,
            diagnostics=Diagnostics(**details["diagnostics"]),
            disagreement=details["disagreement"], role=role,
            extra=cast(EvaluationDetails,
                       {k: v for k, v in details.items() if k not in _OWN_KEYS}),
        ))
    behavior_details = json.loads(behavior_row["details"] or "{}")
    return DayEvaluations(behavior, evaluations,
                          _floats(behavior_details.get("refit_replicates") or ()))


def _floats(values: Sequence[float]) -> tuple[float, ...]:
    return tuple(float(v) for v in values)

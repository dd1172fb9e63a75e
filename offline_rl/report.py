"""Human-readable renderings: markdown tables and the OPE report."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import polars as pl


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value).replace("|", "\\|")


def markdown_table(frame: pl.DataFrame | Sequence[dict[str, Any]]) -> str:
    """A markdown table of a small frame or list of records."""
    if not isinstance(frame, pl.DataFrame):
        frame = pl.DataFrame(list(frame))
    if frame.is_empty():
        return "_(no rows)_"
    cols = frame.columns
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in frame.iter_rows()]
    return "\n".join(lines)


def ope_report(
    domain: str,
    day: str,
    behavior: Any,
    evaluations: Sequence[Any],
    decision: Any | None = None,
) -> str:
    """The OPE report of one domain and day in markdown.

    Args:
        domain: Decision domain.
        day: Partition (YYYY-MM-DD).
        behavior: The behaviour policy's on-policy ``Estimate``.
        evaluations: ``PolicyEvaluation`` per candidate (and incumbent).
        decision: The gate's ``Decision``, if taken.
    """
    lines = [f"# Off-policy evaluation: {domain}, {day}", ""]
    lines.append(f"Behaviour policy, on-policy from the logs: **{behavior.value:.4g}** "
                 f"[{behavior.low:.4g}, {behavior.high:.4g}]")
    lines += ["", "## Estimates (interval: bootstrap over episodes)", ""]
    rows = []
    for ev in evaluations:
        for name, est in ev.estimates.items():
            row = {"policy": ev.name, "estimator": name, "value": est.value, "low": est.low,
                   "high": est.high, "relative_to_behavior":
                       (est.value / behavior.value - 1.0) if behavior.value else float("nan")}
            rows.append(row)
    lines.append(markdown_table(rows))
    lines += ["", "## Diagnostics", ""]
    lines.append(markdown_table([{"policy": ev.name, **ev.diagnostics.as_dict(),
                                  "estimator_disagreement": ev.disagreement}
                                 for ev in evaluations]))
    if decision is not None:
        lines += ["", "## Gate decision", ""]
        verdict = (f"**promoted {decision.candidate}**" if decision.promoted
                   else f"**kept incumbent {decision.incumbent.name}**")
        lines.append(verdict)
        lines += [""] + [f"- {r}" for r in decision.reasons]
    return "\n".join(lines) + "\n"

"""Human-readable renderings: markdown tables and the OPE report (markdown and HTML).

The OPE report of one domain and day shows, in this order: the gate's decision and its
reasons, a forest plot of every candidate's estimates with their intervals next to the
behaviour policy's on-policy value (and the incumbent and the gate's bar when a decision is
given), the estimates table (raw, and relative to the behaviour policy's on-policy value),
and the diagnostics table. :func:`ope_report` writes markdown with the plot inline as a data
URI (it renders in Dagster's UI metadata); :func:`ope_report_html` writes one self-contained
HTML page with the same content.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

import polars as pl

NA = "n/a"
INTERVALS = ("intervals: bootstrap over episodes; the model-based ones refit the model on "
             "each resample")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return NA if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _fmt(value: Any) -> str:
    return _text(value).replace("|", "\\|")


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


def html_table(records: Sequence[dict[str, Any]]) -> str:
    """An HTML table of a list of records (cells escaped; numbers right-aligned)."""
    if not records:
        return "<p><em>(no rows)</em></p>"
    cols = list(records[0])
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = []
    for rec in records:
        cells = []
        for c in cols:
            v = rec.get(c)
            numeric = isinstance(v, int | float) and not isinstance(v, bool)
            cls = ' class="num"' if numeric else ""
            cells.append(f"<td{cls}>{html.escape(_text(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


# --------------------------------------------------------------------------------------------
# The OPE report
# --------------------------------------------------------------------------------------------


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def _relative(value: float, base: float) -> str:
    if not (_finite(value) and _finite(base)) or base == 0:
        return NA
    return f"{100 * (value - base) / abs(base):+.1f}%"


def estimate_rows(behavior: Any, evaluations: Sequence[Any]) -> list[dict[str, Any]]:
    """One record per (policy, estimator): value, interval, and versus the behaviour value."""
    base = float(behavior.value)
    rows = []
    for ev in evaluations:
        for name, est in ev.estimates.items():
            rows.append({
                "policy": ev.name, "estimator": name, "value": float(est.value),
                "low": float(est.low), "high": float(est.high),
                "vs_behavior": float(est.value) - base if _finite(est.value) else math.nan,
                "relative": _relative(float(est.value), base),
            })
    return rows


def diagnostic_rows(evaluations: Sequence[Any]) -> list[dict[str, Any]]:
    """One record per policy: its weight and overlap diagnostics and estimator disagreement."""
    return [{"policy": ev.name, **ev.diagnostics.as_dict(),
             "estimator_disagreement": float(ev.disagreement)} for ev in evaluations]


def _bar(decision: Any) -> float:
    inc = decision.incumbent
    return float(inc.value + decision.config.margin * abs(inc.value))


def ope_forest_plot(domain: str, day: str, behavior: Any, evaluations: Sequence[Any],
                    decision: Any | None = None) -> bytes | None:
    """The report's forest plot as PNG bytes (None when there is no estimate to draw)."""
    from offline_rl.plots import IntervalRow, Reference, forest_plot

    rows = [IntervalRow(r["policy"], r["estimator"], r["value"], r["low"], r["high"])
            for r in estimate_rows(behavior, evaluations)]
    if not rows:
        return None
    refs = [Reference("behaviour (on-policy)", float(behavior.value), float(behavior.low),
                      float(behavior.high))]
    if decision is not None:
        inc = decision.incumbent
        if inc.name != "behavior":
            refs.append(Reference(f"incumbent {inc.name}", float(inc.value), float(inc.low),
                                  float(inc.high), style="-."))
        refs.append(Reference(f"gate bar (+{decision.config.margin:.0%})", _bar(decision),
                              style="--"))
    return forest_plot(rows, refs, title=f"{domain}, {day}: estimates and their intervals")


def _summary(decision: Any) -> tuple[str, list[str]]:
    """(verdict, reasons) of the gate's decision."""
    if decision.promoted:
        verdict = (f"promoted {decision.candidate} over {decision.incumbent.name} "
                   f"(decided on {decision.config.headline}'s lower bound)")
    else:
        verdict = f"kept incumbent {decision.incumbent.name}"
    return verdict, list(decision.reasons)


def ope_report(
    domain: str,
    day: str,
    behavior: Any,
    evaluations: Sequence[Any],
    decision: Any | None = None,
    *,
    images: bool = True,
) -> str:
    """The OPE report of one domain and day in markdown.

    Args:
        domain: Decision domain.
        day: Partition (YYYY-MM-DD).
        behavior: The behaviour policy's on-policy ``Estimate``.
        evaluations: ``PolicyEvaluation`` per candidate (and incumbent).
        decision: The gate's ``Decision``, if taken.
        images: Include the forest plot as an inline (base64) image.
    """
    from offline_rl.plots import markdown_image

    lines = [f"# Off-policy evaluation: {domain}, {day}", ""]
    lines.append(f"Behaviour policy, on-policy from the logs: **{behavior.value:.4g}** "
                 f"[{behavior.low:.4g}, {behavior.high:.4g}]")
    if decision is not None:
        verdict, _ = _summary(decision)
        lines += ["", f"Decision: **{verdict}**"]
    lines += ["", f"## Estimates ({INTERVALS})", ""]
    if images:
        png = ope_forest_plot(domain, day, behavior, evaluations, decision)
        if png is not None:
            lines += [markdown_image(png, f"forest plot of the estimates, {domain} {day}"), ""]
    lines.append(markdown_table(estimate_rows(behavior, evaluations)))
    lines += ["", "`vs_behavior`: estimate minus the behaviour policy's on-policy value; "
                  "`relative`: the same over that value."]
    lines += ["", "## Diagnostics", ""]
    lines.append(markdown_table(diagnostic_rows(evaluations)))
    if decision is not None:
        verdict, reasons = _summary(decision)
        lines += ["", "## Gate decision", "", f"**{verdict}**", ""]
        lines += [f"- {r}" for r in reasons]
    return "\n".join(lines) + "\n"


_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 60em; color: #222; line-height: 1.4; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; }
th { background: #f4f4f4; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.verdict { font-size: 1.1em; font-weight: bold; padding: 0.4em 0.8em; display: inline-block; }
.promoted { background: #e3f4e1; } .kept { background: #f4f1e1; }
img { max-width: 100%; }
.note { color: #666; font-size: 0.85em; }
""".strip()


def ope_report_html(
    domain: str,
    day: str,
    behavior: Any,
    evaluations: Sequence[Any],
    decision: Any | None = None,
) -> str:
    """The OPE report of one domain and day as one self-contained HTML page.

    Same arguments and content as :func:`ope_report`; the forest plot is embedded as a data
    URI, so the page needs no other file.
    """
    from offline_rl.plots import data_uri

    esc = html.escape
    title = f"Off-policy evaluation: {domain}, {day}"
    parts = [f"<h1>{esc(title)}</h1>",
             f"<p>Behaviour policy, on-policy from the logs: <strong>{behavior.value:.4g}"
             f"</strong> [{behavior.low:.4g}, {behavior.high:.4g}]</p>"]
    if decision is not None:
        verdict, _ = _summary(decision)
        cls = "promoted" if decision.promoted else "kept"
        parts.append(f'<p class="verdict {cls}">Decision: {esc(verdict)}</p>')
    parts.append(f"<h2>Estimates ({esc(INTERVALS)})</h2>")
    png = ope_forest_plot(domain, day, behavior, evaluations, decision)
    if png is not None:
        parts.append(f'<img src="{data_uri(png)}" alt="forest plot of the estimates, '
                     f'{esc(domain)} {esc(day)}">')
    parts.append(html_table(estimate_rows(behavior, evaluations)))
    parts.append('<p class="note">vs_behavior: estimate minus the behaviour policy\'s '
                 "on-policy value; relative: the same over that value.</p>")
    parts.append("<h2>Diagnostics</h2>")
    parts.append(html_table(diagnostic_rows(evaluations)))
    if decision is not None:
        verdict, reasons = _summary(decision)
        parts.append("<h2>Gate decision</h2>")
        parts.append(f"<p><strong>{esc(verdict)}</strong></p>")
        parts.append("<ul>" + "".join(f"<li>{esc(r)}</li>" for r in reasons) + "</ul>")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{esc(title)}</title>\n<style>\n{_STYLE}\n</style>\n</head>\n<body>\n"
            + "\n".join(parts) + "\n</body>\n</html>\n")

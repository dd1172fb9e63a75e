"""Small charts for reports and the Dagster UI, as PNG bytes.

Every function draws on its own ``matplotlib.figure.Figure`` with the Agg renderer (no
pyplot, no display, no global state), at a fixed resolution, and returns the PNG bytes;
the same input gives the same bytes (no timestamp or software tag in the file). The size of
an image depends only on its input (a forest plot grows by one row per estimate).
:func:`markdown_image` wraps the bytes in a markdown image with a base64 data URI, which
renders inline in Dagster's markdown metadata and in any markdown viewer.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

DPI = 100
"""Pixels per inch of every image."""
WIDTH_IN = 8.0
"""Width of every image in inches (800 pixels)."""
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
"""Colours assigned in order (estimators in a forest plot, series elsewhere)."""


@dataclass(frozen=True)
class IntervalRow:
    """One estimate with its interval, a row of a forest plot.

    Attributes:
        policy: Policy the estimate is about (rows are grouped by policy, in input order).
        estimator: Estimator name (one colour per estimator).
        value: Point estimate.
        low: Lower end of its interval (NaN: no interval drawn).
        high: Upper end of its interval (NaN: no interval drawn).
    """

    policy: str
    estimator: str
    value: float
    low: float = math.nan
    high: float = math.nan


@dataclass(frozen=True)
class Reference:
    """A vertical reference line of a forest plot (e.g. the behaviour policy's value).

    Attributes:
        label: Legend text.
        value: Position of the line.
        low: Optional lower end of a shaded band around it (its interval).
        high: Optional upper end of the band.
        style: Matplotlib line style (``"-"``, ``"--"``, ``":"``).
    """

    label: str
    value: float
    low: float = math.nan
    high: float = math.nan
    style: str = "-"


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _finite(x: Any) -> bool:
    return x is not None and isinstance(x, int | float | np.floating) and math.isfinite(x)


def _as_row(row: IntervalRow | Mapping[str, Any] | Sequence[Any]) -> IntervalRow:
    if isinstance(row, IntervalRow):
        return row
    if isinstance(row, Mapping):
        return IntervalRow(str(row["policy"]), str(row["estimator"]), float(row["value"]),
                           float(row.get("low", math.nan)), float(row.get("high", math.nan)))
    policy, estimator, value, *rest = row
    low, high = (rest + [math.nan, math.nan])[:2]
    return IntervalRow(str(policy), str(estimator), float(value), float(low), float(high))


def forest_plot(
    rows: Sequence[IntervalRow | Mapping[str, Any] | Sequence[Any]],
    references: Sequence[Reference] = (),
    *,
    title: str = "",
    xlabel: str = "estimated value (expected return per episode)",
) -> bytes:
    """Point estimates with intervals, one row each, grouped by policy: a PNG.

    Args:
        rows: :class:`IntervalRow` objects, or mappings with ``policy, estimator, value`` and
            optional ``low, high``, or tuples ``(policy, estimator, value[, low, high])``.
            Non-finite values are drawn as "n/a" at the left edge.
        references: Vertical lines (behaviour policy, incumbent, the gate's bar), each with an
            optional shaded interval.
        title: Title above the plot.
        xlabel: Label of the value axis.

    Returns:
        PNG bytes, 800 pixels wide and ``100 + 22 * (rows + policies)`` pixels high (at least
        260).
    """
    items = [_as_row(r) for r in rows]
    if not items:
        raise ValueError("rows: nothing to plot")
    policies = list(dict.fromkeys(r.policy for r in items))
    estimators = list(dict.fromkeys(r.estimator for r in items))
    colour = {e: PALETTE[i % len(PALETTE)] for i, e in enumerate(estimators)}
    # y positions: policies top to bottom, a blank line between groups
    ys: list[float] = []
    labels: list[str] = []
    group_centres: list[tuple[float, str]] = []
    y = 0.0
    ordered: list[IntervalRow] = []
    for policy in policies:
        group = [r for r in items if r.policy == policy]
        start = y
        for r in group:
            ordered.append(r)
            ys.append(-y)
            labels.append(r.estimator)
            y += 1
        group_centres.append((-(start + y - 1) / 2, policy))
        y += 1
    height_px = max(260, 100 + 22 * (len(items) + len(policies)))
    fig = Figure(figsize=(WIDTH_IN, height_px / DPI), dpi=DPI)
    ax = fig.add_axes((0.26, 60 / height_px, 0.70, 1 - 100 / height_px))
    numbers = [v for r in ordered for v in (r.value, r.low, r.high) if _finite(v)]
    numbers += [v for ref in references for v in (ref.value, ref.low, ref.high) if _finite(v)]
    lo, hi = (min(numbers), max(numbers)) if numbers else (0.0, 1.0)
    pad = (hi - lo) * 0.05 or max(abs(hi), 1.0) * 0.05
    ax.set_xlim(lo - pad, hi + pad)
    for i, ref in enumerate(references):
        shade = PALETTE[(len(estimators) + i) % len(PALETTE)]
        if _finite(ref.low) and _finite(ref.high):
            ax.axvspan(ref.low, ref.high, color=shade, alpha=0.12, lw=0)
        if _finite(ref.value):
            ax.axvline(ref.value, color=shade, ls=ref.style, lw=1.4,
                       label=f"{ref.label} {ref.value:.4g}")
    seen: set[str] = set()
    for yy, r in zip(ys, ordered, strict=True):
        c = colour[r.estimator]
        label = None if r.estimator in seen else r.estimator
        seen.add(r.estimator)
        if _finite(r.low) and _finite(r.high):
            ax.hlines(yy, r.low, r.high, color=c, lw=2.0)
        if _finite(r.value):
            ax.plot([r.value], [yy], "o", color=c, ms=5, label=label)
        else:
            ax.annotate("n/a", (0.01, yy), xycoords=("axes fraction", "data"), fontsize=8,
                        va="center", color=c)
    ax.set_yticks(ys, labels, fontsize=8)
    ax.set_ylim(min(ys) - 0.8, max(ys) + 0.8)
    for centre, policy in group_centres:
        ax.annotate(policy, (-0.16, centre), xycoords=("axes fraction", "data"), fontsize=9,
                    fontweight="bold", ha="right", va="center", annotation_clip=False)
    for k in range(1, len(policies)):
        boundary = group_centres[k - 1][0] - (group_centres[k - 1][0] - group_centres[k][0]) / 2
        ax.axhline(boundary, color="#dddddd", lw=0.8)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(axis="x", color="#eeeeee", lw=0.6)
    ax.legend(fontsize=7, loc="best", framealpha=0.85)
    if title:
        ax.set_title(title, fontsize=10)
    return _png(fig)


def learning_curves(
    curves: Mapping[str, Sequence[Mapping[str, float]]],
    *,
    metric: str | None = None,
    title: str = "",
) -> bytes:
    """One line per candidate of a training metric against the gradient step: a PNG.

    Args:
        curves: ``{candidate: learning curve}``; a curve is a list of points with ``step`` and
            metric values (the ``learning_curve`` that ``train_candidate`` records).
        metric: Metric to draw; ``None`` takes ``loss`` when every curve has it, else the first
            metric the first curve has (timings, ``epoch`` and ``step`` are not metrics).
        title: Title above the plot.

    Returns:
        PNG bytes, 800 x 360 pixels.
    """
    if not curves or not any(curves.values()):
        raise ValueError("curves: nothing to plot")
    if metric is None:
        if all(all("loss" in p for p in c) for c in curves.values() if c):
            metric = "loss"
        else:
            first = next(c for c in curves.values() if c)[0]
            keys = [k for k in first if k not in ("step", "epoch") and not k.startswith("time")]
            if not keys:
                raise ValueError("curves: the points carry no metric")
            metric = keys[0]
    fig = Figure(figsize=(WIDTH_IN, 3.6), dpi=DPI)
    ax = fig.add_axes((0.1, 0.15, 0.86, 0.75))
    for i, (name, curve) in enumerate(curves.items()):
        points = [(float(p["step"]), float(p[metric])) for p in curve if metric in p]
        if not points:
            continue
        steps, values = zip(*points, strict=True)
        ax.plot(steps, values, "-o", ms=3, lw=1.4, color=PALETTE[i % len(PALETTE)], label=name)
    ax.set_xlabel("gradient step", fontsize=9)
    ax.set_ylabel(metric, fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(color="#eeeeee", lw=0.6)
    ax.legend(fontsize=8, framealpha=0.85)
    ax.set_title(title or f"learning curves ({metric})", fontsize=10)
    return _png(fig)


def action_distribution(
    behavior: Sequence[float],
    candidates: Mapping[str, Sequence[float]],
    *,
    action_names: Sequence[str] | None = None,
    title: str = "share of decisions per action",
) -> bytes:
    """Grouped bars: each action's share under the behaviour policy and under candidates.

    Args:
        behavior: The logged (behaviour) share of each action.
        candidates: ``{policy: share of each action}`` (e.g. a candidate's greedy actions at the
            logged states).
        action_names: Tick labels (default the action indices).
        title: Title above the plot.

    Returns:
        PNG bytes, 800 x 360 pixels.
    """
    series = {"behaviour": list(behavior), **{k: list(v) for k, v in candidates.items()}}
    n = len(series["behaviour"])
    if n == 0:
        raise ValueError("behavior: no actions")
    bad = [k for k, v in series.items() if len(v) != n]
    if bad:
        raise ValueError(f"candidates: {bad} do not have {n} action shares")
    names = list(action_names) if action_names is not None else [str(i) for i in range(n)]
    if len(names) != n:
        raise ValueError(f"action_names: expected {n} names, got {len(names)}")
    fig = Figure(figsize=(WIDTH_IN, 3.6), dpi=DPI)
    ax = fig.add_axes((0.08, 0.2, 0.9, 0.7))
    width = 0.8 / len(series)
    x = np.arange(n)
    for i, (label, shares) in enumerate(series.items()):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, shares, width,
               color="#555555" if i == 0 else PALETTE[(i - 1) % len(PALETTE)], label=label)
    ax.set_xticks(x, names, fontsize=8, rotation=20 if max(map(len, names)) > 8 else 0)
    ax.set_ylabel("share", fontsize=9)
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(axis="y", color="#eeeeee", lw=0.6)
    ax.set_axisbelow(True)
    ax.legend(fontsize=8, framealpha=0.85)
    ax.set_title(title, fontsize=10)
    return _png(fig)


def reward_histogram(rewards: Sequence[float] | np.ndarray, *, bins: int = 40,
                     title: str = "rewards per decision") -> bytes:
    """Histogram of rewards (log count axis: shop rewards are mostly zero): a PNG.

    Args:
        rewards: Reward per decision (non-finite values are an error).
        bins: Number of bins.
        title: Title above the plot (the share of zero rewards is appended).

    Returns:
        PNG bytes, 800 x 360 pixels.
    """
    r = np.asarray(rewards, dtype=np.float64).ravel()
    if r.size == 0:
        raise ValueError("rewards: nothing to plot")
    if not np.isfinite(r).all():
        row = int(np.flatnonzero(~np.isfinite(r))[0])
        raise ValueError(f"rewards: non-finite value {float(r[row])} at row {row}")
    fig = Figure(figsize=(WIDTH_IN, 3.6), dpi=DPI)
    ax = fig.add_axes((0.1, 0.15, 0.86, 0.75))
    ax.hist(r, bins=bins, color=PALETTE[0], log=True)
    ax.set_xlabel("reward", fontsize=9)
    ax.set_ylabel("decisions (log scale)", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(axis="y", color="#eeeeee", lw=0.6)
    ax.set_axisbelow(True)
    ax.set_title(f"{title}: {r.size:,} decisions, {np.mean(r == 0):.0%} zero, "
                 f"mean {r.mean():.4g}", fontsize=10)
    return _png(fig)


def markdown_image(png: bytes, alt: str) -> str:
    """A markdown image of ``png`` with a base64 data URI (renders without a file)."""
    if not png.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError("png: not PNG data")
    text = alt.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]").replace("\n", " ")
    return f"![{text}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"


def data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` of ``png`` (for HTML ``<img src>``)."""
    if not png.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError("png: not PNG data")
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def promised_vs_realized(history: Sequence[Mapping[str, Any]], *, title: str = "") -> bytes:
    """Per monitored night, the served policy's realized value with its interval next to
    the value (and interval) its promotion promised: a PNG.

    Args:
        history: Rows of ``policy_monitor`` (``partition_date``, ``served``,
            ``realized_value/low/high``, ``promised_value/low/high``), oldest first; nights
            without a realized value are skipped.
        title: Title above the plot.

    Returns:
        PNG bytes, 800 x 360 pixels.
    """
    rows = [r for r in history if _finite(r.get("realized_value"))]
    if not rows:
        raise ValueError("history: no night with a realized value")
    fig = Figure(figsize=(WIDTH_IN, 3.6), dpi=DPI)
    ax = fig.add_axes((0.1, 0.15, 0.86, 0.75))
    x = np.arange(len(rows))
    for offset, key, label, color in ((-0.1, "realized", "realized (own episodes)", PALETTE[0]),
                                      (0.1, "promised", "promised at promotion", PALETTE[1])):
        pts = [(i + offset, r[f"{key}_value"], r.get(f"{key}_low"), r.get(f"{key}_high"))
               for i, r in zip(x, rows, strict=True) if _finite(r.get(f"{key}_value"))]
        if not pts:
            continue
        xs, vs, lo, hi = zip(*pts, strict=True)
        err = np.array([[v - (lo_ if _finite(lo_) else v) for v, lo_ in zip(vs, lo, strict=True)],
                        [(hi_ if _finite(hi_) else v) - v for v, hi_ in zip(vs, hi, strict=True)]])
        ax.errorbar(xs, vs, yerr=err, fmt="o", ms=4, lw=1.2, capsize=3, color=color, label=label)
    ax.set_xticks(x, [f"{r['partition_date']}\n{r.get('served') or ''}" for r in rows],
                  fontsize=7)
    ax.set_ylabel("value per episode", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(color="#eeeeee", lw=0.6)
    ax.legend(fontsize=8, framealpha=0.85)
    ax.set_title(title or "served policy: promised vs realized", fontsize=10)
    return _png(fig)


def loop_values(records: Mapping[str, Sequence[Mapping[str, Any]]]) -> bytes:
    """Per domain, the true value of what was served each night of a loop, relative to the
    shop's own rule (1.0), with the nights a promotion or a rollback took effect: a PNG.

    Args:
        records: ``{domain: nights}``, each night with ``served_true``, ``shop_true``,
            ``decision.promoted`` and ``monitor.rolled_back_to`` (``offline-rl loop``).

    Returns:
        PNG bytes, 800 pixels wide, 180 per domain.
    """
    domains = [d for d, nights in records.items() if nights]
    if not domains:
        raise ValueError("records: no night to plot")
    fig = Figure(figsize=(WIDTH_IN, 1.8 * len(domains) + 0.6), dpi=DPI)
    axes = fig.subplots(len(domains), 1, sharex=True, squeeze=False)[:, 0]
    for ax, domain in zip(axes, domains, strict=True):
        nights = records[domain]
        x = np.arange(1, len(nights) + 1)
        shop = float(nights[0]["shop_true"]) or 1.0
        ax.plot(x, [float(n["served_true"]) / shop for n in nights], "-o", ms=3, lw=1.4,
                color=PALETTE[0], label="served (true, as served)")
        ax.axhline(1.0, color="#888888", lw=0.8, ls="--", label="shop's rule")
        promoted = [i for i, n in zip(x, nights, strict=True) if n["decision"]["promoted"]]
        rolled = [i for i, n in zip(x, nights, strict=True)
                  if (n.get("monitor") or {}).get("rolled_back_to")]
        for i in promoted:
            ax.axvline(i + 0.5, color=PALETTE[1], lw=0.8, alpha=0.6)
        for i in rolled:
            ax.axvline(i + 0.5, color=PALETTE[3], lw=1.2, ls=":")
        ax.set_ylabel(domain, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(color="#eeeeee", lw=0.6)
    axes[0].legend(fontsize=7, framealpha=0.85, loc="lower right")
    axes[0].set_title("true value of the served policy per night / shop's rule "
                      "(lines: promotion takes effect; dotted: rollback)", fontsize=9)
    axes[-1].set_xlabel("night", fontsize=8)
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return _png(fig)

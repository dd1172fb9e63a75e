"""Evaluate any policy on any logged decisions: the public off-policy evaluation entry point.

:func:`evaluate_logs` reads a table of logged decisions and a target policy, checks both, and
returns every estimator of :mod:`offline_rl.ope.estimators` with bootstrap intervals, the
behaviour policy's on-policy value, and diagnostics. ``offline-rl ope`` is its command line.

**Logs** (Parquet or CSV, or a polars DataFrame), one row per logged decision:

============== ==============================================================================
column         meaning
============== ==============================================================================
episode_id     episode (session) id, any type; rows of an episode need not be contiguous
step           0-based decision index; each episode's steps must be exactly 0..len-1
action         logged action, a non-negative integer
reward         reward observed after the decision (finite)
behavior_prob  optional: logging probability of the logged action, in (0, 1]; when the column
               is absent or has nulls, the behaviour policy is estimated from the logs
               (loudly: ``behavior_prob_source = "estimated"`` and a warning)
terminal       optional: 1/true when the episode ended after this decision (may only be set
               on an episode's last step)
f_<name>       optional numeric state features (needed for dm/dr/sndr and exported policies)
============== ==============================================================================

**Target**: an export directory (with ``manifest.json``; a deterministic policy whose
features ``manifest["feature_schema"]["names"]`` are read from the logs' ``f_<name>``
columns), or a table ``episode_id, step, action, prob`` giving ``pi(a|s)`` for every logged
decision (absent rows mean probability 0; each logged decision's rows must sum to 1).

Malformed input raises :class:`OPEInputError` naming the file, the column and the first bad
row (0-based data row of the file as read, header excluded).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import polars as pl

from offline_rl.ope.behavior_model import BehaviorEstimate, estimate_behavior
from offline_rl.ope.diagnostics import Diagnostics, compute_diagnostics, estimator_disagreement
from offline_rl.ope.estimators import ESTIMATORS, Estimate, LoggedData, estimate, on_policy_value
from offline_rl.ope.fqe_torch import FQEResult, FQESettings, fit_fqe

LOG_COLUMNS: tuple[str, ...] = ("episode_id", "step", "action", "reward")
"""Required columns of the logs (``behavior_prob``, ``terminal`` and ``f_*`` are optional)."""
TARGET_COLUMNS: tuple[str, ...] = ("episode_id", "step", "action", "prob")
"""Required columns of a target-policy table."""
FEATURE_PREFIX = "f_"
SUM_TOLERANCE = 1e-6
"""Allowed deviation from 1 of a target table's probabilities at one logged decision."""
PROB_SLACK = 1e-9
"""Rounding slack above 1 tolerated in probabilities."""
MODEL_ESTIMATORS: tuple[str, ...] = ("dm", "dr", "sndr")
LOW_ESS_FRACTION = 0.05
"""Below this share of episodes as effective sample size a warning is added."""

_ROW = "__row__"

_LOGS_HINT = ("logs need columns episode_id, step, action, reward, optionally behavior_prob, "
              "terminal and f_<feature> columns")
_TARGET_HINT = ("a target is an export directory (with manifest.json) or a table with columns "
                "episode_id, step, action, prob")

Source = pl.DataFrame | str | os.PathLike[str]


class OPEInputError(ValueError):
    """Malformed logs or target: the message names the file, the column and the first bad row.

    Attributes:
        hint: Optional one-line suggestion of how to fix the input.
    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


# --------------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------------


def _num(value: float) -> float | None:
    """JSON-safe float: non-finite values become None (``null``)."""
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class OPEResult:
    """Estimates of one target policy on one set of logs.

    Attributes:
        behavior: The behaviour policy's on-policy value (mean observed return) with interval.
        estimates: ``{estimator: Estimate}`` in the requested order (model-based estimators
            are absent when the logs have no features).
        diagnostics: Weight and overlap diagnostics.
        disagreement: :func:`offline_rl.ope.diagnostics.estimator_disagreement`.
        warnings: Human-readable warnings (estimated propensities, omitted estimators, ...).
        behavior_prob_source: ``"logged"`` or ``"estimated"``.
        n_episodes: Episodes in the logs.
        n_decisions: Logged decisions (rows).
        gamma: Discount factor.
        alpha: Intervals are two-sided ``1 - alpha``.
        n_bootstrap: Bootstrap resamples.
        target_kind: ``"export"`` or ``"table"``.
        details: Extra information (behaviour model, FQE fit, action counts).
    """

    behavior: Estimate
    estimates: dict[str, Estimate]
    diagnostics: Diagnostics
    disagreement: float
    warnings: tuple[str, ...]
    behavior_prob_source: str
    n_episodes: int
    n_decisions: int
    gamma: float
    alpha: float
    n_bootstrap: int
    target_kind: str
    details: dict[str, Any] = field(default_factory=dict)

    def relative(self, name: str) -> dict[str, float | None]:
        """Estimate ``name`` against the behaviour value: difference and ratio minus one."""
        value, base = self.estimates[name].value, self.behavior.value
        lift = (value - base) / abs(base) if base != 0 else math.nan
        return {"difference": _num(value - base), "lift": _num(lift)}

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict (non-finite numbers, e.g. intervals of one episode, become None).

        Layout: ``behavior_value``, ``estimates`` (``{name: {value, low, high}}``),
        ``diagnostics`` (the :class:`Diagnostics` fields plus ``estimator_disagreement``),
        and ``behavior_interval``, ``relative_to_behavior`` (``{name: {difference, lift}}``,
        ``lift = (value - behaviour) / |behaviour|``), ``warnings``, ``behavior_prob_source``,
        ``n_episodes``, ``n_decisions``, ``gamma``, ``alpha``, ``n_bootstrap``,
        ``target_kind``, ``details`` (behaviour model and FQE fit summaries).
        """
        diagnostics: dict[str, float | None] = {
            k: _num(v) for k, v in self.diagnostics.as_dict().items()}
        diagnostics["estimator_disagreement"] = _num(self.disagreement)
        return {
            "behavior_value": _num(self.behavior.value),
            "estimates": {name: {"value": _num(e.value), "low": _num(e.low),
                                 "high": _num(e.high)}
                          for name, e in self.estimates.items()},
            "diagnostics": diagnostics,
            "behavior_interval": {"low": _num(self.behavior.low),
                                  "high": _num(self.behavior.high)},
            "relative_to_behavior": {name: self.relative(name) for name in self.estimates},
            "warnings": list(self.warnings),
            "behavior_prob_source": self.behavior_prob_source,
            "n_episodes": self.n_episodes,
            "n_decisions": self.n_decisions,
            "gamma": self.gamma,
            "alpha": self.alpha,
            "n_bootstrap": self.n_bootstrap,
            "target_kind": self.target_kind,
            "details": self.details,
        }


# --------------------------------------------------------------------------------------------
# Reading and checking tables
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Table:
    frame: pl.DataFrame
    name: str

    def where(self, pos: int) -> str:
        """``row R (episode_id=..., step=...)`` of frame position ``pos``."""
        row = self.frame[_ROW][pos]
        keys = [f"{k}={self.frame[k][pos]!r}" for k in ("episode_id", "step")
                if k in self.frame.columns]
        return f"row {row}" + (f" ({', '.join(keys)})" if keys else "")

    def fail(self, column: str, pos: int, problem: str, hint: str | None = None) -> NoReturn:
        raise OPEInputError(f"{self.name}: column {column!r}, {self.where(pos)}: {problem}", hint)


def _read(source: Source, what: str) -> _Table:
    if isinstance(source, pl.DataFrame):
        frame, name = source, f"<{what} DataFrame>"
    else:
        path = Path(source)
        name = str(path)
        if not path.exists():
            raise OPEInputError(f"{what} file {path} does not exist")
        if path.is_dir():
            raise OPEInputError(f"{path}: is a directory, expected a .parquet or .csv {what} file",
                                _TARGET_HINT if what == "target" else _LOGS_HINT)
        suffix = path.suffix.lower()
        try:
            if suffix in (".parquet", ".pq"):
                frame = pl.read_parquet(path)
            elif suffix == ".csv":
                frame = pl.read_csv(path, infer_schema_length=None)
            else:
                raise OPEInputError(f"{path}: unsupported file type {suffix or '(none)'!r}",
                                    "use a .parquet or .csv file")
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise OPEInputError(f"{path}: cannot read as {suffix[1:]}: {exc}") from None
    if _ROW in frame.columns:
        frame = frame.drop(_ROW)
    return _Table(frame.with_row_index(_ROW), name)


def _require(table: _Table, columns: Iterable[str], hint: str) -> None:
    missing = [c for c in columns if c not in table.frame.columns]
    if missing:
        have = ", ".join(c for c in table.frame.columns if c != _ROW) or "none"
        raise OPEInputError(f"{table.name}: missing column(s) {', '.join(missing)} "
                            f"(has: {have})", hint)
    if table.frame.height == 0:
        raise OPEInputError(f"{table.name}: no rows")


def _floats(table: _Table, column: str, *, nullable: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Column as float64 (nulls as NaN) and its null mask; non-numbers and inf/NaN rejected."""
    s = table.frame[column]
    if s.dtype == pl.Boolean or s.dtype.is_numeric():
        cast = s.cast(pl.Float64)
    else:
        cast = s.cast(pl.Float64, strict=False)
        bad = (cast.is_null() & s.is_not_null()).to_numpy()
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            table.fail(column, pos, f"value {s[pos]!r} is not a number",
                       f"column {column!r} must hold numbers only")
    null = cast.is_null().to_numpy()
    values = cast.fill_null(np.nan).to_numpy().astype(np.float64)
    if not nullable and null.any():
        table.fail(column, int(np.flatnonzero(null)[0]), "missing value",
                   f"column {column!r} must be filled in every row")
    bad = ~np.isfinite(values) & ~null
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        table.fail(column, pos, f"non-finite value {float(values[pos])!r}",
                   f"column {column!r} must hold finite numbers (no NaN or inf)")
    return values, null


def _ints(table: _Table, column: str, *, nonnegative: bool = True) -> np.ndarray:
    values, _ = _floats(table, column)
    bad = values != np.round(values)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        table.fail(column, pos, f"non-integer value {float(values[pos])!r}",
                   f"column {column!r} must hold integers")
    if nonnegative and (values < 0).any():
        pos = int(np.flatnonzero(values < 0)[0])
        table.fail(column, pos, f"negative value {int(values[pos])}",
                   f"column {column!r} must hold non-negative integers")
    return values.astype(np.int64)


def _probabilities(table: _Table, column: str, *, low_open: bool,
                   nullable: bool = False) -> tuple[np.ndarray, np.ndarray]:
    values, null = _floats(table, column, nullable=nullable)
    bad = ((values <= 0) if low_open else (values < 0)) | (values > 1 + PROB_SLACK)
    bad &= ~null
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        interval = "(0, 1]" if low_open else "[0, 1]"
        extra = " (a logged action must have had a positive probability)" \
            if low_open and values[pos] == 0 else ""
        table.fail(column, pos, f"probability {float(values[pos])!r} outside {interval}{extra}",
                   f"column {column!r} must hold probabilities in {interval}")
    return np.minimum(values, 1.0), null


# --------------------------------------------------------------------------------------------
# Logs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Logs:
    """Checked logs sorted by (episode_id, step)."""

    table: _Table
    source_row: np.ndarray
    episode_ids: pl.Series
    episode: np.ndarray
    step: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    behavior_prob: np.ndarray | None
    behavior_null: int
    feature_columns: list[str]
    features: np.ndarray | None
    next_index: np.ndarray
    n_actions: int
    action_set: np.ndarray

    @property
    def rows(self) -> int:
        return int(self.step.shape[0])

    @property
    def horizon(self) -> int:
        return int(self.step.max()) + 1

    def where(self, i: int) -> str:
        """Source row and keys of sorted row ``i``."""
        return (f"row {int(self.source_row[i])} (episode_id={self.episode_ids[i]!r}, "
                f"step={int(self.step[i])})")

    def fail(self, column: str, i: int, problem: str, hint: str | None = None) -> NoReturn:
        raise OPEInputError(f"{self.table.name}: column {column!r}, {self.where(i)}: {problem}",
                            hint)


def _load_logs(source: Source) -> _Logs:
    t = _read(source, "logs")
    _require(t, LOG_COLUMNS, _LOGS_HINT)
    ids = t.frame["episode_id"]
    missing_id = ids.is_null()
    if ids.dtype.is_float():
        missing_id = missing_id | ids.is_nan().fill_null(False)
    if missing_id.any():
        t.fail("episode_id", int(np.flatnonzero(missing_id.to_numpy())[0]), "missing value",
               "every row needs an episode_id")
    step = _ints(t, "step", nonnegative=False)
    action = _ints(t, "action")
    reward, _ = _floats(t, "reward")
    behavior, behavior_null, n_null = None, None, 0
    if "behavior_prob" in t.frame.columns:
        s = t.frame["behavior_prob"]
        if s.dtype.is_float():  # NaN counts as missing, like null
            t = _Table(t.frame.with_columns(pl.col("behavior_prob").fill_nan(None)), t.name)
        behavior, behavior_null = _probabilities(t, "behavior_prob", low_open=True,
                                                 nullable=True)
        n_null = int(behavior_null.sum())
    terminal = None
    if "terminal" in t.frame.columns:
        terminal = _ints(t, "terminal")
        if (terminal > 1).any():
            t.fail("terminal", int(np.flatnonzero(terminal > 1)[0]),
                   f"value {int(terminal[terminal > 1][0])} is not a boolean (0/1, true/false)",
                   "terminal must be 0/1 or true/false")
    feature_columns = [c for c in t.frame.columns if c.startswith(FEATURE_PREFIX)]
    features = None
    if feature_columns:
        features = np.column_stack([_floats(t, c)[0] for c in feature_columns])

    try:
        _, codes = np.unique(ids.to_numpy(), return_inverse=True)
    except TypeError as exc:
        raise OPEInputError(f"{t.name}: column 'episode_id': ids are not sortable: {exc}") \
            from None
    codes = codes.ravel().astype(np.int64)
    order = np.lexsort((step, codes))
    codes, step_s = codes[order], step[order]
    n = codes.shape[0]
    same = codes[1:] == codes[:-1]
    dup = same & (step_s[1:] == step_s[:-1])
    if dup.any():
        later = np.maximum(order[1:], order[:-1])[dup]
        earlier = np.minimum(order[1:], order[:-1])[dup]
        j = int(np.argmin(later))
        t.fail("step", int(later[j]),
               f"duplicate (episode_id, step): same as row {int(earlier[j])}",
               "each (episode_id, step) must appear once")
    first = np.r_[True, ~same]
    starts = np.flatnonzero(first)
    position = np.arange(n) - starts[np.cumsum(first) - 1]
    bad = step_s != position
    if bad.any():
        i = int(np.flatnonzero(bad)[np.argmin(order[bad])])
        t.fail("step", int(order[i]),
               f"episode has step {step_s[i]} where step {position[i]} was expected",
               "steps of each episode must be 0, 1, ..., len-1 (no gaps, starting at 0)")
    last = np.r_[~same, True]
    if terminal is not None:
        early = (terminal[order] == 1) & ~last
        if early.any():
            i = int(np.flatnonzero(early)[np.argmin(order[early])])
            t.fail("terminal", int(order[i]), "terminal is set but the episode has later steps",
                   "only an episode's last step may be terminal")
    next_index = np.where(last, -1, np.arange(n) + 1)
    action_s = action[order]
    action_set = np.unique(action_s)
    return _Logs(
        table=t,
        source_row=t.frame[_ROW].to_numpy()[order],
        episode_ids=ids.gather(order),
        episode=np.cumsum(first) - 1,
        step=step_s,
        action=action_s,
        reward=reward[order],
        behavior_prob=None if behavior is None else behavior[order],
        behavior_null=n_null,
        feature_columns=feature_columns,
        features=None if features is None else features[order],
        next_index=next_index,
        n_actions=int(action_set.max()) + 1,
        action_set=action_set,
    )


# --------------------------------------------------------------------------------------------
# Target policies
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    probs: np.ndarray
    """``[rows, n_actions]`` ``pi(a|s_t)`` at each (sorted) logged decision."""
    kind: str
    description: str


def _actions_text(action_set: np.ndarray) -> str:
    shown = ", ".join(str(int(a)) for a in action_set[:20])
    return "{" + shown + (", ..." if action_set.size > 20 else "") + "}"


def _export_target(path: Path, logs: _Logs) -> _Target:
    from offline_rl.export.loader import ExportError, load_policy

    try:
        policy = load_policy(path)
    except ExportError as exc:
        raise OPEInputError(f"target {path}: {exc}", _TARGET_HINT) from None
    try:
        names = policy.feature_names
    except (KeyError, TypeError):
        raise OPEInputError(f"target {path}: manifest.json has no feature_schema.names",
                            "re-export the policy with its feature schema") from None
    wanted = [FEATURE_PREFIX + name for name in names]
    missing = [c for c in wanted if c not in logs.feature_columns]
    if missing:
        raise OPEInputError(
            f"{logs.table.name}: missing feature column(s) {', '.join(missing)} needed by the "
            f"exported policy {path}",
            "add one f_<name> column per name of the manifest's feature_schema.names")
    x = logs.features[:, [logs.feature_columns.index(c) for c in wanted]]  # type: ignore[index]
    try:
        chosen = np.concatenate([policy.predict(x[i:i + 65536])
                                 for i in range(0, x.shape[0], 65536)])
    except (RuntimeError, ValueError) as exc:
        raise OPEInputError(f"target {path}: the policy failed on the logged features: {exc}") \
            from None
    unknown = ~np.isin(chosen, logs.action_set)
    if unknown.any():
        i = int(np.flatnonzero(unknown)[0])
        raise OPEInputError(
            f"target {path}: the policy chose action {int(chosen[i])} at {logs.table.name} "
            f"{logs.where(i)}, which is not among the logged actions "
            f"{_actions_text(logs.action_set)}",
            "the logs must use the policy's action encoding (see the manifest's action_map)")
    probs = np.zeros((logs.rows, logs.n_actions))
    probs[np.arange(logs.rows), chosen] = 1.0
    return _Target(probs, "export", f"exported policy {path}")


def _table_target(source: Source, logs: _Logs) -> _Target:
    t = _read(source, "target")
    _require(t, TARGET_COLUMNS, _TARGET_HINT)
    ids = t.frame["episode_id"]
    if ids.is_null().any():
        t.fail("episode_id", int(np.flatnonzero(ids.is_null().to_numpy())[0]), "missing value",
               "every row needs an episode_id")
    step = _ints(t, "step")
    action = _ints(t, "action")
    prob, _ = _probabilities(t, "prob", low_open=False)
    unknown = ~np.isin(action, logs.action_set)
    if unknown.any():
        pos = int(np.flatnonzero(unknown)[0])
        t.fail("action", pos, f"action {int(action[pos])} never appears in the logs' actions "
                              f"{_actions_text(logs.action_set)}",
               "target actions must use the logs' action encoding")
    id_type = logs.episode_ids.dtype
    cast = ids.cast(id_type, strict=False)
    bad = (cast.is_null() & ids.is_not_null()).to_numpy()
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        t.fail("episode_id", pos, f"value {ids[pos]!r} cannot be matched with the logs' "
                                  f"episode ids of type {id_type}",
               "use the same episode ids as the logs")
    keys = pl.DataFrame({"episode_id": logs.episode_ids, "step": logs.step,
                         "__pos__": np.arange(logs.rows)})
    query = pl.DataFrame({_ROW: np.arange(t.frame.height), "episode_id": cast, "step": step})
    joined = query.join(keys, on=["episode_id", "step"], how="left").sort(_ROW)
    pos_s = joined["__pos__"]
    if pos_s.is_null().any():
        p = int(np.flatnonzero(pos_s.is_null().to_numpy())[0])
        t.fail("episode_id", p, "no logged decision has this (episode_id, step)",
               "the target table must describe the logged decisions of these logs")
    pos = pos_s.to_numpy().astype(np.int64)
    key = pos * logs.n_actions + action
    order = np.argsort(key, kind="stable")
    dup = key[order][1:] == key[order][:-1]
    if dup.any():
        later, earlier = order[1:][dup], order[:-1][dup]
        j = int(np.argmin(later))
        t.fail("action", int(later[j]),
               f"duplicate (episode_id, step, action): same as row {int(earlier[j])}",
               "give each action at most one row per logged decision")
    probs = np.zeros((logs.rows, logs.n_actions))
    probs[pos, action] = prob
    total = probs.sum(axis=1)
    off = np.abs(total - 1.0) > SUM_TOLERANCE
    if off.any():
        i = int(np.flatnonzero(off)[0])
        mine = np.flatnonzero(pos == i)
        if mine.size:
            t.fail("prob", int(mine.min()),
                   f"probabilities of this decision sum to {total[i]:.9g}, not 1 "
                   f"(tolerance {SUM_TOLERANCE:g})",
                   "absent rows mean probability 0; each logged decision's rows must sum to 1")
        raise OPEInputError(
            f"{t.name}: column 'prob': no rows for the logged decision at {logs.table.name} "
            f"{logs.where(i)} (its probabilities sum to 0, not 1)",
            "every logged decision needs target rows whose probabilities sum to 1")
    return _Target(probs, "table", f"target table {t.name}")


def _load_target(source: Any, logs: _Logs) -> _Target:
    if isinstance(source, pl.DataFrame):
        return _table_target(source, logs)
    path = Path(source)
    if path.is_dir():
        if not (path / "manifest.json").is_file():
            raise OPEInputError(f"target {path}: directory without manifest.json", _TARGET_HINT)
        return _export_target(path, logs)
    if path.name == "manifest.json":
        return _export_target(path.parent, logs)
    return _table_target(path, logs)


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


def evaluate_logs(
    logs: Source,
    target: Source,
    *,
    gamma: float = 1.0,
    n_bootstrap: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    fqe_steps: int = 3000,
    estimators: Iterable[str] = ESTIMATORS,
) -> OPEResult:
    """Estimates the value of ``target`` from ``logs`` (see the module docstring for formats).

    Steps: check and sort the logs; build ``pi(a|s_t)`` for every action at every logged
    decision; take the logged ``behavior_prob`` or, if it is absent or has nulls, estimate the
    behaviour policy (:mod:`offline_rl.ope.behavior_model`, with a warning); with ``f_``
    features fit FQE (:mod:`offline_rl.ope.fqe_torch`) for ``dm``/``dr``/``sndr``; compute the
    estimators with episode-bootstrap intervals, the on-policy behaviour value, and the
    diagnostics.

    Args:
        logs: Logged decisions: Parquet/CSV path or polars DataFrame.
        target: Export directory, or target table (Parquet/CSV path or DataFrame).
        gamma: Discount factor in ``[0, 1]``.
        n_bootstrap: Bootstrap resamples (0 or 1: no intervals).
        alpha: Two-sided interval level ``1 - alpha``.
        seed: Seed of FQE and the bootstrap.
        fqe_steps: Gradient steps of FQE.
        estimators: Estimator names (subset of ``ESTIMATORS``).

    Returns:
        :class:`OPEResult`.

    Raises:
        OPEInputError: Malformed logs or target.
        ValueError: Parameters out of range or unknown estimator names.
    """
    names = tuple(dict.fromkeys(estimators))
    unknown = [n for n in names if n not in ESTIMATORS]
    if unknown:
        raise ValueError(f"estimators: unknown {unknown}; choose from {ESTIMATORS}")
    if not (0.0 <= gamma <= 1.0):
        raise ValueError(f"gamma: expected a number in [0, 1], got {gamma!r}")
    if isinstance(fqe_steps, bool) or not isinstance(fqe_steps, int) or fqe_steps < 1:
        raise ValueError(f"fqe_steps: expected a positive integer, got {fqe_steps!r}")
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int | np.integer) \
            or n_bootstrap < 0:
        raise ValueError(f"n_bootstrap: expected an integer >= 0, got {n_bootstrap!r}")
    if not (0.0 < alpha < 1.0):
        raise ValueError(f"alpha: expected a number in (0, 1), got {alpha!r}")
    log_data = _load_logs(logs)
    pi = _load_target(target, log_data)
    rows = np.arange(log_data.rows)
    warnings: list[str] = []
    details: dict[str, Any] = {"target": pi.description}

    b_all: np.ndarray | None = None
    if log_data.behavior_prob is not None and log_data.behavior_null == 0:
        source = "logged"
        b_logged = log_data.behavior_prob
    else:
        source = "estimated"
        model: BehaviorEstimate = estimate_behavior(log_data.action, log_data.step,
                                                    log_data.n_actions, log_data.features)
        b_all, b_logged = model.probs, model.logged(log_data.action)
        why = ("the logs have no behavior_prob column" if log_data.behavior_prob is None else
               f"behavior_prob is missing in {log_data.behavior_null} of {log_data.rows} rows")
        warnings.append(
            f"behaviour probabilities ESTIMATED ({why}) by {model.description}; every "
            "importance-weighted estimate depends on that model and the intervals do not "
            "include its estimation error")
        details["behavior_model"] = {"method": model.method,
                                     "train_accuracy": model.train_accuracy,
                                     "mean_log_likelihood": model.mean_log_likelihood}

    q_logged = v_target = None
    if log_data.features is not None:
        fit: FQEResult = fit_fqe(log_data.features, log_data.action, log_data.reward,
                                 log_data.next_index, pi.probs, gamma=gamma,
                                 horizon=log_data.horizon,
                                 settings=FQESettings(steps=fqe_steps, seed=seed))
        q_logged, v_target = fit.q_logged(log_data.action), fit.v_target(pi.probs)
        details["fqe"] = {"steps": fqe_steps, "iterations": fit.n_iterations,
                          "reward_scale": fit.reward_scale,
                          "final_bellman_mse_scaled": fit.final_loss,
                          "features": log_data.feature_columns}
    elif any(n in MODEL_ESTIMATORS for n in names):
        omitted = ", ".join(n for n in names if n in MODEL_ESTIMATORS)
        warnings.append(f"{omitted} omitted: the logs have no f_ feature columns to fit a "
                        "Q-model (FQE) on")

    data = LoggedData(episode=log_data.episode, step=log_data.step, reward=log_data.reward,
                      behavior_prob=b_logged, target_prob=pi.probs[rows, log_data.action],
                      q_logged=q_logged, v_target=v_target)
    estimates = estimate(data, names, gamma=gamma, n_bootstrap=n_bootstrap, alpha=alpha,
                         seed=seed)
    base = on_policy_value(log_data.reward, log_data.episode, step=log_data.step, gamma=gamma,
                    n_bootstrap=n_bootstrap, alpha=alpha, seed=seed)
    diagnostics = compute_diagnostics(data, target_probs_all=pi.probs, behavior_probs_all=b_all,
                                      logged_action=log_data.action)
    if diagnostics.ess_fraction < LOW_ESS_FRACTION:
        warnings.append(
            f"effective sample size {diagnostics.ess:.1f} is only "
            f"{100 * diagnostics.ess_fraction:.1f}% of {data.n_episodes} episodes: "
            "importance-weighted estimates rest on few episodes")
    nan = [n for n, e in estimates.items() if not math.isfinite(e.value)]
    if nan:
        warnings.append(f"{', '.join(nan)} undefined: no logged episode supports the target "
                        "policy at some step")
    counts = np.bincount(np.argmax(pi.probs, axis=1), minlength=log_data.n_actions)
    details["target_greedy_action_share"] = (counts / counts.sum()).round(4).tolist()
    return OPEResult(
        behavior=base,
        estimates=estimates,
        diagnostics=diagnostics,
        disagreement=estimator_disagreement(estimates) if estimates else math.nan,
        warnings=tuple(warnings),
        behavior_prob_source=source,
        n_episodes=data.n_episodes,
        n_decisions=data.n_rows,
        gamma=float(gamma),
        alpha=float(alpha),
        n_bootstrap=int(n_bootstrap),
        target_kind=pi.kind,
        details=details,
    )

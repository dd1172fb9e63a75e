"""Evaluate any policy on any logged decisions: the public off-policy evaluation entry point.

:func:`evaluate_logs` reads a table of logged decisions and a target policy, checks both, and
returns every estimator of :mod:`offline_rl.ope.estimators` with intervals, the behaviour
policy's on-policy value, and diagnostics. ``offline-rl ope`` is its command line.

The estimates come from the nightly evaluation's core
(:func:`offline_rl.ope.evaluate.evaluate_target`) with an :class:`OPEConfig` (default: the
nightly defaults): the same estimators, intervals (FQE refits for dm/dr/sndr), weight
clipping and diagnostics, so a night's held-out episodes exported as logs, with that night's
settings and the domain's action count, reproduce that night's estimates of a policy.
What this module adds: reading and checking files, target tables, estimating the behaviour
policy when ``behavior_prob`` is missing, and logs without features (no dm/dr/sndr).

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

import dataclasses
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import polars as pl

from offline_rl.data.arrays import DecisionArrays
from offline_rl.ope.behavior_model import BehaviorEstimate, estimate_behavior
from offline_rl.ope.diagnostics import Diagnostics
from offline_rl.ope.estimators import ESTIMATORS, Estimate
from offline_rl.ope.evaluate import (
    OPEConfig,
    StochasticTarget,
    evaluate_behavior,
    evaluate_target,
)

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
        n_bootstrap: Bootstrap resamples of the episodes (the model-based estimators'
            intervals come from the FQE refits, ``details["config"]["fqe_refits"]``).
        target_kind: ``"export"`` or ``"table"``.
        details: Extra information (behaviour model, FQE fit, refit replicates, action
            counts, and ``config``: every :class:`OPEConfig` setting used).
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
    actions_named: str = "the logged actions"
    """How messages name ``action_set``: the logged actions, or a given action count's."""

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
    actions: np.ndarray | None = None
    """An export's chosen action at each (sorted) logged decision (None for a table)."""


def _actions_text(action_set: np.ndarray) -> str:
    shown = ", ".join(str(int(a)) for a in action_set[:20])
    return "{" + shown + (", ..." if action_set.size > 20 else "") + "}"


def _export_target(path: Path, logs: _Logs, served: bool = False) -> _Target:
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
    if logs.features is None:
        raise OPEInputError(f"{logs.table.name}: no feature columns, but the exported policy "
                            f"{path} reads {len(wanted)}",
                            "add one f_<name> column per name of the manifest's "
                            "feature_schema.names")
    x = logs.features[:, [logs.feature_columns.index(c) for c in wanted]]
    if served:  # the policy as the shop serves it: its serving head's distribution
        if policy.serving is None:
            raise OPEInputError(f"target {path}: the export has no serving head to value as "
                                "served", "value its greedy policy (leave out --served)")
        probs = np.concatenate([policy.action_probs(x[i:i + 65536])
                                for i in range(0, x.shape[0], 65536)])
        if probs.shape[1] > logs.n_actions and (probs[:, logs.n_actions:] > 0).any():
            raise OPEInputError(f"target {path}: the served policy gives probability to actions "
                                f"beyond the {logs.n_actions} the logs know",
                                "pass --domain so every action of the policy is known")
        probs = np.pad(probs[:, :logs.n_actions],
                       ((0, 0), (0, max(0, logs.n_actions - probs.shape[1]))))
        explore = policy.exploration
        return _Target(probs, "export",
                       f"exported policy {path} as served ({explore.kind}, epsilon "
                       f"{explore.epsilon:g})" if explore else f"exported policy {path}")
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
            f"{logs.where(i)}, which is not among {logs.actions_named} "
            f"{_actions_text(logs.action_set)}",
            "the logs must use the policy's action encoding (see the manifest's action_map)")
    chosen = chosen.astype(np.int64)
    probs = np.zeros((logs.rows, logs.n_actions))
    probs[np.arange(logs.rows), chosen] = 1.0
    return _Target(probs, "export", f"exported policy {path}", chosen)


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
        where = "never appears in the logs' actions" if logs.actions_named == \
            _Logs.actions_named else f"is not one of {logs.actions_named}"
        t.fail("action", pos, f"action {int(action[pos])} {where} "
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
    logged_pos = pos_s.to_numpy().astype(np.int64)
    key = logged_pos * logs.n_actions + action
    order = np.argsort(key, kind="stable")
    dup = key[order][1:] == key[order][:-1]
    if dup.any():
        later, earlier = order[1:][dup], order[:-1][dup]
        j = int(np.argmin(later))
        t.fail("action", int(later[j]),
               f"duplicate (episode_id, step, action): same as row {int(earlier[j])}",
               "give each action at most one row per logged decision")
    probs = np.zeros((logs.rows, logs.n_actions))
    probs[logged_pos, action] = prob
    total = probs.sum(axis=1)
    off = np.abs(total - 1.0) > SUM_TOLERANCE
    if off.any():
        i = int(np.flatnonzero(off)[0])
        mine = np.flatnonzero(logged_pos == i)
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


def _load_target(source: Any, logs: _Logs, served: bool = False) -> _Target:
    if isinstance(source, pl.DataFrame):
        return _table_target(source, logs)
    path = Path(source)
    if path.is_dir():
        if not (path / "manifest.json").is_file():
            raise OPEInputError(f"target {path}: directory without manifest.json", _TARGET_HINT)
        return _export_target(path, logs, served)
    if path.name == "manifest.json":
        return _export_target(path.parent, logs, served)
    return _table_target(path, logs)


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


def _with_action_count(logs: _Logs, n_actions: int | None) -> _Logs:
    """``logs`` whose allowed actions are ``0..n_actions-1`` (a domain's or an export's
    actions: a target may choose an action the logs never hold); unchanged for None."""
    if n_actions is None:
        return logs
    if isinstance(n_actions, bool) or not isinstance(n_actions, int | np.integer) \
            or n_actions < 1:
        raise ValueError(f"n_actions: expected a positive integer, got {n_actions!r}")
    outside = np.flatnonzero(logs.action >= n_actions)
    if outside.size:
        i = int(outside[np.argmin(logs.source_row[outside])])
        logs.fail("action", i, f"action {int(logs.action[i])} is not one of the {n_actions} "
                               f"actions 0..{n_actions - 1}",
                  "the logs must use the policy's action encoding")
    return dataclasses.replace(logs, n_actions=int(n_actions),
                               action_set=np.arange(int(n_actions)),
                               actions_named=f"the {n_actions} actions")


def _config(config: OPEConfig | None, settings: dict[str, Any]) -> OPEConfig:
    """``config`` (default :class:`OPEConfig`) with ``settings`` replacing its fields, checked
    as ``evaluate_logs`` needs them."""
    fields = {f.name for f in dataclasses.fields(OPEConfig)}
    unknown = sorted(set(settings) - fields)
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(unknown)}; OPEConfig's fields are "
                         f"{', '.join(sorted(fields))}")
    if "estimators" in settings:
        names = settings["estimators"]
        names = (names,) if isinstance(names, str) else tuple(dict.fromkeys(names))
        bad = [n for n in names if n not in ESTIMATORS]
        if bad:
            raise ValueError(f"estimators: unknown {bad}; choose from {ESTIMATORS}")
        settings = {**settings, "estimators": names}
    config = dataclasses.replace(config or OPEConfig(), **settings)
    if not (0.0 <= config.gamma <= 1.0):
        raise ValueError(f"gamma: expected a number in [0, 1], got {config.gamma!r}")
    for name, low in (("fqe_steps", 1), ("n_bootstrap", 0), ("fqe_refits", 0)):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    if not (0.0 < config.alpha < 1.0):
        raise ValueError(f"alpha: expected a number in (0, 1), got {config.alpha!r}")
    if config.fqe_backend != "torch":
        raise ValueError(f"fqe_backend: evaluate_logs fits FQE with the torch backend (any "
                         f"policy), got {config.fqe_backend!r}")
    return config


def _arrays(logs: _Logs, behavior_prob: np.ndarray) -> DecisionArrays:
    """The checked logs as the evaluation core reads them (rows sorted by episode and step;
    no features: an observation matrix without columns).

    The features are column-major, as ``decision_arrays`` gives the nightly evaluation its
    observations: FQE's feature standardisation sums in memory order, so the same layout is
    what makes the two paths agree to the last bit.
    """
    features = np.asfortranarray(logs.features) if logs.features is not None \
        else np.empty((logs.rows, 0))
    last = (logs.next_index < 0).astype(np.float32)
    return DecisionArrays(observations=features, actions=logs.action, rewards=logs.reward,
                          terminals=last, timeouts=np.zeros(logs.rows, dtype=np.float32),
                          behavior_prob=behavior_prob, episode=logs.episode, step=logs.step)


@dataclass(frozen=True)
class _Chosen:
    """A deterministic target given by its action at each logged decision (an export's,
    computed on the columns its manifest names)."""

    actions: np.ndarray

    def predict(self, observations: np.ndarray) -> np.ndarray:
        if observations.shape[0] != self.actions.shape[0]:
            raise ValueError(f"the target's actions are known at {self.actions.shape[0]} "
                             f"logged decisions, asked for {observations.shape[0]}")
        return self.actions


def _row_probs(probs: np.ndarray) -> Any:
    """A table target's ``pi(.|s_t)`` at the logged decisions, as ``StochasticTarget.probs``."""

    def at_logged(observations: np.ndarray) -> np.ndarray:
        if observations.shape[0] != probs.shape[0]:
            raise ValueError(f"the target table gives probabilities at {probs.shape[0]} "
                             f"logged decisions, asked for {observations.shape[0]}")
        return probs

    return at_logged


def evaluate_logs(
    logs: Source,
    target: Source,
    config: OPEConfig | None = None,
    *,
    n_actions: int | None = None,
    served: bool = False,
    **settings: Any,
) -> OPEResult:
    """Estimates the value of ``target`` from ``logs`` (see the module docstring for formats)
    with the nightly evaluation's core, :func:`offline_rl.ope.evaluate.evaluate_target`.

    Steps: check and sort the logs; build ``pi(a|s_t)`` for every action at every logged
    decision; take the logged ``behavior_prob`` or, if it is absent or has nulls, estimate the
    behaviour policy (:mod:`offline_rl.ope.behavior_model`, with a warning); then the core:
    with ``f_`` features FQE of the target (refitted on ``fqe_refits`` bootstrap resamples of
    the episodes, bagged) for ``dm``/``dr``/``sndr``, whose intervals come from the refits;
    the importance-weighted estimators with episode-bootstrap intervals; ``dr``/``sndr``
    with their cumulative weights clipped at ``model_max_weight``; the diagnostics. Plus the
    behaviour policy's on-policy value (``evaluate_behavior``).

    The same logs, ``n_actions`` and settings as a night's evaluation (its held-out episodes
    with their ``f_`` columns in the domain's feature order, the domain's action count, the
    night's ``OPEConfig``) give that night's estimates of the same policy exactly.

    Args:
        logs: Logged decisions: Parquet/CSV path or polars DataFrame.
        target: Export directory (its greedy policy; with ``served``, the policy as the shop
            serves it: its serving head's distribution, valued as a stochastic target), or
            target table (Parquet/CSV path or DataFrame).
        config: Evaluation settings (default: ``OPEConfig()``, the nightly evaluation's
            defaults). Only the torch FQE backend is accepted.
        n_actions: Size of the action set (a domain's or an export's), so the target may
            choose actions the logs do not hold; default: one more than the largest logged
            action, and the target must stay within the logged actions.
        **settings: Fields of :class:`OPEConfig` that replace ``config``'s, e.g. ``alpha``,
            ``n_bootstrap`` (0 or 1: no intervals), ``fqe_steps``, ``fqe_refits``, ``seed``,
            ``gamma``, ``estimators`` (any iterable of names).

    Returns:
        :class:`OPEResult`.

    Raises:
        OPEInputError: Malformed logs or target.
        ValueError: Settings out of range, unknown settings or estimator names.
    """
    config = _config(config, settings)
    names = config.estimators
    log_data = _with_action_count(_load_logs(logs), n_actions)
    pi = _load_target(target, log_data, served)
    warnings: list[str] = []
    details: dict[str, Any] = {"target": pi.description}

    b_all: np.ndarray | None = None
    if log_data.behavior_prob is not None and log_data.behavior_null == 0:
        source = "logged"
        b_logged = log_data.behavior_prob
    else:
        source = "estimated"
        logged_actions = int(log_data.action.max()) + 1
        model: BehaviorEstimate = estimate_behavior(log_data.action, log_data.step,
                                                    logged_actions, log_data.features)
        b_logged = model.logged(log_data.action)
        b_all = np.zeros((log_data.rows, log_data.n_actions))  # never-logged actions: 0
        b_all[:, :logged_actions] = model.probs
        why = ("the logs have no behavior_prob column" if log_data.behavior_prob is None else
               f"behavior_prob is missing in {log_data.behavior_null} of {log_data.rows} rows")
        warnings.append(
            f"behaviour probabilities ESTIMATED ({why}) by {model.description}; every "
            "importance-weighted estimate depends on that model and the intervals do not "
            "include its estimation error")
        details["behavior_model"] = {"method": model.method,
                                     "train_accuracy": model.train_accuracy,
                                     "mean_log_likelihood": model.mean_log_likelihood}

    arrays = _arrays(log_data, b_logged)
    policy = _Chosen(pi.actions) if pi.actions is not None else \
        StochasticTarget(_row_probs(pi.probs), seed=config.seed)
    ev = evaluate_target("target", policy, arrays, config, n_actions=log_data.n_actions,
                         behavior_probs_all=b_all)
    estimates = ev.estimates
    if log_data.features is not None:
        details["fqe"] = {"steps": config.fqe_steps, "iterations": ev.extra["fqe_iterations"],
                          "refits": ev.extra["fqe_refits"], "bagged": ev.extra["fqe_bagged"],
                          "reward_scale": ev.extra["fqe_reward_scale"],
                          "final_bellman_mse_scaled": ev.extra["fqe_bellman_mse_scaled"],
                          "features": log_data.feature_columns}
        if "refit_replicates" in ev.extra:
            details["refit_replicates"] = ev.extra["refit_replicates"]
    elif any(n in MODEL_ESTIMATORS for n in names):
        omitted = ", ".join(n for n in names if n in MODEL_ESTIMATORS)
        warnings.append(f"{omitted} omitted: the logs have no f_ feature columns to fit a "
                        "Q-model (FQE) on")
    base = evaluate_behavior(arrays, config)
    diagnostics = ev.diagnostics
    if diagnostics.ess_fraction < LOW_ESS_FRACTION:
        warnings.append(
            f"effective sample size {diagnostics.ess:.1f} is only "
            f"{100 * diagnostics.ess_fraction:.1f}% of {log_data.episode[-1] + 1} episodes: "
            "importance-weighted estimates rest on few episodes")
    nan = [n for n, e in estimates.items() if not math.isfinite(e.value)]
    if nan:
        warnings.append(f"{', '.join(nan)} undefined: no logged episode supports the target "
                        "policy at some step")
    details["target_greedy_action_share"] = ev.extra["action_distribution"]
    details["config"] = _json_config(config)
    return OPEResult(
        behavior=base,
        estimates=estimates,
        diagnostics=diagnostics,
        disagreement=ev.disagreement if estimates else math.nan,
        warnings=tuple(warnings),
        behavior_prob_source=source,
        n_episodes=int(log_data.episode[-1]) + 1,
        n_decisions=log_data.rows,
        gamma=float(config.gamma),
        alpha=float(config.alpha),
        n_bootstrap=int(config.n_bootstrap),
        target_kind=pi.kind,
        details=details,
    )


def _json_config(config: OPEConfig) -> dict[str, Any]:
    """The settings of an evaluation as JSON values (tuples as lists)."""
    return {k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(config).items()}

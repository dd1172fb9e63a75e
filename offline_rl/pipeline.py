"""The nightly pipeline's stages as plain functions over a data home.

The Dagster assets in ``assets/`` are thin wrappers around these, so the same code runs
under Dagster, from the CLI and in tests. Each stage reads what the previous one wrote
(warehouse tables and files under the data home) and replaces its own output for the
partition it is given, so re-running a stage is idempotent.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from offline_rl import decisions, estimates
from offline_rl.algos.record import CandidateRecord, DataWindow, Split, TrainingContext
from offline_rl.data.arrays import DecisionArrays, decision_arrays, to_mdp_dataset
from offline_rl.data.ingest import PartitionLoad, load_partition
from offline_rl.data.schemas import SourceSchema
from offline_rl.data.warehouse import KeyRange, Warehouse
from offline_rl.decisions import (
    RegistryDecision,
    promoted_before,
    record_decision,
    set_export_version,
)
from offline_rl.domains import Domain, get_domain, landing_schemas
from offline_rl.domains.base import check_transitions
from offline_rl.estimates import BEHAVIOR, DayEvaluations, write_evaluations
from offline_rl.export.exploration import Exploration
from offline_rl.export.loader import one_hot_groups
from offline_rl.export.registry import ExportedPolicy, current_version, publish
from offline_rl.ope.estimators import Estimate
from offline_rl.ope.evaluate import (
    CANDIDATE,
    INCUMBENT,
    OPEConfig,
    PolicyEvaluation,
    StochasticTarget,
    behavior_replicates,
    behavior_terms,
    evaluate_behavior,
    evaluate_policy,
    evaluate_targets,
    with_episode_gains,
)
from offline_rl.ope.gate import Decision, GateConfig, Incumbent, decide, evaluated_incumbent
from offline_rl.ope.replay import prepare_replay
from offline_rl.paths import DataPaths, as_location

if TYPE_CHECKING:  # the trainer and the export builder import torch and d3rlpy: the
    # functions that need them import them, so loading the code location does not
    from offline_rl.algos.config import TrainingConfig
    from offline_rl.algos.training import TrainedCandidate
    from offline_rl.export.build import BuiltExport

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- ingestion

def ingest_partition(paths: DataPaths, schema: SourceSchema, day: dt.date) -> PartitionLoad:
    """Loads one landing partition into ``raw_<dataset>`` and its rejects into quarantine,
    in one transaction (see ``offline_rl.data.ingest.load_partition``)."""
    return load_partition(paths.landing, paths.warehouse, schema, day)


# ---------------------------------------------------------------- transitions

def _domain(domain: Domain | str) -> Domain:
    return domain if isinstance(domain, Domain) else get_domain(domain)


def _compacted(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with each text column copied into buffers of its own values. A text column
    that a query filtered or reordered still points into the buffers of the column it came
    from; compacted, the transitions let go of the raw rows' text (about 0.5 GB per 4M
    clickstream rows) as soon as the raw frame is dropped."""
    text = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    return frame.with_columns(pl.Series(name, frame[name].to_arrow()) for name in text) \
        if text else frame


TRANSITIONS_SHARE_ROWS = 4_000_000
"""Raw rows a domain with a ``share_key`` builds transitions from at a time. Its range of raw
partitions is read and built in ``ceil(rows / TRANSITIONS_SHARE_ROWS)`` shares, consecutive
ranges of its key's values holding about as many rows each, so the query's memory follows
this, not the day's size (about 1 GB at 4M clickstream rows); fewer rows are built in one
pass."""


def _key_ranges(wh: Warehouse, key: str | None, tables: list[str], first: dt.date,
                last: dt.date, rows: int) -> list[KeyRange | None]:
    """The consecutive ranges of ``key`` (a domain's ``share_key``) whose transitions are
    built one at a time (``[None]``: all at once), cut where the raw rows of ``tables`` before
    a bound reach a multiple of ``rows / shares``; rows without a key go with the first
    range."""
    shares = max(1, -(-rows // TRANSITIONS_SHARE_ROWS))
    if key is None or shares == 1:
        return [None]
    counts = pl.concat([wh.key_counts(table, first, last, key) for table in tables]
                       ).group_by("key").agg(pl.col("n").sum())
    nulls = int(counts.filter(pl.col("key").is_null())["n"].sum())
    keyed = counts.filter(pl.col("key").is_not_null()).sort("key")
    before = (keyed["n"].cum_sum() - keyed["n"] + nulls).cast(pl.Float64)
    total = nulls + int(keyed["n"].sum())
    bounds: list[Any] = []
    for i in range(1, shares):
        at = int(before.search_sorted(i * total / shares, side="left"))
        if at < keyed.height and (not bounds or keyed["key"][at] != bounds[-1]):
            bounds.append(keyed["key"][at])
    return [KeyRange(key, low, high, with_null=j == 0)
            for j, (low, high) in enumerate(zip([None, *bounds], [*bounds, None], strict=True))]


def build_transitions_partition(
    paths: DataPaths, domain: Domain | str, day: dt.date
) -> pl.DataFrame:
    """Builds the transitions of episodes starting on ``day`` and replaces that partition.

    Reads the domain's raw tables from ``lookback_days`` before the day (to recognise episodes
    that started earlier and belong to an earlier partition) to ``lookahead_days`` after it
    (where loaded, so episodes that cross midnight or last several days are complete). A
    domain with a ``share_key`` whose range holds more than ``TRANSITIONS_SHARE_ROWS`` raw rows
    is built a range of its episodes at a time, in ascending order, so the rows come out as
    one pass orders them: the partition does not depend on the number of shares.
    """
    domain = _domain(domain)
    wh = Warehouse(paths.warehouse)
    first = day - dt.timedelta(days=domain.lookback_days)
    last = day + dt.timedelta(days=domain.lookahead_days)
    every_schema = landing_schemas()
    schemas = {source: every_schema[source] for source in domain.sources}
    rows, last_loaded = 0, []
    for source, schema in schemas.items():
        summary = wh.summarize_partitions(schema.table, first, last, day)
        if not summary.day_rows or summary.last_day is None:
            if not wh.table_exists(schema.table):  # asked only to name what is missing
                raise ValueError(f"{schema.table} does not exist; ingest {source} for {day} "
                                 "first")
            raise ValueError(f"{schema.table} has no rows for {day}; ingest that partition "
                             "first")
        rows += summary.rows
        last_loaded.append(summary.last_day)
    ranges = _key_ranges(wh, domain.share_key, [s.table for s in schemas.values()], first,
                         last, rows)
    parts = []
    for index, keys in enumerate(ranges):
        raw = {source: schema.complete(wh.read_as_written(schema.table, first, last, keys))
               .lazy() for source, schema in schemas.items()}
        # the data end where the least advanced source ends
        parts.append(_compacted(domain.build_day(raw, day, min(last_loaded)).collect()))
        del raw
        if len(ranges) > 1:
            log.info("%s %s: transitions of share %d of %d built (%d rows)", domain.name, day,
                     index + 1, len(ranges), parts[-1].height)
    # the shares are ranges of episodes in ascending order: together, one pass's order
    transitions = parts[0] if len(parts) == 1 else pl.concat(parts)
    del parts
    problems = check_transitions(transitions, domain)
    if problems:
        raise ValueError(f"{domain.transitions_table} {day}: " + "; ".join(problems))
    wh.replace_partition(domain.transitions_table, transitions, day=day)
    return transitions


# ---------------------------------------------------------------- training window

@dataclass(frozen=True)
class WindowData:
    """Transitions of the training window, split by episode into train and evaluation.

    ``start``/``end``: the training window's start days; ``eval_start``/``eval_end``: the
    evaluation window's (``settle_days`` earlier, see :func:`load_window`).
    """

    start: dt.date
    end: dt.date
    train: DecisionArrays
    evaluation: DecisionArrays
    train_episodes: int
    eval_episodes: int
    eval_start: dt.date
    eval_end: dt.date
    settle_days: int
    max_train_rows: int | None = None
    max_eval_rows: int | None = None


def split_episodes(frame: pl.DataFrame, eval_fraction: float, seed: int) -> pl.DataFrame:
    """Adds ``is_eval``: an episode is held out when :func:`episode_draws` of its id falls
    below ``eval_fraction``. The draw is a function of the id and ``seed`` alone, so an episode
    is held out on every night that reads it or on none; with :func:`load_window`, which never
    trains on a held-out episode, no model trained on any night with the same seed (an
    incumbent, a warm start) has seen an episode another night evaluates."""
    if not 0.0 < eval_fraction < 1.0:
        raise ValueError("eval_fraction must lie in (0, 1)")
    ids = frame.select(pl.col("episode_id").unique())
    held = episode_draws(ids["episode_id"], seed) < eval_fraction
    return frame.join(ids.with_columns(is_eval=pl.Series(held)), on="episode_id", how="left")


_FNV_OFFSET, _FNV_PRIME = np.uint64(0xCBF29CE484222325), np.uint64(0x100000001B3)


def episode_draws(ids: pl.Series, seed: int) -> np.ndarray:
    """A uniform number in [0, 1) per episode id, a fixed function of the id's bytes and
    ``seed``: 64-bit FNV-1a of the bytes from a seeded start, then the SplitMix64 finaliser
    (no library's hash, whose values may change with its version). Vectorised over the ids,
    one pass per byte position."""
    lengths = ids.str.len_bytes().to_numpy()
    width = max(int(lengths.max()) if lengths.size else 0, 1)
    data = np.array(ids.cast(pl.Binary).to_numpy(), dtype=f"S{width}")  # NUL-padded
    grid = data.view(np.uint8).reshape(data.shape[0], width)
    h = np.full(data.shape[0], _FNV_OFFSET ^ np.uint64(seed & 0xFFFFFFFFFFFFFFFF))
    with np.errstate(over="ignore"):
        for column in grid.T:  # NUL bytes pad shorter ids: skipped, so padding changes nothing
            h = np.where(column != 0, (h ^ column.astype(np.uint64)) * _FNV_PRIME, h)
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    return (h >> np.uint64(11)).astype(np.float64) / float(2 ** 53)


def settle_days_for(domain: Domain, settle_days: int | None) -> int:
    """The days between the evaluation window's end and the partition: ``settle_days``, or by
    default the domain's ``lookahead_days`` (the longest an episode lasts)."""
    settle = domain.lookahead_days if settle_days is None else int(settle_days)
    if settle < 0:
        raise ValueError(f"settle_days: expected a number of days >= 0, got {settle}")
    return settle


WINDOW_COLUMNS = ("partition_date", "episode_id", "step", "action", "reward", "terminal",
                  "timeout", "behavior_prob")
"""The transitions columns a window keeps besides the state features and the replay's."""


WINDOW_MAX_TRAIN_ROWS = 2_000_000
"""Training decisions a window keeps at most (the nightly default): beyond it, a seeded
sample of whole training episodes. The nightly training draws 4,000 mini-batches of 256 (1.0M
decisions), so a larger split adds memory, not information the fit uses."""
WINDOW_MAX_EVAL_ROWS = 1_000_000
"""Held-out decisions a window keeps at most (the nightly default): beyond it, a seeded
sample of whole held-out episodes, so evaluation's memory stops growing with the shop. The
estimates are then those of a shop with that many held-out decisions: unbiased as before,
their intervals as wide as the sample's size makes them."""


def load_window(
    paths: DataPaths, domain: Domain | str, day: dt.date, window_days: int,
    eval_fraction: float, seed: int, settle_days: int | None = None, *,
    max_train_rows: int | None = None, max_eval_rows: int | None = None,
) -> WindowData:
    """Training and held-out evaluation episodes of the window ending at ``day``.

    Episodes are keyed by their start day (the transitions' partition). Training uses the
    episodes that started in the last ``window_days`` days up to ``day``: an episode still
    running ends in a ``timeout``, which Q-learning bootstraps through. Evaluation needs whole
    episodes, since a policy's value is its return over the whole episode (a pricing season's
    last days, when unsold stock loses its value, are where policies differ most), so the
    held-out episodes come from the ``window_days`` start days ending ``settle_days`` before
    ``day`` (default: the domain's ``lookahead_days``, the longest an episode lasts), whose
    episodes are complete once ``day`` is loaded. A seeded share ``eval_fraction`` of the
    episodes is held out (:func:`split_episodes`: the same episodes every night); a held-out
    episode is evaluated if it started in the evaluation window and never trains.

    ``max_train_rows`` / ``max_eval_rows`` (None: no limit): where the training or the
    evaluated episodes hold more decisions, a seeded share of their episodes (whole episodes,
    the share that brings the expected decisions to the limit) is kept, and only the kept
    episodes' rows are read. Below both limits the window is exactly the unlimited one.
    """
    domain = _domain(domain)
    settle = settle_days_for(domain, settle_days)
    start = day - dt.timedelta(days=window_days - 1)
    eval_end = day - dt.timedelta(days=settle)
    eval_start = eval_end - dt.timedelta(days=window_days - 1)
    # only what the arrays read: the next-state features, ids and timestamps are a third to
    # half of a row and would be copied by every step below
    wanted = [*WINDOW_COLUMNS, *domain.feature_columns, *domain.replay_columns]
    first = min(start, eval_start)
    wh = Warehouse(paths.warehouse)
    kept = None
    if max_train_rows is not None or max_eval_rows is not None:
        kept = _sampled_episodes(wh.episode_sizes(domain.transitions_table, first, day),
                                 eval_fraction, seed, start, eval_start, eval_end,
                                 max_train_rows, max_eval_rows)
    if kept is None:
        frame = wh.read_partitions(domain.transitions_table, first, day, wanted)
        if not frame.is_empty():
            frame = split_episodes(frame, eval_fraction, seed)
    else:
        log.info("%s: the window keeps %d sampled episodes (limits: %s training, %s held-out "
                 "decisions)", domain.name, kept.height, max_train_rows, max_eval_rows)
        frame = wh.read_episodes(domain.transitions_table, first, day, wanted,
                                 kept["episode_id"]).join(kept.select("episode_id", "is_eval"),
                                                          on="episode_id", how="left")
    if frame.is_empty():
        raise ValueError(f"no {domain.name} transitions between {first} and "
                         f"{day}; build the transitions first")
    evaluated, trains = _window_parts(start, eval_start, eval_end)
    held = frame.filter(evaluated)
    train = frame.filter(trains)
    del frame
    if train.is_empty():
        raise ValueError(f"{domain.name}: no training episodes started between {start} and "
                         f"{day}")
    if held.is_empty():
        raise ValueError(
            f"{domain.name}: no held-out episodes started between {eval_start} and {eval_end}: "
            f"evaluation uses whole episodes, which needs transitions from {settle} day(s) "
            f"before {day} (settle_days; the domain's episodes last up to {domain.lookahead_days}"
            f" day(s) after their start); load earlier days or lower settle_days")
    return WindowData(
        start=start, end=day,
        train=decision_arrays(train, domain.feature_columns),
        evaluation=decision_arrays(held, domain.feature_columns, domain.replay_columns),
        train_episodes=train["episode_id"].n_unique(),
        eval_episodes=held["episode_id"].n_unique(),
        eval_start=eval_start, eval_end=eval_end, settle_days=settle,
        max_train_rows=max_train_rows, max_eval_rows=max_eval_rows,
    )


def _window_parts(start: dt.date, eval_start: dt.date, eval_end: dt.date
                  ) -> tuple[pl.Expr, pl.Expr]:
    """(evaluated, trains): the rows of held-out episodes that started in the evaluation
    window, and the rows of the episodes not held out that started in the training window
    (rows carry ``is_eval`` from :func:`split_episodes` and their ``partition_date``). A
    held-out episode never trains, also while it waits to be evaluated on a later night."""
    evaluated = pl.col("is_eval") & pl.col("partition_date").is_between(eval_start, eval_end)
    return evaluated, ~pl.col("is_eval") & (pl.col("partition_date") >= start)


def _sampled_episodes(sizes: pl.DataFrame, eval_fraction: float, seed: int, start: dt.date,
                      eval_start: dt.date, eval_end: dt.date, max_train_rows: int | None,
                      max_eval_rows: int | None) -> pl.DataFrame | None:
    """The episodes a limited window keeps (``episode_id``, ``is_eval``), or None when both
    parts are within their limits (the window keeps everything). ``sizes``: one row per
    episode with its ``partition_date`` and decisions ``n``. The hold-out split is
    :func:`split_episodes`'s (the same episodes held out as in the unlimited window); each
    part over its limit keeps the episodes whose seeded uniform draw falls below
    ``limit / decisions``."""
    if sizes.is_empty():
        return None
    sizes = split_episodes(sizes, eval_fraction, seed)
    evaluated, trains = _window_parts(start, eval_start, eval_end)
    parts = {"eval": (evaluated, max_eval_rows), "train": (trains, max_train_rows)}
    totals = sizes.select(**{k: pl.col("n").filter(m).sum() for k, (m, _) in parts.items()})
    share = {k: 1.0 if limit is None or totals[k][0] <= limit else limit / totals[k][0]
             for k, (_, limit) in parts.items()}
    if share == {"eval": 1.0, "train": 1.0}:
        return None
    ids = sizes.select(pl.col("episode_id").unique().sort())
    draw = ids.with_columns(_u=pl.Series(np.random.default_rng([seed, 1]).random(ids.height)))
    return sizes.join(draw, on="episode_id", how="left").filter(
        (evaluated & (pl.col("_u") < share["eval"])) | (trains & (pl.col("_u") < share["train"]))
    ).select("episode_id", "is_eval")


def candidates_dir(paths: DataPaths, domain: Domain | str, day: dt.date) -> Path:
    return paths.models / _domain(domain).name / f"{day:%Y-%m-%d}"


def warm_start_model(paths: DataPaths, domain: Domain, day: dt.date
                     ) -> tuple[Path, CandidateRecord] | None:
    """The incumbent's model folder and record when it was trained on the domain's current
    feature schema (None otherwise: no warm start)."""
    inc = incumbent_record(paths, domain, day)
    if inc is None or not inc.model_dir:
        return None
    model_dir = Path(inc.model_dir)
    if not CandidateRecord.exists(model_dir):
        return None
    trained = CandidateRecord.read(model_dir)
    if trained.context is None or trained.context.feature_names != tuple(domain.feature_names):
        return None
    return model_dir, trained


def training_context(domain: Domain, window: WindowData, window_days: int,
                     eval_fraction: float, seed: int) -> TrainingContext:
    """What every candidate of a window records about its data (``training.json``)."""
    return TrainingContext(
        domain=domain.name,
        data_window=DataWindow(str(window.start), str(window.end), window_days),
        split=Split(eval_fraction=eval_fraction, seed=seed,
                    train_episodes=window.train_episodes, eval_episodes=window.eval_episodes,
                    settle_days=window.settle_days, eval_start=str(window.eval_start),
                    eval_end=str(window.eval_end), max_train_rows=window.max_train_rows,
                    max_eval_rows=window.max_eval_rows),
        feature_names=tuple(domain.feature_names),
        action_map={str(i): name for i, name in enumerate(domain.action_names)},
        action_mask_feature=tuple(domain.mask_features) or None,
    )


def train_candidates(
    paths: DataPaths,
    domain: Domain | str,
    day: dt.date,
    algorithms: list[str],
    config: TrainingConfig,
    *,
    window_days: int,
    eval_fraction: float,
    settle_days: int | None = None,
    max_train_rows: int | None = WINDOW_MAX_TRAIN_ROWS,
    max_eval_rows: int | None = WINDOW_MAX_EVAL_ROWS,
    warm_start: bool = True,
    progress: Any = None,
) -> tuple[WindowData, list[TrainedCandidate]]:
    """Trains every algorithm on the window's training split; replaces the day's models.

    With ``warm_start`` a candidate of the incumbent's algorithm starts from the incumbent's
    weights when the feature schema is unchanged (recorded in its ``training.json``).
    ``settle_days``, ``max_train_rows``, ``max_eval_rows``: see :func:`load_window` (the
    candidates record them, so evaluation and export read the same window).
    """
    from offline_rl.algos.training import auto_reward_scale, train_candidate

    domain = _domain(domain)
    window = load_window(paths, domain, day, window_days, eval_fraction, config.seed,
                         settle_days, max_train_rows=max_train_rows, max_eval_rows=max_eval_rows)
    dataset = to_mdp_dataset(window.train, domain.n_actions)
    if dataset.transition_count == 0:
        raise ValueError(
            f"{domain.name}: the training window {window.start}..{window.end} holds "
            f"{window.train_episodes} episode(s) but no transition to learn from (each is one "
            "decision of an episode still running); train on more days (window_days), or "
            "after the next day's transitions complete these episodes")
    if config.reward_scale is None:  # one scale for every candidate of the window
        config = dataclasses.replace(config, reward_scale=auto_reward_scale(window.train.rewards))
    final = candidates_dir(paths, domain, day)
    final.parent.mkdir(parents=True, exist_ok=True)
    # train into a fresh folder and swap it in at the end: a killed run leaves the previous
    # models (or none) in place, never a mix
    out = Path(tempfile.mkdtemp(prefix=f".{final.name}.training-", dir=final.parent))
    context = training_context(domain, window, window_days, eval_fraction, config.seed).as_dict()
    incumbent = warm_start_model(paths, domain, day) if warm_start else None
    trained = []
    for name in algorithms:
        extra: dict[str, Any] = {}
        if domain.mask_indices:
            extra["mask_indices"] = domain.mask_indices
        candidate_config = config
        if incumbent is not None and incumbent[1].name == name:
            source, record = incumbent
            extra["init_from"] = source
            # keep the incumbent's reward scale, so its Q-values start on the right scale
            if record.reward_scale:
                candidate_config = dataclasses.replace(config, reward_scale=record.reward_scale)
        trained.append(train_candidate(name, dataset, candidate_config, out / name,
                                       context=context, progress=progress, **extra))
    _swap_in(out, final)
    trained = [dataclasses.replace(t, directory=final / t.name) for t in trained]
    return window, trained


def _swap_in(staged: Path, final: Path) -> None:
    """Replaces ``final`` by ``staged`` (two renames; leftovers of killed runs are removed)."""
    old = final.with_name(f".{final.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        final.rename(old)
    staged.rename(final)
    if old.exists():
        shutil.rmtree(old)
    for leftover in final.parent.glob(f".{final.name}.training-*"):
        shutil.rmtree(leftover, ignore_errors=True)


# ---------------------------------------------------------------- evaluation

def incumbent_record(paths: DataPaths, domain: Domain | str, day: dt.date
                     ) -> RegistryDecision | None:
    """The registry row of the policy in production before ``day``, if any.

    Production is what ``exports/<domain>/latest`` names, so a rollback
    (``offline-rl exports rollback``) changes the incumbent the next night's gate compares
    against. Without exports (or for a backfill of a day before that version was decided),
    it is the last promotion before ``day``.
    """
    name = _domain(domain).name
    wh = Warehouse(paths.warehouse)
    version = current_version(paths.exports / name)
    exported = promoted_before(wh, name, day, version) if version is not None else None
    return exported or promoted_before(wh, name, day)


OPE_CONFIG_FILE = "ope_config.json"
"""The OPE settings a day's evaluation used, beside its candidates."""


def evaluation_window(paths: DataPaths, domain: Domain, day: dt.date
                      ) -> tuple[Path, list[str], WindowData]:
    """The day's candidates folder, its candidates' names and the window (with the
    held-out episodes) their training recorded."""
    root = candidates_dir(paths, domain, day)
    names = sorted(p.name for p in root.iterdir() if (p / "model.d3").is_file()) if root.is_dir() \
        else []
    if not names:
        raise ValueError(f"no trained candidates in {root}; run training first")
    context = CandidateRecord.read(root / names[0]).require_context(root / names[0])
    split = context.split
    window = load_window(paths, domain, day, context.data_window.days, split.eval_fraction,
                         split.seed, split.settle_days, max_train_rows=split.max_train_rows,
                         max_eval_rows=split.max_eval_rows)
    return root, names, window


def evaluate_candidates(
    paths: DataPaths, domain: Domain | str, day: dt.date, ope: OPEConfig
) -> tuple[Estimate, list[PolicyEvaluation]]:
    """OPE of the day's candidates (and of the incumbent) on the held-out episodes.

    The window and the train/evaluation split are those recorded by training, so every
    policy is evaluated on episodes none of the day's candidates was trained on. Writes every
    estimate to ``ope_estimates`` (replacing the day's rows) and returns the behaviour
    policy's on-policy estimate and the evaluations.
    """
    from offline_rl.algos.training import auto_reward_scale, load_candidate

    domain = _domain(domain)
    root, names, window = evaluation_window(paths, domain, day)
    data = window.evaluation
    dataset = to_mdp_dataset(data, domain.n_actions)
    behavior = evaluate_behavior(data, ope)
    if ope.fqe_reward_scale is None:  # one scale for every policy evaluated on this data
        ope = dataclasses.replace(ope, fqe_reward_scale=auto_reward_scale(data.rewards))
    # the export values the served policy with the same settings (its promise)
    (root / OPE_CONFIG_FILE).write_text(json.dumps(dataclasses.asdict(ope)))
    policies: list[tuple[str, Path, str]] = [(n, root / n, CANDIDATE) for n in names]
    inc = incumbent_record(paths, domain, day)
    if inc is not None and inc.model_dir and Path(inc.model_dir).is_dir():
        policies.append((f"incumbent:{inc.candidate}@{inc.partition_date}",
                         Path(inc.model_dir), INCUMBENT))
    replay = prepare_replay(domain.replay, data)
    if replay is not None and not replay.available:
        log.warning("%s %s: no replay estimate: %s", domain.name, day, replay.reason)
    # every policy's FQE trained in one batched network: each gets the fit it gets alone
    evaluated = evaluate_targets([(name, load_candidate(directory))
                                  for name, directory, _ in policies], data, ope,
                                 n_actions=domain.n_actions, replay=replay, dataset=dataset)
    evaluations = [dataclasses.replace(ev, role=role)
                   for ev, (_, _, role) in zip(evaluated, policies, strict=True)]
    # each candidate's gain over either incumbent the gate may judge it against, paired per
    # episode (GateConfig.paired_by = "episodes")
    evaluations = with_episode_gains(evaluations, BEHAVIOR, behavior_terms(data, ope))
    for production in [e for e in evaluations if e.is_incumbent]:
        evaluations = with_episode_gains(evaluations, production.name, production.episode_terms)
    write_evaluations(Warehouse(paths.warehouse), domain.name, day,
                      DayEvaluations(behavior, evaluations,
                                     tuple(behavior_replicates(data, ope))),
                      eval_episodes=window.eval_episodes, eval_decisions=len(data.actions))
    return behavior, evaluations


def read_evaluations(paths: DataPaths, domain: Domain | str, day: dt.date) -> DayEvaluations:
    """The day's evaluations of ``domain`` (``offline_rl.estimates``)."""
    return estimates.read_evaluations(Warehouse(paths.warehouse), _domain(domain).name, day)


# ---------------------------------------------------------------- promotion

@dataclass(frozen=True)
class PromotionResult:
    decision: Decision
    behavior: Estimate
    evaluations: list[PolicyEvaluation] = field(default_factory=list)


def promote(paths: DataPaths, domain: Domain | str, day: dt.date, gate: GateConfig
            ) -> PromotionResult:
    """Runs the gate (with the domain's calibrated settings where ``gate`` leaves them unset)
    on the day's evaluations and records the decision in the registry."""
    domain = _domain(domain)
    gate = gate.for_domain(domain.gate_max_weight_share, domain.gate_headline)
    behavior, evaluations, behavior_reps = read_evaluations(paths, domain, day)
    incumbents = [e for e in evaluations if e.is_incumbent]
    candidates = [e for e in evaluations if not e.is_incumbent]
    if incumbents:  # evaluation re-valued the policy in production on the same data
        # without the headline estimate the gate keeps it, with the reason
        incumbent = evaluated_incumbent(incumbents[0], gate.headline_estimator)
    else:
        incumbent = Incumbent(BEHAVIOR, behavior.value, behavior.low, behavior.high,
                              behavior_reps)
    decision = decide(candidates, incumbent, gate)
    chosen = next((e for e in candidates if e.name == decision.candidate), None)
    model_dir = str(candidates_dir(paths, domain, day) / decision.candidate) \
        if decision.candidate else None
    algorithm = None
    if model_dir:
        algorithm = CandidateRecord.read(model_dir).algorithm
    head = chosen.estimates[gate.headline_estimator] if chosen else None
    record_decision(Warehouse(paths.warehouse), RegistryDecision(
        domain=domain.name, partition_date=day, decided_at=dt.datetime.now(dt.UTC),
        promoted=decision.promoted, candidate=decision.candidate, algorithm=algorithm,
        incumbent=incumbent.name, incumbent_value=incumbent.value,
        headline_estimator=gate.headline_estimator,
        headline_value=head.value if head else None, headline_low=head.low if head else None,
        headline_high=head.high if head else None, reasons=tuple(decision.reasons),
        evidence=decision.as_dict(), model_dir=model_dir))
    return PromotionResult(decision, behavior, evaluations)


def read_decision(paths: DataPaths, domain: Domain | str, day: dt.date) -> RegistryDecision:
    """The gate's decision of ``domain`` on ``day`` (``ValueError`` when there is none)."""
    return decisions.read_decision(Warehouse(paths.warehouse), _domain(domain).name, day)


# ---------------------------------------------------------------- export

def feature_ranges(window: WindowData, names: list[str]) -> dict[str, list[float]]:
    """Each feature's smallest and largest value in the window's training decisions (what
    the loader warns outside of)."""
    x = window.train.observations
    return {name: [float(x[:, j].min()), float(x[:, j].max())] for j, name in enumerate(names)}


def serving_promise(paths: DataPaths, domain: Domain, day: dt.date, built: BuiltExport,
                    headline: str, evaluation: tuple[Path, WindowData] | None = None,
                    ) -> dict[str, Any]:
    """What the promotion promises: the value of the policy as it will be served (the
    greedy action with its exploration, a stochastic target) on the day's held-out episodes,
    by the gate's headline estimator with the day's OPE settings. The monitor holds what the
    served policy then earns against it."""
    import torch

    from offline_rl.export.loader import LoadedPolicy

    if evaluation is None:
        root, _, window = evaluation_window(paths, domain, day)
    else:  # the caller's (its candidates folder and window) instead of reading them again
        root, window = evaluation
    record = root / OPE_CONFIG_FILE
    if record.is_file():
        settings: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                                    for k, v in json.loads(record.read_text()).items()}
        ope = OPEConfig(**settings)
    else:
        ope = OPEConfig()
    if built.serving_torchscript is None:
        raise ValueError("the export has no serving head to value")
    served = LoadedPolicy(path=as_location(built.torchscript.parent), manifest=built.manifest,
                          module=torch.jit.load(str(built.torchscript), map_location="cpu"),
                          serving=torch.jit.load(str(built.serving_torchscript),
                                                 map_location="cpu"))
    data = window.evaluation
    replay = prepare_replay(domain.replay, data)
    ev = evaluate_policy("served", StochasticTarget(served.action_probs, seed=ope.seed), data,
                         None, ope, n_actions=domain.n_actions, replay=replay)
    head = ev.estimates.get(headline)
    return {
        "estimator": headline,
        **({"value": head.value, "low": head.low, "high": head.high, "stderr": head.stderr}
           if head is not None else {"value": None, "low": None, "high": None, "stderr": None,
                                     "reason": f"no {headline} estimate of the served policy"}),
        "alpha": ope.alpha,
        "estimates": {k: e.as_dict() for k, e in ev.estimates.items()},
        "eval_window": {"start": str(window.eval_start), "end": str(window.eval_end),
                        "episodes": window.eval_episodes},
        "exploration": built.manifest.get("exploration"),
    }


def export_promoted(paths: DataPaths, domain: Domain | str, day: dt.date,
                    exploration: Exploration | None = None) -> ExportedPolicy | None:
    """Publishes the day's promoted policy (None if the gate kept the incumbent): the greedy
    graph and the serving head with ``exploration`` (default: the domain's,
    ``Domain.exploration``), which the manifest records.

    Idempotent: if ``latest`` already holds this day's decision, nothing new is written.
    """
    from offline_rl.algos.training import load_candidate
    from offline_rl.export.build import build_export

    domain = _domain(domain)
    exploration = exploration or domain.exploration
    decision = read_decision(paths, domain, day)
    if not decision.promoted:
        return None
    domain_root = paths.exports / domain.name
    current = current_version(domain_root)
    if current is not None:
        manifest = json.loads((domain_root / current / "manifest.json").read_text())
        if manifest.get("decision", {}).get("partition_date") == str(day) and \
                manifest.get("candidate") == decision.candidate:
            set_export_version(Warehouse(paths.warehouse), domain.name, day, current)
            return ExportedPolicy(current, domain_root / current, manifest)
    if not decision.model_dir:
        raise ValueError(f"{domain.name} {day}: the promotion records no model folder")
    model_dir = Path(decision.model_dir)
    training = CandidateRecord.read(model_dir)
    context = training.require_context(model_dir)
    trained = context.as_dict()
    behavior, evaluations, _ = read_evaluations(paths, domain, day)
    chosen = next(e for e in evaluations if e.name == decision.candidate)
    manifest = {
        "domain": domain.name,
        "candidate": decision.candidate,
        "algorithm": training.algorithm,
        "data_window": trained["data_window"],
        "feature_schema": trained["feature_schema"],
        "action_map": trained["action_map"],
        "estimates": {k: v.as_dict() for k, v in chosen.estimates.items()},
        "behavior_estimate": behavior.as_dict(),
        "decision": {"partition_date": str(day), "reasons": list(decision.reasons),
                     "incumbent": decision.incumbent,
                     "headline_estimator": decision.headline_estimator},
        "training": {"seed": training.seed, "config": dict(training.training_config),
                     "device": training.device},
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    root, _, window = evaluation_window(paths, domain, day)
    with tempfile.TemporaryDirectory(prefix="export-") as tmp:
        # TorchScript + ONNX with scaling inside, outputs (action, values); both files are
        # checked against the model before they are published
        built = build_export(load_candidate(model_dir), Path(tmp),
                             feature_names=list(context.feature_names),
                             action_map=trained["action_map"],
                             action_mask_feature=trained["action_mask_feature"],
                             exploration=exploration)
        manifest = {**manifest, **built.manifest,
                    "algorithm": training.algorithm,
                    "feature_schema": {**trained["feature_schema"],
                                       **built.manifest["feature_schema"]},
                    "promise": serving_promise(paths, domain, day, built,
                                               decision.headline_estimator,
                                               evaluation=(root, window)),
                    "feature_ranges": feature_ranges(
                        window, list(context.feature_names)),
                    "one_hot_groups": one_hot_groups(
                        window.train.observations, list(context.feature_names))}
        exported = publish(paths.exports, domain.name, built.torchscript, manifest,
                           extra_files=built.extra_files)
    set_export_version(Warehouse(paths.warehouse), domain.name, day, exported.version)
    return exported

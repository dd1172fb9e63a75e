"""What a decision domain is: a small declarative unit every pipeline stage is driven by.

A domain names the landing datasets it reads, its state features and actions, how its
transitions are built from the raw tables (one lazy polars query), and the simulator that
gives ground truth for it. Adding a sixth domain means adding one module that defines a
``Domain`` (under ``offline_rl/domains/``, or anywhere importable and named in
``$OFFLINE_RL_DOMAINS``; see :mod:`offline_rl.domains`); ingestion and its rules, the
simulated logs and truth, transitions, training, evaluation, the gate, the export, the command
line and the generated docs are generated from it.

The transitions table every domain produces (``<domain>_transitions``) has these columns, in
this order, and may add columns of its own after them (their names must not start with
``f_`` or ``next_f_``):

=================  ===================  ==================================================
column             type                 meaning
=================  ===================  ==================================================
partition_date     Date                 UTC start date of the episode (its partition)
episode_id         String               episode key (session, cart, SKU-episode, ...)
step               Int32                0-based decision index within the episode
decision_id        String               id of the logged decision (unique)
decision_ts        Datetime(us, UTC)    time of the decision
action             Int32                action id in ``[0, n_actions)``
behavior_prob      Float64              logging policy's probability of ``action``, (0, 1]
policy_version     String               the policy that served the decision (null: unknown)
reward             Float64              reward credited to the decision (finite)
terminal           Boolean              last decision of an episode that has ended
timeout            Boolean              last decision we have of an episode cut by the data
f_<feature>        Float32              state feature, one per ``feature_names``
next_f_<feature>   Float32              next state's feature (0.0 at the last step)
=================  ===================  ==================================================

Each episode's steps are ``0..n-1``; exactly its last step is ``terminal`` or ``timeout``.
Action masks are features: a masked domain lists in ``mask_features`` one 0/1 feature per
action (1.0 when the action is allowed in that state), so training targets, greedy actions
and exported policies can honour them from the observation alone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from offline_rl.data.schemas import SourceSchema
from offline_rl.export.exploration import Exploration, default_exploration
from offline_rl.ope.gate import GateConfig
from offline_rl.ope.replay import REPLAY
from offline_rl.simulator.base import Simulation
from offline_rl.simulator.scenarios import get_scenario
from offline_rl.simulator.world import make_world

TS = pl.Datetime("us", "UTC")

SERVING_MIN_ESS = 2 * GateConfig.min_ess_fraction
"""Per-decision ESS share the default serving exploration keeps for a candidate that
disagrees with the served greedy action on half the decisions: twice what the gate needs."""

BASE_COLUMNS: dict[str, pl.DataType] = {
    "partition_date": pl.Date(),
    "episode_id": pl.String(),
    "step": pl.Int32(),
    "decision_id": pl.String(),
    "decision_ts": TS,
    "action": pl.Int32(),
    "behavior_prob": pl.Float64(),
    "policy_version": pl.String(),
    "reward": pl.Float64(),
    "terminal": pl.Boolean(),
    "timeout": pl.Boolean(),
}
"""The leading columns of every transitions table, with their types."""

BuildTransitions = Callable[..., pl.LazyFrame]
"""``build(raw, *, sessions_from, sessions_to, data_end) -> LazyFrame``.

``raw`` maps each of the domain's ``sources`` to a lazy frame of its raw table rows (with the
``partition_date`` column) covering ``[sessions_from - lookback_days, sessions_to +
lookahead_days]``; the result holds the transitions of the episodes that *start* in
``[sessions_from, sessions_to]``, in the table layout above. ``data_end`` (tz-aware UTC) is the
end of the loaded data: an episode whose end is not in the data yet has a ``timeout`` last step.
"""


@dataclass(frozen=True)
class Domain:
    """A decision domain.

    Attributes:
        name: Short name; prefixes the domain's tables, assets, model and export folders.
        title: One line on the decision being made (shown in the UI and the docs).
        sources: Landing datasets it reads, by name (each declared in some domain's
            ``landing``).
        feature_names: State feature names, in order (columns ``f_<name>``).
        action_names: Action names; an action's index is its id.
        build_transitions: The transitions query (see ``BuildTransitions``).
        simulation: The domain's part of the simulated shop (its dynamics, default
            configuration and log generator, ``offline_rl.simulator.base.Simulation``).
        landing: The landing datasets the domain owns (its log producers' contract: columns,
            keys, value rules); ingestion loads each into ``raw_<name>``.
        order: Where the pipeline and the reports list the domain (ascending, then by name).
        observe_as_logged: Wraps the simulation's simulator so that its ``observe`` returns
            exactly ``feature_names`` where the transitions add features to the dynamics'
            own (inventory: the action mask); None: the simulator already does.
        lookback_days: Raw partitions before the day the query needs.
        lookahead_days: Raw partitions after the day the query needs (episodes that last
            several days are completed from later partitions when they are loaded).
        mask_features: For masked domains, one feature per action (in action order) that is
            1.0 when the action is allowed; empty when every action is always allowed.
        segment_column: A transitions column that identifies a segment (category, market, ...)
            for transfer to new segments; None if the domain has none.
        reward_doc: One line on the reward.
        episode_doc: One line on what an episode is and how it ends.
        extra: Free-form facts recorded with every model (e.g. the action values in units).
        gate_max_weight_share: The promotion gate's limit on the share of the trajectory
            importance weight one held-out episode may hold, where ``offline-rl validate-ope``
            shows the domain needs another than ``offline_rl.ope.gate.DEFAULT_MAX_WEIGHT_SHARE``
            (1.0 turns the check off); None: the default. Applied when the gate's own setting
            is left unset (``GateConfig.for_domain``). Recommendation, ads and pricing turn it
            off (the logs cover their candidates' decisions step by step, so one episode
            holding most of the trajectory weight does not make doubly robust unreliable
            there); inventory keeps the default, which guards against FQE over-valuing
            candidates that leave the logs' coverage. The validation runs behind these choices
            are in ``docs/gate.md``.
        replay: The domain's replay of held-out episodes under any policy (see
            ``offline_rl.ope.replay.Replay``), where its decisions do not change the exogenous
            inputs the logs record (inventory: demand); None: the domain offers none. Its
            ``columns`` are kept in the transitions and read into ``DecisionArrays.extras``.
        gate_headline: The estimator the promotion gate decides on for this domain (used when
            the gate's own ``headline`` is unset, ``GateConfig.for_domain``): ``dr`` unless the
            domain has a better one (inventory: ``replay``, see
            ``offline_rl.domains.inventory_replay``).
        serving_exploration: How the exported policy explores when it is served
            (:mod:`offline_rl.export.exploration`); None: :attr:`exploration`'s default.
        share_key: A column of every source that no episode crosses (all rows of an episode
            share its value) and by which the transitions query orders its rows first, so the
            query may run on consecutive ranges of its values, one at a time, where the raw
            rows are many (``offline_rl.pipeline.TRANSITIONS_SHARE_ROWS``); None: the query
            always reads the whole range at once.
        progress_feature: The state feature that says how far into its episode a decision
            is, from 0 at the start towards 1 at the end (the validation's ``early_late``
            candidate acts on it); None: the domain has none.
    """

    name: str
    title: str
    sources: tuple[str, ...]
    feature_names: tuple[str, ...]
    action_names: tuple[str, ...]
    build_transitions: BuildTransitions
    simulation: Simulation
    landing: tuple[SourceSchema, ...] = ()
    order: int = 100
    observe_as_logged: Callable[[Any], Any] | None = None
    lookback_days: int = 1
    lookahead_days: int = 1
    mask_features: tuple[str, ...] = ()
    segment_column: str | None = None
    reward_doc: str = ""
    episode_doc: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)
    gate_max_weight_share: float | None = None
    replay: Any | None = None
    gate_headline: str = "dr"
    serving_exploration: Exploration | None = None
    share_key: str | None = None
    progress_feature: str | None = None

    def __post_init__(self) -> None:
        if self.gate_headline == REPLAY and self.replay is None:
            raise ValueError(f"{self.name}: gate_headline {REPLAY!r} needs the domain's replay")
        share = self.gate_max_weight_share
        if share is not None and not 0.0 < share <= 1.0:
            raise ValueError(f"{self.name}: gate_max_weight_share must be in (0, 1], got "
                             f"{share}")
        if not self.name.isidentifier() or not self.name.islower():
            raise ValueError(f"domain name {self.name!r} must be a lower-case identifier")
        unknown = [m for m in self.mask_features if m not in self.feature_names]
        if unknown:
            raise ValueError(f"{self.name}: mask features {unknown} are not state features")
        if self.mask_features and len(self.mask_features) != len(self.action_names):
            raise ValueError(f"{self.name}: need one mask feature per action")
        if self.progress_feature is not None and self.progress_feature not in self.feature_names:
            raise ValueError(f"{self.name}: progress feature {self.progress_feature!r} is not "
                             "a state feature")

    @property
    def n_actions(self) -> int:
        return len(self.action_names)

    def dynamics(self, scenario: str = "default") -> Any:
        """The simulation's own simulator in ``scenario`` (the shop that wrote the logs)."""
        scen = get_scenario(scenario)
        return self.simulation.make(make_world(scen.world),
                                    scen.config_for(self.name, self.simulation.config))

    def make_simulator(self, scenario: str = "default") -> Any:
        """The domain's simulator in ``scenario`` (see
        ``offline_rl.simulator.base.DomainSimulatorProtocol``), whose ``observe`` returns
        exactly ``feature_names``: the ground truth of any policy trained on the logs."""
        sim = self.dynamics(scenario)
        return sim if self.observe_as_logged is None else self.observe_as_logged(sim)

    @property
    def exploration(self) -> Exploration:
        """The served policy's exploration: ``serving_exploration``, else epsilon-uniform with
        the least epsilon that leaves a candidate disagreeing with the served greedy action on
        half the decisions a per-decision ESS of twice the gate's minimum
        (``SERVING_MIN_ESS``; :func:`offline_rl.export.exploration.default_exploration`)."""
        if self.serving_exploration is not None:
            return self.serving_exploration
        return default_exploration(self.n_actions, SERVING_MIN_ESS)

    @property
    def feature_columns(self) -> list[str]:
        return [f"f_{n}" for n in self.feature_names]

    @property
    def next_feature_columns(self) -> list[str]:
        return [f"next_f_{n}" for n in self.feature_names]

    @property
    def replay_columns(self) -> tuple[str, ...]:
        """The logged columns the domain's replay reads (empty without one)."""
        return tuple(self.replay.columns) if self.replay is not None else ()

    @property
    def mask_indices(self) -> list[int] | None:
        """Positions of the mask features in the observation, or None (no mask)."""
        if not self.mask_features:
            return None
        return [self.feature_names.index(m) for m in self.mask_features]

    @property
    def transitions_table(self) -> str:
        return f"{self.name}_transitions"

    @property
    def schema(self) -> dict[str, pl.DataType]:
        """The required columns of the transitions table and their types."""
        return {
            **BASE_COLUMNS,
            **{c: pl.Float32() for c in self.feature_columns},
            **{c: pl.Float32() for c in self.next_feature_columns},
        }

    def build_day(self, raw: Mapping[str, pl.LazyFrame | pl.DataFrame], day: dt.date,
                  loaded_to: dt.date) -> pl.LazyFrame:
        """The transitions of the episodes starting on ``day``, from raw rows (with
        ``partition_date``) of which the partitions up to ``loaded_to`` are loaded.

        Reads ``lookback_days`` before the day to ``lookahead_days`` after it (at most to
        ``loaded_to``); the data end after ``loaded_to``, so episodes still open then end in
        a timeout.
        """
        first = day - dt.timedelta(days=self.lookback_days)
        last = min(loaded_to, day + dt.timedelta(days=self.lookahead_days))
        window = {name: frame.lazy().filter(pl.col("partition_date").is_between(first, last))
                  for name, frame in raw.items()}
        data_end = dt.datetime.combine(loaded_to + dt.timedelta(days=1), dt.time(),
                                       tzinfo=dt.UTC)
        return self.build(window, sessions_from=day, sessions_to=day, data_end=data_end)

    def build(
        self, raw: Mapping[str, pl.LazyFrame], *, sessions_from: dt.date, sessions_to: dt.date,
        data_end: dt.datetime,
    ) -> pl.LazyFrame:
        """The domain's transitions query with the table layout enforced."""
        if data_end.tzinfo is None:
            raise ValueError("data_end must be timezone-aware (UTC)")
        missing = [s for s in self.sources if s not in raw]
        if missing:
            raise ValueError(f"{self.name}: raw tables missing for {missing}")
        frame = self.build_transitions(raw, sessions_from=sessions_from, sessions_to=sessions_to,
                                       data_end=data_end)
        required = self.schema
        extra = [c for c in frame.collect_schema().names() if c not in required]
        return frame.select(
            *[pl.col(c).cast(t) for c, t in required.items()],
            *extra,
        )


def next_state_columns(feature_columns: list[str], last: str = "_last") -> list[pl.Expr]:
    """``next_f_*`` on a frame sorted by (episode, step): the next row's features, 0.0 where
    boolean column ``last`` marks an episode's last step (a global shift, no window)."""
    return [pl.when(pl.col(last)).then(0.0).otherwise(pl.col(c).shift(-1))
            .cast(pl.Float32).alias(f"next_{c}") for c in feature_columns]


def daily_episode_transitions(
    joined: pl.LazyFrame, *, ended: pl.Expr, reward: pl.Expr, features: dict[str, pl.Expr],
    decision_id: str, decision_ts: str, extra: tuple[str, ...] = (),
) -> pl.LazyFrame:
    """The tail of a transitions query of episodes with one decision per ``day_index``
    (replenishment, pricing seasons): of ``joined`` (one row per episode and day, with
    ``start_date``), the unbroken run of days from day 0, sorted by episode and day, with the
    reward, the features ``f_<name>``, the next state and ``terminal`` (``ended`` on an
    episode's last kept day) or ``timeout`` (its last kept day without ``ended``), selected in
    the contract's order."""
    feature_cols = [f"f_{n}" for n in features]
    last = pl.col("episode_id") != pl.col("episode_id").shift(-1)
    return (
        joined
        .filter(pl.col("day_index") == pl.col("day_index").rank("ordinal").over("episode_id")
                - 1)
        .sort("episode_id", "day_index")
        .with_columns(
            _last=last.fill_null(True),
            reward=reward,
            **{f"f_{n}": e.cast(pl.Float32) for n, e in features.items()},
        )
        .with_columns(
            *next_state_columns(feature_cols),
            terminal=pl.col("_last") & ended,
            timeout=pl.col("_last") & ~ended,
        )
        .select(*transition_columns(
            feature_cols, partition_date=pl.col("start_date"), episode_id="episode_id",
            step="day_index", decision_id=decision_id, decision_ts=decision_ts, extra=extra))
    )


def transition_columns(
    feature_columns: list[str],
    *,
    partition_date: pl.Expr,
    episode_id: str,
    step: str,
    decision_id: str,
    decision_ts: str,
    extra: tuple[str, ...] = (),
) -> list[pl.Expr]:
    """The final ``select`` of a transitions query: the table's columns in contract order,
    from the query's own column names, then ``extra``."""
    return [
        partition_date.alias("partition_date"),
        pl.col(episode_id).alias("episode_id"),
        pl.col(step).alias("step"),
        pl.col(decision_id).alias("decision_id"),
        pl.col(decision_ts).alias("decision_ts"),
        *[pl.col(c) for c in ("action", "behavior_prob", "policy_version", "reward", "terminal",
                              "timeout")],
        *[pl.col(c) for c in feature_columns],
        *[pl.col(f"next_{c}") for c in feature_columns],
        *[pl.col(c) for c in extra],
    ]


def check_transitions(frame: pl.DataFrame, domain: Domain) -> list[str]:
    """Violations of the transitions contract (empty when the table is well formed)."""
    problems: list[str] = []
    schema = frame.schema
    for column, dtype in domain.schema.items():
        if column not in schema:
            problems.append(f"missing column {column}")
        elif schema[column] != dtype:
            problems.append(f"column {column} is {schema[column]}, expected {dtype}")
    if problems or frame.is_empty():
        return problems
    bad_action = frame.filter((pl.col("action") < 0) | (pl.col("action") >= domain.n_actions))
    if bad_action.height:
        problems.append(f"{bad_action.height} action(s) outside [0, {domain.n_actions})")
    p = pl.col("behavior_prob")
    bad_p = frame.filter(p.is_null() | p.is_nan() | (p <= 0) | (p > 1)).height
    if bad_p:
        problems.append(f"{bad_p} behaviour probabilities outside (0, 1]")
    bad_r = frame.filter(~pl.col("reward").is_finite() | pl.col("reward").is_null()).height
    if bad_r:
        problems.append(f"{bad_r} rewards null or not finite")
    if frame["decision_id"].n_unique() != frame.height:
        problems.append("decision_id is not unique")
    ends = frame.group_by("episode_id").agg(
        n=pl.len(),
        max_step=pl.col("step").max(),
        min_step=pl.col("step").min(),
        n_end=(pl.col("terminal") | pl.col("timeout")).sum(),
        last_end=(pl.col("terminal") | pl.col("timeout")).sort_by("step").last(),
    )
    gaps = ends.filter((pl.col("min_step") != 0) | (pl.col("max_step") != pl.col("n") - 1))
    if gaps.height:
        problems.append(f"{gaps.height} episode(s) whose steps are not 0..n-1, "
                        f"e.g. {gaps['episode_id'][0]!r}")
    broken = ends.filter((pl.col("n_end") != 1) | ~pl.col("last_end"))
    if broken.height:
        problems.append(f"{broken.height} episode(s) not ending in exactly one terminal/timeout, "
                        f"e.g. {broken['episode_id'][0]!r}")
    both = frame.filter(pl.col("terminal") & pl.col("timeout")).height
    if both:
        problems.append(f"{both} decision(s) both terminal and timeout")
    if domain.mask_features:
        idx = domain.mask_features
        allowed = frame.select(
            pl.concat_list([pl.col(f"f_{m}") for m in idx]).list.get(pl.col("action"))
            .alias("ok"))
        taken_masked = allowed.filter(pl.col("ok") < 0.5).height
        if taken_masked:
            problems.append(f"{taken_masked} logged action(s) the mask forbids")
    return problems

"""Transition datasets built from the raw tables with polars."""


import dagster as dg
import polars as pl

from offline_rl.data.recommendation import RecommendationSpec
from offline_rl.pipeline import TRANSITIONS_TABLE, build_transitions_partition
from offline_rl.report import markdown_table
from orchestration.partitions import daily, partition_day, session_days
from orchestration.resources import DataHome

_KEY = dg.AssetKey(TRANSITIONS_TABLE)


@dg.asset(
    name=TRANSITIONS_TABLE,
    partitions_def=daily,
    group_name="transitions",
    kinds={"polars", "duckdb"},
    owners=["team:ml-platform"],
    tags={"domain": "recommendation"},
    deps=[dg.AssetDep("raw_clickstream", partition_mapping=session_days)],
    check_specs=[
        dg.AssetCheckSpec("episodes_well_formed", asset=_KEY, blocking=True,
                          description="Each session ends in exactly one terminal or timeout."),
        dg.AssetCheckSpec("propensities_valid", asset=_KEY, blocking=True,
                          description="Every decision has a behaviour probability in (0, 1]."),
    ],
)
def recommendation_transitions(
    context: dg.AssetExecutionContext, data_home: DataHome
) -> dg.MaterializeResult:
    """One row per recommendation decision of sessions starting that day: s, a, r, s', done, p."""
    day = partition_day(context)
    table = build_transitions_partition(data_home.paths(), day, RecommendationSpec())
    ends = table.group_by("episode_id").agg(
        n_end=(pl.col("terminal") | pl.col("timeout")).sum())
    bad_episodes = ends.filter(pl.col("n_end") != 1).height
    p = pl.col("behavior_prob")
    bad_p = table.filter(p.is_null() | (p <= 0) | (p > 1)).height
    rewards = table["reward"]
    return dg.MaterializeResult(
        metadata={
            "partition": day.isoformat(),
            "transitions": table.height,
            "episodes": table["episode_id"].n_unique(),
            "terminals": int(table["terminal"].sum()),
            "timeouts": int(table["timeout"].sum()),
            "mean_episode_length": float(table.height / max(1, table["episode_id"].n_unique())),
            "mean_reward": float(rewards.mean() or 0.0),
            "action_distribution": dg.MetadataValue.md(markdown_table(
                table.group_by("action").agg(n=pl.len()).sort("action")
                .with_columns(share=(pl.col("n") / pl.col("n").sum()).round(4)))),
        },
        check_results=[
            dg.AssetCheckResult(check_name="episodes_well_formed", passed=bad_episodes == 0,
                                metadata={"bad_episodes": bad_episodes}),
            dg.AssetCheckResult(check_name="propensities_valid", passed=bad_p == 0,
                                metadata={"bad_propensities": bad_p}),
        ],
    )

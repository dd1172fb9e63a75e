"""Transition datasets built from the raw tables with polars: one asset per decision domain."""


from typing import cast

import dagster as dg
import polars as pl

from assets import domain_asset_args
from offline_rl.domains import Domain, all_domains, landing_schemas
from offline_rl.domains.base import check_transitions
from offline_rl.pipeline import build_transitions_partition
from offline_rl.report import markdown_table
from orchestration.partitions import partition_day, raw_days
from orchestration.resources import TRANSIENT_RETRY, DataHome


def transitions_asset(domain: Domain) -> dg.AssetsDefinition:
    """The ``<domain>_transitions`` asset: s, a, r, s', done and behaviour probability."""
    key = dg.AssetKey(domain.transitions_table)
    mapping = raw_days(domain.lookback_days, domain.lookahead_days)
    schemas = landing_schemas()

    @dg.asset(
        name=domain.transitions_table,
        **domain_asset_args(domain, "transitions", retry_policy=TRANSIENT_RETRY),
        kinds={"polars", "duckdb"},
        description=f"{domain.title} One row per decision of the episodes starting that day: "
                    f"state, action, reward, next state, terminal/timeout, behaviour "
                    f"probability. Episode: {domain.episode_doc} Reward: {domain.reward_doc}",
        deps=[dg.AssetDep(schemas[s].table, partition_mapping=mapping) for s in domain.sources],
        check_specs=[
            dg.AssetCheckSpec("transitions_contract", asset=key, blocking=True,
                              description="Types, action ids, probabilities in (0, 1], finite "
                                          "rewards, unique decisions, masks respected."),
            dg.AssetCheckSpec("episodes_well_formed", asset=key, blocking=True,
                              description="Steps 0..n-1; exactly the last step is terminal or "
                                          "timeout."),
        ],
    )
    def _transitions(context: dg.AssetExecutionContext,
                     data_home: DataHome) -> dg.MaterializeResult:
        day = partition_day(context)
        table = build_transitions_partition(data_home.paths(), domain, day)
        problems = check_transitions(table, domain)
        episode_problems = [p for p in problems if "episode" in p]
        episodes = table["episode_id"].n_unique()
        return dg.MaterializeResult(
            metadata={
                "partition": day.isoformat(),
                "transitions": table.height,
                "episodes": episodes,
                "terminals": int(table["terminal"].sum()),
                "timeouts": int(table["timeout"].sum()),
                "mean_episode_length": float(table.height / max(1, episodes)),
                # a float column's mean: a float, or None when it has no values
                "mean_reward": float(cast(float | None, table["reward"].mean()) or 0.0),
                "action_distribution": dg.MetadataValue.md(markdown_table(
                    table.group_by("action").agg(n=pl.len()).sort("action")
                    .with_columns(action_name=pl.col("action").replace_strict(
                        dict(enumerate(domain.action_names)), default=None,
                        return_dtype=pl.String),
                        share=(pl.col("n") / pl.col("n").sum()).round(4)))),
                "plots": dg.MetadataValue.md(_plots(table, domain)),
                "preview": dg.MetadataValue.md(markdown_table(table.head(5).select(
                    "episode_id", "step", "action", "behavior_prob", "reward", "terminal",
                    "timeout"))),
            },
            check_results=[
                dg.AssetCheckResult(check_name="transitions_contract",
                                    passed=not [p for p in problems if p not in episode_problems],
                                    metadata={"problems": "; ".join(problems) or "none"}),
                dg.AssetCheckResult(check_name="episodes_well_formed",
                                    passed=not episode_problems,
                                    metadata={"problems": "; ".join(episode_problems) or "none"}),
            ],
        )

    return _transitions


def _plots(table: pl.DataFrame, domain: Domain) -> str:
    """The day's logged action shares and reward distribution, as inline images."""
    from offline_rl.plots import action_distribution, markdown_image, reward_histogram

    if table.is_empty():
        return "_(no transitions)_"
    counts = table["action"].value_counts().sort("action")
    shares = [0.0] * domain.n_actions
    for action, n in counts.iter_rows():
        shares[int(action)] = n / table.height
    return "\n\n".join([
        markdown_image(action_distribution(shares, {}, action_names=domain.action_names,
                                           title=f"{domain.name}: logged actions"),
                       "logged action shares"),
        markdown_image(reward_histogram(table["reward"].to_numpy(),
                                        title=f"{domain.name}: reward per decision"),
                       "reward distribution"),
    ])


transitions_assets = [transitions_asset(d) for d in all_domains()]

"""Offline candidates trained with d3rlpy on the rolling window: one asset per domain."""


import dataclasses

import dagster as dg
from pydantic import Field

from assets import domain_asset_args, setting, track
from offline_rl.algos.config import DEFAULT_CANDIDATES, TrainingConfig
from offline_rl.domains import Domain, all_domains
from offline_rl.pipeline import (
    WINDOW_MAX_EVAL_ROWS,
    WINDOW_MAX_TRAIN_ROWS,
    settle_days_for,
    train_candidates,
)
from offline_rl.report import markdown_table
from orchestration.partitions import (
    TRAINING_WINDOW_DAYS,
    days_outside_training_window,
    partition_day,
    training_window,
)
from orchestration.resources import DataHome


class TrainingRunConfig(dg.Config):
    """Run configuration of the training asset (editable in the launchpad)."""

    algorithms: list[str] = Field(default=list(DEFAULT_CANDIDATES),
                                  description="Candidates to train (keys of ALGORITHMS).")
    window_days: int = Field(default=TRAINING_WINDOW_DAYS, ge=1,
                             description="Days of transitions ending at the partition.")
    eval_fraction: float = Field(default=0.3, gt=0, lt=1,
                                 description="Share of episodes held out for evaluation.")
    settle_days: int | None = Field(
        default=None, ge=0,
        description="Evaluate on whole episodes: held-out episodes come from the window ending "
                    "this many days before the partition. Default: the domain's lookahead "
                    "days (the longest an episode lasts); 0 evaluates running episodes too.")
    max_train_rows: int | None = Field(
        default=WINDOW_MAX_TRAIN_ROWS, ge=1,
        description="Training decisions kept at most: beyond it, a seeded sample of whole "
                    "training episodes (None: all).")
    max_eval_rows: int | None = Field(
        default=WINDOW_MAX_EVAL_ROWS, ge=1,
        description="Held-out decisions kept at most: beyond it, a seeded sample of whole "
                    "held-out episodes, which evaluation and export then read (None: all).")
    n_steps: int = setting(TrainingConfig, "n_steps", ge=1)
    batch_size: int = setting(TrainingConfig, "batch_size", ge=1)
    learning_rate: float = setting(TrainingConfig, "learning_rate", gt=0)
    seed: int = Field(default=0, description="Seed of training and of the train/eval split.")
    device: str = setting(TrainingConfig, "device")
    warm_start: bool = Field(default=True, description="Start a candidate of the incumbent's "
                             "algorithm from the incumbent's weights when the feature schema is "
                             "unchanged.")

    def training_config(self) -> TrainingConfig:
        return TrainingConfig(n_steps=self.n_steps, batch_size=self.batch_size,
                              learning_rate=self.learning_rate, seed=self.seed,
                              device=self.device)


def candidates_asset(domain: Domain) -> dg.AssetsDefinition:
    """The ``<domain>_candidates`` asset: the day's candidate policies on disk."""

    @dg.asset(
        name=f"{domain.name}_candidates",
        **domain_asset_args(domain, "training"),
        kinds={"d3rlpy", "pytorch"},
        description=f"Candidate policies for {domain.name} (behaviour cloning, DQN family, CQL, "
                    "BCQ) trained on the training episodes of the rolling window.",
        # the monitor runs first: a rollback it makes changes tonight's incumbent
        deps=[dg.AssetDep(domain.transitions_table,
                          partition_mapping=training_window(domain.lookahead_days)),
              f"{domain.name}_monitor"],
    )
    def _candidates(context: dg.AssetExecutionContext, config: TrainingRunConfig,
                    data_home: DataHome) -> dg.MaterializeResult:
        day = partition_day(context)
        cfg = config.training_config()
        settle = settle_days_for(domain, config.settle_days)
        undeclared = days_outside_training_window(config.window_days, settle,
                                                  domain.lookahead_days)
        if undeclared:
            context.log.warning(
                f"window_days={config.window_days} with settle_days={settle} reads "
                f"{undeclared} day(s) of {domain.transitions_table} before the days the asset "
                "declares as its dependency: the lineage does not show them, and rebuilding "
                "them will not mark these candidates stale")

        def progress(name: str, step: int, metrics: dict[str, float]) -> None:
            context.log.info(f"{domain.name}/{name}: step {step}/{cfg.n_steps} "
                             f"loss={metrics.get('loss', 0):.4f}")

        window, trained = train_candidates(
            data_home.paths(), domain, day, config.algorithms, cfg,
            window_days=config.window_days, eval_fraction=config.eval_fraction,
            settle_days=config.settle_days, max_train_rows=config.max_train_rows,
            max_eval_rows=config.max_eval_rows,
            warm_start=config.warm_start, progress=progress,
        )
        return dg.MaterializeResult(metadata={
            **training_metadata(day, window, trained, cfg),
            **track(context, data_home.tracker(), lambda t: t.log_training(
                domain.name, day, [c.directory for c in trained])),
        })

    return _candidates


def training_metadata(day, window, trained, cfg) -> dict:
    curves = [
        {"candidate": c.name, "step": int(p["step"]), "loss": p.get("loss")}
        for c in trained for p in c.learning_curve
    ]
    return {
        "partition": day.isoformat(),
        "data_window": f"{window.start} .. {window.end}",
        "evaluation_window": f"{window.eval_start} .. {window.eval_end} (whole episodes, "
                             f"{window.settle_days} day(s) settled)",
        "train_episodes": window.train_episodes,
        "eval_episodes": window.eval_episodes,
        "train_decisions": len(window.train.actions),
        "device": trained[0].device if trained else "",
        "candidates": dg.MetadataValue.md(markdown_table([
            {"candidate": c.name, "algorithm": c.algorithm, "seconds": round(c.seconds, 1),
             "final_loss": c.learning_curve[-1].get("loss") if c.learning_curve else None,
             "path": str(c.directory)} for c in trained])),
        "learning_curves": dg.MetadataValue.md(_curves_image(trained)),
        "learning_curve_points": dg.MetadataValue.md(markdown_table(curves)),
        "training_config": dg.MetadataValue.json(dataclasses.asdict(cfg)),
    }


def _curves_image(trained) -> str:
    from offline_rl.plots import learning_curves, markdown_image

    curves = {c.name: c.learning_curve for c in trained if c.learning_curve}
    if not curves:
        return "_(no learning curve recorded)_"
    return markdown_image(learning_curves(curves, title="training loss per candidate"),
                          "learning curves")


candidates_assets = [candidates_asset(d) for d in all_domains()]

"""Off-policy evaluation of the day's candidates on held-out logged episodes, per domain."""


import dagster as dg
from pydantic import Field

from offline_rl.domains import Domain, all_domains
from offline_rl.ope.evaluate import OPEConfig
from offline_rl.pipeline import evaluate_candidates
from offline_rl.report import markdown_table
from orchestration.partitions import daily, partition_day
from orchestration.resources import DataHome


class EvaluationRunConfig(dg.Config):  # type: ignore[misc]
    """Run configuration of the OPE asset."""

    n_bootstrap: int = Field(default=OPEConfig.n_bootstrap, ge=50,
                             description="Bootstrap resamples of episodes.")
    alpha: float = Field(default=OPEConfig.alpha, gt=0, lt=1,
                         description="Intervals are two-sided 1 - alpha.")
    fqe_steps: int = Field(default=OPEConfig.fqe_steps, ge=1, description="FQE gradient steps.")
    seed: int = Field(default=0, description="Seed of FQE and the bootstrap.")
    device: str = Field(default="auto", description="auto, cpu or cuda:N for FQE.")

    def ope_config(self) -> OPEConfig:
        return OPEConfig(n_bootstrap=self.n_bootstrap, alpha=self.alpha,
                         fqe_steps=self.fqe_steps, seed=self.seed, device=self.device)


def ope_asset(domain: Domain) -> dg.AssetsDefinition:
    """The ``<domain>_ope`` asset: estimates with intervals and diagnostics per policy."""

    @dg.asset(
        name=f"{domain.name}_ope",
        partitions_def=daily,
        group_name=domain.name,
        kinds={"d3rlpy", "duckdb"},
        owners=["team:ml-platform"],
        tags={"domain": domain.name, "stage": "evaluation"},
        description="FQE, IS, WIS and DR estimates with bootstrap intervals for each candidate "
                    "and the incumbent, on held-out episodes.",
        deps=[f"{domain.name}_candidates"],
    )
    def _ope(context: dg.AssetExecutionContext, config: EvaluationRunConfig,
             data_home: DataHome) -> dg.MaterializeResult:
        day = partition_day(context)
        behavior, evaluations = evaluate_candidates(data_home.paths(), domain, day,
                                                    config.ope_config())
        table = [
            {"policy": ev.name, "estimator": k, "value": e.value, "low": e.low, "high": e.high}
            for ev in evaluations for k, e in ev.estimates.items()
        ]
        return dg.MaterializeResult(metadata={
            "partition": day.isoformat(),
            "behavior_value": behavior.value,
            "behavior_interval": f"[{behavior.low:.4f}, {behavior.high:.4f}]",
            "policies": len(evaluations),
            "estimates": dg.MetadataValue.md(markdown_table(table)),
            "diagnostics": dg.MetadataValue.md(markdown_table(
                [{"policy": ev.name, **ev.diagnostics.as_dict()} for ev in evaluations])),
        })

    return _ope


ope_assets = [ope_asset(d) for d in all_domains()]

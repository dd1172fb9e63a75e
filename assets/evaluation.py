"""Off-policy evaluation of the day's candidates on held-out logged episodes, per domain."""


import dagster as dg

from assets import domain_asset_args, setting, track
from offline_rl.domains import Domain, all_domains
from offline_rl.ope.evaluate import OPEConfig
from offline_rl.pipeline import evaluate_candidates
from offline_rl.report import markdown_table
from orchestration.partitions import partition_day
from orchestration.resources import DataHome


class EvaluationRunConfig(dg.Config):
    """Run configuration of the OPE asset."""

    n_bootstrap: int = setting(OPEConfig, "n_bootstrap", ge=50)
    alpha: float = setting(OPEConfig, "alpha", gt=0, lt=1)
    fqe_steps: int = setting(OPEConfig, "fqe_steps", ge=1)
    fqe_refits: int = setting(OPEConfig, "fqe_refits", ge=0)
    seed: int = setting(OPEConfig, "seed")
    device: str = setting(OPEConfig, "device")

    def ope_config(self) -> OPEConfig:
        return OPEConfig(n_bootstrap=self.n_bootstrap, alpha=self.alpha,
                         fqe_steps=self.fqe_steps, fqe_refits=self.fqe_refits, seed=self.seed,
                         device=self.device)


def ope_asset(domain: Domain) -> dg.AssetsDefinition:
    """The ``<domain>_ope`` asset: estimates with intervals and diagnostics per policy."""

    @dg.asset(
        name=f"{domain.name}_ope",
        **domain_asset_args(domain, "evaluation"),
        kinds={"d3rlpy", "duckdb"},
        description="FQE, IS, WIS and DR estimates (and replay where the domain offers it) "
                    "with bootstrap intervals for each candidate and the incumbent, on held-out "
                    "episodes.",
        deps=[f"{domain.name}_candidates"],
    )
    def _ope(context: dg.AssetExecutionContext, config: EvaluationRunConfig,
             data_home: DataHome) -> dg.MaterializeResult:
        day = partition_day(context)
        ope = config.ope_config()
        behavior, evaluations = evaluate_candidates(data_home.paths(), domain, day, ope)
        table = [
            {"policy": ev.name, "estimator": k, "value": e.value, "low": e.low, "high": e.high}
            for ev in evaluations for k, e in ev.estimates.items()
        ]
        return dg.MaterializeResult(metadata={
            "partition": day.isoformat(),
            "forest_plot": dg.MetadataValue.md(_forest(domain, day, behavior, evaluations)),
            "action_distribution": dg.MetadataValue.md(_actions(domain, evaluations)),
            "behavior_value": behavior.value,
            "behavior_interval": f"[{behavior.low:.4f}, {behavior.high:.4f}]",
            "policies": len(evaluations),
            "estimates": dg.MetadataValue.md(markdown_table(table)),
            "diagnostics": dg.MetadataValue.md(markdown_table(
                [{"policy": ev.name, **ev.diagnostics.as_dict()} for ev in evaluations])),
            **_replay_status(domain, evaluations),
            **track(context, data_home.tracker(), lambda t: t.log_evaluation(
                domain.name, day, behavior, evaluations, ope)),
        })

    return _ope


def _replay_status(domain: Domain, evaluations) -> dict[str, str]:
    """``{"replay": "ok"}`` or why the held-out episodes could not be replayed, for a domain
    that offers replay (its gate decides on it: without it, nothing is promoted)."""
    if domain.replay is None or not evaluations:
        return {}
    return {"replay": str(evaluations[0].extra.get("replay", "not computed"))}


def _forest(domain: Domain, day, behavior, evaluations) -> str:
    from offline_rl.plots import markdown_image
    from offline_rl.report import ope_forest_plot

    png = ope_forest_plot(domain.name, day.isoformat(), behavior, evaluations)
    return markdown_image(png, "estimates with intervals") if png else "_(no estimates)_"


def _actions(domain: Domain, evaluations) -> str:
    """Logged action shares of the held-out episodes next to each policy's greedy actions on
    them (both computed by the evaluation)."""
    from offline_rl.plots import action_distribution, markdown_image

    logged = next((ev.extra["logged_action_distribution"] for ev in evaluations
                   if "logged_action_distribution" in ev.extra), None)
    if logged is None:
        return "_(no evaluations)_"
    candidates = {ev.name: ev.extra["action_distribution"] for ev in evaluations
                  if "action_distribution" in ev.extra}
    png = action_distribution(logged, candidates, action_names=domain.action_names,
                              title=f"{domain.name}: logged vs greedy actions")
    return markdown_image(png, "action distributions")


ope_assets = [ope_asset(d) for d in all_domains()]

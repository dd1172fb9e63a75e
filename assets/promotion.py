"""The promotion gate (a blocking check) and the nightly export of the promoted policy."""



import dagster as dg
from pydantic import Field

from assets import domain_asset_args, setting, track
from offline_rl.domains import Domain, all_domains
from offline_rl.export.exploration import Exploration
from offline_rl.ope.gate import (
    GateConfig,
    verify_promotion,
)
from offline_rl.pipeline import export_promoted, promote, read_decision
from offline_rl.report import ope_report, ope_report_html
from orchestration.partitions import partition_day
from orchestration.resources import TRANSIENT_RETRY, DataHome


class GateRunConfig(dg.Config):
    """Thresholds of the promotion gate (see offline_rl.ope.gate)."""

    headline: str | None = setting(GateConfig, "headline")
    margin: float = setting(GateConfig, "margin", ge=0)
    min_ess_fraction: float = setting(GateConfig, "min_ess_fraction", ge=0, le=1)
    max_weight_share: float | None = setting(GateConfig, "max_weight_share", gt=0, le=1)
    paired: bool = setting(GateConfig, "paired")
    veto_min_ess: float = setting(GateConfig, "veto_min_ess", ge=0)
    select_by: str = setting(GateConfig, "select_by")
    multiplicity: str = setting(GateConfig, "multiplicity")
    paired_by: str = setting(GateConfig, "paired_by")

    def gate_config(self) -> GateConfig:
        return GateConfig(headline=self.headline, margin=self.margin,
                          min_ess_fraction=self.min_ess_fraction,
                          max_weight_share=self.max_weight_share, paired=self.paired,
                          veto_min_ess=self.veto_min_ess, select_by=self.select_by,
                          multiplicity=self.multiplicity, paired_by=self.paired_by)


def gate_asset(domain: Domain) -> dg.AssetsDefinition:
    """The ``<domain>_gate`` asset: the decision, with the blocking ``promotion_evidence``."""
    key = dg.AssetKey(f"{domain.name}_gate")

    @dg.asset(
        name=key.path[-1],
        **domain_asset_args(domain, "promotion", retry_policy=TRANSIENT_RETRY),
        kinds={"duckdb"},
        description="Promote a candidate only if its lower confidence bound beats the "
                    "incumbent by the margin and the diagnostics pass; record why.",
        deps=[f"{domain.name}_ope"],
        check_specs=[dg.AssetCheckSpec(
            "promotion_evidence", asset=key, blocking=True,
            description="A promotion is backed by a lower bound above the incumbent plus "
                        "margin (re-checked from the registry's evidence).",
        )],
    )
    def _gate(context: dg.AssetExecutionContext, config: GateRunConfig,
              data_home: DataHome) -> dg.MaterializeResult:
        day = partition_day(context)
        paths = data_home.paths()
        gate = config.gate_config()
        result = promote(paths, domain, day, gate)
        decision = result.decision
        report = ope_report(domain.name, day.isoformat(), result.behavior, result.evaluations,
                            decision)
        report_path = paths.reports / domain.name / f"{day.isoformat()}.md"
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(report)
        html_path = report_path.with_suffix(".html")
        html_path.write_text(ope_report_html(domain.name, day.isoformat(), result.behavior,
                                             result.evaluations, decision))
        row = read_decision(paths, domain, day)
        # re-verified from what the registry holds, not from this run's objects
        evidence_ok, lower, bar = verify_promotion(dict(row.evidence))
        return dg.MaterializeResult(
            metadata={
                "partition": day.isoformat(),
                "promoted": decision.promoted,
                "candidate": decision.candidate or "",
                "incumbent": decision.incumbent.name,
                "incumbent_value": decision.incumbent.value,
                "reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in decision.reasons)),
                "report": dg.MetadataValue.md(report),
                "report_path": dg.MetadataValue.path(str(report_path)),
                "report_html": dg.MetadataValue.path(str(html_path)),
                **track(context, data_home.tracker(), lambda t: t.log_decision(
                    domain.name, day, decision, [report_path, html_path])),
            },
            check_results=[dg.AssetCheckResult(
                check_name="promotion_evidence", passed=bool(evidence_ok),
                metadata={"lower_bound": lower, "bar": bar,
                          "reasons": row.reason},
            )],
        )

    return _gate


class ExportRunConfig(dg.Config):
    """How the exported policy explores when served (offline_rl.export.exploration)."""

    exploration: str | None = Field(
        default=None,
        description="'epsilon' (epsilon-uniform over the allowed actions around the greedy "
                    "one) or 'softmax' (softmax of the action values at temperature, with an "
                    "epsilon floor); empty: the domain's default (Domain.exploration).")
    epsilon: float | None = Field(
        default=None, ge=0, le=1,
        description="Share of decisions drawn uniformly over the allowed actions; empty: the "
                    "domain's default.")
    temperature: float = Field(default=1.0, gt=0,
                               description="Softmax temperature, in the units of the "
                                           "export's values.")

    def exploration_for(self, domain: Domain) -> Exploration:
        default = domain.exploration
        if self.exploration is None and self.epsilon is None:
            return default
        return Exploration(kind=self.exploration or default.kind,
                           epsilon=default.epsilon if self.epsilon is None else self.epsilon,
                           temperature=self.temperature)


def export_asset(domain: Domain) -> dg.AssetsDefinition:
    """The ``<domain>_export`` asset: the promoted policy published under exports/<domain>/."""

    @dg.asset(
        name=f"{domain.name}_export",
        **domain_asset_args(domain, "export", retry_policy=TRANSIENT_RETRY),
        kinds={"pytorch", "onnx"},
        description=f"The promoted {domain.name} policy as TorchScript + ONNX + manifest under "
                    f"exports/{domain.name}/, with latest (unchanged when the gate kept the "
                    "incumbent).",
        deps=[f"{domain.name}_gate"],
    )
    def _export(context: dg.AssetExecutionContext, config: ExportRunConfig,
                data_home: DataHome) -> dg.MaterializeResult:
        day = partition_day(context)
        paths = data_home.paths()
        exported = export_promoted(paths, domain, day, config.exploration_for(domain))
        # the registered model's champion alias follows latest (registered on promotion)
        champion = track(context, data_home.tracker(),
                         lambda t: t.sync_champion(paths.exports, domain.name))
        if exported is None:
            latest = paths.exports / domain.name / "latest"
            current = latest.read_text().strip() if latest.is_file() else "(none)"
            return dg.MaterializeResult(metadata={
                "partition": day.isoformat(), "exported": False, "latest": current,
                "note": "the gate kept the incumbent; latest is unchanged", **champion})
        return dg.MaterializeResult(metadata={
            **champion,
            "partition": day.isoformat(),
            "exported": True,
            "version": exported.version,
            "path": dg.MetadataValue.path(str(exported.path)),
            "algorithm": exported.manifest["algorithm"],
            "exploration": dg.MetadataValue.json(exported.manifest.get("exploration") or {}),
            "manifest": dg.MetadataValue.json(exported.manifest),
        })

    return _export


gate_assets = [gate_asset(d) for d in all_domains()]
export_assets = [export_asset(d) for d in all_domains()]

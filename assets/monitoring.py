"""The nightly monitor: what the served policy earned against its promise and its
predecessor, with an asset check that fails on a significant shortfall and an optional
automatic rollback (offline_rl.monitor)."""

import dagster as dg
from pydantic import Field

from assets import domain_asset_args, track
from offline_rl.domains import Domain, all_domains
from offline_rl.monitor import MonitorConfig, MonitorReport, monitor, monitor_history
from orchestration.partitions import partition_day, raw_days
from orchestration.resources import DataHome


class MonitorRunConfig(dg.Config):
    """Settings of the monitor (offline_rl.monitor.MonitorConfig)."""

    alpha: float = Field(default=MonitorConfig.alpha, gt=0, lt=0.5,
                         description="One-sided level of each test: the false-alarm rate per "
                                     "night of a policy that keeps its promise.")
    window_days: int = Field(default=MonitorConfig.window_days, ge=1,
                             description="Start days pooled for the served and the previous "
                                         "policy's realized values.")
    auto_rollback: bool = Field(default=MonitorConfig.auto_rollback,
                                description="Point latest back to the previous version when "
                                            "the served policy fails a test.")
    min_nights: int = Field(default=MonitorConfig.min_nights, ge=1,
                            description="Start days of its own episodes a served policy needs "
                                        "before an automatic rollback.")

    def monitor_config(self) -> MonitorConfig:
        return MonitorConfig(alpha=self.alpha, window_days=self.window_days,
                             auto_rollback=self.auto_rollback, min_nights=self.min_nights)


def monitor_asset(domain: Domain) -> dg.AssetsDefinition:
    """The ``<domain>_monitor`` asset, checked by ``promise_kept``."""
    key = dg.AssetKey(f"{domain.name}_monitor")
    reads = domain.lookahead_days + MonitorConfig.window_days - 1

    @dg.asset(
        name=key.path[-1],
        **domain_asset_args(domain, "monitor"),
        kinds={"polars", "duckdb"},
        description="The served policy's realized value on its own whole logged episodes, "
                    "against the value its promotion promised and the previous policy's; "
                    "optionally rolls a failing policy back before the night's training.",
        deps=[dg.AssetDep(domain.transitions_table, partition_mapping=raw_days(reads, 0))],
        check_specs=[dg.AssetCheckSpec(
            "promise_kept", asset=key,
            description="The served policy does not earn significantly less than its promise "
                        "(one-sided t test) or than the previous policy (Welch one-sided t "
                        "test), each at the configured level.",
        )],
    )
    def _monitor(context: dg.AssetExecutionContext, config: MonitorRunConfig,
                 data_home: DataHome) -> dg.MaterializeResult:
        day = partition_day(context)
        paths = data_home.paths()
        report = monitor(paths, domain, day, config.monitor_config())
        for reason in report.reasons:
            context.log.info(f"{domain.name} monitor {day}: {reason}")
        history = monitor_history(paths, domain).to_dicts()
        # a rollback moves the registered model's champion alias with latest
        champion = track(context, data_home.tracker(),
                         lambda t: t.sync_champion(paths.exports, domain.name)) \
            if report.rolled_back_to else {}
        return dg.MaterializeResult(
            metadata={**monitor_metadata(report, history), **champion},
            check_results=[dg.AssetCheckResult(
                check_name="promise_kept", passed=report.ok,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={"p_below_promise": report.p_below_promise,
                          "p_below_previous": report.p_below_previous,
                          "rolled_back_to": report.rolled_back_to or "",
                          "reasons": dg.MetadataValue.md(
                              "\n".join(f"- {r}" for r in report.reasons))},
            )],
        )

    return _monitor


def monitor_metadata(report: MonitorReport, history: list[dict]) -> dict:
    """Numeric entries (Dagster plots them across partitions) plus the plot of the nights."""
    from offline_rl.plots import markdown_image, promised_vs_realized

    served, promise = report.served, report.promise or {}
    meta: dict = {
        "partition": report.day.isoformat(),
        "start_days": f"{report.start_days[0]} .. {report.start_days[1]}",
        "served": served.policy if served else "",
        "reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in report.reasons)),
        "rolled_back_to": report.rolled_back_to or "",
    }
    if served is not None:
        meta.update({"realized_value": served.value, "realized_low": served.low,
                     "realized_high": served.high, "served_episodes": served.episodes,
                     "served_nights": served.nights})
    if promise.get("value") is not None:
        meta.update({"promised_value": float(promise["value"]),
                     "promised_low": float(promise["low"]),
                     "promised_estimator": str(promise["estimator"])})
    if report.previous is not None:
        meta["previous_value"] = report.previous.value
        meta["previous"] = report.previous.policy
    if any(r.get("realized_value") is not None for r in history):
        meta["promised_vs_realized"] = dg.MetadataValue.md(markdown_image(
            promised_vs_realized(history, title=f"{report.domain}: promised vs realized"),
            "promised vs realized"))
    return meta


monitor_assets = [monitor_asset(d) for d in all_domains()]

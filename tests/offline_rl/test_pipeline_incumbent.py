"""The incumbent is the policy in production: what exports/<domain>/latest names."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl

from offline_rl.data.warehouse import Warehouse
from offline_rl.decisions import RegistryDecision, record_decision
from offline_rl.pipeline import incumbent_record


def _decide(wh: Warehouse, day: dt.date, version: str | None, promoted: bool = True,
            model_dir: str | None = None) -> None:
    record_decision(wh, RegistryDecision(
        domain="cart", partition_date=day, decided_at=dt.datetime.now(dt.UTC),
        promoted=promoted, candidate="cql", algorithm="DiscreteCQL", incumbent="behavior",
        incumbent_value=1.0, headline_estimator="dr", headline_value=1.1, headline_low=1.05,
        headline_high=1.15, reasons=("promoted cql",), evidence={},
        model_dir=model_dir or f"/models/{day}", export_version=version))


def test_rollback_changes_the_incumbent(paths):
    wh = Warehouse(paths.warehouse)
    d1, d2, d3 = dt.date(2026, 10, 1), dt.date(2026, 10, 2), dt.date(2026, 10, 3)
    assert incumbent_record(paths, "cart", d3) is None
    _decide(wh, d1, "v0001")
    _decide(wh, d2, "v0002")
    root = paths.exports / "cart"
    root.mkdir(parents=True)
    (root / "latest").write_text("v0002\n")
    assert incumbent_record(paths, "cart", d3).export_version == "v0002"
    (root / "latest").write_text("v0001\n")  # offline-rl exports rollback
    assert incumbent_record(paths, "cart", d3).export_version == "v0001"
    # a backfill of a day before the exported decision falls back to the last promotion
    assert incumbent_record(paths, "cart", d2).export_version == "v0001"
    assert incumbent_record(paths, "cart", d1) is None


def test_warm_start_needs_the_incumbent_on_the_current_feature_schema(paths, tmp_path):
    from offline_rl.domains import get_domain
    from offline_rl.pipeline import warm_start_model

    cart = get_domain("cart")
    wh = Warehouse(paths.warehouse)
    d1, d2 = dt.date(2026, 10, 1), dt.date(2026, 10, 2)
    _decide(wh, d1, "v0001")
    model_dir = tmp_path / "models" / str(d1)  # the row's model_dir is /models/<day>
    _decide(wh, d1, "v0001", model_dir=str(model_dir))
    assert warm_start_model(paths, cart, d2) is None  # no training.json
    model_dir.mkdir(parents=True)
    context = {"domain": "cart", "data_window": {"start": "2026-09-18", "end": str(d1), "days": 14},
               "split": {"eval_fraction": 0.3, "seed": 0, "train_episodes": 70,
                         "eval_episodes": 30, "settle_days": 0, "eval_start": "2026-09-30",
                         "eval_end": str(d1)},
               "feature_schema": {"names": list(cart.feature_names)},
               "action_map": dict(enumerate(cart.action_names))}
    record = {"name": "cql", "algorithm": "DiscreteCQL", **context}
    (model_dir / "training.json").write_text(json.dumps(record))
    found = warm_start_model(paths, cart, d2)
    assert found is not None and found[0] == model_dir
    assert found[1].name == "cql" and found[1].context.feature_names == cart.feature_names
    record["feature_schema"]["names"] = ["something", "else"]
    (model_dir / "training.json").write_text(json.dumps(record))
    assert warm_start_model(paths, cart, d2) is None
    del record["data_window"]  # trained outside the pipeline: no known schema, no warm start
    (model_dir / "training.json").write_text(json.dumps(record))
    assert warm_start_model(paths, cart, d2) is None


def _estimates(wh: Warehouse, domain: str, day: dt.date,
               policies: dict[str, tuple[dict[str, float], dict]]) -> None:
    """Writes a day's ``ope_estimates`` as the evaluation stage does: the behaviour's on-policy
    row, then per policy one row per estimator (value +- 1) sharing its details."""
    from offline_rl.estimates import ESTIMATES_TABLE

    healthy = {"ess": 500.0, "ess_fraction": 0.05, "per_decision_ess_fraction": 0.2,
               "max_weight_share": 0.01, "rare_action_rate": 0.0, "action_match_rate": 0.3}
    rows = [{"policy": "behavior", "estimator": "on_policy", "value": 1000.0, "low": 990.0,
             "high": 1010.0, "stderr": 5.0, "details": "{}"}]
    for policy, (values, extra) in policies.items():
        details = json.dumps({"diagnostics": healthy, "disagreement": 0.5, **extra})
        rows += [{"policy": policy, "estimator": k, "value": v, "low": v - 1.0,
                  "high": v + 1.0, "stderr": 0.5, "details": details}
                 for k, v in values.items()]
    frame = pl.DataFrame(rows).with_columns(
        domain=pl.lit(domain), partition_date=pl.lit(day, dtype=pl.Date),
        eval_episodes=pl.lit(100), eval_decisions=pl.lit(2800),
    ).select("domain", "partition_date", "policy", "estimator", "value", "low", "high", "stderr",
             "eval_episodes", "eval_decisions", "details")
    wh.replace([(ESTIMATES_TABLE, frame, "registry/delete_estimates",
                 {"domain": domain, "day": day})], label="test")


def test_an_incumbent_without_the_headline_estimate_is_kept_with_the_reason(paths):
    from offline_rl.ope.gate import GateConfig
    from offline_rl.pipeline import promote, read_decision

    wh = Warehouse(paths.warehouse)
    day = dt.date(2026, 10, 2)
    why = "the logged orders do not reproduce the logged stock (episode 3, day 2, stock_end)"
    incumbent = "incumbent:cql@2026-10-01"
    # inventory decides on replay: neither policy has one; the candidate would clear the bar
    # on doubly robust, but there is no incumbent value under the headline to judge it by
    _estimates(wh, "inventory", day, {
        "bc": ({"dr": 1500.0, "pdis": 1400.0}, {"replay": why}),
        incumbent: ({"dr": 1100.0, "pdis": 1050.0}, {"replay": why}),
    })
    result = promote(paths, "inventory", day, GateConfig())
    decision = result.decision
    assert not decision.promoted and decision.candidate is None
    assert decision.config.headline == "replay"
    assert decision.incumbent.name == incumbent
    expected = (f"kept incumbent {incumbent}: the incumbent {incumbent} has no replay estimate "
                f"({why}), so no candidate can be judged against it")
    assert decision.reasons == [expected]
    row = read_decision(paths, "inventory", day)
    assert not row.promoted and row.incumbent == incumbent
    assert row.reasons == (expected,)
    assert row.evidence["incumbent"]["unavailable"].startswith(
        f"the incumbent {incumbent} has no replay estimate")
    # with the headline estimate present, the incumbent is its value, and the gate judges
    _estimates(wh, "inventory", day, {
        "bc": ({"dr": 1500.0, "replay": 1020.0}, {"replay": "ok"}),
        incumbent: ({"dr": 1100.0, "replay": 1010.0}, {"replay": "ok"}),
    })
    judged = promote(paths, "inventory", day, GateConfig()).decision
    assert judged.incumbent.value == 1010.0 and judged.incumbent.unavailable is None
    assert not judged.promoted and judged.verdicts[0].name == "bc"
    assert any(r.startswith("bc: replay lower bound 1019.000 does not exceed incumbent "
                            "1010.000") for r in judged.reasons)


def test_the_incumbent_is_known_by_its_stored_role_not_its_name(paths):
    from offline_rl.pipeline import read_evaluations

    wh = Warehouse(paths.warehouse)
    day = dt.date(2026, 10, 2)
    _estimates(wh, "cart", day, {
        "bc": ({"dr": 1500.0}, {"role": "candidate"}),
        "cql@2026-10-01": ({"dr": 1100.0}, {"role": "incumbent"}),
        "incumbent:dqn@2026-09-01": ({"dr": 1000.0}, {}),  # written before roles were stored
    })
    _, evaluations, _ = read_evaluations(paths, "cart", day)
    assert {e.name: e.role for e in evaluations} == {
        "bc": "candidate", "cql@2026-10-01": "incumbent",
        "incumbent:dqn@2026-09-01": "incumbent"}
    assert all("role" not in e.extra for e in evaluations)

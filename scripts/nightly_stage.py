"""The nightly stages as a fault-injection stage: transitions, training, OPE, gate, export.

    .venv/bin/python scripts/fault_injection.py --rounds 5 --stage nightly_stage:NIGHTLY

Each round, after the day is ingested, the child builds the day's recommendation transitions,
trains two small candidates on the window, evaluates them, runs the gate and publishes a
promoted policy, and is killed at random points of those writes (DuckDB transactions, the
model folder swap, the export journal) or at a random time. Once a run completes, ``verify``
checks that the transitions partition honours its contract, that every candidate on disk is
whole, that the gate's decision is recorded, and that ``latest`` (if any) names a complete,
checksum-verified export.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fault_injection import Stage  # noqa: E402

from offline_rl.paths import DataPaths  # noqa: E402

DOMAIN = "recommendation"


def _run(paths: DataPaths, day: dt.date) -> dict[str, int]:
    from offline_rl.algos.training import TrainingConfig
    from offline_rl.ope.evaluate import OPEConfig
    from offline_rl.ope.gate import GateConfig
    from offline_rl.pipeline import (
        build_transitions_partition,
        evaluate_candidates,
        export_promoted,
        promote,
        train_candidates,
    )

    table = build_transitions_partition(paths, DOMAIN, day)
    _, trained = train_candidates(paths, DOMAIN, day, ["bc", "double_dqn"],
                                  TrainingConfig(n_steps=300, seed=0, device="cpu"),
                                  window_days=3, eval_fraction=0.3, settle_days=0)
    evaluate_candidates(paths, DOMAIN, day, OPEConfig(fqe_steps=200, n_bootstrap=100,
                                                      device="cpu"))
    result = promote(paths, DOMAIN, day, GateConfig())
    exported = export_promoted(paths, DOMAIN, day)
    return {"transitions": table.height, "candidates": len(trained),
            "promoted": int(result.decision.promoted), "exported": int(exported is not None)}


def _verify(paths: DataPaths, day: dt.date) -> list[str]:
    from offline_rl.data.warehouse import Warehouse
    from offline_rl.domains import get_domain
    from offline_rl.domains.base import check_transitions
    from offline_rl.export.loader import load_latest
    from offline_rl.export.registry import current_version
    from offline_rl.pipeline import candidates_dir, read_decision

    domain = get_domain(DOMAIN)
    problems = []
    table = Warehouse(paths.warehouse).read_partitions(domain.transitions_table, day, day)
    problems += [f"transitions: {p}" for p in check_transitions(table, domain)]
    models = candidates_dir(paths, domain, day)
    for name in ("bc", "double_dqn"):
        for part in ("model.d3", "training.json"):
            if not (models / name / part).is_file():
                problems.append(f"candidate {name} lacks {part}")
    leftovers = list(models.parent.glob(f".{models.name}.*"))
    if leftovers:
        problems.append(f"staging folders left behind: {[p.name for p in leftovers]}")
    try:
        read_decision(paths, domain, day)
    except ValueError as exc:
        problems.append(str(exc))
    if current_version(paths.exports / DOMAIN) is not None:
        try:
            load_latest(paths.exports, DOMAIN)  # verifies every checksum
        except Exception as exc:  # noqa: BLE001 - any failure to load is the finding
            problems.append(f"latest export does not load: {exc}")
    return problems


NIGHTLY = Stage(
    name="nightly",
    run=_run,
    crash_points=(
        *(f"warehouse.{p}@{n}" for p in ("after_delete", "before_commit", "after_commit")
          for n in (1, 2, 3)),
        "export.staged", "export.renamed", "export.published",
    ),
    verify=_verify,
    watched=(f"{DOMAIN}_transitions",),
)

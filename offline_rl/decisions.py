"""The gate's decisions: the ``policy_registry`` table, one row per domain and night.

``Decision`` (``offline_rl.ope.gate``) is what the gate concludes; ``RegistryDecision`` is what
the pipeline keeps of it: the candidate and the model folder it came from, the incumbent it
was judged against, the headline estimate, the reasons and the full evidence, and the export
version once the export step has published it. This module is the table's one writer
(``record_decision``, ``set_export_version``) and reader (``read_decision``,
``promoted_before``); the table's columns are ``RegistryDecision``'s fields, in order.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from offline_rl.data.warehouse import Warehouse

__all__ = ["REGISTRY_TABLE", "RegistryDecision", "promoted_before", "read_decision",
           "record_decision", "set_export_version"]

REGISTRY_TABLE = "policy_registry"

SCHEMA: dict[str, Any] = {
    "domain": pl.String, "partition_date": pl.Date, "decided_at": pl.Datetime("us", "UTC"),
    "promoted": pl.Boolean, "candidate": pl.String, "algorithm": pl.String,
    "incumbent": pl.String, "incumbent_value": pl.Float64, "headline_estimator": pl.String,
    "headline_value": pl.Float64, "headline_low": pl.Float64, "headline_high": pl.Float64,
    "reasons": pl.String, "evidence": pl.String, "model_dir": pl.String,
    "export_version": pl.String,
}
"""Column types of ``policy_registry`` (``reasons`` and ``evidence`` hold JSON)."""


@dataclass(frozen=True)
class RegistryDecision:
    """One night's gate decision for one domain, as the registry keeps it."""

    domain: str
    partition_date: dt.date
    decided_at: dt.datetime
    promoted: bool
    candidate: str | None
    algorithm: str | None
    incumbent: str
    incumbent_value: float | None
    headline_estimator: str
    headline_value: float | None
    headline_low: float | None
    headline_high: float | None
    reasons: tuple[str, ...]
    evidence: Mapping[str, Any]
    model_dir: str | None
    export_version: str | None = None

    @property
    def reason(self) -> str:
        """The first reason (the decision in one line)."""
        return self.reasons[0] if self.reasons else ""

    def frame(self) -> pl.DataFrame:
        row = dataclasses.asdict(self)
        row["reasons"] = json.dumps(list(self.reasons))
        row["evidence"] = json.dumps(dict(self.evidence), default=str)
        return pl.DataFrame([row], schema=SCHEMA)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RegistryDecision:
        values: dict[str, Any] = {f.name: row.get(f.name) for f in dataclasses.fields(cls)}
        values["reasons"] = tuple(json.loads(row.get("reasons") or "[]"))
        values["evidence"] = json.loads(row.get("evidence") or "{}")
        values["promoted"] = bool(row.get("promoted"))
        return cls(**values)


def record_decision(warehouse: Warehouse, decision: RegistryDecision) -> None:
    """Writes the night's decision, replacing any earlier one for that domain and night."""
    warehouse.replace(
        [(REGISTRY_TABLE, decision.frame(), "registry/delete_decision",
          {"domain": decision.domain, "day": decision.partition_date})],
        label=f"{REGISTRY_TABLE} {decision.domain} {decision.partition_date}",
    )


def read_decision(warehouse: Warehouse, domain: str, day: dt.date) -> RegistryDecision:
    """The decision of ``domain`` on ``day`` (``ValueError`` when the gate has not run)."""
    rows = warehouse.query("registry/select_decision", domain=domain, day=day) \
        if warehouse.table_exists(REGISTRY_TABLE) else pl.DataFrame()
    if rows.is_empty():
        raise ValueError(f"no gate decision for {domain} on {day}; run promotion first")
    return RegistryDecision.from_row(rows.row(0, named=True))


def promoted_before(warehouse: Warehouse, domain: str, day: dt.date,
                    export_version: str | None = None) -> RegistryDecision | None:
    """The last promotion of ``domain`` decided before ``day``; with ``export_version``, the
    last one published as that version (None: no such promotion)."""
    if not warehouse.table_exists(REGISTRY_TABLE):
        return None
    if export_version is not None:
        rows = warehouse.query("registry/select_exported", domain=domain,
                               version=export_version, day=day)
    else:
        rows = warehouse.query("registry/select_incumbent", domain=domain, day=day)
    return RegistryDecision.from_row(rows.row(0, named=True)) if rows.height else None


def set_export_version(warehouse: Warehouse, domain: str, day: dt.date, version: str) -> None:
    """Records which export version published the decision of ``domain`` on ``day``."""
    warehouse.execute("registry/set_export_version", domain=domain, day=day, version=version)

"""The data home: one folder with the landing zone, warehouse, models, exports and reports."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "OFFLINE_RL_HOME"
DEFAULT_HOME = ".data"


def resolve_home(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``explicit`` if given, else ``$OFFLINE_RL_HOME``, else ``./.data`` (read at call time)."""
    raw = os.fspath(explicit) if explicit else os.environ.get(HOME_ENV) or DEFAULT_HOME
    return Path(raw).expanduser().resolve()


@dataclass(frozen=True)
class DataPaths:
    """Locations inside a data home."""

    home: Path

    @property
    def landing(self) -> Path:
        return self.home / "landing"

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def models(self) -> Path:
        return self.home / "models"

    @property
    def exports(self) -> Path:
        return self.home / "exports"

    @property
    def reports(self) -> Path:
        return self.home / "reports"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def simulation_manifest(self) -> Path:
        """Written by the simulator: scenario and seed, so truth rollouts use the same shop."""
        return self.landing / "_simulation.json"

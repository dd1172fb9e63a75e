"""Resources: where the data home is. Resolved when a run starts, never at import."""

from __future__ import annotations

import dagster as dg

from offline_rl.paths import DataPaths, resolve_home


class DataHome(dg.ConfigurableResource):  # type: ignore[misc]
    """The data home holding landing files, the DuckDB warehouse, models, exports, reports."""

    home: str = ""
    """Folder of the data home; empty means $OFFLINE_RL_HOME, else ./.data."""

    def paths(self) -> DataPaths:
        return DataPaths(resolve_home(self.home or None))


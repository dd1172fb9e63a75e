"""Resources: where the data home is (and where MLflow tracks it). Resolved when a run
starts, never at import."""

from __future__ import annotations

import dagster as dg

from offline_rl.paths import DataPaths
from offline_rl.tracking import Tracker


class DataHome(dg.ConfigurableResource):
    """The data home holding landing files, the DuckDB warehouse, models, exports, reports."""

    home: str = ""
    """Folder of the data home; empty means $OFFLINE_RL_HOME, else ./.data."""
    landing: str = ""
    """Landing zone, a folder or fsspec URI (s3://bucket/landing); empty means
    $OFFLINE_RL_LANDING, else <home>/landing."""
    exports: str = ""
    """Export root, a folder or fsspec URI; empty means $OFFLINE_RL_EXPORTS, else
    <home>/exports."""

    mlflow_uri: str = ""
    """MLflow tracking URI (offline_rl.tracking); empty means $OFFLINE_RL_MLFLOW_URI, else no
    tracking."""
    mlflow_artifacts: str = ""
    """Artifact root of the MLflow experiments created here; empty means
    $OFFLINE_RL_MLFLOW_ARTIFACTS, else the tracking server's default."""

    def paths(self) -> DataPaths:
        return DataPaths.resolve(self.home or None, landing=self.landing or None,
                                 exports=self.exports or None)

    def tracker(self) -> Tracker | None:
        """The MLflow tracker, or None when tracking is off."""
        return Tracker.resolve(self.mlflow_uri or None, self.mlflow_artifacts or None)



TRANSIENT_RETRY = dg.RetryPolicy(max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL)
"""Retries for steps whose failures can be transient (file systems, object stores, a busy
warehouse); training and evaluation fail deterministically and are not retried."""

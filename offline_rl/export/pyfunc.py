"""An exported policy as an MLflow pyfunc model: what ``mlflow.pyfunc.load_model`` serves.

The model's one artifact is the export directory itself (``policy.pt``, ``serving.pt``, the
ONNX files and ``manifest.json``). ``load_context`` loads it with
:func:`offline_rl.export.loader.load_policy`, which checks every file's SHA-256 and needs
torch and numpy only (not d3rlpy, polars or dagster), so the model serves exactly what the
export serves. Loading needs mlflow, torch and this project's package (for the loader).

``predict(features, params={"seed": s})``:

* ``features``: a DataFrame with the manifest's feature columns, as the model's signature
  names them (any order; other columns are ignored; :func:`serve` itself also takes an
  array ``[n, n_features]`` in the manifest's order). An optional column ``uniform`` gives
  each row's serving draw in [0, 1), as the shop's serving passes it;
  without it the draws come from ``numpy.random.default_rng(seed)`` (``seed`` unset: fresh
  entropy), exactly as ``LoadedPolicy.sample(features, default_rng(seed))`` draws them.
* Returns a DataFrame, one row per input row: ``action`` (the served action; -1 where the
  mask allows none), ``propensity`` (its probability: what the shop logs with the decision),
  ``greedy_action`` and ``p_<i>``, the probability of action ``i``. An export without a
  serving head (written before exploration was recorded) serves its greedy action with
  propensity 1.

This module imports mlflow; :mod:`offline_rl.tracking` imports it only when MLflow is on.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import numpy as np

from offline_rl.export.loader import LoadedPolicy, load_policy

EXPORT_ARTIFACT = "export"
"""Name of the export directory among the model's artifacts."""
UNIFORM_COLUMN = "uniform"


def feature_matrix(policy: LoadedPolicy, features: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """The feature rows in the manifest's order and the ``uniform`` column (None if absent)."""
    columns = getattr(features, "columns", None)
    if columns is None:
        return np.asarray(features, dtype=np.float32), None
    names = policy.feature_names
    missing = [n for n in names if n not in columns]
    if missing:
        raise ValueError(f"missing feature column(s): {', '.join(missing[:8])}"
                         + (f" and {len(missing) - 8} more" if len(missing) > 8 else ""))
    x = np.asarray(features[names].to_numpy(), dtype=np.float32)
    u = features[UNIFORM_COLUMN].to_numpy(dtype=np.float64) \
        if UNIFORM_COLUMN in columns else None
    return x, u


def serve(policy: LoadedPolicy, features: Any, seed: int | None = None) -> Any:
    """The pyfunc model's output for ``features`` (see the module docstring), as a DataFrame."""
    import pandas as pd

    x, uniform = feature_matrix(policy, features)
    policy.warn_unlike_training(x)
    greedy = policy.predict(x)
    n_actions = len(policy.action_names)
    if policy.serving is None:
        action = greedy
        propensity = np.ones(len(greedy))
        probs = np.zeros((len(greedy), n_actions))
        allowed = greedy >= 0
        probs[np.flatnonzero(allowed), greedy[allowed]] = 1.0
    else:
        if uniform is None:
            n_rows: int = x.shape[0]
            uniform = np.random.default_rng(seed).random(n_rows)
        served = policy._serve(x, uniform)
        action, propensity, probs = served.action, served.propensity, served.probs
    out = {"action": action, "propensity": propensity, "greedy_action": greedy}
    out.update({f"p_{i}": probs[:, i] for i in range(probs.shape[1])})
    return pd.DataFrame(out)


class ExportModel(mlflow.pyfunc.PythonModel):  # type: ignore[name-defined]  # mypy does not resolve mlflow.pyfunc's re-export of PythonModel
    """The pyfunc wrapper of an export directory (artifact ``export``)."""

    def load_context(self, context: Any) -> None:
        self.policy = load_policy(context.artifacts[EXPORT_ARTIFACT])

    # no annotations: MLflow reads predict's type hints as an input schema (the signature
    # below describes the input instead)
    def predict(self, context, model_input, params=None):
        seed = (params or {}).get("seed")
        return serve(self.policy, model_input, None if seed is None else int(seed))


def signature(policy: LoadedPolicy) -> Any:
    """The model signature: the manifest's features (doubles) and the optional ``uniform``
    column in; ``action``, ``propensity``, ``greedy_action`` and ``p_<i>`` out; the optional
    ``seed`` parameter."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec

    feature_specs: list[ColSpec | TensorSpec] = [
        ColSpec("double", name) for name in policy.feature_names
    ]
    inputs = Schema(feature_specs + [ColSpec("double", UNIFORM_COLUMN, required=False)])
    served_specs: list[ColSpec | TensorSpec] = [
        ColSpec("long", "action"), ColSpec("double", "propensity"),
        ColSpec("long", "greedy_action"),
    ]
    outputs = Schema(served_specs
                     + [ColSpec("double", f"p_{i}") for i in range(len(policy.action_names))])
    params = ParamSchema([ParamSpec("seed", "long", None)])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)

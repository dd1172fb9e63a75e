"""Building a self-contained export (TorchScript + ONNX) from a trained d3rlpy algorithm.

The exported graph takes raw feature rows ``float32 [n, n_features]`` and returns
``(action int64 [n], values float32 [n, n_actions])``:

* the algorithm's observation scaler (if any) is applied inside the graph;
* ``values`` are the expected Q-values (mean over the critic ensemble; what
  ``algo.predict_value`` returns) for Q-learning algorithms (DQN, DoubleDQN, DiscreteCQL,
  DiscreteBCQ, NFQ), and the policy's log-probabilities for DiscreteBC;
* ``action`` is what ``algo.predict`` returns (for DiscreteBCQ: the best Q-value among the
  actions the behaviour model deems likely enough, as d3rlpy does);
* with an action mask (``action_mask_feature``: one raw feature per action, allowed where it
  is > 0), masked actions get -inf before the argmax, and a row with no allowed action gets -1.
  ``values`` are never masked.

Only the training side imports this module (it needs d3rlpy); serving uses ``loader``.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from d3rlpy.algos.qlearning.torch.bc_impl import DiscreteBCImpl
from d3rlpy.algos.qlearning.torch.bcq_impl import DiscreteBCQImpl
from d3rlpy.algos.qlearning.torch.dqn_impl import DQNImpl

from offline_rl.export.exploration import SOFTMAX, UNIFORM_MAX, Exploration
from offline_rl.export.loader import (
    FORMAT_VERSION,
    ONNX_FILE,
    POLICY_FILE,
    SERVING_ONNX_FILE,
    SERVING_POLICY_FILE,
    ExportError,
)

log = logging.getLogger(__name__)

ONNX_OPSET = 17
INPUT_NAME = "features"
OUTPUT_NAMES = ("action", "values")
UNIFORM_NAME = "uniform"
SERVING_OUTPUT_NAMES = ("action", "propensity", "probs")
Q_VALUE = "q_value"
LOG_PROB = "log_prob"


class PolicyGraph(torch.nn.Module):
    """Raw features in, ``(greedy action, action values)`` out; built from a d3rlpy algo."""

    mask_index: torch.Tensor  # buffer registered in __init__ when there is an action mask

    def __init__(self, algo: Any, action_mask_indices: Sequence[int] | None = None) -> None:
        super().__init__()
        impl = algo.impl
        if impl is None:
            raise ExportError("the algorithm has no model yet (train or build it first)")
        self.n_actions = int(impl.action_size)
        scaler = algo.config.observation_scaler
        self.scaler = scaler if scaler is not None and getattr(scaler, "built", True) else None
        self.bcq_log_flexibility: float | None = None
        # Q-values are learned on rewards * multiplier; export them in reward units
        self.value_unscale = 1.0 / reward_multiplier(algo)
        if isinstance(impl, DiscreteBCImpl):
            self.kind = LOG_PROB
            self.imitator = impl._modules.imitator
        elif isinstance(impl, DQNImpl):
            self.kind = Q_VALUE
            self.q_funcs = impl.q_function  # registers the parameters the forwarder uses
            self.q_forwarder = impl._q_func_forwarder
            if isinstance(impl, DiscreteBCQImpl):
                self.imitator = impl._modules.imitator
                self.bcq_log_flexibility = math.log(impl._action_flexibility)
        else:
            raise ExportError(f"cannot export {type(algo).__name__}: supported are discrete "
                              "Q-learning algorithms (DQN family, CQL, BCQ) and DiscreteBC")
        self.has_mask = bool(action_mask_indices)
        if action_mask_indices:
            if len(action_mask_indices) != self.n_actions:
                raise ExportError(f"action mask needs {self.n_actions} features (one per "
                                  f"action), got {len(action_mask_indices)}")
            self.register_buffer("mask_index",
                                 torch.tensor(list(action_mask_indices), dtype=torch.long))

    def _logits(self, obs: torch.Tensor, allowed: torch.Tensor | None = None) -> torch.Tensor:
        # CategoricalPolicy.forward wraps these in a Categorical, whose argument checks
        # do not trace; its logits are the log-softmax of this linear head's output.
        raw = self.imitator._fc(self.imitator._encoder(obs))
        if allowed is not None:  # the behaviour model over the allowed actions only
            raw = raw.masked_fill(~allowed, float("-inf"))
        return torch.log_softmax(raw, dim=1)

    def allowed(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(allowed [n, n_actions], any_allowed [n])`` from the mask features; a state that
        allows nothing (after a terminal) is scored over every action. Only with a mask."""
        allowed = features.index_select(1, self.mask_index) > 0
        any_allowed = allowed.any(dim=1)
        return allowed | ~any_allowed.unsqueeze(1), any_allowed

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        obs = self.scaler.transform(features) if self.scaler is not None else features
        allowed: torch.Tensor | None = None
        any_allowed: torch.Tensor | None = None
        if self.has_mask:
            allowed, any_allowed = self.allowed(features)
        if self.kind == LOG_PROB:
            values = self._logits(obs)
            scores = values
        else:
            values = self.q_forwarder.compute_expected_q(obs, reduction="mean") \
                * self.value_unscale
            scores = values
            if self.bcq_log_flexibility is not None:  # d3rlpy's DiscreteBCQ action rule
                log_probs = self._logits(obs, allowed)
                ratio = log_probs - log_probs.max(dim=1, keepdim=True).values
                likely = (ratio > self.bcq_log_flexibility).float()
                scores = (values - values.min(dim=1, keepdim=True).values + 1e-5) * likely
        if allowed is not None and any_allowed is not None:
            scores = scores.masked_fill(~allowed, float("-inf"))
            action = scores.argmax(dim=1)
            action = torch.where(any_allowed, action, torch.full_like(action, -1))
        else:
            action = scores.argmax(dim=1)
        return action, values.float()


class ServingGraph(torch.nn.Module):
    """``(features, uniform) -> (served action, its propensity, every action's probability)``.

    The greedy graph's action mixed with ``exploration``
    (:mod:`offline_rl.export.exploration` gives the formulas): the action is drawn by inverse
    CDF from the row's uniform number in [0, 1), over the actions the mask allows; a row whose
    mask allows nothing serves ``-1`` with propensity 1, like the greedy graph.
    """

    action_index: torch.Tensor  # buffer registered in __init__

    def __init__(self, policy: PolicyGraph, exploration: Exploration) -> None:
        super().__init__()
        self.policy = policy
        self.epsilon = float(exploration.epsilon)
        self.softmax = exploration.kind == SOFTMAX
        self.temperature = float(exploration.temperature)
        self.register_buffer("action_index", torch.arange(policy.n_actions, dtype=torch.long))

    def forward(self, features: torch.Tensor, uniform: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        greedy, values = self.policy(features)
        if self.policy.has_mask:
            allowed, any_allowed = self.policy.allowed(features)
        else:
            allowed = torch.ones_like(values, dtype=torch.bool)
            any_allowed = allowed.any(dim=1)
        allowed_f = allowed.float()
        uniform_p = allowed_f / allowed_f.sum(dim=1, keepdim=True)
        if self.softmax:
            scores = (values / self.temperature).masked_fill(~allowed, float("-inf"))
            base = torch.softmax(scores, dim=1)
        else:
            best = greedy.clamp(min=0).unsqueeze(1)
            base = (self.action_index.unsqueeze(0) == best).float()
        probs = (1.0 - self.epsilon) * base + self.epsilon * uniform_p
        cdf = torch.cumsum(probs, dim=1)
        cdf = cdf / cdf[:, -1:]
        u = uniform.clamp(0.0, UNIFORM_MAX).unsqueeze(1)
        action = (cdf <= u).long().sum(dim=1).clamp(max=self.policy.n_actions - 1)
        propensity = probs.gather(1, action.unsqueeze(1)).squeeze(1)
        action = torch.where(any_allowed, action, torch.full_like(action, -1))
        propensity = torch.where(any_allowed, propensity, torch.ones_like(propensity))
        return action, propensity, probs


def reward_multiplier(algo: Any) -> float:
    """The reward multiplier the algo was trained with (1.0 without a reward scaler)."""
    scaler = getattr(algo.config, "reward_scaler", None)
    multiplier = getattr(scaler, "multiplier", None)
    if scaler is not None and multiplier is None:
        raise ExportError(f"cannot undo reward scaler {type(scaler).__name__} in the export")
    return float(multiplier) if multiplier else 1.0


def policy_graph(algo: Any, action_mask_indices: Sequence[int] | None = None) -> PolicyGraph:
    """A frozen copy (eval mode, no gradients) of the algo's networks as a ``PolicyGraph``."""
    graph = copy.deepcopy(PolicyGraph(algo, action_mask_indices))
    graph.eval()
    graph.requires_grad_(False)
    return graph


def mask_feature_names(action_mask_feature: str | Sequence[str] | None,
                       action_names: Sequence[str]) -> list[str] | None:
    """The mask's feature per action: a list as given, or ``prefix + action name``."""
    if not action_mask_feature:
        return None
    if isinstance(action_mask_feature, str):
        return [f"{action_mask_feature}{name}" for name in action_names]
    return [str(n) for n in action_mask_feature]


@dataclass(frozen=True)
class BuiltExport:
    """Files written by ``build_export`` and the manifest entries describing them."""

    torchscript: Path
    onnx: Path
    manifest: dict[str, Any]
    serving_torchscript: Path | None = None
    serving_onnx: Path | None = None

    @property
    def files(self) -> dict[str, Path]:
        files = {POLICY_FILE: self.torchscript, ONNX_FILE: self.onnx}
        if self.serving_torchscript is not None and self.serving_onnx is not None:
            files[SERVING_POLICY_FILE] = self.serving_torchscript
            files[SERVING_ONNX_FILE] = self.serving_onnx
        return files

    @property
    def extra_files(self) -> dict[str, Path]:
        """Every file but the greedy TorchScript policy (what ``publish`` takes besides it)."""
        return {k: v for k, v in self.files.items() if k != POLICY_FILE}


def build_export(
    algo: Any,
    out_dir: Path,
    *,
    feature_names: Sequence[str],
    action_map: Mapping[Any, str] | None = None,
    action_mask_feature: str | Sequence[str] | None = None,
    opset: int = ONNX_OPSET,
    verify: bool = True,
    exploration: Exploration | None = None,
) -> BuiltExport:
    """Writes ``policy.pt`` and ``policy.onnx`` for ``algo`` into ``out_dir``, and with
    ``exploration`` the serving head ``serving.pt`` / ``serving.onnx`` (see
    :mod:`offline_rl.export.exploration`).

    Returns the files and the manifest entries (format, feature schema, action map, inputs,
    outputs, exploration) to publish with them. With ``verify``, the greedy files are checked
    against ``algo.predict`` / ``algo.predict_value`` on random inputs, and the serving files
    against the exploration's formulas applied to the greedy outputs, before returning.
    """
    if algo.impl is None:
        raise ExportError("the algorithm has no model yet (train or build it first)")
    feature_names = [str(n) for n in feature_names]
    n_features = len(feature_names)
    shape = tuple(algo.impl.observation_shape)
    if shape != (n_features,):
        raise ExportError(f"the model expects observations of shape {shape}, the feature "
                          f"schema has {n_features} names")
    n_actions = int(algo.impl.action_size)
    names = {int(k): str(v) for k, v in (action_map or {}).items()}
    action_names = [names.get(i, str(i)) for i in range(n_actions)]
    mask_names = mask_feature_names(action_mask_feature, action_names)
    mask_indices = None
    if mask_names is not None:
        unknown = [n for n in mask_names if n not in feature_names]
        if unknown:
            raise ExportError(f"action mask features not in the feature schema: "
                              f"{', '.join(unknown)}")
        mask_indices = [feature_names.index(n) for n in mask_names]
    if not _installed("onnx"):
        raise ExportError("exporting to ONNX needs the onnx package (torch's exporter uses it); "
                          "install the project's pinned onnx")
    graph = policy_graph(algo, mask_indices)
    if any(p.device.type != "cpu" for p in graph.parameters()):
        raise ExportError("export a model loaded on the CPU (d3rlpy.load_learnable(..., "
                          "device='cpu'))")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ts_path, onnx_path = out_dir / POLICY_FILE, out_dir / ONNX_FILE
    dummy = torch.randn(3, n_features, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings(), torch.no_grad():
        # torch.jit.trace and the TorchScript-based ONNX exporter are deprecated in torch 2.13
        # but work; the tracer also warns about d3rlpy's shape assertions in the scalers.
        warnings.simplefilter("ignore")
        torch.jit.trace(graph, (dummy,), check_trace=False).save(str(ts_path))
        torch.onnx.export(
            graph, (dummy,), str(onnx_path), dynamo=False, opset_version=opset,
            input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAMES[0]: {0: "batch"},
                          OUTPUT_NAMES[1]: {0: "batch"}},
        )
    _check_onnx(onnx_path)
    serving_paths: tuple[Path, Path] | None = None
    if exploration is not None:
        serving_paths = _write_serving(graph, exploration, dummy, out_dir, opset)
    scaler = algo.config.observation_scaler
    manifest = {
        "format_version": FORMAT_VERSION,
        "algorithm": type(algo).__name__,
        "feature_schema": {"names": feature_names, "dtype": "float32",
                           "shape": ["batch", n_features],
                           "column_aliases": "a column may be named NAME or f_NAME"},
        "action_map": {str(i): n for i, n in enumerate(action_names)},
        "n_actions": n_actions,
        "observation_scaler": None if scaler is None else type(scaler).__name__,
        "action_mask_feature": mask_names,
        "inputs": {INPUT_NAME: {"dtype": "float32", "shape": ["batch", n_features],
                                "meaning": "raw feature rows in feature_schema order; "
                                           "scaling happens inside the graph"}},
        "outputs": {
            OUTPUT_NAMES[0]: {"index": 0, "dtype": "int64", "shape": ["batch"],
                              "meaning": "greedy action (key of action_map)"
                                         + ("; -1 where the mask allows no action"
                                            if mask_names else "")},
            OUTPUT_NAMES[1]: {"index": 1, "dtype": "float32", "shape": ["batch", n_actions],
                              "kind": graph.kind,
                              "meaning": ("expected Q-value of each action (mean over critics; "
                                          "reward units)" if graph.kind == Q_VALUE
                                          else "log-probability of each action under the "
                                               "cloned behaviour policy"),
                              "masked": False},
        },
        "formats": {
            POLICY_FILE: {"format": "torchscript", "torch_version": torch.__version__},
            ONNX_FILE: {"format": "onnx", "opset": opset, "input_names": [INPUT_NAME],
                        "output_names": list(OUTPUT_NAMES)},
        },
    }
    if serving_paths is not None and exploration is not None:
        manifest["exploration"] = exploration.as_dict()
        manifest["serving"] = {
            "files": {SERVING_POLICY_FILE: "torchscript", SERVING_ONNX_FILE: "onnx"},
            "inputs": {
                INPUT_NAME: {"dtype": "float32", "shape": ["batch", n_features]},
                UNIFORM_NAME: {"dtype": "float32", "shape": ["batch"],
                               "meaning": "one uniform random number in [0, 1) per row; the "
                                          "caller's random stream makes serving reproducible"},
            },
            "outputs": {
                "action": {"index": 0, "dtype": "int64", "shape": ["batch"],
                           "meaning": "served action (drawn by inverse CDF from uniform)"
                                      + ("; -1 where the mask allows no action"
                                         if mask_names else "")},
                "propensity": {"index": 1, "dtype": "float32", "shape": ["batch"],
                               "meaning": "probability of the served action: the propensity "
                                          "to log with the decision"},
                "probs": {"index": 2, "dtype": "float32", "shape": ["batch", n_actions],
                          "meaning": "probability of every action"},
            },
        }
    built = BuiltExport(torchscript=ts_path, onnx=onnx_path, manifest=manifest,
                        serving_torchscript=serving_paths[0] if serving_paths else None,
                        serving_onnx=serving_paths[1] if serving_paths else None)
    if verify:
        verify_export(algo, built)
        if serving_paths is not None and exploration is not None:
            verify_serving(built, exploration)
    return built


def _write_serving(graph: PolicyGraph, exploration: Exploration, dummy: torch.Tensor,
                   out_dir: Path, opset: int) -> tuple[Path, Path]:
    """Writes the serving head (TorchScript and ONNX) around the frozen greedy graph."""
    serving = ServingGraph(graph, exploration)
    serving.eval()
    ts_path, onnx_path = out_dir / SERVING_POLICY_FILE, out_dir / SERVING_ONNX_FILE
    uniform = torch.rand(dummy.shape[0], generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.jit.trace(serving, (dummy, uniform), check_trace=False).save(str(ts_path))
        torch.onnx.export(
            serving, (dummy, uniform), str(onnx_path), dynamo=False, opset_version=opset,
            input_names=[INPUT_NAME, UNIFORM_NAME], output_names=list(SERVING_OUTPUT_NAMES),
            dynamic_axes={INPUT_NAME: {0: "batch"}, UNIFORM_NAME: {0: "batch"},
                          **{name: {0: "batch"} for name in SERVING_OUTPUT_NAMES}},
        )
    _check_onnx(onnx_path)
    return ts_path, onnx_path


def run_serving_onnx(path: Path, features: np.ndarray, uniform: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs an exported ONNX serving head (onnxruntime, else onnx's reference evaluator)."""
    feeds = {INPUT_NAME: np.ascontiguousarray(features, dtype=np.float32),
             UNIFORM_NAME: np.ascontiguousarray(uniform, dtype=np.float32)}
    try:
        import onnxruntime as ort
    except ImportError:
        from onnx.reference import ReferenceEvaluator

        out = ReferenceEvaluator(str(path)).run(None, feeds)
    else:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        out = session.run(list(SERVING_OUTPUT_NAMES), feeds)
    action, propensity, probs = (np.asarray(o) for o in out)
    return action, propensity, probs


def verify_serving(built: BuiltExport, exploration: Exploration, n: int = 256, seed: int = 0,
                   atol: float = 1e-5) -> None:
    """Checks the serving files against the exploration's formulas applied to the greedy
    TorchScript graph's outputs (probabilities within ``atol``, every served action of
    positive probability and its propensity the probability of that action); TorchScript and
    ONNX must serve the same actions."""
    from offline_rl.export.exploration import allowed_actions, serving_probabilities

    if built.serving_torchscript is None or built.serving_onnx is None:
        raise ExportError("the export has no serving head to verify")
    names = built.manifest["feature_schema"]["names"]
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(names))).astype(np.float32)
    u = rng.random(n).astype(np.float32)
    greedy = torch.jit.load(str(built.torchscript), map_location="cpu")
    serving = torch.jit.load(str(built.serving_torchscript), map_location="cpu")
    with torch.no_grad():
        g_action, g_values = (t.numpy() for t in greedy(torch.from_numpy(x)))
        action, propensity, probs = (t.numpy() for t in serving(torch.from_numpy(x),
                                                                torch.from_numpy(u)))
    mask_names = built.manifest.get("action_mask_feature")
    mask_index = [names.index(m) for m in mask_names] if mask_names else None
    allowed, any_allowed = allowed_actions(x, mask_index, g_values.shape[1])
    expected = serving_probabilities(g_action, g_values, allowed, exploration)
    if not np.allclose(probs, expected, atol=atol):
        diff = float(np.abs(probs - expected).max())
        raise ExportError(f"serving head's probabilities differ from the {exploration.kind} "
                          f"exploration's by {diff:.3g}")
    rows = np.flatnonzero(any_allowed)
    if (probs[rows, action[rows]] <= 0).any() or \
            not np.allclose(propensity[rows], probs[rows, action[rows]], atol=atol):
        raise ExportError("serving head served an action whose propensity is not its "
                          "probability")
    if (action[~any_allowed] != -1).any():
        raise ExportError("serving head served an action where the mask allows none")
    if onnx_runner_available():
        o_action, o_propensity, o_probs = run_serving_onnx(built.serving_onnx, x, u)
        if not np.array_equal(o_action.astype(np.int64), action.astype(np.int64)) or \
                not np.allclose(o_probs, probs, atol=atol):
            raise ExportError("the TorchScript and ONNX serving heads disagree")


def _check_onnx(path: Path) -> None:
    try:
        import onnx
    except ImportError:  # the checker is optional; verify_export still runs the graph
        return
    onnx.checker.check_model(str(path), full_check=True)


def onnx_runner_available() -> bool:
    """Whether ``run_onnx`` can run (onnxruntime or onnx installed)."""
    return _installed("onnxruntime") or _installed("onnx")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # e.g. blocked with sys.modules[module] = None
        return False


def run_onnx(path: Path, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs an exported ONNX graph with onnxruntime, else with onnx's reference evaluator."""
    x = np.ascontiguousarray(features, dtype=np.float32)
    try:
        import onnxruntime as ort
    except ImportError:
        from onnx.reference import ReferenceEvaluator

        action, values = ReferenceEvaluator(str(path)).run(None, {INPUT_NAME: x})
    else:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        action, values = session.run(list(OUTPUT_NAMES), {INPUT_NAME: x})
    return np.asarray(action), np.asarray(values)


def reference_outputs(algo: Any, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the export must reproduce: ``algo.predict`` and :func:`reference_values`."""
    x = np.ascontiguousarray(features, dtype=np.float32)
    actions = np.asarray(algo.predict(x)).reshape(-1)
    return actions.astype(np.int64), reference_values(algo, x)


def reference_values(algo: Any, features: np.ndarray) -> np.ndarray:
    """The per-action values from d3rlpy (``predict_value`` for Q-learning algos, in reward
    units; the policy's log-probabilities for DiscreteBC), ``[n, n_actions]`` float32."""
    x = np.ascontiguousarray(features, dtype=np.float32)
    n_actions = int(algo.impl.action_size)
    if isinstance(algo.impl, DiscreteBCImpl):
        obs = torch.from_numpy(x)
        with torch.no_grad():
            if algo.config.observation_scaler is not None:
                obs = algo.config.observation_scaler.transform(obs)
            values = algo.impl._modules.imitator(obs).logits.cpu().numpy()
    else:
        values = np.stack([algo.predict_value(x, np.full(len(x), a)) for a in range(n_actions)],
                          axis=1) / reward_multiplier(algo)
    return values.astype(np.float32)


def verify_export(algo: Any, built: BuiltExport, n: int = 256, seed: int = 0,
                  atol: float = 1e-4) -> None:
    """Checks both files against the algo on random rows; raises ``ExportError`` if they differ.

    Compares actions exactly and values within ``atol``. With an action mask the reference is
    recomputed from the algo's values, since d3rlpy itself has no masks.
    """
    x = np.random.default_rng(seed).normal(size=(n, len(built.manifest["feature_schema"]
                                                       ["names"]))).astype(np.float32)
    ref_actions, ref_values = reference_outputs(algo, x)
    mask_names = built.manifest.get("action_mask_feature")
    if mask_names:
        names = built.manifest["feature_schema"]["names"]
        allowed = x[:, [names.index(m) for m in mask_names]] > 0
        ref_actions = np.where(allowed.any(axis=1),
                               np.where(allowed, ref_values, -np.inf).argmax(axis=1), -1)
        if isinstance(algo.impl, DiscreteBCQImpl):
            return _check_same_graph(built, x)  # BCQ's own rule plus a mask: self-consistency
    module = torch.jit.load(str(built.torchscript), map_location="cpu")
    with torch.no_grad():
        ts_actions, ts_values = (t.numpy() for t in module(torch.from_numpy(x)))
    results = [("TorchScript", ts_actions, ts_values)]
    if onnx_runner_available():
        results.append(("ONNX", *run_onnx(built.onnx, x)))
    else:
        log.warning("neither onnxruntime nor onnx is installed: %s not verified", built.onnx)
    for label, actions, values in results:
        if not np.array_equal(actions.astype(np.int64), ref_actions):
            bad = int((actions != ref_actions).sum())
            raise ExportError(f"{label} export disagrees with the model on {bad} of {n} actions")
        if not np.allclose(values, ref_values, atol=atol, rtol=1e-4):
            diff = float(np.abs(values - ref_values).max())
            raise ExportError(f"{label} export's values differ from the model's by {diff:.3g}")


def _check_same_graph(built: BuiltExport, x: np.ndarray) -> None:
    module = torch.jit.load(str(built.torchscript), map_location="cpu")
    with torch.no_grad():
        ts_actions, ts_values = (t.numpy() for t in module(torch.from_numpy(x)))
    if not onnx_runner_available():
        return
    onnx_actions, onnx_values = run_onnx(built.onnx, x)
    if not np.array_equal(ts_actions, onnx_actions) or \
            not np.allclose(ts_values, onnx_values, atol=1e-4, rtol=1e-4):
        raise ExportError("the TorchScript and ONNX exports disagree")

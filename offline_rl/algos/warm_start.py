"""Warm starts: a new candidate's networks initialised from a previously saved model.

A warm start copies every network of the source model (Q-functions and their target copies,
behaviour models) into the freshly built algorithm; optimiser states start fresh. It is allowed
only within an algorithm family, whose members have the same networks:

===================  ===========================================
family               algorithms
===================  ===========================================
``q_learning``       DQN, DoubleDQN, DiscreteCQL
``bcq``              DiscreteBCQ (Q-function and behaviour model)
``imitation``        DiscreteBC
===================  ===========================================

and only when observation and action shapes, every network's parameter shapes, and, where
both models record them in ``training.json``, the feature schema and the action map are the
same. Anything else raises one ``ValueError`` naming the difference.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import d3rlpy
import torch

from offline_rl.algos.record import CandidateRecord

__all__ = ["FAMILIES", "check_same_schema", "warm_start_from"]

FAMILIES: dict[str, str] = {
    "DQN": "q_learning",
    "DoubleDQN": "q_learning",
    "DiscreteCQL": "q_learning",
    "DiscreteBCQ": "bcq",
    "DiscreteBC": "imitation",
}
"""d3rlpy algorithm class name -> warm-start family."""


def _networks(impl: Any) -> dict[str, torch.nn.Module]:
    modules = impl.modules
    return {f.name: getattr(modules, f.name) for f in dataclasses.fields(modules)
            if isinstance(getattr(modules, f.name), torch.nn.Module)}


def _action_map(record: Mapping[str, Any]) -> dict[str, str] | None:
    raw = record.get("action_map")
    return None if raw is None else {str(k): str(v) for k, v in raw.items()}


def _feature_names(record: Mapping[str, Any]) -> list[str] | None:
    schema = record.get("feature_schema")
    if not isinstance(schema, Mapping) or schema.get("names") is None:
        return None
    return [str(n) for n in schema["names"]]


def check_same_schema(source: Mapping[str, Any], target: Mapping[str, Any], where: str) -> None:
    """``ValueError`` when both records name a feature schema or action map and they differ."""
    src, dst = _feature_names(source), _feature_names(target)
    if src is not None and dst is not None and src != dst:
        added = [n for n in dst if n not in src]
        removed = [n for n in src if n not in dst]
        detail = (f"added {added}, removed {removed}" if added or removed
                  else "same names in another order")
        raise ValueError(f"cannot warm-start from {where}: feature schema differs ({detail})")
    src_map, dst_map = _action_map(source), _action_map(target)
    if src_map is not None and dst_map is not None and src_map != dst_map:
        raise ValueError(f"cannot warm-start from {where}: action map differs "
                         f"({src_map} vs {dst_map})")


def warm_start_from(algo: Any, source_dir: Path,
                    context: Mapping[str, Any] | None = None) -> Path:
    """Copies the networks of the model saved in ``source_dir`` into the built ``algo``.

    Args:
        algo: A d3rlpy algorithm whose implementation is built (``build_with_dataset``).
        source_dir: A directory written by ``train_candidate`` (``model.d3`` and, usually,
            ``training.json``).
        context: The new model's facts (``feature_schema``, ``action_map``) to compare with the
            source's ``training.json``.

    Returns:
        The source's ``model.d3`` path.

    Raises:
        FileNotFoundError: No ``model.d3`` in ``source_dir``.
        ValueError: Another family, other shapes, or another feature schema or action map.
    """
    if algo.impl is None:
        raise ValueError("build the algorithm before warm-starting it")
    source_dir = Path(source_dir)
    model = source_dir / "model.d3"
    if not model.is_file():
        raise FileNotFoundError(f"no trained model to warm-start from at {model}")
    if CandidateRecord.exists(source_dir):
        check_same_schema(CandidateRecord.read(source_dir).as_dict(), context or {},
                          str(source_dir))
    source = d3rlpy.load_learnable(str(model), device=algo.impl.device)
    want, have = type(algo).__name__, type(source).__name__
    if FAMILIES.get(want) is None:
        raise ValueError(f"warm starts are not supported for {want}")
    if FAMILIES.get(have) != FAMILIES[want]:
        raise ValueError(f"cannot warm-start {want} from {have} at {source_dir}: another "
                         f"algorithm family ({FAMILIES.get(have)} vs {FAMILIES[want]})")
    src_shape, dst_shape = tuple(source.impl.observation_shape), tuple(algo.impl.observation_shape)
    if src_shape != dst_shape:
        raise ValueError(f"cannot warm-start from {source_dir}: observation shape {src_shape} "
                         f"there, {dst_shape} here")
    if int(source.impl.action_size) != int(algo.impl.action_size):
        raise ValueError(f"cannot warm-start from {source_dir}: {source.impl.action_size} "
                         f"actions there, {algo.impl.action_size} here")
    targets, sources = _networks(algo.impl), _networks(source.impl)
    for name, net in targets.items():
        if name not in sources:
            raise ValueError(f"cannot warm-start from {source_dir}: it has no {name!r} network")
        want_shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
        have_shapes = {k: tuple(v.shape) for k, v in sources[name].state_dict().items()}
        if want_shapes != have_shapes:
            diff = sorted(k for k in want_shapes.keys() | have_shapes.keys()
                          if want_shapes.get(k) != have_shapes.get(k))
            raise ValueError(f"cannot warm-start from {source_dir}: network {name!r} differs "
                             f"in {diff[0]} ({have_shapes.get(diff[0])} there, "
                             f"{want_shapes.get(diff[0])} here)")
    with torch.no_grad():
        for name, net in targets.items():
            net.load_state_dict(sources[name].state_dict())
    return model

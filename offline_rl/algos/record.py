"""``training.json``: what a trained candidate records about how it was made.

``CandidateRecord`` is the one writer (``write``) and the one reader (``read``) of the file
that sits beside every ``model.d3``. Training writes it; evaluation, the gate, the export,
the loop, MLflow tracking and warm starts read it. The file's layout is a flat JSON object:
the training facts (``name``, ``algorithm``, ``device``, ``seconds``, ``training_config``,
``d3rlpy_config``, versions, ``mask_indices``, ``warm_start``, ``learning_curve``) next to
the data facts of a ``TrainingContext`` (``domain``, ``data_window``, ``split``,
``feature_schema``, ``action_map``, ``action_mask_feature``). Keys a reader does not know
(written by other trainers, e.g. ``distributed`` of the DDP launcher), and the data facts of a
record without a data window, are kept in ``extra`` and written back unchanged.

A file that is not valid JSON or lacks a field the reader needs raises ``ValueError`` naming
the file and the field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["FILE_NAME", "CandidateRecord", "DataWindow", "Split", "TrainingContext"]

FILE_NAME = "training.json"


@dataclass(frozen=True)
class DataWindow:
    """The days of transitions a candidate was trained on (inclusive ISO dates)."""

    start: str
    end: str
    days: int


@dataclass(frozen=True)
class Split:
    """How the window's episodes were split between training and held-out evaluation (and
    the decisions each part was limited to, None: none; see ``pipeline.load_window``)."""

    eval_fraction: float
    seed: int
    train_episodes: int
    eval_episodes: int
    settle_days: int
    eval_start: str
    eval_end: str
    max_train_rows: int | None = None
    max_eval_rows: int | None = None


def _limit(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True)
class TrainingContext:
    """What every candidate of one window records about its data."""

    domain: str
    data_window: DataWindow
    split: Split
    feature_names: tuple[str, ...]
    action_map: Mapping[str, str]
    action_mask_feature: tuple[str, ...] | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON layout (also what ``train_candidate``'s ``context`` argument takes)."""
        return {
            "domain": self.domain,
            "data_window": vars(self.data_window).copy(),
            "split": vars(self.split).copy(),
            "feature_schema": {"names": list(self.feature_names)},
            "action_map": {str(k): v for k, v in self.action_map.items()},
            "action_mask_feature": list(self.action_mask_feature)
            if self.action_mask_feature else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> TrainingContext | None:
        """The context in a record; None when the record has no data window (a model trained
        outside the pipeline)."""
        if data.get("data_window") is None:
            return None
        window, split = _field(data, "data_window", where), _field(data, "split", where)
        try:
            return cls(
                domain=str(_field(data, "domain", where)),
                data_window=DataWindow(str(window["start"]), str(window["end"]),
                                       int(window["days"])),
                split=Split(float(split["eval_fraction"]), int(split["seed"]),
                            int(split["train_episodes"]), int(split["eval_episodes"]),
                            int(split.get("settle_days", 0)), str(split["eval_start"]),
                            str(split["eval_end"]), _limit(split.get("max_train_rows")),
                            _limit(split.get("max_eval_rows"))),
                feature_names=tuple(str(n) for n in _field(data, "feature_schema",
                                                           where)["names"]),
                action_map={str(k): str(v) for k, v in _field(data, "action_map", where).items()},
                action_mask_feature=tuple(data["action_mask_feature"])
                if data.get("action_mask_feature") else None,
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{where}: malformed data context ({type(e).__name__}: {e})") from None


_TRAINING_KEYS = ("name", "algorithm", "device", "seconds", "training_config", "d3rlpy_config",
                  "d3rlpy_version", "torch_version", "mask_indices", "warm_start",
                  "learning_curve")
_CONTEXT_KEYS = ("domain", "data_window", "split", "feature_schema", "action_map",
                 "action_mask_feature")


@dataclass(frozen=True)
class CandidateRecord:
    """How one candidate model was made (``training.json``)."""

    name: str
    algorithm: str
    device: str
    seconds: float
    training_config: Mapping[str, Any]
    d3rlpy_config: Mapping[str, Any] = field(default_factory=dict)
    d3rlpy_version: str | None = None
    torch_version: str | None = None
    mask_indices: tuple[int, ...] | None = None
    warm_start: str | None = None
    learning_curve: tuple[Mapping[str, float], ...] = ()
    context: TrainingContext | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def seed(self) -> int | None:
        seed = self.training_config.get("seed")
        return None if seed is None else int(seed)

    @property
    def reward_scale(self) -> float | None:
        scale = self.training_config.get("reward_scale")
        return None if scale is None else float(scale)

    def require_context(self, where: str | Path) -> TrainingContext:
        """The data context; ``ValueError`` naming ``where`` when the model has none."""
        if self.context is None:
            raise ValueError(f"{where}: the candidate records no data window (trained outside "
                             "the pipeline?)")
        return self.context

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "algorithm": self.algorithm,
            "device": self.device,
            "seconds": self.seconds,
            "training_config": dict(self.training_config),
            "d3rlpy_config": dict(self.d3rlpy_config),
            "d3rlpy_version": self.d3rlpy_version,
            "torch_version": self.torch_version,
            "mask_indices": None if self.mask_indices is None else list(self.mask_indices),
            "warm_start": self.warm_start,
            "learning_curve": [dict(p) for p in self.learning_curve],
        }
        out.update(self.extra)
        if self.context is not None:
            out.update(self.context.as_dict())
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = FILE_NAME) -> CandidateRecord:
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: expected a JSON object, got {type(data).__name__}")
        mask = data.get("mask_indices")
        context = TrainingContext.from_dict(data, where)
        known = _TRAINING_KEYS + (_CONTEXT_KEYS if context is not None else ())
        try:
            return cls(
                name=str(_field(data, "name", where)),
                algorithm=str(_field(data, "algorithm", where)),
                device=str(data.get("device", "cpu")),
                seconds=float(data.get("seconds") or 0.0),
                training_config=dict(data.get("training_config") or {}),
                d3rlpy_config=dict(data.get("d3rlpy_config") or {}),
                d3rlpy_version=data.get("d3rlpy_version"),
                torch_version=data.get("torch_version"),
                mask_indices=None if mask is None else tuple(int(i) for i in mask),
                warm_start=data.get("warm_start"),
                learning_curve=tuple(dict(p) for p in data.get("learning_curve") or ()),
                context=context,
                extra={k: v for k, v in data.items() if k not in known},
            )
        except (TypeError, ValueError) as e:
            if str(e).startswith(where):
                raise
            raise ValueError(f"{where}: {e}") from None

    @classmethod
    def path(cls, directory: str | Path) -> Path:
        return Path(directory) / FILE_NAME

    @classmethod
    def exists(cls, directory: str | Path) -> bool:
        return cls.path(directory).is_file()

    @classmethod
    def read(cls, directory: str | Path) -> CandidateRecord:
        """The record in a model folder (``FileNotFoundError`` without one)."""
        path = cls.path(directory)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"no {FILE_NAME} in {directory}") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from None
        return cls.from_dict(data, str(path))

    def write(self, directory: str | Path) -> Path:
        path = self.path(directory)
        path.write_text(json.dumps(self.as_dict(), indent=2, default=str))
        return path


def _field(data: Mapping[str, Any], key: str, where: str) -> Any:
    if data.get(key) is None:
        raise ValueError(f"{where}: missing field {key!r}")
    return data[key]

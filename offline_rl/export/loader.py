"""Loading an exported policy for serving: needs torch, numpy and the standard library only.

An export directory holds ``manifest.json`` and the policy in one or two formats:

* ``policy.pt``: TorchScript. Raw feature rows ``float32 [n, n_features]`` in (schema order,
  any observation scaling is inside the graph); out ``(action int64 [n], values float32
  [n, n_actions])``. ``manifest["outputs"]`` says what ``values`` are (Q-values or the
  behaviour-cloning policy's log-probabilities).
* ``policy.onnx``: the same graph as ONNX (input ``features``, outputs ``action``, ``values``).
* ``serving.pt`` / ``serving.onnx`` (when ``manifest["exploration"]`` is set): the serving
  head, inputs ``features`` and ``uniform`` (one number in [0, 1) per row), outputs the served
  ``action``, its ``propensity`` (what the shop logs) and ``probs`` of every action; see
  :mod:`offline_rl.export.exploration`.

Exports written before the ONNX format (``format_version`` 1) hold only ``policy.pt`` whose
graph returns the action alone; they still load, without ``predict_with_values``.

Every file named in ``manifest["sha256"]`` is checked before anything is deserialised, so a
truncated, tampered or missing file is refused.

An export root may also be an fsspec URI (``s3://bucket/exports``; fsspec and the store's
package are then needed too): the same layout is read through the filesystem, and the
policy is loaded from its verified bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from offline_rl.export.exploration import UNIFORM_MAX, Exploration

if TYPE_CHECKING:  # torch loads with the first policy, not with the checksums and names
    import torch
from offline_rl.paths import Location, as_location

LATEST = "latest"
MANIFEST = "manifest.json"
POLICY_FILE = "policy.pt"
ONNX_FILE = "policy.onnx"
SERVING_POLICY_FILE = "serving.pt"
SERVING_ONNX_FILE = "serving.onnx"
FORMAT_VERSION = 2
"""2: TorchScript and ONNX, outputs (action, values), a checksum for every file."""


def one_hot_groups(x: np.ndarray, names: list[str]) -> dict[str, list[str]]:
    """The one-hot groups of feature matrix ``x`` (columns ``names``): features named
    ``<group>_<level>`` (at least two of a group) that are 0 or 1 in every row and sum to
    exactly 1 in every row. Recorded in the manifest at export; an empty ``x`` has none."""
    by_prefix: dict[str, list[int]] = {}
    for j, name in enumerate(names):
        if "_" in name:
            by_prefix.setdefault(name.rsplit("_", 1)[0], []).append(j)
    groups: dict[str, list[str]] = {}
    for prefix, idx in by_prefix.items():
        block = np.asarray(x[:, idx], dtype=np.float64)
        if len(idx) < 2 or block.shape[0] == 0:
            continue
        if np.all((block == 0.0) | (block == 1.0)) and np.all(block.sum(axis=1) == 1.0):
            groups[prefix] = [names[j] for j in idx]
    return groups


class OutsideTrainingData(UserWarning):
    """Features unlike any the policy was trained on: a value outside a feature's training
    range, or a broken one-hot group (``LoadedPolicy.feature_problems``)."""


class ExportError(RuntimeError):
    """An export is missing, incomplete, or fails its checksum."""


def sha256_file(path: Location | str) -> str:
    digest = hashlib.sha256()
    with as_location(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _plain_name(name: str) -> str:
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ExportError(f"invalid file name {name!r} in manifest")
    return name


def resolve_version(domain_root: Location | str, version: str = LATEST) -> Location:
    """The directory of ``version`` (or of the one the ``latest`` pointer names); a version
    without its manifest (an unfinished publish) does not exist."""
    domain_root = as_location(domain_root)
    via = ""
    if version == LATEST:
        pointer = domain_root / LATEST
        if not pointer.is_file():
            if not domain_root.is_dir():
                raise ExportError(f"no exports of domain {domain_root.name!r}: "
                                  f"{domain_root} does not exist")
            raise ExportError(f"no promoted policy yet: {pointer} does not exist")
        version = pointer.read_text().strip()
        via = f" ({pointer} names it)"
    if not version or "/" in version or "\\" in version or version.startswith("."):
        raise ExportError(f"invalid export version {version!r}{via}")
    path = domain_root / version
    if not (path / MANIFEST).is_file():
        raise ExportError(f"export {path} has no {MANIFEST}{via}")
    return path


def _checksums(path: Location, manifest: dict[str, Any]) -> dict[str, str | None]:
    """The SHA-256 the manifest gives each file; the policy file is always listed (``None``
    when the manifest lacks its checksum, which then fails verification)."""
    expected: dict[str, str | None] = dict(manifest.get("sha256") or {})
    for entry in manifest.get("files") or []:
        name = entry.get("name")
        if name in expected and expected[name] != entry.get("sha256"):
            raise ExportError(f"manifest of {path} lists two checksums for {name}")
        expected.setdefault(name, entry.get("sha256"))
    expected.setdefault(manifest.get("policy_file", POLICY_FILE), None)
    return expected


def _check(file: Location, digest: str | None, actual: str) -> None:
    if digest != actual:
        raise ExportError(f"checksum mismatch for {file}: manifest {digest}, file {actual}")


def verify_files(path: Location | str, manifest: dict[str, Any],
                 skip: frozenset[str] = frozenset()) -> dict[str, str | None]:
    """Checks every file the manifest lists (and the policy file) against its SHA-256, except
    the names in ``skip`` (a caller that reads one of them checks the bytes it read); returns
    the manifest's checksum of every file."""
    path = as_location(path)
    expected = _checksums(path, manifest)
    for name, digest in sorted(expected.items()):
        if name in skip:
            continue
        file = path / _plain_name(str(name))
        if not file.is_file():
            raise ExportError(f"{file} missing")
        _check(file, digest, sha256_file(file))
    return expected


@dataclass(frozen=True)
class LoadedPolicy:
    """A verified exported policy."""

    path: Location
    manifest: dict[str, Any]
    module: torch.jit.ScriptModule
    serving: torch.jit.ScriptModule | None = None

    @property
    def feature_names(self) -> list[str]:
        return list(self.manifest["feature_schema"]["names"])

    @property
    def version(self) -> str | None:
        return self.manifest.get("version")

    @property
    def has_values(self) -> bool:
        """Whether the graph returns action values too (format 2 and later)."""
        return "outputs" in self.manifest

    @property
    def value_kind(self) -> str | None:
        """``"q_value"`` or ``"log_prob"`` (None for a format-1 export)."""
        return (self.manifest.get("outputs") or {}).get("values", {}).get("kind")

    @property
    def action_names(self) -> list[str]:
        """Name of each action index (from the manifest's action map; the index if absent)."""
        mapping = self.manifest.get("action_map") or {}
        n = int(self.manifest.get("n_actions") or len(mapping))
        return [str(mapping.get(str(i), mapping.get(i, i))) for i in range(n)]

    def _batch(self, features: Any) -> torch.Tensor:
        import torch

        x = np.ascontiguousarray(features, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != len(self.feature_names):
            raise ValueError(
                f"expected features of shape [n, {len(self.feature_names)}] "
                f"({', '.join(self.feature_names)}), got {list(x.shape)}"
            )
        return torch.from_numpy(x)

    def _run(self, features: Any) -> tuple[np.ndarray, np.ndarray | None]:
        import torch

        x = self._batch(features)
        with torch.no_grad():
            out = self.module(x)
        if isinstance(out, (tuple, list)):
            action, values = out[0], out[1]
            return (action.cpu().numpy().astype(np.int64).reshape(-1),
                    values.cpu().numpy().astype(np.float32))
        return out.cpu().numpy().astype(np.int64).reshape(-1), None

    def predict(self, features: Any) -> np.ndarray:
        """Actions (ints) for a batch of raw feature rows ``[n, n_features]`` in schema order.

        With an action mask declared in the manifest, a row whose mask allows no action gets -1.
        """
        return self._run(features)[0]

    __call__ = predict

    def predict_with_values(self, features: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(actions [n], values [n, n_actions])``; see ``manifest["outputs"]`` for the values."""
        actions, values = self._run(features)
        if values is None:
            raise ExportError(
                f"{self.path} is a format-1 export: its policy returns actions only")
        return actions, values

    def outside_training_ranges(self, features: Any) -> list[tuple[int, str, float]]:
        """``(row, feature, value)`` of every value outside the range the policy's training
        decisions covered (``manifest["feature_ranges"]``; rows 0-based), where a model
        extrapolates; empty for an export without recorded ranges."""
        ranges = self.manifest.get("feature_ranges") or {}
        x = np.asarray(features, dtype=np.float64)
        out: list[tuple[int, str, float]] = []
        for j, name in enumerate(self.feature_names):
            if name not in ranges:
                continue
            lo, hi = ranges[name]
            slack = 1e-6 * max(1.0, abs(hi - lo))
            bad = np.flatnonzero(~((x[:, j] >= lo - slack) & (x[:, j] <= hi + slack)))
            out += [(int(i), name, float(x[i, j])) for i in bad]
        return sorted(out)

    def one_hot_violations(self, features: Any) -> list[tuple[int, str, list[float]]]:
        """``(row, group, values)`` of every row whose one-hot group
        (``manifest["one_hot_groups"]``: features that were 0 or 1 and summed to exactly 1 in
        every training decision) is not one 1 among 0s, e.g. two segments set at once; rows
        0-based; empty for an export without recorded groups. Such a row can lie inside every
        single feature's range and still be nothing the policy was trained on."""
        groups = self.manifest.get("one_hot_groups") or {}
        x = np.asarray(features, dtype=np.float64)
        out: list[tuple[int, str, list[float]]] = []
        for group, members in groups.items():
            idx = [self.feature_names.index(m) for m in members if m in self.feature_names]
            if len(idx) != len(members):
                continue
            block = x[:, idx]
            ok = np.all((block == 0.0) | (block == 1.0), axis=1) & (block.sum(axis=1) == 1.0)
            out += [(int(i), group, block[i].tolist()) for i in np.flatnonzero(~ok)]
        return sorted(out)

    def feature_problems(self, features: Any, rows: str = "row(s)",
                         numbering: str = "0-based") -> list[str]:
        """One message per kind of problem of ``features`` (outside the training ranges, a
        broken one-hot group), each with its count of ``rows`` and its first row, numbered
        from 0 (``numbering`` "0-based") or 1 (any other ``numbering``, named in the text);
        empty when every row looks like the training data."""
        start = 0 if numbering == "0-based" else 1
        problems = []
        outside = self.outside_training_ranges(features)
        if outside:
            row, name, value = outside[0]
            lo, hi = self.manifest["feature_ranges"][name]
            problems.append(
                f"{len({r for r, _, _ in outside})} {rows} have features outside the range of "
                f"the policy's training data, first row {row + start} ({numbering}): {name} = "
                f"{value:.6g} outside [{lo:.6g}, {hi:.6g}]; the model extrapolates there")
        broken = self.one_hot_violations(features)
        if broken:
            row, group, levels = broken[0]
            members = self.manifest["one_hot_groups"][group]
            shown = ", ".join(f"{m} = {v:.6g}" for m, v in zip(members, levels, strict=True))
            problems.append(
                f"{len({r for r, _, _ in broken})} {rows} break a one-hot group (exactly one of "
                f"its features is 1, the others 0, in every training decision), first row "
                f"{row + start} ({numbering}): {group}: {shown}; no training decision looked "
                f"like that")
        return problems

    def warn_unlike_training(self, features: Any) -> None:
        """Warns (``OutsideTrainingData``) about each of ``feature_problems(features)``: what
        callers other than ``offline-rl predict`` (the MLflow model, a serving process) get."""
        import warnings

        for text in self.feature_problems(features):
            warnings.warn(f"{self.path}: {text}", OutsideTrainingData, stacklevel=2)

    @property
    def exploration(self) -> Exploration | None:
        """How the serving head explores (None: an export without one)."""
        record = self.manifest.get("exploration")
        return Exploration.from_dict(record) if record else None

    def _serve(self, features: Any, uniform: np.ndarray) -> Served:
        import torch

        if self.serving is None:
            raise ExportError(f"{self.path} has no serving head (exported before exploration "
                              "was recorded); it can only predict greedy actions")
        x = self._batch(features)
        u = np.ascontiguousarray(np.minimum(uniform, UNIFORM_MAX), dtype=np.float32)
        if u.shape != (x.shape[0],):
            raise ValueError(f"expected one uniform number per row ({x.shape[0]}), got "
                             f"shape {list(u.shape)}")
        with torch.no_grad():
            action, propensity, probs = self.serving(x, torch.from_numpy(u))
        return Served(action=action.numpy().astype(np.int64),
                      propensity=propensity.numpy().astype(np.float64),
                      probs=probs.numpy().astype(np.float64))

    def sample(self, features: Any, rng: np.random.Generator) -> Served:
        """Serves a batch: each row's action drawn from the serving head's distribution with
        ``rng`` (one uniform number per row), its propensity and every action's probability.
        The same ``rng`` state gives the same actions."""
        n = np.shape(features)[0] if np.ndim(features) else 0
        return self._serve(features, rng.random(n))

    def action_probs(self, features: Any) -> np.ndarray:
        """The serving head's probability of every action ``[n, n_actions]``."""
        n = np.shape(features)[0] if np.ndim(features) else 0
        return self._serve(features, np.zeros(n)).probs


@dataclass(frozen=True)
class Served:
    """What the serving head returns for a batch: the served ``action`` (-1 where the mask
    allows none), its ``propensity`` (to log with the decision) and ``probs`` of every
    action."""

    action: np.ndarray
    propensity: np.ndarray
    probs: np.ndarray


def load_policy(path: Location | str | os.PathLike[str]) -> LoadedPolicy:
    """Loads an export directory (a folder or fsspec URI) after checking every file's SHA-256
    against the manifest."""
    import torch

    path = as_location(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise ExportError(f"{path} is not an export: {MANIFEST} missing")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise ExportError(f"{manifest_path} is not valid JSON: {exc}") from None
    policy_name = str(manifest.get("policy_file", POLICY_FILE))
    # the policy files are checked on the bytes that are loaded, below
    loaded_files = {policy_name, SERVING_POLICY_FILE} if manifest.get("exploration") \
        else {policy_name}
    expected = verify_files(path, manifest, skip=frozenset(loaded_files))
    policy_path = path / _plain_name(policy_name)
    if not policy_path.is_file():
        raise ExportError(f"{policy_path} missing")
    data = policy_path.read_bytes()  # read once: the bytes checked are the bytes loaded
    _check(policy_path, expected[policy_name], hashlib.sha256(data).hexdigest())
    module = torch.jit.load(io.BytesIO(data), map_location="cpu")
    module.eval()
    serving = None
    if manifest.get("exploration"):
        serving_path = path / SERVING_POLICY_FILE
        if not serving_path.is_file():
            raise ExportError(f"{serving_path} missing (the manifest records an exploration)")
        serving_bytes = serving_path.read_bytes()
        _check(serving_path, expected.get(SERVING_POLICY_FILE),
               hashlib.sha256(serving_bytes).hexdigest())
        serving = torch.jit.load(io.BytesIO(serving_bytes), map_location="cpu")
        serving.eval()
    return LoadedPolicy(path=path, manifest=manifest, module=module, serving=serving)


def load_latest(export_root: Location | str | os.PathLike[str], domain: str,
                version: str = LATEST) -> LoadedPolicy:
    """Loads ``<export_root>/<domain>/<version>`` (default: the one ``latest`` points to);
    ``export_root`` is a folder or an fsspec URI."""
    if not domain or "/" in domain or domain.startswith("."):
        raise ExportError(f"invalid domain {domain!r}")
    return load_policy(resolve_version(as_location(export_root) / domain, version))

"""Loading an exported policy for serving: needs torch and the standard library only.

An export directory holds ``policy.pt`` (TorchScript: raw feature vector in, action out) and
``manifest.json`` (version, domain, algorithm, data window, feature schema, action map,
estimates, and the SHA-256 of ``policy.pt``). The checksum is verified before the model is
deserialised, so a truncated or tampered file is refused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

LATEST = "latest"
MANIFEST = "manifest.json"
POLICY_FILE = "policy.pt"


class ExportError(RuntimeError):
    """An export is missing, incomplete, or fails its checksum."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_version(domain_root: Path, version: str = LATEST) -> Path:
    """The directory of ``version`` (or of the one the ``latest`` pointer names)."""
    domain_root = Path(domain_root)
    if version == LATEST:
        pointer = domain_root / LATEST
        if not pointer.is_file():
            raise ExportError(f"no promoted policy yet: {pointer} does not exist")
        version = pointer.read_text().strip()
    if not version or "/" in version or version.startswith("."):
        raise ExportError(f"invalid export version {version!r}")
    path = domain_root / version
    if not (path / MANIFEST).is_file():
        raise ExportError(f"export {path} has no {MANIFEST}")
    return path


@dataclass(frozen=True)
class LoadedPolicy:
    """A verified exported policy."""

    path: Path
    manifest: dict[str, Any]
    module: torch.jit.ScriptModule

    @property
    def feature_names(self) -> list[str]:
        return list(self.manifest["feature_schema"]["names"])

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Actions (ints) for a batch of raw feature rows ``[n, n_features]`` in schema order."""
        x = np.asarray(features, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != len(self.feature_names):
            raise ValueError(
                f"expected features of shape [n, {len(self.feature_names)}] "
                f"({', '.join(self.feature_names)}), got {list(x.shape)}"
            )
        with torch.no_grad():
            out = self.module(torch.from_numpy(x))
        return out.cpu().numpy().astype(np.int64).reshape(-1)

    __call__ = predict


def load_policy(path: Path) -> LoadedPolicy:
    """Loads an export directory after checking the policy file's SHA-256 against the manifest."""
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise ExportError(f"{path} is not an export: {MANIFEST} missing")
    manifest = json.loads(manifest_path.read_text())
    policy_path = path / manifest.get("policy_file", POLICY_FILE)
    if not policy_path.is_file():
        raise ExportError(f"{policy_path} missing")
    expected = manifest.get("sha256", {}).get(policy_path.name)
    actual = sha256_file(policy_path)
    if expected != actual:
        raise ExportError(
            f"checksum mismatch for {policy_path}: manifest {expected}, file {actual}")
    module = torch.jit.load(str(policy_path), map_location="cpu")
    module.eval()
    return LoadedPolicy(path=path, manifest=manifest, module=module)

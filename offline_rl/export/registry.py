"""Versioned exports of promoted policies with an atomic ``latest`` pointer and rollback.

Layout: ``<export root>/<domain>/<version>/{policy.pt, policy.onnx, manifest.json}`` and
``<export root>/<domain>/latest`` (a one-line file naming the current version). A version is
assembled in a hidden temporary directory and renamed into place, then ``latest`` is
replaced atomically, so a consumer never sees a half-written export. ``prune`` removes old
versions (never the one ``latest`` names) by renaming them out of sight before deleting them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from offline_rl.export.loader import (
    FORMAT_VERSION,
    LATEST,
    MANIFEST,
    POLICY_FILE,
    ExportError,
    resolve_version,
    sha256_file,
)

_VERSION = re.compile(r"^v(\d{4,})$")


@dataclass(frozen=True)
class ExportedPolicy:
    version: str
    path: Path
    manifest: dict[str, Any]


def list_versions(domain_root: Path) -> list[str]:
    """Complete versions of a domain, oldest first."""
    root = Path(domain_root)
    if not root.is_dir():
        return []
    found = [p.name for p in root.iterdir()
             if p.is_dir() and _VERSION.match(p.name) and (p / MANIFEST).is_file()]
    return sorted(found, key=lambda v: int(_VERSION.match(v).group(1)))  # type: ignore[union-attr]


def current_version(domain_root: Path) -> str | None:
    pointer = Path(domain_root) / LATEST
    return pointer.read_text().strip() if pointer.is_file() else None


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def set_latest(domain_root: Path, version: str) -> None:
    """Points ``latest`` at an existing complete version (this is also the rollback)."""
    resolve_version(domain_root, version)  # validates that it exists and is complete
    _write_atomic(Path(domain_root) / LATEST, version + "\n")


def publish(
    export_root: Path,
    domain: str,
    policy_file: Path,
    manifest: dict[str, Any],
    *,
    extra_files: Mapping[str, Path] | None = None,
) -> ExportedPolicy:
    """Publishes a TorchScript policy (and ``extra_files``, e.g. ``{"policy.onnx": path}``) as
    the next version and points ``latest`` at it.

    The manifest gets ``version``, ``domain``, ``policy_file``, ``sha256`` (file name ->
    digest) and ``files`` (name, sha256 and size of every file), so the loader can verify each.
    """
    sources = {POLICY_FILE: Path(policy_file)}
    sources.update({name: Path(p) for name, p in (extra_files or {}).items()})
    for name in sources:
        if not name or "/" in name or name.startswith(".") or name == MANIFEST:
            raise ExportError(f"invalid export file name {name!r}")
    domain_root = Path(export_root) / domain
    domain_root.mkdir(parents=True, exist_ok=True)
    versions = list_versions(domain_root)
    number = int(_VERSION.match(versions[-1]).group(1)) + 1 if versions else 1  # type: ignore[union-attr]
    version = f"v{number:04d}"
    staging = Path(tempfile.mkdtemp(dir=domain_root, prefix=f".staging-{version}-"))
    try:
        files = []
        for name, source in sources.items():
            shutil.copyfile(source, staging / name)
            files.append({"name": name, "sha256": sha256_file(staging / name),
                          "bytes": (staging / name).stat().st_size})
        full = {
            **manifest,
            "format_version": FORMAT_VERSION if "outputs" in manifest else 1,
            "version": version,
            "domain": domain,
            "policy_file": POLICY_FILE,
            "sha256": {f["name"]: f["sha256"] for f in files},
            "files": files,
        }
        (staging / MANIFEST).write_text(json.dumps(full, indent=2, default=str))
        target = domain_root / version
        if target.exists():
            raise ExportError(f"{target} already exists")
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    set_latest(domain_root, version)
    return ExportedPolicy(version=version, path=target, manifest=full)


def prune(export_root: Path, domain: str, keep: int) -> list[str]:
    """Deletes all but the newest ``keep`` versions; the version ``latest`` names is kept too.

    Returns the removed versions, oldest first. Each is first renamed to a hidden name (so it
    vanishes from listings atomically), then deleted.
    """
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    domain_root = Path(export_root) / domain
    versions = list_versions(domain_root)
    current = current_version(domain_root)
    kept = set(versions[-keep:]) | ({current} if current else set())
    removed = []
    for version in versions:
        if version in kept:
            continue
        hidden = domain_root / f".pruned-{version}-{uuid.uuid4().hex[:8]}"
        os.rename(domain_root / version, hidden)
        shutil.rmtree(hidden, ignore_errors=True)
        removed.append(version)
    return removed


def rollback(export_root: Path, domain: str, version: str | None = None) -> str:
    """Points ``latest`` at ``version``, or at the version before the current one."""
    domain_root = Path(export_root) / domain
    if version is None:
        versions = list_versions(domain_root)
        current = current_version(domain_root)
        if current not in versions or versions.index(current) == 0:
            raise ExportError(f"no version before {current!r} to roll back to in {domain_root}")
        version = versions[versions.index(current) - 1]
    set_latest(domain_root, version)
    return version

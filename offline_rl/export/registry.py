"""Versioned exports of promoted policies with an atomic ``latest`` pointer and rollback.

Layout: ``<export root>/<domain>/<version>/{policy.pt, policy.onnx, manifest.json}`` and
``<export root>/<domain>/latest`` (a one-line file naming the current version).

Crash safety (a process may be killed at any instruction):

* A version is assembled and fsynced in a hidden ``.staging-*`` directory and renamed into
  place, so a version directory is always complete; ``latest`` is replaced with an atomic
  rename, so a consumer reading it always finds a complete, checksum-verifiable version.
* Publishing is two atomic steps (rename the version, replace ``latest``). A journal file,
  ``.publishing``, names the version in between; a version it names that ``latest`` does not
  is not listed, and the next registry operation removes it, so an interrupted publish
  leaves the registry exactly as before and the next publish reuses the number.
* Writers (publish, rollback, prune) hold an exclusive lock on ``<export root>/.<domain>.lock``
  and first clean up what a killed writer left (staging and pruned directories, the journal).
  Readers take no lock.

Crash tests kill a child process at the points named by ``_crash_point`` (``export.staged``,
``export.renamed``, ``export.latest_staged``, ``export.published``) via
``$OFFLINE_RL_CRASH_AT``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import tempfile
import uuid
from collections.abc import Iterator, Mapping
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
JOURNAL = ".publishing"
CRASH_ENV = "OFFLINE_RL_CRASH_AT"


def _crash_point(name: str) -> None:
    """Kills this process with SIGKILL if ``$OFFLINE_RL_CRASH_AT`` names ``name`` (tests)."""
    wanted = os.environ.get(CRASH_ENV)
    if wanted and name in wanted.split(","):
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class ExportedPolicy:
    version: str
    path: Path
    manifest: dict[str, Any]


def _pending(domain_root: Path) -> str | None:
    """The version an unfinished publish left behind (named by the journal, not by latest)."""
    try:
        version = json.loads((domain_root / JOURNAL).read_text())["version"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return None if version == current_version(domain_root) else str(version)


def list_versions(domain_root: Path) -> list[str]:
    """Complete versions of a domain, oldest first."""
    root = Path(domain_root)
    if not root.is_dir():
        return []
    pending = _pending(root)
    found = [p.name for p in root.iterdir()
             if p.is_dir() and _VERSION.match(p.name) and (p / MANIFEST).is_file()
             and p.name != pending]
    return sorted(found, key=lambda v: int(_VERSION.match(v).group(1)))  # type: ignore[union-attr]


def current_version(domain_root: Path) -> str | None:
    pointer = Path(domain_root) / LATEST
    return pointer.read_text().strip() if pointer.is_file() else None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, text: str, *, crash_point: str | None = None) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if crash_point:
            _crash_point(crash_point)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


@contextlib.contextmanager
def _writer(export_root: Path, domain: str) -> Iterator[Path]:
    """The domain folder under the exclusive writer lock, after recovering from a crash."""
    if not domain or "/" in domain or "\\" in domain or domain.startswith("."):
        raise ExportError(f"invalid domain {domain!r}")
    root = Path(export_root)
    domain_root = root / domain
    domain_root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{domain}.lock", "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            _recover(domain_root)
            yield domain_root
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _remove_hidden(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def _recover(domain_root: Path) -> None:
    """Undoes what a killed writer left: an unfinished publish, staging and pruned folders,
    temporary pointer files. Runs under the writer lock, so nothing here is in use."""
    pending = _pending(domain_root)
    if pending is not None and _VERSION.match(pending) and (domain_root / pending).is_dir():
        hidden = domain_root / f".pruned-{pending}-{uuid.uuid4().hex[:8]}"
        os.rename(domain_root / pending, hidden)
    for path in domain_root.iterdir():
        # staged folders, pruned folders, and temporary files of the pointer and the journal
        if path.name.startswith((".staging-", ".pruned-", f".{LATEST}.", f".{JOURNAL}.")):
            _remove_hidden(path)
    with contextlib.suppress(FileNotFoundError):
        (domain_root / JOURNAL).unlink()


def _set_latest(domain_root: Path, version: str) -> None:
    resolve_version(domain_root, version)  # validates that it exists and is complete
    _write_atomic(Path(domain_root) / LATEST, version + "\n",
                  crash_point="export.latest_staged")


def set_latest(domain_root: Path, version: str) -> None:
    """Points ``latest`` at an existing complete version (this is also the rollback)."""
    domain_root = Path(domain_root)
    with _writer(domain_root.parent, domain_root.name) as root:
        _set_latest(root, version)


def _copy_synced(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)
    with open(target, "rb+") as fh:
        os.fsync(fh.fileno())


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
    Killed at any point, it leaves the registry as it was (see the module docstring).
    """
    sources = {POLICY_FILE: Path(policy_file)}
    sources.update({name: Path(p) for name, p in (extra_files or {}).items()})
    for name in sources:
        if not name or "/" in name or name.startswith(".") or name == MANIFEST:
            raise ExportError(f"invalid export file name {name!r}")
    with _writer(Path(export_root), domain) as domain_root:
        versions = list_versions(domain_root)
        number = int(_VERSION.match(versions[-1]).group(1)) + 1 if versions else 1  # type: ignore[union-attr]
        version = f"v{number:04d}"
        target = domain_root / version
        if target.exists():
            raise ExportError(f"{target} already exists")
        staging = Path(tempfile.mkdtemp(dir=domain_root, prefix=f".staging-{version}-"))
        try:
            files = []
            for name, source in sources.items():
                _copy_synced(source, staging / name)
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
            _write_atomic(staging / MANIFEST, json.dumps(full, indent=2, default=str))
            _crash_point("export.staged")
            _write_atomic(domain_root / JOURNAL, json.dumps({"version": version}))
            os.rename(staging, target)
            _fsync_dir(domain_root)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _crash_point("export.renamed")
        _set_latest(domain_root, version)
        (domain_root / JOURNAL).unlink()
        _crash_point("export.published")
    return ExportedPolicy(version=version, path=target, manifest=full)


def prune(export_root: Path, domain: str, keep: int) -> list[str]:
    """Deletes all but the newest ``keep`` versions; the version ``latest`` names is kept too.

    Returns the removed versions, oldest first. Each is first renamed to a hidden name (so it
    vanishes from listings atomically), then deleted.
    """
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    with _writer(Path(export_root), domain) as domain_root:
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
    """Points ``latest`` at ``version``, or at the version before the current one; one call,
    atomic (a consumer sees either the old or the new pointer)."""
    with _writer(Path(export_root), domain) as domain_root:
        if version is None:
            versions = list_versions(domain_root)
            current = current_version(domain_root)
            if current not in versions or versions.index(current) == 0:
                raise ExportError(
                    f"no version before {current!r} to roll back to in {domain_root}")
            version = versions[versions.index(current) - 1]
        _set_latest(domain_root, version)
    return version

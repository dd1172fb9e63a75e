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
* Nothing is created with a private mode: folders get ``0777 & ~umask`` and files
  ``0666 & ~umask`` (0755 and 0644 under the usual umask 022), so a serving process running
  as another user can read what the umask lets it read.
* ``latest`` is only ever pointed at a version whose files all match the manifest's SHA-256:
  rollback (and ``set_latest``) verify every checksum of the target first and refuse a corrupt
  or incomplete version, leaving ``latest`` as it was.
* Writers (publish, rollback, prune) hold an exclusive lock on ``<export root>/.<domain>.lock``
  and first clean up what a killed writer left (staging and pruned directories, the journal).
  Readers take no lock.

Crash tests kill a child process at the points named by ``offline_rl.crash.crash_point``
(``export.staged``, ``export.renamed``, ``export.latest_staged``, ``export.published``) via
``$OFFLINE_RL_CRASH_AT``.

On object storage (an export root that is an fsspec URI such as ``s3://bucket/exports``) there
are no locks, fsync or renames, but one object's PUT is atomic and, on S3, GCS and Azure Blob,
at once visible to reads and listings. The layout is the same and ``manifest.json`` is the
commit marker of a version:

* publish uploads the version's files to ``<domain>/vNNNN/`` (checking each size), then its
  manifest (with every file's SHA-256), then ``latest``. A version without a manifest does not
  exist for listings and loaders, so a publish that dies before its manifest leaves nothing
  visible, and the next publish reuses the number after deleting the leftovers. One that dies
  between the manifest and ``latest`` leaves a complete version ``latest`` does not name: it
  is listed (without ``*``), ``rollback --version`` can serve it, and the next publish takes
  the number after it.
* ``latest`` is one small object replaced by one PUT: a reader sees the old or the new pointer.
* prune deletes a version's manifest first (the version vanishes at once), then its files.
* There is no writer lock: one writer per domain at a time. The nightly job's export step is
  that writer (Dagster runs one step per domain and day); run ``exports rollback`` and
  ``prune`` when no export is running.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from offline_rl.crash import crash_point
from offline_rl.export.loader import (
    FORMAT_VERSION,
    LATEST,
    MANIFEST,
    POLICY_FILE,
    ExportError,
    _checksums,
    resolve_version,
    sha256_file,
)
from offline_rl.paths import Location, RemotePath, as_location

_VERSION = re.compile(r"^v(\d{4,})$")
JOURNAL = ".publishing"
@dataclass(frozen=True)
class ExportedPolicy:
    version: str
    path: Location
    manifest: dict[str, Any]


def _pending(domain_root: Path) -> str | None:
    """The version an unfinished publish left behind (named by the journal, not by latest)."""
    try:
        version = json.loads((domain_root / JOURNAL).read_text())["version"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return None if version == current_version(domain_root) else str(version)


def list_versions(domain_root: Location | str) -> list[str]:
    """Complete versions of a domain, oldest first."""
    root = as_location(domain_root)
    if isinstance(root, RemotePath):  # one listing; a version is complete once it has a manifest
        found = [str(p).rstrip("/").split("/")[-2]
                 for p in root.fs.glob(f"{root.path}/*/{MANIFEST}")]
        found = [v for v in found if _VERSION.match(v)]
    elif not root.is_dir():
        return []
    else:
        pending = _pending(root)
        found = [p.name for p in root.iterdir()
                 if p.is_dir() and _VERSION.match(p.name) and (p / MANIFEST).is_file()
                 and p.name != pending]
    return sorted(found, key=_version_number)


def _version_number(version: str) -> int:
    """``vNNNN`` -> ``NNNN`` (a name that is no version is a ``ValueError``)."""
    match = _VERSION.match(version)
    if match is None:
        raise ValueError(f"{version!r} is not an export version (vNNNN)")
    return int(match.group(1))


def current_version(domain_root: Location | str) -> str | None:
    pointer = as_location(domain_root) / LATEST
    return pointer.read_text().strip() if pointer.is_file() else None


def resolve_export(path: Location | str | os.PathLike[str]) -> Location:
    """An export directory given as itself, or as the ``latest`` pointer of a domain's export
    folder (``<export root>/<domain>/latest``): then the version directory it names. Anything
    else is returned as given (the loader then says what is wrong with it)."""
    location = as_location(path)
    if location.name == LATEST and location.is_file():
        return resolve_version(location.parent, LATEST)
    return location


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_private_name(path: Path) -> tuple[int, Path]:
    """Opens a new file next to ``path`` under a unique hidden name for writing. Unlike
    ``mkstemp`` (always 0600) it is created with ``0666 & ~umask``."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name next to {path}")


def _make_staging_dir(domain_root: Path, version: str) -> Path:
    """A new hidden staging folder; unlike ``mkdtemp`` (always 0700) it is created with
    ``0777 & ~umask``, and keeps that mode when it is renamed into place as the version."""
    for _ in range(100):
        staging = domain_root / f".staging-{version}-{uuid.uuid4().hex[:12]}"
        try:
            os.mkdir(staging, 0o777)
            return staging
        except FileExistsError:
            continue
    raise FileExistsError(f"no free staging folder name in {domain_root}")


def _write_atomic(path: Path, text: str, *, crash_at: str | None = None) -> None:
    fd, tmp = _create_private_name(path)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if crash_at:
            crash_point(crash_at)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


@contextlib.contextmanager
def _writer(export_root: Location | str, domain: str) -> Iterator[Location]:
    """The domain folder under the exclusive writer lock, after recovering from a crash (on
    object storage: the domain folder, with neither; see the module docstring)."""
    if not domain or "/" in domain or "\\" in domain or domain.startswith("."):
        raise ExportError(f"invalid domain {domain!r}")
    root = as_location(export_root)
    if isinstance(root, RemotePath):
        yield root / domain
        return
    domain_root = root / domain
    domain_root.mkdir(parents=True, exist_ok=True)
    with FileLock(root / f".{domain}.lock"):
        _recover(domain_root)
        yield domain_root


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


def version_problems(domain_root: Location | str, version: str) -> list[str]:
    """What is wrong with a version's files, one short phrase each (empty: every file the
    manifest lists is present and matches its SHA-256). Reads every file once."""
    path = as_location(domain_root) / version
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        return [f"{MANIFEST} missing"]
    except (OSError, ValueError) as exc:
        return [f"{MANIFEST} unreadable ({type(exc).__name__})"]
    if not isinstance(manifest, dict):
        return [f"{MANIFEST} is not a JSON object"]
    try:
        expected = _checksums(path, manifest)
    except ExportError as exc:
        return [str(exc)]
    problems = []
    for name, digest in sorted(expected.items(), key=lambda item: str(item[0])):
        name = str(name)
        if not name or "/" in name or "\\" in name or name.startswith("."):
            problems.append(f"invalid file name {name!r} in {MANIFEST}")
        elif not (path / name).is_file():
            problems.append(f"{name} missing")
        elif not digest:
            problems.append(f"{name} has no checksum in {MANIFEST}")
        elif sha256_file(path / name) != digest:
            problems.append(f"{name} fails its checksum")
    return problems


def verify_version(domain_root: Location | str, version: str) -> Location:
    """The directory of ``version`` after checking every file against the manifest's SHA-256;
    ``ExportError`` (one line naming the version and each problem) otherwise."""
    path = resolve_version(domain_root, version)
    problems = version_problems(domain_root, version)
    if problems:
        raise ExportError(f"{path} is damaged: {'; '.join(problems)}")
    return path


def _set_latest(domain_root: Location, version: str, *, verify: bool = True) -> None:
    """Points ``latest`` at ``version``; with ``verify``, only after every checksum of the
    version matched (a publish skips it: it has just written and hashed the files)."""
    if verify:
        try:
            verify_version(domain_root, version)
        except ExportError as exc:
            raise ExportError(f"refusing to point latest at {version}: {exc}") from None
    else:
        resolve_version(domain_root, version)  # validates that it exists and has a manifest
    if isinstance(domain_root, RemotePath):
        domain_root.fs.pipe_file((domain_root / LATEST).path, (version + "\n").encode())
        return
    _write_atomic(domain_root / LATEST, version + "\n", crash_at="export.latest_staged")


def set_latest(domain_root: Location | str, version: str) -> None:
    """Points ``latest`` at an existing version whose files all pass their checksums (this is
    also the rollback); a damaged version is refused with ``ExportError``."""
    domain_root = as_location(domain_root)
    with _writer(domain_root.parent, domain_root.name) as root:
        _set_latest(root, version)


def _copy_synced(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)
    with open(target, "rb+") as fh:
        os.fsync(fh.fileno())


def _full_manifest(manifest: dict[str, Any], version: str, domain: str,
                   files: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        **manifest,
        "format_version": FORMAT_VERSION if "outputs" in manifest else 1,
        "version": version,
        "domain": domain,
        "policy_file": POLICY_FILE,
        "sha256": {f["name"]: f["sha256"] for f in files},
        "files": files,
    }


def _upload_version(domain_root: RemotePath, version: str, sources: Mapping[str, Path],
                    manifest: dict[str, Any]) -> dict[str, Any]:
    """Uploads a version's files, then its manifest (the commit marker); returns the manifest.
    The folder of a version without a manifest holds only a dead publish's leftovers."""
    fs, target = domain_root.fs, domain_root / version
    if fs.exists(target.path):
        fs.rm(target.path, recursive=True)
    files = []
    for name, source in sources.items():
        size = source.stat().st_size
        fs.put_file(str(source), (target / name).path)
        uploaded = fs.info((target / name).path).get("size")
        if uploaded != size:
            raise ExportError(f"upload of {target / name} holds {uploaded} bytes, not {size}")
        files.append({"name": name, "sha256": sha256_file(source), "bytes": size})
    full = _full_manifest(manifest, version, domain_root.name, files)
    fs.pipe_file((target / MANIFEST).path, json.dumps(full, indent=2, default=str).encode())
    return full


def publish(
    export_root: Location | str,
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
    Killed at any point, it leaves the registry as it was (see the module docstring; on
    object storage, a complete version ``latest`` does not name may remain).
    """
    sources = {POLICY_FILE: Path(policy_file)}
    sources.update({name: Path(p) for name, p in (extra_files or {}).items()})
    for name in sources:
        if not name or "/" in name or name.startswith(".") or name == MANIFEST:
            raise ExportError(f"invalid export file name {name!r}")
    with _writer(export_root, domain) as domain_root:
        versions = list_versions(domain_root)
        number = _version_number(versions[-1]) + 1 if versions else 1
        version = f"v{number:04d}"
        if isinstance(domain_root, RemotePath):
            full = _upload_version(domain_root, version, sources, manifest)
            _set_latest(domain_root, version, verify=False)
            return ExportedPolicy(version=version, path=domain_root / version, manifest=full)
        target = domain_root / version
        if target.exists():
            raise ExportError(f"{target} already exists")
        staging = _make_staging_dir(domain_root, version)
        try:
            files = []
            for name, source in sources.items():
                _copy_synced(source, staging / name)
                files.append({"name": name, "sha256": sha256_file(staging / name),
                              "bytes": (staging / name).stat().st_size})
            full = _full_manifest(manifest, version, domain, files)
            _write_atomic(staging / MANIFEST, json.dumps(full, indent=2, default=str))
            crash_point("export.staged")
            _write_atomic(domain_root / JOURNAL, json.dumps({"version": version}))
            os.rename(staging, target)
            _fsync_dir(domain_root)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        crash_point("export.renamed")
        _set_latest(domain_root, version, verify=False)
        (domain_root / JOURNAL).unlink()
        crash_point("export.published")
    return ExportedPolicy(version=version, path=target, manifest=full)


def _remove_version(domain_root: Location, version: str) -> None:
    """Makes a version vanish from listings at once, then deletes its files."""
    if isinstance(domain_root, RemotePath):
        domain_root.fs.rm_file((domain_root / version / MANIFEST).path)
        domain_root.fs.rm((domain_root / version).path, recursive=True)
        return
    hidden = domain_root / f".pruned-{version}-{uuid.uuid4().hex[:8]}"
    os.rename(domain_root / version, hidden)
    shutil.rmtree(hidden, ignore_errors=True)


def prune(export_root: Location | str, domain: str, keep: int) -> list[str]:
    """Deletes all but the newest ``keep`` versions; the version ``latest`` names is kept too.

    Returns the removed versions, oldest first. Each is first renamed to a hidden name (on
    object storage: its manifest is deleted), so it vanishes from listings atomically, then
    deleted.
    """
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    with _writer(export_root, domain) as domain_root:
        versions = list_versions(domain_root)
        current = current_version(domain_root)
        kept = set(versions[-keep:]) | ({current} if current else set())
        removed = []
        for version in versions:
            if version in kept:
                continue
            _remove_version(domain_root, version)
            removed.append(version)
    return removed


def rollback(export_root: Location | str, domain: str, version: str | None = None) -> str:
    """Points ``latest`` at ``version``, or at the version before the current one; one call,
    atomic (a consumer sees either the old or the new pointer). The target's files are
    checked against their SHA-256 first: a damaged version is refused with ``ExportError``
    and ``latest`` is left as it was (the previous version is never skipped silently)."""
    with _writer(export_root, domain) as domain_root:
        if version is None:
            versions = list_versions(domain_root)
            current = current_version(domain_root)
            if current not in versions or versions.index(current) == 0:
                raise ExportError(
                    f"no version before {current!r} to roll back to in {domain_root}")
            version = versions[versions.index(current) - 1]
        _set_latest(domain_root, version)
    return version

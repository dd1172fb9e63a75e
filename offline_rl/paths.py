"""The data home: one folder with the landing zone, warehouse, models, exports and reports.

The landing zone and the exports may live elsewhere, on any fsspec filesystem
(``$OFFLINE_RL_LANDING``, ``$OFFLINE_RL_EXPORTS``): a plain path or a ``file://`` URI is a
local folder (``pathlib.Path``, handled exactly as inside the home), any other URI
(``s3://bucket/landing``, ``gcs://...``, ``memory://...``) a ``RemotePath``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

HOME_ENV = "OFFLINE_RL_HOME"
LANDING_ENV = "OFFLINE_RL_LANDING"
EXPORTS_ENV = "OFFLINE_RL_EXPORTS"
DEFAULT_HOME = ".data"


def resolve_home(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``explicit`` if given, else ``$OFFLINE_RL_HOME``, else ``./.data`` (read at call time)."""
    raw = os.fspath(explicit) if explicit else os.environ.get(HOME_ENV) or DEFAULT_HOME
    return Path(raw).expanduser().resolve()


@dataclass(frozen=True)
class RemotePath:
    """A file or folder on a non-local fsspec filesystem (object storage).

    The few ``pathlib`` operations the landing zone and the export registry use (``/``,
    ``name``, ``parent``, ``exists``, ``is_file``, ``is_dir``, ``iterdir``, ``read_bytes``,
    ``read_text``, ``open``, ``relative_to``); writes go through ``fs`` directly.

    Attributes:
        fs: The filesystem (``fsspec.core.url_to_fs`` of the URI).
        path: The path on ``fs`` (no protocol, no trailing slash).
        url: The URI, for messages and lineage.
    """

    fs: AbstractFileSystem
    path: str
    url: str

    def __truediv__(self, name: str) -> RemotePath:
        return RemotePath(self.fs, f"{self.path}/{name}", f"{self.url}/{name}")

    def __str__(self) -> str:
        return self.url

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def parent(self) -> RemotePath:
        return RemotePath(self.fs, self.path.rsplit("/", 1)[0], self.url.rsplit("/", 1)[0])

    def exists(self) -> bool:
        return bool(self.fs.exists(self.path))

    def is_file(self) -> bool:
        return bool(self.fs.isfile(self.path))

    def is_dir(self) -> bool:
        return bool(self.fs.isdir(self.path))

    def iterdir(self) -> Iterator[RemotePath]:
        for entry in self.fs.ls(self.path, detail=False):
            name = str(entry).rstrip("/").rsplit("/", 1)[-1]
            if name:
                yield self / name

    def read_bytes(self) -> bytes:
        return bytes(self.fs.cat_file(self.path))

    def read_text(self) -> str:
        return self.read_bytes().decode("utf-8")

    def open(self, mode: str = "rb") -> IO[Any]:
        return self.fs.open(self.path, mode)

    def relative_to(self, other: RemotePath) -> PurePosixPath:
        if self.fs is not other.fs or not self.path.startswith(other.path + "/"):
            raise ValueError(f"{self} is not inside {other}")
        return PurePosixPath(self.path[len(other.path) + 1:])


Location = Path | RemotePath
"""A local folder or a folder on object storage."""


def as_location(value: str | os.PathLike[str] | RemotePath) -> Location:
    """A ``RemotePath`` for a URI of a non-local fsspec filesystem; anything else (a plain path,
    a ``file://`` URI) is a local ``Path``. A ``RemotePath`` or ``Path`` is returned as is."""
    if isinstance(value, (RemotePath, Path)):
        return value
    text = os.fspath(value)
    if "://" not in text and "::" not in text:
        return Path(text)
    import fsspec.core
    from fsspec.implementations.local import LocalFileSystem

    fs, path = fsspec.core.url_to_fs(text)
    if isinstance(fs, LocalFileSystem):
        return Path(path)
    return RemotePath(fs, str(path).rstrip("/"), text.rstrip("/"))


def _configured(value: str | None, default: Path) -> Location:
    if not value:
        return default
    location = as_location(value)
    return location.expanduser().resolve() if isinstance(location, Path) else location


@dataclass(frozen=True)
class DataPaths:
    """Locations inside a data home, with the landing zone and the exports optionally elsewhere.

    Attributes:
        home: The data home (warehouse, models, reports, Dagster's storage; landing and exports
            unless given below).
        landing_uri: Landing zone, a path or fsspec URI; None or empty means ``home/landing``.
        exports_uri: Export root, a path or fsspec URI; None or empty means ``home/exports``.
    """

    home: Path
    landing_uri: str | None = None
    exports_uri: str | None = None

    @classmethod
    def resolve(cls, home: str | os.PathLike[str] | None = None, *, landing: str | None = None,
                exports: str | None = None) -> DataPaths:
        """Explicit values first, then ``$OFFLINE_RL_HOME``, ``$OFFLINE_RL_LANDING`` and
        ``$OFFLINE_RL_EXPORTS`` (read at call time, never at import)."""
        return cls(resolve_home(home),
                   landing_uri=landing or os.environ.get(LANDING_ENV) or None,
                   exports_uri=exports or os.environ.get(EXPORTS_ENV) or None)

    @property
    def landing(self) -> Location:
        return _configured(self.landing_uri, self.home / "landing")

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def models(self) -> Path:
        return self.home / "models"

    @property
    def exports(self) -> Location:
        return _configured(self.exports_uri, self.home / "exports")

    @property
    def reports(self) -> Path:
        return self.home / "reports"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def simulation_manifest(self) -> Path:
        """Written by the simulator: scenario and seed, so truth rollouts use the same shop.
        Always in the home's local landing folder, where the simulator writes its logs."""
        return self.home / "landing" / "_simulation.json"

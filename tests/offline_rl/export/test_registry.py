import json
import os
import stat
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from offline_rl.export.loader import ExportError, load_policy, resolve_version
from offline_rl.export.registry import (
    current_version,
    list_versions,
    publish,
    resolve_export,
    rollback,
    set_latest,
    version_problems,
)


class _Argmax(torch.nn.Module):
    def __init__(self, shift: int) -> None:
        super().__init__()
        self.shift = shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.argmax(dim=1) + self.shift) % x.shape[1]


def _policy_file(tmp_path, shift=0):
    path = tmp_path / f"p{shift}.pt"
    torch.jit.script(_Argmax(shift)).save(str(path))
    return path


MANIFEST = {"algorithm": "Test", "feature_schema": {"names": ["a", "b", "c"]}}


def test_publish_sets_latest_and_loads_with_checksum(tmp_path):
    root = tmp_path / "exports"
    first = publish(root, "recommendation", _policy_file(tmp_path, 0), MANIFEST)
    second = publish(root, "recommendation", _policy_file(tmp_path, 1), MANIFEST)
    assert (first.version, second.version) == ("v0001", "v0002")
    assert current_version(root / "recommendation") == "v0002"
    loaded = load_policy(resolve_version(root / "recommendation"))
    x = np.array([[0.0, 5.0, 1.0]], dtype=np.float32)
    assert loaded.predict(x).tolist() == [2]
    assert loaded.manifest["sha256"]["policy.pt"]
    with pytest.raises(ValueError, match="shape"):
        loaded.predict(np.zeros((1, 5)))


def test_rollback_to_previous_and_named_version(tmp_path):
    root = tmp_path / "exports"
    for shift in range(3):
        publish(root, "recommendation", _policy_file(tmp_path, shift), MANIFEST)
    assert rollback(root, "recommendation") == "v0002"
    assert rollback(root, "recommendation", "v0003") == "v0003"
    assert list_versions(root / "recommendation") == ["v0001", "v0002", "v0003"]
    with pytest.raises(ExportError):
        rollback(root, "recommendation", "v0042")


def test_tampered_policy_is_refused(tmp_path):
    exported = publish(tmp_path, "recommendation", _policy_file(tmp_path), MANIFEST)
    with open(exported.path / "policy.pt", "ab") as fh:
        fh.write(b"tampered")
    with pytest.raises(ExportError, match="checksum mismatch"):
        load_policy(exported.path)


def test_half_written_staging_dirs_are_invisible(tmp_path):
    publish(tmp_path, "recommendation", _policy_file(tmp_path), MANIFEST)
    (tmp_path / "recommendation" / ".staging-v0002-x").mkdir()
    (tmp_path / "recommendation" / "v0009").mkdir()  # no manifest: incomplete
    assert list_versions(tmp_path / "recommendation") == ["v0001"]
    with pytest.raises(ExportError):
        resolve_version(tmp_path / "recommendation", "../etc")


def test_loader_needs_neither_d3rlpy_nor_dagster(tmp_path):
    exported = publish(tmp_path, "recommendation", _policy_file(tmp_path), MANIFEST)
    code = textwrap.dedent(f"""
        import sys
        sys.modules["d3rlpy"] = None
        sys.modules["dagster"] = None
        sys.modules["polars"] = None
        from offline_rl.export.loader import load_policy
        p = load_policy({str(exported.path)!r})
        print(p.predict([[1.0, 0.0, 0.0]]).tolist())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip()) == [0]


@pytest.fixture
def umask():
    """Sets the process umask for one test and restores it afterwards."""
    previous = os.umask(0o022)
    try:
        yield os.umask
    finally:
        os.umask(previous)


def _modes(root):
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode)
            for p in [root, *root.rglob("*")] if not p.name.startswith(".")}


@pytest.mark.parametrize(("mask", "folder", "file"), [(0o022, 0o755, 0o644),
                                                      (0o027, 0o750, 0o640)])
def test_exports_follow_the_umask(tmp_path, umask, mask, folder, file):
    umask(mask)
    root = tmp_path / "exports"
    publish(root, "recommendation", _policy_file(tmp_path, 0), MANIFEST)
    publish(root, "recommendation", _policy_file(tmp_path, 1), MANIFEST)
    rollback(root, "recommendation")  # rewrites latest
    modes = _modes(root / "recommendation")
    assert set(modes) == {".", "latest", "v0001", "v0002", *(
        f"v000{i}/{name}" for i in (1, 2) for name in ("policy.pt", "manifest.json"))}
    for name, mode in modes.items():
        expected = file if name == "latest" or "/" in name else folder
        assert mode == expected, (name, oct(mode))
    assert not [p for p in (root / "recommendation").iterdir() if p.name.startswith(".")]


def test_set_latest_verifies_every_checksum_first(tmp_path):
    root = tmp_path / "exports"
    for shift in range(2):
        publish(root, "recommendation", _policy_file(tmp_path, shift), MANIFEST,
                extra_files={"extra.bin": _policy_file(tmp_path, 5)})
    assert version_problems(root / "recommendation", "v0001") == []
    with open(root / "recommendation" / "v0001" / "extra.bin", "ab") as fh:
        fh.write(b"!")
    assert version_problems(root / "recommendation", "v0001") == ["extra.bin fails its checksum"]
    for switch in (lambda: set_latest(root / "recommendation", "v0001"),
                   lambda: rollback(root, "recommendation"),
                   lambda: rollback(root, "recommendation", "v0001")):
        with pytest.raises(ExportError, match=r"refusing to point latest at v0001: .*v0001 is "
                                              r"damaged: extra.bin fails its checksum$"):
            switch()
        assert current_version(root / "recommendation") == "v0002"
    (root / "recommendation" / "v0001" / "manifest.json").write_text("{")
    assert version_problems(root / "recommendation", "v0001") == [
        "manifest.json unreadable (JSONDecodeError)"]


def test_resolve_export_follows_a_latest_pointer(tmp_path):
    root = tmp_path / "exports"
    for shift in range(2):
        publish(root, "recommendation", _policy_file(tmp_path, shift), MANIFEST)
    domain = root / "recommendation"
    assert resolve_export(domain / "latest") == domain / "v0002"
    assert resolve_export(str(domain / "latest")) == domain / "v0002"
    assert resolve_export(domain / "v0001") == domain / "v0001"  # a version as given
    (domain / "latest").write_text("v0007\n")
    with pytest.raises(ExportError, match="has no manifest.json"):
        resolve_export(domain / "latest")

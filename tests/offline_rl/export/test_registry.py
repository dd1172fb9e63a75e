import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from offline_rl.export.loader import ExportError, load_policy, resolve_version
from offline_rl.export.registry import current_version, list_versions, publish, rollback


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

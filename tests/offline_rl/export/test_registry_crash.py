"""What a killed writer leaves behind, and how the next registry operation recovers."""

import json
import threading

import numpy as np
import pytest
import torch

from offline_rl.export.loader import ExportError, load_latest
from offline_rl.export.registry import (
    JOURNAL,
    current_version,
    list_versions,
    prune,
    publish,
    rollback,
)

DOMAIN = "recommendation"
MANIFEST = {"algorithm": "Test", "feature_schema": {"names": ["a", "b", "c"]}}
X = np.array([[0.0, 5.0, 1.0]], dtype=np.float32)


class _Shift(torch.nn.Module):
    def __init__(self, shift: int) -> None:
        super().__init__()
        self.shift = shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.argmax(dim=1) + self.shift) % x.shape[1]


@pytest.fixture
def policy(tmp_path):
    def make(shift: int):
        path = tmp_path / f"p{shift}.pt"
        torch.jit.script(_Shift(shift)).save(str(path))
        return path

    return make


def _leave_interrupted_publish(root, policy, *, latest_moved: bool):
    """The state a publish killed after renaming v0002 into place leaves (optionally after
    it also moved latest), plus the temporaries of other killed writers."""
    publish(root, DOMAIN, policy(0), MANIFEST)
    second = publish(root, DOMAIN, policy(1), MANIFEST)
    domain_root = root / DOMAIN
    (domain_root / "latest").write_text("v0002\n" if latest_moved else "v0001\n")
    (domain_root / JOURNAL).write_text(json.dumps({"version": second.version}))
    (domain_root / ".staging-v0003-abc").mkdir()
    (domain_root / ".staging-v0003-abc" / "policy.pt").write_bytes(b"half")
    (domain_root / ".pruned-v0000-abc").mkdir()
    (domain_root / ".latest.tmp123").write_text("v0009\n")
    return domain_root


def test_a_version_whose_publish_did_not_finish_is_hidden_then_removed(tmp_path, policy):
    root = tmp_path / "exports"
    domain_root = _leave_interrupted_publish(root, policy, latest_moved=False)
    assert list_versions(domain_root) == ["v0001"]
    assert load_latest(root, DOMAIN).predict(X).tolist() == [1]  # v0001: argmax 1, shift 0
    with pytest.raises(ExportError, match="no version before"):
        rollback(root, DOMAIN)  # v0002 is not a version: nothing before v0001
    assert sorted(p.name for p in domain_root.iterdir()) == ["latest", "v0001"]
    assert publish(root, DOMAIN, policy(2), MANIFEST).version == "v0002"
    assert load_latest(root, DOMAIN).predict(X).tolist() == [0]  # the new v0002: shift 2


def test_a_publish_that_moved_latest_counts_as_finished(tmp_path, policy):
    root = tmp_path / "exports"
    domain_root = _leave_interrupted_publish(root, policy, latest_moved=True)
    assert list_versions(domain_root) == ["v0001", "v0002"]
    assert prune(root, DOMAIN, keep=5) == []
    assert sorted(p.name for p in domain_root.iterdir()) == ["latest", "v0001", "v0002"]
    assert current_version(domain_root) == "v0002"
    assert rollback(root, DOMAIN) == "v0001"


def test_concurrent_publishers_get_distinct_complete_versions(tmp_path, policy):
    root = tmp_path / "exports"
    files = [policy(i) for i in range(4)]
    errors: list[BaseException] = []

    def run(path):
        try:
            publish(root, DOMAIN, path, MANIFEST)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(f,)) for f in files]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert list_versions(root / DOMAIN) == ["v0001", "v0002", "v0003", "v0004"]
    assert current_version(root / DOMAIN) == "v0004"


def test_writers_refuse_domains_that_are_paths(tmp_path, policy):
    for bad in ["../x", ".hidden", "", "a/b"]:
        with pytest.raises(ExportError, match="invalid domain"):
            publish(tmp_path, bad, policy(0), MANIFEST)

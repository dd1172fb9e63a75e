"""Publishing killed with SIGKILL: ``latest`` always names a complete, checksum-verified
policy, a half-written export is never visible, and the next publish completes."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from offline_rl.crash import CRASH_ENV
from offline_rl.export.loader import load_latest
from offline_rl.export.registry import current_version, list_versions, publish, rollback

DOMAIN = "recommendation"
MANIFEST = {"algorithm": "Test", "feature_schema": {"names": ["a", "b", "c"]}}

PUBLISHER = """
import sys, time
from pathlib import Path
from offline_rl.export.registry import publish
root, policy, rounds = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
for _ in range(rounds):
    publish(root, "recommendation", policy, {"algorithm": "Test",
            "feature_schema": {"names": ["a", "b", "c"]}}, extra_files={"blob.bin": policy})
print("done", flush=True)
"""

CONSUMER = """
import sys, time
from pathlib import Path
from offline_rl.export.loader import ExportError, load_latest
root, seconds = Path(sys.argv[1]), float(sys.argv[2])
end, reads = time.monotonic() + seconds, 0
while time.monotonic() < end:
    policy = load_latest(root, "recommendation")  # verifies every checksum first
    assert policy.predict([[0.0, 5.0, 1.0]]).shape == (1,)
    reads += 1
print(reads, flush=True)
"""


class _Shift(torch.nn.Module):
    def __init__(self, shift: int) -> None:
        super().__init__()
        self.shift = shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.argmax(dim=1) + self.shift) % x.shape[1]


def _policy(tmp_path: Path, shift: int) -> Path:
    path = tmp_path / f"policy{shift}.pt"
    torch.jit.script(_Shift(shift)).save(str(path))
    return path


def _env(crash: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    if crash:
        env[CRASH_ENV] = crash
    return env


def _publish_in_child(root: Path, policy: Path, crash: str | None, rounds: int = 1):
    return subprocess.run([sys.executable, "-c", PUBLISHER, str(root), str(policy), str(rounds)],
                          env=_env(crash), capture_output=True, text=True, timeout=300)


def _visible(root: Path) -> list[str]:
    return sorted(p.name for p in (root / DOMAIN).iterdir() if not p.name.startswith("."))


X = np.array([[0.0, 5.0, 1.0]], dtype=np.float32)


@pytest.mark.parametrize("point", [
    "export.renamed",
    pytest.param("export.staged", marks=pytest.mark.slow),
    pytest.param("export.latest_staged", marks=pytest.mark.slow),
    pytest.param("export.published", marks=pytest.mark.slow),
])
def test_killed_publish_leaves_the_previous_policy_and_rerun_completes(tmp_path, point):
    root = tmp_path / "exports"
    publish(root, DOMAIN, _policy(tmp_path, 0), MANIFEST)
    result = _publish_in_child(root, _policy(tmp_path, 1), crash=point)
    assert result.returncode == -signal.SIGKILL, result.stderr
    finished = point == "export.published"
    expected = "v0002" if finished else "v0001"
    # the consumer's view: latest is complete and verified; nothing half-written is listed
    loaded = load_latest(root, DOMAIN)
    assert loaded.version == expected
    assert loaded.predict(X).tolist() == ([2] if finished else [1])
    assert list_versions(root / DOMAIN) == (["v0001", "v0002"] if finished else ["v0001"])
    # the next publish cleans up and completes, reusing the number of the interrupted one
    again = publish(root, DOMAIN, _policy(tmp_path, 2), MANIFEST)
    assert again.version == ("v0003" if finished else "v0002")
    assert load_latest(root, DOMAIN).predict(X).tolist() == [0]
    assert not [p for p in (root / DOMAIN).iterdir() if p.name.startswith(".")]
    assert _visible(root) == sorted([*list_versions(root / DOMAIN), "latest"])
    # rolling back is one call
    assert rollback(root, DOMAIN, "v0001") == "v0001"
    assert load_latest(root, DOMAIN).predict(X).tolist() == [1]


@pytest.mark.slow
def test_consumer_never_sees_a_broken_latest_while_publishers_are_killed(tmp_path):
    root = tmp_path / "exports"
    policy = _policy(tmp_path, 1)
    publish(root, DOMAIN, _policy(tmp_path, 0), MANIFEST)
    consumer = subprocess.Popen([sys.executable, "-c", CONSUMER, str(root), "40"],
                                env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    rng = random.Random(3)
    kills = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        publisher = subprocess.Popen([sys.executable, "-c", PUBLISHER, str(root), str(policy),
                                      "1000"], env=_env(), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(1.0, 5.0))
        os.kill(publisher.pid, signal.SIGKILL)
        publisher.communicate()
        kills += 1
    out, err = consumer.communicate(timeout=120)
    assert consumer.returncode == 0, err
    assert int(out.strip()) > 0 and kills > 0
    versions = list_versions(root / DOMAIN)
    assert current_version(root / DOMAIN) in versions
    publish(root, DOMAIN, policy, MANIFEST)  # recovers whatever the last kill left
    assert not [p for p in (root / DOMAIN).iterdir() if p.name.startswith(".")]

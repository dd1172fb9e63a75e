"""The export registry on object storage (an fsspec ``memory://`` filesystem): publish, list,
roll back, prune and load, with the manifest as each version's commit marker."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from offline_rl.cli import build_parser, run
from offline_rl.export.loader import ExportError, load_latest, load_policy, resolve_version
from offline_rl.export.registry import current_version, list_versions, publish, rollback
from offline_rl.paths import EXPORTS_ENV, DataPaths, RemotePath

DOMAIN = "recommendation"
URI = "memory://shop-bucket/exports"
BUCKET = "/shop-bucket/exports"


def _publish(root, built, day: str):
    manifest = {**built.manifest, "candidate": "double_dqn",
                "decision": {"partition_date": day, "reasons": []},
                "estimates": {"dr": {"value": 6.0, "low": 5.5, "high": 6.5}}}
    return publish(root, DOMAIN, built.torchscript, manifest,
                   extra_files={"policy.onnx": built.onnx})


@pytest.fixture
def remote(memory_fs, built_double_dqn):
    """Three versions of the recommendation policy under ``URI`` (latest v0003)."""
    for day in ("2026-10-05", "2026-10-06", "2026-10-07"):
        _publish(URI, built_double_dqn, day)
    return memory_fs


def _fail_writes_of(monkeypatch, fs, name: str) -> None:
    """Every write of an object called ``name`` fails, as a dropped connection would."""
    original = type(fs).pipe_file

    def pipe_file(self, path, value, *args, **kwargs):
        if str(path).endswith("/" + name):
            raise ConnectionResetError(f"connection reset writing {path}")
        return original(self, path, value, *args, **kwargs)

    monkeypatch.setattr(type(fs), "pipe_file", pipe_file)


def test_publish_list_and_load_from_object_storage(remote, built_double_dqn, tmp_path, features):
    root = DataPaths(tmp_path, exports_uri=URI).exports
    assert isinstance(root, RemotePath)
    assert list_versions(root / DOMAIN) == ["v0001", "v0002", "v0003"]
    assert current_version(root / DOMAIN) == "v0003"
    assert sorted(remote.ls(f"{BUCKET}/{DOMAIN}/v0003", detail=False)) == [
        f"{BUCKET}/{DOMAIN}/v0003/{n}" for n in ("manifest.json", "policy.onnx", "policy.pt")]
    # the same policy as from a local export of the same files
    local = load_policy(_publish(tmp_path / "exports", built_double_dqn, "2026-10-07").path)
    policy = load_latest(URI, DOMAIN)
    assert str(policy.path) == f"{URI}/{DOMAIN}/v0003" and policy.version == "v0003"
    x = np.random.default_rng(0).normal(size=(16, len(features))).astype(np.float32)
    actions, values = policy.predict_with_values(x)
    local_actions, local_values = local.predict_with_values(x)
    assert actions.tolist() == local_actions.tolist()
    np.testing.assert_array_equal(values, local_values)
    # a tampered object is refused before it is deserialised
    remote.pipe_file(f"{BUCKET}/{DOMAIN}/v0003/policy.onnx", b"tampered")
    with pytest.raises(ExportError, match="checksum mismatch"):
        load_latest(URI, DOMAIN)


def _publish_dying_at(monkeypatch, remote, built, name: str) -> None:
    """A publish whose connection drops when it writes ``name`` (then the store recovers)."""
    _fail_writes_of(monkeypatch, remote, name)
    with pytest.raises(ConnectionResetError):
        _publish(URI, built, "2026-10-08")
    monkeypatch.undo()


def test_a_publish_that_dies_before_its_manifest_is_invisible(remote, built_double_dqn,
                                                               monkeypatch):
    _publish_dying_at(monkeypatch, remote, built_double_dqn, "manifest.json")
    assert remote.exists(f"{BUCKET}/{DOMAIN}/v0004/policy.pt")  # uploaded, never committed
    assert list_versions(f"{URI}/{DOMAIN}") == ["v0001", "v0002", "v0003"]
    assert current_version(f"{URI}/{DOMAIN}") == "v0003"
    assert load_latest(URI, DOMAIN).version == "v0003"
    with pytest.raises(ExportError, match="has no manifest.json"):
        resolve_version(f"{URI}/{DOMAIN}", "v0004")
    with pytest.raises(ExportError):
        rollback(URI, DOMAIN, "v0004")
    # the next publish takes the number over, without the dead publish's leftovers
    remote.pipe_file(f"{BUCKET}/{DOMAIN}/v0004/stray.bin", b"left over")
    assert _publish(URI, built_double_dqn, "2026-10-08").version == "v0004"
    assert not remote.exists(f"{BUCKET}/{DOMAIN}/v0004/stray.bin")
    assert load_latest(URI, DOMAIN).manifest["decision"]["partition_date"] == "2026-10-08"


def test_a_publish_that_dies_before_latest_leaves_a_servable_version(remote, built_double_dqn,
                                                                     monkeypatch):
    _publish_dying_at(monkeypatch, remote, built_double_dqn, "latest")
    assert list_versions(f"{URI}/{DOMAIN}")[-1] == "v0004"
    assert load_latest(URI, DOMAIN).version == "v0003"  # consumers still get the old one
    assert rollback(URI, DOMAIN, "v0004") == "v0004"
    assert load_latest(URI, DOMAIN).version == "v0004"


def _cli(tmp_path, *argv: str) -> int:
    return run(build_parser(), ["--home", str(tmp_path), *argv])


def test_cli_lists_rolls_back_prunes_and_predicts_against_the_uri(
        remote, tmp_path, capsys, monkeypatch, features):
    monkeypatch.setenv(EXPORTS_ENV, URI)  # read at call time, like the home
    assert _cli(tmp_path, "exports", "list") == 0
    out = capsys.readouterr().out
    assert "recommendation: 3 version(s), latest v0003" in out and "* v0003" in out
    assert _cli(tmp_path, "exports", "rollback") == 0
    assert "latest v0003 -> v0002" in capsys.readouterr().out
    assert current_version(f"{URI}/{DOMAIN}") == "v0002"
    assert _cli(tmp_path, "exports", "prune", "--keep", "1") == 0
    assert "removed 1 version(s) (v0001); kept v0002, v0003 (latest v0002)" in \
        capsys.readouterr().out
    assert not remote.exists(f"{BUCKET}/{DOMAIN}/v0001")
    assert _cli(tmp_path, "exports", "show", "--version", "v0003") == 0
    assert '"version": "v0003"' in capsys.readouterr().out
    rows = tmp_path / "rows.csv"
    pl.DataFrame({n: [0.5, -1.0] for n in features}).write_csv(rows)
    monkeypatch.delenv(EXPORTS_ENV)
    assert _cli(tmp_path, "--exports", URI, "predict", "--features", str(rows)) == 0
    out = capsys.readouterr().out
    assert out.startswith("# recommendation v0002") and len(out.splitlines()) == 2 + 2
    assert not (tmp_path / "exports").exists()  # nothing went to the local home

"""Publishing TorchScript + ONNX exports: manifest, checksums, loading without the training
stack, the predict command and retention."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from offline_rl.export.loader import ExportError, load_latest, load_policy
from offline_rl.export.registry import (
    current_version,
    list_versions,
    prune,
    publish,
    rollback,
)

DOMAIN = "recommendation"


def _publish(root, built, **extra):
    return publish(root, DOMAIN, built.torchscript, {**built.manifest, **extra},
                   extra_files={"policy.onnx": built.onnx})


def test_manifest_lists_every_file_outputs_and_schema(tmp_path, built_double_dqn, trained,
                                                      features, action_map):
    exported = _publish(tmp_path, built_double_dqn, candidate="double_dqn")
    m = json.loads((exported.path / "manifest.json").read_text())
    assert m["format_version"] == 2 and m["version"] == "v0001" and m["domain"] == DOMAIN
    assert set(m["sha256"]) == {"policy.pt", "policy.onnx"}
    assert {f["name"]: f["sha256"] for f in m["files"]} == m["sha256"]
    assert all(f["bytes"] == (exported.path / f["name"]).stat().st_size for f in m["files"])
    assert m["feature_schema"]["names"] == features and m["action_map"] == action_map
    assert list(m["outputs"]) == ["action", "values"]
    assert m["outputs"]["values"]["kind"] == "q_value"
    assert m["formats"]["policy.onnx"]["output_names"] == ["action", "values"]

    policy = load_latest(tmp_path, DOMAIN)
    x = np.random.default_rng(3).normal(size=(20, len(features))).astype(np.float32)
    actions, values = policy.predict_with_values(x)
    algo = trained("double_dqn")
    np.testing.assert_array_equal(actions, algo.predict(x))
    np.testing.assert_array_equal(policy.predict(x), actions)
    np.testing.assert_allclose(values[np.arange(20), actions], algo.predict_value(x, actions) / 0.1,
                               rtol=1e-5, atol=1e-5)
    assert policy.action_names == list(action_map.values())
    assert load_latest(tmp_path, DOMAIN, "v0001").version == "v0001"
    with pytest.raises(ExportError, match="invalid domain"):
        load_latest(tmp_path, "../x")


@pytest.mark.parametrize("name", ["policy.pt", "policy.onnx"])
def test_tampered_or_missing_file_is_refused(tmp_path, built_double_dqn, name):
    exported = _publish(tmp_path, built_double_dqn)
    target = exported.path / name
    original = target.read_bytes()
    target.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    with pytest.raises(ExportError, match=f"checksum mismatch for .*{name}"):
        load_policy(exported.path)
    target.unlink()
    with pytest.raises(ExportError, match=f"{name} missing"):
        load_policy(exported.path)


def test_the_policy_bytes_loaded_are_the_bytes_checked(tmp_path, built_double_dqn,
                                                       monkeypatch):
    """A file replaced between the checksum and the load must not be what gets loaded."""
    import torch

    exported = _publish(tmp_path, built_double_dqn)
    policy_file = exported.path / "policy.pt"
    reads: list[str] = []
    opened, jit_load = Path.open, torch.jit.load

    def open_(self, *args, **kwargs):  # Path.read_bytes opens through Path.open too
        reads.append(self.name)
        return opened(self, *args, **kwargs)

    def load_after_swap(source, *args, **kwargs):
        with opened(policy_file, "wb") as fh:  # swapped after the check
            fh.write(b"not a policy")
        return jit_load(source, *args, **kwargs)

    monkeypatch.setattr(Path, "open", open_)
    monkeypatch.setattr(torch.jit, "load", load_after_swap)
    policy = load_policy(exported.path)
    assert policy.predict(np.zeros((2, len(policy.feature_names)), np.float32)).shape == (2,)
    assert reads.count("policy.pt") == 1
    assert reads.count("policy.onnx") == 1  # verified, not loaded


def test_manifest_entry_removed_is_refused(tmp_path, built_double_dqn):
    exported = _publish(tmp_path, built_double_dqn)
    path = exported.path / "manifest.json"
    m = json.loads(path.read_text())
    m["sha256"]["policy.onnx"] = "0" * 64
    m["files"] = [f for f in m["files"] if f["name"] != "policy.onnx"]
    path.write_text(json.dumps(m))
    with pytest.raises(ExportError, match="checksum mismatch"):
        load_policy(exported.path)


def test_loader_runs_without_d3rlpy_dagster_or_polars(tmp_path, built_double_dqn, trained,
                                                      features):
    _publish(tmp_path, built_double_dqn)
    x = np.random.default_rng(4).normal(size=(5, len(features))).round(3).astype(np.float32)
    code = textwrap.dedent(f"""
        import json, sys
        for name in ("d3rlpy", "dagster", "polars", "onnx", "onnxruntime"):
            sys.modules[name] = None
        from offline_rl.export.loader import load_latest
        p = load_latest({str(tmp_path)!r}, {DOMAIN!r})
        actions, values = p.predict_with_values({x.tolist()!r})
        print(json.dumps([actions.tolist(), values.tolist()]))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    actions, values = json.loads(out.stdout.strip().splitlines()[-1])
    assert actions == trained("double_dqn").predict(x).tolist()
    assert np.asarray(values).shape == (5, 4)


# ------------------------------------------------------------------ CLI

def _parser():
    from offline_rl.cli import build_parser

    return build_parser()  # wires predict and exports prune


def _run(argv):
    from offline_rl.cli import run

    return run(_parser(), argv)


@pytest.fixture
def home(tmp_path, built_double_dqn):
    _publish(tmp_path / "home" / "exports", built_double_dqn)
    return tmp_path / "home"


def test_predict_csv_and_parquet(home, tmp_path, capsys, trained, features):
    x = np.random.default_rng(5).normal(size=(7, len(features))).astype(np.float32)
    expected = trained("double_dqn").predict(x).tolist()
    csv = tmp_path / "rows.csv"  # f_ prefixed names, extra columns and another order are fine
    pl.DataFrame({"session": list(range(7)),
                  **{f"f_{n}": x[:, i] for i, n in reversed(list(enumerate(features)))}}
                 ).write_csv(csv)
    assert _run(["--home", str(home), "predict", "--features", str(csv)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("# recommendation v0001 (DoubleDQN)")
    assert lines[1].split("\t")[:2] == ["row", "action"]
    assert [int(line.split("\t")[1]) for line in lines[2:]] == expected

    parquet = tmp_path / "rows.parquet"
    pl.DataFrame({n: x[:, i] for i, n in enumerate(features)}).write_parquet(parquet)
    out = tmp_path / "pred.json"
    assert _run(["--home", str(home), "predict", "--domain", DOMAIN, "--features", str(parquet),
                 "--version", "v0001", "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["version"] == "v0001" and record["value_kind"] == "q_value"
    assert [r["action"] for r in record["rows"]] == expected
    assert [r["action_name"] for r in record["rows"]][0] in {"books", "games", "music", "toys"}
    values = np.array([list(r["values"].values()) for r in record["rows"]])
    np.testing.assert_allclose(
        values[np.arange(7), expected],
        trained("double_dqn").predict_value(x, np.array(expected)) / 0.1, rtol=1e-5, atol=1e-5)


def test_predict_errors_name_missing_columns(home, tmp_path, capsys):
    csv = tmp_path / "rows.csv"
    pl.DataFrame({"a": [1.0], "f_b": [2.0], "c": [0.0], "e": [1.0]}).write_csv(csv)
    assert _run(["--home", str(home), "predict", "--features", str(csv)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "lacks 2 of the 6 feature columns: d, f (" in err
    assert "hint: recommendation v0001 expects 6 feature columns; list them with: " in err
    assert _run(["--home", str(home), "predict", "--features", str(tmp_path / "x.txt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert _run(["--home", str(home), "predict", "--domain", "cart", "--features",
                 str(csv)]) == 2
    assert "no exports of domain 'cart'" in capsys.readouterr().err
    (home / "exports" / "cart").mkdir()
    assert _run(["--home", str(home), "predict", "--domain", "cart", "--features",
                 str(csv)]) == 2
    assert "no promoted policy yet" in capsys.readouterr().err


# ------------------------------------------------------------------ retention

def test_prune_keeps_newest_and_the_latest(tmp_path, built_double_dqn):
    for _ in range(5):
        _publish(tmp_path, built_double_dqn)
    assert rollback(tmp_path, DOMAIN, "v0002") == "v0002"
    assert prune(tmp_path, DOMAIN, keep=2) == ["v0001", "v0003"]
    assert list_versions(tmp_path / DOMAIN) == ["v0002", "v0004", "v0005"]
    assert current_version(tmp_path / DOMAIN) == "v0002"
    assert load_latest(tmp_path, DOMAIN).version == "v0002"
    assert prune(tmp_path, DOMAIN, keep=3) == []
    assert not [p for p in (tmp_path / DOMAIN).iterdir() if p.name.startswith(".")]
    with pytest.raises(ValueError, match="at least 1"):
        prune(tmp_path, DOMAIN, keep=0)
    assert _publish(tmp_path, built_double_dqn).version == "v0006"  # numbering goes on


def test_exports_prune_command(home, capsys, built_double_dqn):
    root = home / "exports"
    for _ in range(3):
        _publish(root, built_double_dqn)
    assert _run(["--home", str(home), "exports", "prune", "--keep", "2"]) == 0
    assert "removed 2 version(s) (v0001, v0002)" in capsys.readouterr().out
    assert list_versions(root / DOMAIN) == ["v0003", "v0004"]
    assert _run(["--home", str(home), "exports", "prune"]) == 2
    assert "needs --keep N" in capsys.readouterr().err
    assert _run(["--home", str(home), "exports", "list"]) == 0  # the other actions still work
    assert "* v0004" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        _parser().parse_args(["exports", "prune", "--keep", "0"])


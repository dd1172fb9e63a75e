"""Tests of ``offline-rl ope``: report, JSON output, warnings and one-line errors."""

from __future__ import annotations

import argparse
import json

import numpy as np
import polars as pl
import pytest
import torch

from offline_rl.cli import build_parser, run
from offline_rl.export.registry import publish

IPW = 12.375 / 4  # hand computation: see tests/offline_rl/ope/test_public.py


def parser() -> argparse.ArgumentParser:
    p = build_parser()
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    assert "ope" in sub.choices  # the CLI wires it in itself
    return p


def bandit(tmp_path, *, logs_fmt="parquet", target_fmt="csv", drop=()):
    logs = pl.DataFrame({"episode_id": [10, 11, 12, 13], "step": [0, 0, 0, 0],
                         "action": [0, 1, 0, 1], "reward": [1.0, 0.0, 2.0, 3.0],
                         "behavior_prob": [0.5, 0.5, 0.8, 0.2]}).drop(list(drop))
    target = pl.DataFrame({"episode_id": [10, 10, 11, 11, 12, 12, 13, 13], "step": [0] * 8,
                           "action": [0, 1] * 4, "prob": [0.25, 0.75] * 4})
    paths = tmp_path / f"logs.{logs_fmt}", tmp_path / f"target.{target_fmt}"
    for frame, path in zip((logs, target), paths, strict=True):
        frame.write_parquet(path) if path.suffix == ".parquet" else frame.write_csv(path)
    return paths


def test_ope_prints_a_table_and_writes_json(tmp_path, capsys):
    logs, target = bandit(tmp_path)
    out = tmp_path / "ope.json"
    code = run(parser(), ["ope", "--logs", str(logs), "--target", str(target), "--json",
                          str(out), "--n-bootstrap", "200", "--seed", "3", "--alpha", "0.1"])
    assert code == 0
    captured = capsys.readouterr()
    text = captured.out
    assert "ipw" in text and "snipw" in text and "vs behaviour" in text
    assert f"{IPW:.4f}" in text and "(+106.2%)" in text  # (3.09375 - 1.5) / 1.5
    assert "diagnostics:" in text and "ess_fraction" in text and "estimator_disagreement" in text
    assert "90% bootstrap intervals" in text
    record = json.loads(out.read_text())
    assert {"behavior_value", "estimates", "diagnostics"} <= set(record)
    assert record["estimates"]["ipw"]["value"] == pytest.approx(IPW)
    assert set(record["estimates"]["ipw"]) == {"value", "low", "high"}
    assert record["behavior_value"] == pytest.approx(1.5)
    assert record["n_bootstrap"] == 200 and record["alpha"] == 0.1
    # no features: dm/dr/sndr omitted, said on stderr
    assert "dm" not in record["estimates"]
    assert "warning: dm, dr, sndr omitted" in captured.err


def test_missing_propensities_are_estimated_loudly(tmp_path, capsys):
    logs, target = bandit(tmp_path, logs_fmt="csv", target_fmt="parquet", drop=("behavior_prob",))
    out = tmp_path / "ope.json"
    code = run(parser(), ["ope", "--logs", str(logs), "--target", str(target), "--json", str(out),
                          "--n-bootstrap", "50"])
    assert code == 0
    err = capsys.readouterr().err
    assert "warning: behaviour probabilities ESTIMATED" in err
    record = json.loads(out.read_text())
    assert record["behavior_prob_source"] == "estimated"
    assert any("ESTIMATED" in w for w in record["warnings"])


class _Sign(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x[:, 0] > 0).to(torch.int64)


def test_exported_policy_target_through_the_cli(tmp_path, capsys):
    rng = np.random.default_rng(0)
    n = 300
    x = rng.normal(size=n)
    action = rng.integers(0, 2, n)
    logs = pl.DataFrame({"episode_id": np.arange(n), "step": np.zeros(n, dtype=np.int64),
                         "action": action, "reward": (action == (x > 0)).astype(float),
                         "behavior_prob": np.full(n, 0.5), "f_score": x})
    logs.write_parquet(tmp_path / "logs.parquet")
    src = tmp_path / "src.pt"
    torch.jit.script(_Sign()).save(str(src))
    export = publish(tmp_path / "exports", "recommendation", src,
                     {"algorithm": "Test", "feature_schema": {"names": ["score"]}}).path
    out = tmp_path / "ope.json"
    code = run(parser(), ["ope", "--logs", str(tmp_path / "logs.parquet"), "--target",
                          str(export), "--json", str(out), "--n-bootstrap", "100"])
    assert code == 0
    record = json.loads(out.read_text())
    assert record["target_kind"] == "export"
    assert record["estimates"]["ipw"]["value"] == pytest.approx(
        float(np.mean(2.0 * (action == (x > 0)))))
    assert record["estimates"]["dr"]["value"] == pytest.approx(1.0, abs=0.05)
    assert record["diagnostics"]["action_match_rate"] == pytest.approx(np.mean(action == (x > 0)))


def _corrupt(tmp_path, case):
    logs_path, target_path = bandit(tmp_path, logs_fmt="csv", target_fmt="csv")
    logs, target = pl.read_csv(logs_path), pl.read_csv(target_path)
    if case == "missing column":
        logs = logs.drop("action")
    elif case == "bad behaviour prob":
        logs = logs.with_columns(pl.Series("behavior_prob", [0.5, 1.2, 0.8, 0.2]))
    elif case == "bad target prob":
        target = target.with_columns(pl.Series("prob", [0.25, 0.75] * 3 + [1.5, -0.5]))
    elif case == "target not summing to 1":
        target = target.with_columns(pl.Series("prob", [0.25, 0.7] + [0.25, 0.75] * 3))
    elif case == "unknown action":
        target = target.with_columns(pl.Series("action", [0, 1, 0, 1, 0, 1, 0, 5]))
    elif case == "duplicate step":
        logs = logs.with_columns(pl.Series("episode_id", [10, 10, 12, 13]))
    elif case == "nan reward":
        logs = logs.with_columns(pl.Series("reward", [1.0, float("nan"), 2.0, 3.0]))
    logs.write_csv(logs_path)
    target.write_csv(target_path)
    return logs_path, target_path


@pytest.mark.parametrize("case, message", [
    ("missing column", "missing column(s) action"),
    ("bad behaviour prob", "column 'behavior_prob', row 1"),
    ("bad target prob", "column 'prob', row 6"),
    ("target not summing to 1", "sum to 0.95, not 1"),
    ("unknown action", "action 5 never appears"),
    ("duplicate step", "duplicate (episode_id, step)"),
    ("nan reward", "column 'reward', row 1"),
])
def test_malformed_input_is_one_error_line_with_a_hint(tmp_path, capsys, case, message):
    logs, target = _corrupt(tmp_path, case)
    out = tmp_path / "ope.json"
    code = run(parser(), ["ope", "--logs", str(logs), "--target", str(target), "--json", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith("error: ") and message in lines[0]
    assert lines[1].startswith("hint: ")
    assert "Traceback" not in err and not out.exists()


def test_missing_files_and_bad_targets_are_usage_errors(tmp_path, capsys):
    logs, _ = bandit(tmp_path)
    assert run(parser(), ["ope", "--logs", str(tmp_path / "nope.csv"), "--target", str(logs)]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert run(parser(), ["ope", "--logs", str(logs), "--target", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "directory without manifest.json" in err and "hint: " in err


@pytest.mark.parametrize("argv", [["--alpha", "1.5"], ["--gamma", "-0.1"],
                                  ["--n-bootstrap", "-3"], ["--alpha", "x"]])
def test_bad_options_are_rejected_by_the_parser(tmp_path, argv):
    logs, target = bandit(tmp_path)
    with pytest.raises(SystemExit) as info:
        run(parser(), ["ope", "--logs", str(logs), "--target", str(target), *argv])
    assert info.value.code == 2

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
                          str(export), "--json", str(out), "--n-bootstrap", "100",
                          "--fqe-steps", "500"])
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
    ("bad behaviour prob", "column 'behavior_prob', row 2 (1-based, header excluded; "
                           "episode_id=11, step=0)"),
    ("bad target prob", "column 'prob', row 7 (1-based, header excluded; episode_id=13"),
    ("target not summing to 1", "sum to 0.95, not 1"),
    ("unknown action", "action 5 never appears"),
    ("duplicate step", "row 2 (1-based, header excluded; episode_id=10, step=0): duplicate "
                       "(episode_id, step): same as row 1"),
    ("nan reward", "column 'reward', row 2 (1-based, header excluded"),
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


def _export(tmp_path, n_actions=None):
    """A published one-feature policy (action 1 where score > 0), optionally with its actions."""
    src = tmp_path / "src.pt"
    torch.jit.script(_Sign()).save(str(src))
    manifest = {"algorithm": "Test", "feature_schema": {"names": ["score"]}}
    if n_actions:
        manifest |= {"n_actions": n_actions,
                     "action_map": {str(i): f"a{i}" for i in range(n_actions)}}
    return publish(tmp_path / "exports", "recommendation", src, manifest).path


def _logs(tmp_path, n=200, **columns):
    rng = np.random.default_rng(1)
    frame = pl.DataFrame({"episode_id": np.arange(n), "step": np.zeros(n, dtype=np.int64),
                          "action": rng.integers(0, 2, n), "reward": rng.normal(1.0, 0.5, n),
                          "behavior_prob": np.full(n, 0.5), "f_score": rng.normal(size=n)})
    for name, (row, value) in columns.items():
        values = frame[name].to_list()
        values[row] = value
        frame = frame.with_columns(pl.Series(name, values))
    path = tmp_path / "logs.csv"
    frame.write_csv(path)
    return path


def _ope(*argv):
    return run(parser(), ["ope", "--n-bootstrap", "20", "--fqe-steps", "200",
                          *[str(a) for a in argv]])


def test_an_action_outside_the_domains_actions_is_refused(tmp_path, capsys):
    export = _export(tmp_path, n_actions=4)
    logs = _logs(tmp_path, action=(2, 9))
    assert _ope("--logs", logs, "--target", export) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (f"error: {logs}: column 'action', row 3 (1-based, header excluded): "
                      f"action 9 is not one of the 4 actions 0..3 of the export's manifest "
                      f"({export}) (1 such row(s))")
    # a table target is checked against --domain (recommendation has 6 actions)
    table = tmp_path / "target.csv"
    pl.DataFrame({"episode_id": np.arange(200), "step": 0, "action": 0, "prob": 1.0}) \
        .write_csv(table)
    assert _ope("--logs", logs, "--target", table, "--domain", "recommendation") == 2
    assert "action 9 is not one of the 6 actions 0..5 of domain recommendation" in \
        capsys.readouterr().err
    assert _ope("--logs", logs, "--target", table, "--domain", "nosuch") == 2
    assert "unknown domain 'nosuch'; choose one of: recommendation" in capsys.readouterr().err


def test_tiny_propensities_are_warned_about(tmp_path, capsys):
    export = _export(tmp_path)
    logs = _logs(tmp_path, behavior_prob=(4, 1e-12))
    out = tmp_path / "ope.json"
    assert _ope("--logs", logs, "--target", export, "--json", out) == 0
    err = capsys.readouterr().err
    assert ("warning: 1 row(s) have a behaviour probability below 0.0001, the smallest 1e-12 "
            "at row 5 (1-based, header excluded)") in err
    assert "effective sample size 1.0, 0.50% of the episodes" in err
    assert any("below 0.0001" in w for w in json.loads(out.read_text())["warnings"])


def test_huge_rewards_are_refused_and_outlying_ones_warned_about(tmp_path, capsys):
    export = _export(tmp_path)
    assert _ope("--logs", _logs(tmp_path, reward=(7, 1e300)), "--target", export) == 2
    err = capsys.readouterr().err
    assert ("column 'reward', row 8 (1-based, header excluded): reward 1e+300 is too large: "
            "the sum of squared rewards overflows float64") in err
    assert _ope("--logs", _logs(tmp_path, reward=(7, 1e12)), "--target", export) == 0
    captured = capsys.readouterr()
    assert "warning: 1 reward(s) exceed 1e+06 x the median nonzero |reward|" in captured.err
    assert "the largest, 1e+12 at row 8 (1-based, header excluded)" in captured.err
    # the table keeps its columns apart at any magnitude
    rows = [line.split() for line in captured.out.splitlines()
            if line.split()[:1] in (["behaviour"], ["ipw"], ["dr"])]
    assert len(rows) == 3 and all(len(r) >= 4 for r in rows)
    for r in rows:
        [float(v) for v in r[1:4]]  # each of value, low, high parses on its own


def test_table_columns_stay_apart_at_any_magnitude():
    from offline_rl.ope.command import format_result

    estimate = {"value": 177627.0, "low": 149139.025, "high": 204079.4167}
    record = {"behavior_value": 1e13, "alpha": 0.05, "n_episodes": 3, "n_decisions": 3,
              "gamma": 1.0, "n_bootstrap": 10, "behavior_prob_source": "logged",
              "behavior_interval": {"low": -1e300, "high": None},
              "estimates": {"ipw": estimate, "dr": {"value": 5.0, "low": 4.0, "high": 6.0}},
              "diagnostics": {"a_very_long_diagnostic_name_indeed": 123456789.0, "ess": 2.0}}
    text = format_result(record, "logs.csv", "target")
    assert "177627.0000149139" not in text
    lines = {line.split()[0]: line.split() for line in text.splitlines() if line.strip()}
    assert lines["behaviour"][1:4] == ["1.000000e+13", "-1.000000e+300", "n/a"]
    assert lines["ipw"][1:4] == ["177627.0000", "149139.0250", "204079.4167"]
    assert lines["dr"][1:4] == ["5.0000", "4.0000", "6.0000"]
    assert lines["a_very_long_diagnostic_name_indeed"][1] == "123456789.0000"


def test_the_latest_pointer_is_a_target(tmp_path, capsys):
    export = _export(tmp_path)
    logs = _logs(tmp_path)
    out = tmp_path / "ope.json"
    assert _ope("--logs", logs, "--target", export.parent / "latest", "--json", out) == 0
    assert f"off-policy evaluation of {export}" in capsys.readouterr().out
    assert json.loads(out.read_text())["target_kind"] == "export"
    (export.parent / "latest").write_text("v0042\n")
    assert _ope("--logs", logs, "--target", export.parent / "latest") == 2
    assert "has no manifest.json" in capsys.readouterr().err


def test_row_numbers_of_evaluate_logs_are_shown_from_1():
    from offline_rl.ope.command import one_based_rows

    assert one_based_rows("x.csv: column 'step', row 0 (episode_id=1, step=2): duplicate "
                          "(episode_id, step): same as row 4") == (
        "x.csv: column 'step', row 1 (1-based, header excluded; episode_id=1, step=2): "
        "duplicate (episode_id, step): same as row 5")
    assert one_based_rows("t.csv: column 'prob', row 9: bad") == \
        "t.csv: column 'prob', row 10 (1-based, header excluded): bad"
    assert one_based_rows("missing in 3 of 10 rows") == "missing in 3 of 10 rows"


def test_settings_are_the_nightly_evaluations_and_recorded(tmp_path, capsys):
    """The options default to OPEConfig's values and the JSON records every setting used;
    dm/dr/sndr intervals come from the FQE refits, which the report says."""
    import dataclasses

    from offline_rl.ope.evaluate import OPEConfig

    export = _export(tmp_path, n_actions=2)
    logs = _logs(tmp_path)
    out = tmp_path / "ope.json"
    assert run(parser(), ["ope", "--logs", str(logs), "--target", str(export), "--json",
                          str(out), "--fqe-steps", "150", "--fqe-refits", "3", "--seed",
                          "2"]) == 0
    text = capsys.readouterr().out
    record = json.loads(out.read_text())
    expected = dataclasses.replace(OPEConfig(), fqe_steps=150, fqe_refits=3, seed=2)
    assert record["details"]["config"] == {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in dataclasses.asdict(expected).items()}
    assert record["alpha"] == OPEConfig.alpha and record["n_bootstrap"] == OPEConfig.n_bootstrap
    assert record["details"]["fqe"]["refits"] == 3
    assert set(record["details"]["refit_replicates"]["values"]) == {"dm", "dr", "sndr"}
    assert all(len(v) == 3 for v in record["details"]["refit_replicates"]["values"].values())
    assert f"{100 * (1 - OPEConfig.alpha):g}% bootstrap intervals ({OPEConfig.n_bootstrap} " \
        "resamples of the episodes, FQE refitted on 3 of them for dm/dr/sndr)" in text


@pytest.mark.parametrize("argv", [["--fqe-steps", "0"], ["--fqe-refits", "-1"]])
def test_bad_fqe_options_are_rejected_by_the_parser(tmp_path, argv):
    logs, target = bandit(tmp_path)
    with pytest.raises(SystemExit) as info:
        run(parser(), ["ope", "--logs", str(logs), "--target", str(target), *argv])
    assert info.value.code == 2

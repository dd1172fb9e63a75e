"""``offline-rl exports list|show|rollback|prune`` and ``predict``'s feature files."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from offline_rl.cli import build_parser, run
from offline_rl.export import command, loader
from offline_rl.export.registry import current_version, list_versions, publish

DOMAIN = "recommendation"


def _cli(home, *argv: str) -> int:
    return run(build_parser(), ["--home", str(home), *argv])


def _publish(export_root, built, domain=DOMAIN, day="2026-10-07", dr=(6.0, 5.5, 6.5)):
    manifest = {**built.manifest, "candidate": "double_dqn",
                "decision": {"partition_date": day, "reasons": []},
                "estimates": {"dr": {"value": dr[0], "low": dr[1], "high": dr[2]}},
                "created_at": "2026-10-08T02:10:00+00:00"}
    return publish(export_root, domain, built.torchscript, manifest,
                   extra_files={"policy.onnx": built.onnx})


@pytest.fixture
def home(tmp_path, built_double_dqn):
    """Three recommendation versions (latest v0003) and one pricing version."""
    root = tmp_path / "home" / "exports"
    for i in range(3):
        _publish(root, built_double_dqn, day=f"2026-10-0{i + 5}", dr=(6.0 + i, 5.5 + i, 6.5 + i))
    _publish(root, built_double_dqn, domain="pricing")
    replayed = {**built_double_dqn.manifest, "candidate": "bc",
                "decision": {"partition_date": "2026-10-07", "reasons": [],
                             "headline_estimator": "replay"},
                "estimates": {"dr": {"value": 1500.0, "low": 1450.0, "high": 1550.0},
                              "replay": {"value": 1390.0, "low": 1370.0, "high": 1410.0}}}
    publish(root, "inventory", built_double_dqn.torchscript, replayed,
            extra_files={"policy.onnx": built_double_dqn.onnx})
    return tmp_path / "home"


def test_constants_match_the_loader():
    assert command.LATEST_NAME == loader.LATEST and command.MANIFEST_NAME == loader.MANIFEST


def test_list_shows_every_domain_and_marks_latest(home, capsys):
    assert _cli(home, "exports", "list") == 0
    out = capsys.readouterr().out
    assert "pricing: 1 version(s), latest v0001" in out
    assert "recommendation: 3 version(s), latest v0003" in out
    lines = {line.split()[1] if line.startswith("*") else line.split()[0]: line
             for line in out.splitlines() if line.strip().lstrip("* ").startswith("v0")}
    assert lines["v0003"].startswith("* v0003")
    assert "DoubleDQN" in lines["v0003"] and "2026-10-07" in lines["v0003"]
    assert "dr 8.000 [7.500, 8.500]" in lines["v0003"]
    # the estimate shown is the one the gate decided on
    assert "inventory: 1 version(s)" in out and "replay 1390.000 [1370.000, 1410.000]" in out
    assert _cli(home, "exports", "list", "--domain", "pricing") == 0
    out = capsys.readouterr().out
    assert "pricing" in out and "recommendation" not in out


def test_list_flags_a_latest_pointer_to_a_missing_version(home, capsys):
    (home / "exports" / DOMAIN / "latest").write_text("v0009\n")
    assert _cli(home, "exports", "list", "--domain", DOMAIN) == 0
    assert "latest v0009 (MISSING" in capsys.readouterr().out


def test_list_of_an_empty_home(tmp_path, capsys):
    assert _cli(tmp_path, "exports", "list") == 0
    assert "no exports under" in capsys.readouterr().out


def test_show_prints_the_manifest_and_refuses_a_damaged_version(home, capsys):
    assert _cli(home, "exports", "show") == 0
    assert json.loads(capsys.readouterr().out)["version"] == "v0003"
    assert _cli(home, "exports", "show", "--version", "v0001") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["version"] == "v0001" and shown["decision"]["partition_date"] == "2026-10-05"

    onnx = home / "exports" / DOMAIN / "v0002" / "policy.onnx"
    onnx.write_bytes(onnx.read_bytes()[:-10])
    assert _cli(home, "exports", "show", "--version", "v0002") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: checksum mismatch for ") and "hint: --no-verify" in err
    assert _cli(home, "exports", "show", "--version", "v0002", "--no-verify") == 0
    assert json.loads(capsys.readouterr().out)["version"] == "v0002"

    assert _cli(home, "exports", "show", "--version", "v0042") == 2
    assert "has no manifest.json" in capsys.readouterr().err
    assert _cli(home, "exports", "show", "--domain", "../x") == 2
    assert "invalid domain" in capsys.readouterr().err


def test_rollback_to_the_previous_or_a_named_version(home, capsys):
    root = home / "exports" / DOMAIN
    assert _cli(home, "exports", "rollback") == 0
    assert "recommendation: latest v0003 -> v0002" in capsys.readouterr().out
    assert current_version(root) == "v0002"
    assert _cli(home, "exports", "rollback", "--version", "v0003") == 0
    assert current_version(root) == "v0003"
    assert _cli(home, "exports", "rollback", "--version", "v0001") == 0
    assert _cli(home, "exports", "rollback") == 2  # nothing before v0001
    assert "no version before 'v0001'" in capsys.readouterr().err
    assert _cli(home, "exports", "rollback", "--version", "v0007") == 2
    assert current_version(root) == "v0001"
    assert list_versions(root) == ["v0001", "v0002", "v0003"]  # nothing was deleted


def test_rollback_moves_the_mlflow_champion_and_survives_an_unreachable_server(
        home, capsys, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    uri = f"sqlite:///{home / 'mlflow.db'}"
    monkeypatch.setenv("OFFLINE_RL_MLFLOW_URI", uri)
    monkeypatch.setenv("OFFLINE_RL_MLFLOW_ARTIFACTS", (home / "mlartifacts").as_uri())
    assert _cli(home, "exports", "rollback") == 0
    out = capsys.readouterr().out
    assert "latest v0003 -> v0002" in out
    assert "registered and models:/recommendation@champion -> version 1 (export v0002)" in out
    champion = MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_by_alias(
        DOMAIN, "champion")
    assert champion.tags["export_version"] == "v0002"
    # the alias is a warning's worth: latest moves even when MLflow cannot be reached
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    assert _cli(home, "exports", "rollback", "--mlflow-uri", "http://127.0.0.1:9") == 0
    captured = capsys.readouterr()
    assert "latest v0002 -> v0001" in captured.out
    assert captured.err.startswith("warning: recommendation champion alias not logged to "
                                   "MLflow at http://127.0.0.1:9: ")
    assert current_version(home / "exports" / DOMAIN) == "v0001"


def test_prune_keeps_the_newest_and_latest(home, capsys):
    assert _cli(home, "exports", "rollback", "--version", "v0001") == 0
    assert _cli(home, "exports", "prune", "--keep", "1") == 0
    assert "removed 1 version(s) (v0002); kept v0001, v0003 (latest v0001)" in \
        capsys.readouterr().out
    assert list_versions(home / "exports" / "pricing") == ["v0001"]  # other domains untouched


def test_exports_needs_an_action_and_every_action_has_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["exports"])
    assert exit_.value.code == 2 and "ACTION" in capsys.readouterr().err
    for action, option in [("list", "--domain"), ("show", "--no-verify"),
                           ("rollback", "--version"), ("prune", "--keep N")]:
        with pytest.raises(SystemExit) as exit_:
            build_parser().parse_args(["exports", action, "--help"])
        assert exit_.value.code == 0 and option in capsys.readouterr().out


# ------------------------------------------------------------------ predict: feature files

FEATURES = ["a", "b", "c"]


def test_feature_rows_from_csv_and_parquet_in_schema_order(tmp_path):
    frame = pl.DataFrame({"id": ["s1", "s2"], "f_c": [3.0, 6.0], "a": [1, 4], "b": [True, False]})
    frame.write_csv(tmp_path / "rows.csv")
    frame.write_parquet(tmp_path / "rows.pq")
    for name in ("rows.csv", "rows.pq"):
        x = command.read_feature_rows(tmp_path / name, FEATURES)
        assert x.dtype == np.float32
        np.testing.assert_array_equal(x, [[1, 1, 3], [4, 0, 6]])


def test_feature_rows_of_an_empty_file(tmp_path):
    pl.DataFrame(schema={"a": pl.Float64, "b": pl.Float64, "c": pl.Float64}).write_parquet(
        tmp_path / "empty.parquet")
    assert command.read_feature_rows(tmp_path / "empty.parquet", FEATURES).shape == (0, 3)


@pytest.mark.parametrize(("frame", "message"), [
    ({"a": [1.0], "f_a": [1.0], "b": [0.0], "c": [0.0]},
     "both spellings of feature column(s): a/f_a"),
    ({"a": [1.0], "b": ["x"], "c": [0.0]},
     "1 of the 3 feature columns are not numeric: b (String)"),
    ({"a": [1.0], "b": [0.0]}, "lacks 1 of the 3 feature columns: c (name them"),
    ({"a": [1.0, 2.0, None], "b": [0.0] * 3, "c": [0.0, float("inf"), 1.0]},
     "null or non-finite values in feature column(s) a (first at row 3), c (first at row 2); "
     "rows are 1-based, header excluded"),
    ({"a": [1e39], "b": [0.0], "c": [0.0]}, "a (first at row 1)"),  # beyond float32
])
def test_bad_feature_values_are_named(tmp_path, frame, message):
    path = tmp_path / "rows.parquet"
    pl.DataFrame(frame).write_parquet(path)
    with pytest.raises(ValueError, match="rows.parquet") as error:
        command.read_feature_rows(path, FEATURES)
    assert message in str(error.value)


def test_unreadable_or_unknown_files(tmp_path):
    (tmp_path / "rows.parquet").write_text("not parquet")
    with pytest.raises(ValueError, match="cannot read as parquet"):
        command.read_feature_rows(tmp_path / "rows.parquet", FEATURES)
    (tmp_path / "rows.json").write_text("{}")
    with pytest.raises(ValueError, match="unknown format '.json'"):
        command.read_feature_rows(tmp_path / "rows.json", FEATURES)


def test_predict_reports_a_bad_file_in_one_line(home, tmp_path, capsys, features):
    path = tmp_path / "rows.csv"
    pl.DataFrame({n: [0.0, float("nan")] for n in features}).write_csv(path)
    assert _cli(home, "predict", "--features", str(path)) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("error: ") and "null or non-finite" in err[0]
    assert "f (first at row 2)" in err[0] and "1-based, header excluded" in err[0]
    # the hint says how many columns are expected, not all their names
    assert err[1] == (f"hint: recommendation v0003 expects {len(features)} feature columns; "
                      "list them with: offline-rl exports show --domain recommendation "
                      "--version v0003") and len(err) == 2


def test_feature_rows_name_only_the_missing_columns_of_many(tmp_path):
    names = [f"x{i}" for i in range(19)]
    pl.DataFrame({n: [0.0] for n in names[:-2]}).write_csv(tmp_path / "rows.csv")
    with pytest.raises(ValueError) as error:
        command.read_feature_rows(tmp_path / "rows.csv", names)
    assert "lacks 2 of the 19 feature columns: x17, x18 (" in str(error.value)
    assert "x0" not in str(error.value)
    with pytest.raises(ValueError) as error:
        command.read_feature_rows(tmp_path / "rows.csv", [f"y{i}" for i in range(19)])
    assert "lacks 19 of the 19 feature columns: y0, y1, y2, y3, y4, y5, y6, y7 and 11 more" \
        in str(error.value)


def test_feature_rows_of_a_folder_and_of_a_header_only_csv(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a directory; pass one .parquet"):
        command.read_feature_rows(tmp_path, FEATURES)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        command.read_feature_rows(tmp_path / "nope.csv", FEATURES)
    (tmp_path / "header.csv").write_text("a,b,f_c\n")
    assert command.read_feature_rows(tmp_path / "header.csv", FEATURES).shape == (0, 3)


def test_predict_numbers_rows_from_1_and_explains_bad_inputs(home, tmp_path, capsys, features):
    rows = tmp_path / "rows.csv"
    pl.DataFrame({n: [0.0, 1.0] for n in features}).write_csv(rows)
    out = tmp_path / "p.json"
    assert _cli(home, "predict", "--features", str(rows), "--json", str(out)) == 0
    record = json.loads(out.read_text())
    assert [r["row"] for r in record["rows"]] == [1, 2]
    assert record["row_numbering"] == "1-based, header excluded"
    capsys.readouterr()
    assert _cli(home, "predict", "--features", str(rows)) == 0
    printed = capsys.readouterr().out.splitlines()
    assert "rows 1-based, header excluded" in printed[0]
    assert [line.split("\t")[0] for line in printed[2:]] == ["1", "2"]

    assert _cli(home, "predict", "--features", str(tmp_path)) == 2
    assert "is a directory" in capsys.readouterr().err
    (tmp_path / "header.csv").write_text(",".join(features) + "\n")
    assert _cli(home, "predict", "--features", str(tmp_path / "header.csv")) == 0
    captured = capsys.readouterr()
    assert "has no data rows; nothing to predict" in captured.err
    assert "non-numeric" not in captured.err


def test_an_unknown_domain_is_named_with_the_choices(home, tmp_path, capsys):
    rows = tmp_path / "rows.csv"
    rows.write_text("a\n1\n")
    for argv in (["predict", "--domain", "nosuch", "--features", str(rows)],
                 ["exports", "show", "--domain", "nosuch"],
                 ["exports", "list", "--domain", "nosuch"],
                 ["exports", "rollback", "--domain", "nosuch"],
                 ["exports", "prune", "--domain", "nosuch", "--keep", "1"]):
        assert _cli(home, *argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: unknown domain 'nosuch'; choose one of: recommendation, "
                              "cart, inventory, ads, pricing"), err
        assert "no promoted policy" not in err
    # a registered domain nothing was exported for yet
    assert _cli(home, "predict", "--domain", "cart", "--features", str(rows)) == 2
    assert "error: no exports of domain 'cart'" in capsys.readouterr().err


def _corrupt_policy(home, version):
    policy = home / "exports" / DOMAIN / version / "policy.pt"
    policy.write_bytes(policy.read_bytes()[:-1] + b"x")


def test_rollback_refuses_a_version_that_fails_its_checksum(home, capsys):
    root = home / "exports" / DOMAIN
    _corrupt_policy(home, "v0002")
    assert _cli(home, "exports", "rollback", "--version", "v0002") == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (f"error: refusing to point latest at v0002: {root / 'v0002'} is damaged: "
                      "policy.pt fails its checksum") and len(err) == 2
    assert "marked ok" in err[1]
    assert current_version(root) == "v0003"
    # the previous version is damaged: refused too, never skipped silently
    assert _cli(home, "exports", "rollback") == 2
    assert "v0002" in capsys.readouterr().err and current_version(root) == "v0003"
    (root / "v0001" / "policy.onnx").unlink()
    assert _cli(home, "exports", "rollback", "--version", "v0001") == 2
    assert "policy.onnx missing" in capsys.readouterr().err
    assert current_version(root) == "v0003"


def test_list_flags_corrupt_and_incomplete_versions(home, capsys):
    root = home / "exports" / DOMAIN
    _corrupt_policy(home, "v0002")
    (root / "v0001" / "policy.onnx").unlink()
    (root / "v0004").mkdir()  # a folder without a manifest: not servable
    assert _cli(home, "exports", "list", "--domain", DOMAIN) == 0
    out = capsys.readouterr().out
    lines = {line[2:7]: line for line in out.splitlines() if line[2:4] == "v0"}
    assert lines["v0001"].split()[1] == "INCOMPLETE" and "(policy.onnx missing)" in \
        lines["v0001"]
    assert lines["v0002"].split()[1] == "CORRUPT" and "(policy.pt fails its checksum)" in \
        lines["v0002"]
    assert lines["v0003"].startswith("* v0003  ok ")
    assert lines["v0004"].split()[1] == "INCOMPLETE" and "no manifest.json" in lines["v0004"]
    assert "recommendation: 3 version(s), latest v0003; 2 damaged" in out

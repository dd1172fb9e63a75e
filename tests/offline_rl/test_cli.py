import json
import subprocess
import sys

from offline_rl.cli import main


def test_simulate_writes_landing_and_manifest(tmp_path, capsys):
    code = main(["--home", str(tmp_path), "simulate", "--days", "2", "--events-per-day", "800",
                 "--seed", "3"])
    assert code == 0
    assert (tmp_path / "landing" / "clickstream" / "date=2026-10-01").is_dir()
    manifest = json.loads((tmp_path / "landing" / "_simulation.json").read_text())
    assert manifest["seed"] == 3 and manifest["scenario"] == "default"
    assert "clickstream" in capsys.readouterr().out


def test_rollout_behavior_prints_and_writes_json(tmp_path):
    out = tmp_path / "r.json"
    code = main(["--home", str(tmp_path), "rollout", "--policy", "behavior", "--episodes", "2000",
                 "--json", str(out)])
    assert code == 0
    record = json.loads(out.read_text())
    assert record["domain"] == "recommendation" and record["episodes"] == 2000
    assert 3.0 < record["mean"] < 8.0 and record["stderr"] > 0


def test_errors_are_one_line_with_a_hint(tmp_path, capsys):
    code = main(["--home", str(tmp_path), "rollout", "--policy", str(tmp_path / "nope")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and "hint:" in err and "Traceback" not in err
    assert main(["--home", str(tmp_path), "simulate", "--days", "1", "--scenario", "x"]) == 1
    assert "unknown scenario" in capsys.readouterr().err


def test_bad_arguments_are_rejected_by_the_parser(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "offline_rl.cli", "simulate", "--days", "0"],
        capture_output=True, text=True)
    assert proc.returncode == 2 and "must be at least 1" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "offline_rl.cli", "simulate", "--days", "1",
         "--start", "2026-13-01"],
        capture_output=True, text=True)
    assert proc.returncode == 2 and "not a date" in proc.stderr


def test_schema_docs_in_the_repo_match_the_code(tmp_path):
    from pathlib import Path

    out = tmp_path / "schemas.md"
    assert main(["schemas", "--output", str(out)]) == 0
    committed = Path(__file__).resolve().parents[2] / "docs" / "schemas.md"
    hint = "run: offline-rl schemas --output docs/schemas.md"
    assert committed.read_text() == out.read_text(), hint

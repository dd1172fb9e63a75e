import json
import subprocess
import sys

import pytest

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


# ------------------------------------------------------------------ errors, --debug, help

def _parser_raising(exc: BaseException):
    """A parser with one command, ``boom``, whose handler raises ``exc``."""
    import argparse

    from offline_rl.cli import CommandParser

    parser = argparse.ArgumentParser(prog="t")
    parser.add_argument("--debug", action="store_true")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=CommandParser)

    def handler(_args):
        raise exc

    sub.add_parser("boom").set_defaults(handler=handler)
    return parser


def _chained() -> Exception:
    """What Dagster raises for a failed step: its own error caused by the step's exception."""
    try:
        try:
            raise KeyError("episode_id")
        except KeyError as inner:
            raise RuntimeError("Error occurred while executing op \"x\":") from inner
    except RuntimeError as outer:
        return outer


def test_unexpected_errors_are_one_line_naming_the_root_cause(capsys):
    from offline_rl.cli import run

    assert run(_parser_raising(_chained()), ["boom"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: KeyError: 'episode_id'", "hint: run with --debug for the traceback"]
    multi = ValueError("column x is missing\n\nDid you mean y?")
    assert run(_parser_raising(multi), ["boom"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: column x is missing",
        "hint: run with --debug for the full message and traceback"]
    assert run(_parser_raising(KeyboardInterrupt()), ["boom"]) == 130
    assert capsys.readouterr().err == "error: interrupted\n"


def test_debug_shows_the_traceback_before_or_after_the_command(tmp_path):
    from offline_rl.cli import main, run

    with pytest.raises(RuntimeError, match="executing op"):
        run(_parser_raising(_chained()), ["--debug", "boom"])
    with pytest.raises(RuntimeError, match="executing op"):
        run(_parser_raising(_chained()), ["boom", "--debug"])
    argv = ["--home", str(tmp_path), "simulate", "--days", "1", "--scenario", "x"]
    with pytest.raises(ValueError, match="unknown scenario"):
        main([*argv, "--debug"])
    with pytest.raises(ValueError, match="unknown scenario"):
        main(["--debug", *argv])


def _all_parsers():
    """(command path, parser) for the installed ``offline-rl`` and every sub-command."""
    import argparse

    from orchestration.cli import build_full_parser

    root = build_full_parser()
    todo = [((), root)]
    while todo:
        path, parser = todo.pop()
        yield path, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo += [((*path, name), sub) for name, sub in action.choices.items()]


def _documented_default(help_text: str) -> str | None:
    """X of "(default X)" or "(default X; ...)"; None for "(default: prose)" or no default."""
    import re

    match = re.search(r"\(default ([^):;]+?)\s*[):;]", help_text)
    return match.group(1) if match else None


def _same(documented: str, actual) -> bool:
    if isinstance(actual, list):
        actual = " ".join(map(str, actual))
    try:
        return float(documented) == float(actual)
    except (TypeError, ValueError):
        return documented == str(actual)


def test_every_command_and_option_has_accurate_help(capsys):
    import argparse

    commands = set()
    for path, parser in _all_parsers():
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                described = {a.dest for a in action._choices_actions if a.help}
                assert described == set(action.choices), f"{path}: commands without help"
                commands |= {(*path, name) for name in action.choices}
                continue
            where = f"offline-rl {' '.join(path)} {'/'.join(action.option_strings)}"
            assert action.help and action.help != argparse.SUPPRESS, f"{where}: no help"
            documented = _documented_default(action.help)
            if documented is not None:
                assert _same(documented, action.default), \
                    f"{where}: help says default {documented}, the default is {action.default!r}"
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args(["--help"])
        assert exit_.value.code == 0
        text = capsys.readouterr().out
        assert text.startswith("usage: offline-rl") and "--debug" in text
    assert {("demo",), ("predict",), ("exports", "prune"), ("exports", "rollback")} <= commands


def test_documented_default_parsing():
    assert _documented_default("rollouts (default 20000)") == "20000"
    assert _documented_default("resamples (default 1000; 0: no intervals)") == "1000"
    assert _documented_default("scenario (default: the logs' one)") is None
    assert not _same("7", 8) and _same("0 1 2", [0, 1, 2]) and _same("1", 1.0)


def test_domains_doc_is_current():
    from pathlib import Path

    from offline_rl.cli import domains_markdown

    committed = Path(__file__).resolve().parents[2] / "docs" / "domains.md"
    assert committed.read_text() == domains_markdown(), \
        "docs/domains.md is stale; run: offline-rl domains --output docs/domains.md"


def test_a_step_that_exhausted_its_retries_is_reported_by_its_own_error(capsys):
    """Dagster's max-retries error carries the step's errors as serialised infos, no cause."""
    from types import SimpleNamespace

    from offline_rl.cli import run

    class MaxRetriesExceeded(Exception):
        def __init__(self) -> None:
            super().__init__("Exceeded max_retries of 2")
            inner = SimpleNamespace(message="ValueError: no rows for 2026-10-01\n",
                                    cls_name="ValueError", cause=None)
            outer = SimpleNamespace(message="RetryRequestedFromPolicy\n", cls_name="Retry",
                                    cause=inner)
            self.user_code_process_error_infos = [outer]

    assert run(_parser_raising(MaxRetriesExceeded()), ["boom"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: ValueError: no rows for 2026-10-01",
        "hint: run with --debug for the full message and traceback"]


def test_rollout_accepts_a_domains_latest_pointer(tmp_path, capsys):
    import torch

    from offline_rl.domains import get_domain
    from offline_rl.export.registry import publish

    class First(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.zeros(x.shape[0], dtype=torch.int64)

    source = tmp_path / "first.pt"
    torch.jit.script(First()).save(str(source))
    names = get_domain("cart").feature_names
    exported = publish(tmp_path / "exports", "cart", source,
                       {"algorithm": "Test", "feature_schema": {"names": list(names)}})
    out = tmp_path / "r.json"
    code = main(["--home", str(tmp_path), "rollout", "--domain", "cart", "--policy",
                 str(tmp_path / "exports" / "cart" / "latest"), "--episodes", "200",
                 "--json", str(out)])
    assert code == 0, capsys.readouterr().err
    assert json.loads(out.read_text())["policy"] == str(exported.path)
    assert f"cart / {exported.path}: true mean return" in capsys.readouterr().out
    (tmp_path / "exports" / "cart" / "latest").write_text("v0009\n")
    assert main(["--home", str(tmp_path), "rollout", "--domain", "cart", "--policy",
                 str(tmp_path / "exports" / "cart" / "latest")]) == 2
    err = capsys.readouterr().err
    assert "v0009 has no manifest.json" in err and "latest pointer" in err

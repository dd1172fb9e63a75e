"""offline_rl is the pure library: it must not import dagster (directly or indirectly)."""

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2] / "offline_rl"


def test_no_module_of_offline_rl_imports_dagster():
    offenders = []
    for path in ROOT.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path}: {n}" for n in names
                          if n.split(".")[0] in {"dagster", "orchestration", "assets"}]
    assert offenders == []


def test_importing_the_library_does_not_load_dagster():
    code = ("import sys, offline_rl.pipeline, offline_rl.cli; "
            "print('dagster' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_building_the_command_line_loads_neither_polars_nor_torch():
    """``offline-rl --help`` and argument errors stay quick: the parser imports only what
    its defaults need."""
    code = ("import sys; from offline_rl.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('polars', 'torch', 'd3rlpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

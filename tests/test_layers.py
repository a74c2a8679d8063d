"""The layers the folders show: plugins (models, kernels, evaluators, reports) import the contracts in
lina_bench.api and each other, never the engine or the CLI; the api imports neither; the engine
does not import the CLI. Old import paths keep working; listing imports no torch."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ("models", "kernels", "evaluators", "reports")
RULES = {  # folder -> lina_bench subpackages its modules may not import
    **{folder: ("lina_bench.engine", "lina_bench.cli") for folder in PLUGINS},
    "lina_bench/api": ("lina_bench.engine", "lina_bench.cli", *(f"lina_bench.{p}" for p in PLUGINS)),
    "lina_bench/engine": ("lina_bench.cli", *(f"lina_bench.{p}" for p in PLUGINS)),
}


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


@pytest.mark.parametrize("folder", list(RULES))
def test_import_directions(folder: str):
    forbidden = RULES[folder]
    problems = [f"{path.relative_to(ROOT)} imports {module}" for path in sorted((ROOT / folder).rglob("*.py"))
                for module in sorted(imported_modules(path))
                if any(module == f or module.startswith(f + ".") for f in forbidden)]
    assert problems == []


def test_the_check_catches_a_plugin_importing_the_engine(tmp_path):
    planted = tmp_path / "bad.py"
    planted.write_text("def f():\n    from lina_bench.engine.store import ResultStore\n")
    assert "lina_bench.engine.store" in imported_modules(planted)


@pytest.mark.parametrize("old,new", [
    ("lina_bench.errors", "lina_bench.api.errors"), ("lina_bench.schema", "lina_bench.api.schema"),
    ("lina_bench.registry", "lina_bench.api.registry"), ("lina_bench.models.generator", "lina_bench.api.generator"),
    ("lina_bench.evaluators.distributed", "lina_bench.api.distributed"),
    ("lina_bench.suite", "lina_bench.engine.suite"), ("lina_bench.runner", "lina_bench.engine.runner"),
    ("lina_bench.store", "lina_bench.engine.store"), ("lina_bench.provenance", "lina_bench.engine.provenance"),
    ("lina_bench.cli_options", "lina_bench.cli.options"), ("lina_bench.cli_fid", "lina_bench.cli.fid"),
])
def test_old_import_paths_are_the_moved_modules(old: str, new: str):
    import importlib

    assert importlib.import_module(old) is importlib.import_module(new)


def test_list_and_help_import_no_torch():
    code = ("import sys; from lina_bench.cli import main\n"
            "for args in (['list'], ['--help'], ['fid', '--help']):\n"
            "    try:\n        main(args)\n    except SystemExit:\n        pass\n"
            "print('\\n' + __import__('json').dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'numpy', 'triton', 'pandas'))))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []

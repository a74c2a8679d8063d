"""The distribution installs the plugin folders under lina_bench, both editable and from a wheel."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PLUGIN_PACKAGES = ("models", "kernels", "evaluators", "reports")
IMPORT_CHECK = """
import importlib.util, json, lina_bench, lina_bench.models.attention as a, lina_bench.kernels, lina_bench.evaluators
import lina_bench.reports
from lina_bench.engine.suite import builtin_suites
m = a.build("lina", dim=8, num_heads=2, grid=(2, 2), prefix=1)
print(json.dumps({"files": {n: __import__("lina_bench." + n, fromlist=["_"]).__file__ for n in %r},
                  "bare": [n for n in %r if importlib.util.find_spec(n) is not None],
                  "suites": sorted(builtin_suites()), "tokens": m.num_tokens}))
""" % (PLUGIN_PACKAGES, PLUGIN_PACKAGES)


def check_imports(python: str, cwd: Path) -> dict:
    proc = subprocess.run([python, "-c", IMPORT_CHECK], capture_output=True, text=True, cwd=cwd, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_wheel_installs_plugin_folders_under_lina_bench(tmp_path: Path):
    dist, source = tmp_path / "dist", tmp_path / "source"  # build a copy: setuptools writes build/ in-tree
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".git", "build", "*.egg-info", "__pycache__",
                                                                 ".venv", "lina-bench-out"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(dist), str(source)], check=True, capture_output=True, timeout=600)
    wheel = next(dist.glob("lina_bench-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert all(n.startswith(("lina_bench/", "lina_bench-")) for n in names), names
    for expected in ("lina_bench/models/attention/linear.py", "lina_bench/kernels/lina_attn/naive.py",
                     "lina_bench/evaluators/module_profile.py", "lina_bench/reports/__init__.py",
                     "lina_bench/suites/efficiency.yaml", "lina_bench/suites/smoke.yaml",
                     "lina_bench/suites/quality-smoke.yaml", "lina_bench/suites/quality_smoke.py"):
        assert expected in names
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q",
                    str(wheel)], check=True, capture_output=True, timeout=300)
    # Dependencies (torch, ...) come from this environment's site-packages, appended as a plain path
    # so that its editable lina-bench finder is not activated.
    target_site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 capture_output=True, text=True, check=True).stdout.strip()
    Path(target_site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    result = check_imports(python, tmp_path)
    assert result["bare"] == [] and result["tokens"] == 5
    assert result["suites"] == ["efficiency", "quality-smoke", "smoke"]
    for name, file in result["files"].items():
        assert Path(file).is_relative_to(target_site), (name, file)
    cli = subprocess.run([str(venv / "bin" / "lina-bench"), "list", "attention"], capture_output=True, text=True,
                         timeout=300)
    assert cli.returncode == 0 and "lasad" in cli.stdout


def test_editable_install_maps_plugin_folders():
    installed = [d for d in metadata.distributions(name="lina-bench", path=[sysconfig.get_paths()["purelib"]])]
    direct_url = installed[0].read_text("direct_url.json") if installed else None
    if not direct_url or not json.loads(direct_url).get("dir_info", {}).get("editable"):
        pytest.skip("lina-bench is not installed in editable mode here")
    result = check_imports(sys.executable, Path("/"))
    assert result["bare"] == []  # no top-level 'models', 'kernels', ... packages
    for name, file in result["files"].items():
        assert Path(file) == REPO / name / "__init__.py"

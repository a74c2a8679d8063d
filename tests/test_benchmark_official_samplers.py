"""The official-sampler benchmark needs the official code (not in CI): without it, it says so and exits
non-zero instead of writing an empty table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_official_samplers.py"


def test_without_the_official_code_it_names_what_is_missing(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--repeats", "1", "--out", str(tmp_path)], capture_output=True,
                          text=True, timeout=120, env=env)
    assert proc.returncode != 0
    assert "skipped lina: its official code is not importable" in proc.stdout
    assert "skipped lina-t2i: its official code is not importable" in proc.stdout
    assert "skipped mar: its official code is not importable" in proc.stdout
    assert "put it on PYTHONPATH" in proc.stdout and "nothing measured" in proc.stderr
    assert not list(tmp_path.iterdir())

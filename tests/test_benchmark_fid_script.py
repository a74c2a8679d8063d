"""The FID benchmark script runs end to end at tiny sizes and writes its table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_fid_pipeline.py"


def test_fid_benchmark_script(tmp_path: Path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--images", "6", "--batch-size", "3", "--memory-counts",
                           "10", "20", "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = (tmp_path / "fid_pipeline.md").read_text()
    assert "extraction s (6 images, trial 2)" in table and "all trials" in table
    assert "peak RSS MiB, 10 vs 20" in table

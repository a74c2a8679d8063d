"""The kernel benchmark script runs end to end (tiny sizes) and writes its CSV and markdown."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_attention_kernels.py"


def test_benchmark_script_writes_results(tmp_path: Path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--tokens", "80", "--width", "32",
                           "--heads", "2", "--repeats", "3", "--out", str(tmp_path)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(open(tmp_path / "attention_kernels.csv")))
    ops = {(r["level"], r["op"]) for r in rows}
    assert {("kernel", "softmax SDPA"), ("kernel", "lina_attention reference fp32 (official)"),
            ("module", "lina"), ("module", "softmax")} <= ops
    assert all(float(r["fwd_ms"]) > 0 for r in rows)
    assert "| module | lina | 80 |" in (tmp_path / "attention_kernels.md").read_text()
    speedup = {r["op"]: (float(r["fwd_speedup_p25"]), float(r["fwd_speedup"]), float(r["fwd_speedup_p75"]))
               for r in rows}
    assert speedup["softmax"] == speedup["softmax SDPA"] == (1.0, 1.0, 1.0)  # each baseline against itself
    assert all(p25 <= median <= p75 for p25, median, p75 in speedup.values())

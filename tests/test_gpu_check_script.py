"""scripts/gpu_check.sh on this CPU machine: it refuses without a GPU, and with a stand-in Python that
plays a GPU machine, a failing step is reported and the later steps still run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "gpu_check.sh"
FAKE_PYTHON = """#!/usr/bin/env bash
case "$*" in
  *"is_available"*) exit 0 ;;
  *"get_device_capability"*) echo sm_90 ;;
  *"get_device_name"*) echo "Fake H200" ;;
  *"pytest"*) echo "1 failed, 80 passed"; exit 1 ;;
  *"kernels compile"*) printf 'kernel target\\n------\\nlina_reduce_kernel sm_90 float32 96 32 - 255 96 66560 yes\\n'
                       echo "1 of 1 configurations compile and fit" ;;
  *"bench_attention_kernels"*) echo "| module | lina | 5120 | 1.0 | nan | 2.0 | 3.00 (2.90-3.10) |" ;;
  *"kernel_configs_gpu"*) printf 'lina config 0: ok: x\ndecayed config 3: CRASHED (exit 134): illegal memory access\n'
                          echo "1 of 2 launch configurations pass"; exit 1 ;;
  *"bench_generators"*) printf 'summary:\n  LINA vs NOVA sample 256 px lina[lina] vs lina[softmax]: x1.20\n' ;;
esac
"""


def test_refuses_without_a_gpu(tmp_path):
    proc = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no CUDA device" in proc.stderr


def test_a_failing_step_does_not_stop_the_others(tmp_path):
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    proc = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "out")], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHON": str(fake)})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "# GPU check on Fake H200 (sm_90)" in summary
    assert "- gpu-tests: FAILED (exit 1)" in summary
    assert "- kernels-compile: ok" in summary and "- benchmark: ok" in summary
    assert "lina_reduce_kernel sm_90 float32 96 32 - 255 96 66560 yes" in summary  # it spills: listed
    assert "| module | lina | 5120 |" in summary and (tmp_path / "out" / "benchmark.log").is_file()
    assert "- kernel-configs: FAILED (exit 1)" in summary
    assert "decayed config 3: CRASHED (exit 134): illegal memory access" in summary and "config 0: ok" not in summary
    assert "- generators: ok" in summary and "LINA vs NOVA sample 256 px lina[lina] vs lina[softmax]: x1.20" in summary


def test_a_step_with_limit_zero_is_skipped(tmp_path):
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    proc = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "out")], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHON": str(fake), "GPU_CHECK_LIMITS": "0 0 0 30 0"})
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert proc.returncode == 0, summary
    assert "- gpu-tests: skipped (limit 0)" in summary and "- generators: skipped (limit 0)" in summary
    assert "- kernel-configs: skipped (limit 0)" in summary and "- kernels-compile: skipped (limit 0)" in summary
    assert "- benchmark: ok" in summary


def test_kernel_configs_script_checks_every_config_in_the_interpreter(tmp_path):
    """scripts/kernel_configs_gpu.py's plumbing on CPU (Triton's interpreter, where warps and stages change
    nothing): one child per config index, all pass; without a GPU its default device is refused."""
    script = SCRIPT.parent / "kernel_configs_gpu.py"
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no CUDA device" in proc.stderr
    proc = subprocess.run([sys.executable, str(script), "--device", "cpu", "--tokens", "20", "--batch", "1", "--heads",
                           "1", "--dtype", "float32", "--jobs", "2"], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TRITON_INTERPRET": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == [f"lina config {i}" for i in range(5)] + [
        f"decayed config {i}" for i in range(4)]
    assert "SPLITS=16" in lines[4] and "num_warps=8 num_stages=3" in lines[8]
    assert lines[-1] == "9 of 9 launch configurations pass at N = 20, float32"

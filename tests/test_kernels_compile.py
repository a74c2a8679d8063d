"""Every Triton kernel compiles ahead of time for real GPUs (sm_80, sm_90), on this CPU-only machine.

The interpreter the other kernel tests run in accepts code that a GPU compile rejects (a kernel read
a plain Python float global: every CPU test passed and every GPU compile failed), so
``lina-bench kernels compile`` runs here in a process without ``TRITON_INTERPRET``. The default run
compiles every kernel, flag and autotune config at head dimension 64 in float32 and bfloat16 (a few
minutes on 2 cores); the full matrix (3 dtypes x 5 head dimensions, 1020 configurations, ~15 minutes)
is the ``slow`` test; all of it compiles and fits (benchmarks/results/aot/kernels_compile.txt).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from lina_bench.kernels.aot import kernel_functions, kernel_specs, unusable

from cli_helpers import run_cli


def compile_report(*args: str) -> tuple[int, dict]:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, "-m", "lina_bench.cli", "kernels", "compile", "--json", *args],
                          capture_output=True, text=True, env=env, timeout=1800)
    assert proc.stdout, proc.stderr[-3000:]
    return proc.returncode, json.loads(proc.stdout)


def check_report(code: int, report: dict, dtypes: set[str], head_dims: set[int]) -> None:
    rows = report["rows"]
    assert {r["kernel"] for r in rows} == set(kernel_functions()) != set()  # no kernel skipped silently
    assert {(r["target"], r["dtype"], r["head_dim"]) for r in rows} == {
        (t, d, h) for t in ("sm_80", "sm_90") for d in dtypes for h in head_dims}
    assert unusable(rows) == [] and code == 0 and report["failed"] == 0
    launches = {(r["kernel"], r["target"], r["dtype"], r["head_dim"], json.dumps(r["flags"])) for r in rows}
    assert len(rows) > len(launches)  # every autotune config of every launch is compiled
    assert all(0 < r["registers"] <= 255 and r["shared_bytes"] > 0 for r in rows)


def test_every_kernel_has_compile_specs_for_every_head_dim():
    assert set(kernel_functions()) == set(kernel_specs("float32")) != set()
    flags = {name: len(configs) for name, configs in kernel_specs("float16", 96).items()}
    assert flags == {"lina_reduce_kernel": 3, "lina_output_kernel": 1, "lina_row_stats_kernel": 1,
                     "lina_backward_q_kernel": 1, "lina_backward_kv_kernel": 2,
                     "decayed_forward_kernel": 4}  # every boolean constexpr combination the ops launch
    assert kernel_specs("float32", 96)["lina_output_kernel"][0][1]["BLOCK_D"] == 32  # 96 = 3 x 32: no padding


def test_every_kernel_compiles_for_sm80_and_sm90():
    code, report = compile_report("--dtype", "float32,bfloat16", "--head-dim", "64")
    check_report(code, report, {"float32", "bfloat16"}, {64})


@pytest.mark.slow
def test_every_configuration_compiles_for_sm80_and_sm90():
    code, report = compile_report()
    check_report(code, report, {"float32", "bfloat16", "float16"}, {16, 32, 64, 96, 128})


def test_compile_refuses_the_interpreter_and_bad_options():
    code, text = run_cli("kernels", "compile", "--dtype", "float8")
    assert code == 2 and "dtypes must be among float32, bfloat16, float16" in text
    code, text = run_cli("kernels", "compile", "--target", "gfx90a")
    assert code == 2 and "not a target like sm_80" in text
    code, text = run_cli("kernels", "compile", "--head-dim", "64")  # this process runs the interpreter
    assert code == 2 and "TRITON_INTERPRET is set" in text

"""Every Triton kernel compiles ahead of time for real GPUs (sm_80, sm_90), on this CPU-only machine.

The interpreter the other kernel tests run in accepts code that a GPU compile rejects (a kernel read
a plain Python float global: every CPU test passed and every GPU compile failed), so
:func:`lina_bench.kernels.aot.compile_all` is run in a process without ``TRITON_INTERPRET``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from lina_bench.kernels.aot import kernel_functions, kernel_specs


def test_every_kernel_has_a_compile_spec():
    assert set(kernel_functions()) == set(kernel_specs("float32")) != set()


def test_every_kernel_compiles_for_sm80_and_sm90():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    code = "import json; from lina_bench.kernels.aot import compile_all; print(json.dumps(compile_all()))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {(r["kernel"], r["target"], r["dtype"]) for r in rows} == {
        (k, t, d) for k in kernel_specs("float32") for t in ("sm_80", "sm_90") for d in ("float32", "bfloat16")}
    failed = [r for r in rows if not r["fits"]]
    assert failed == []

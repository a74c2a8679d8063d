"""Triton helpers shared by the kernels."""

from __future__ import annotations

import os

import triton
import triton.language as tl

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
# LINA_BENCH_AUTOTUNE=off launches every kernel's first config without timing the others (quick
# correctness runs on a GPU; the interpreter always does so).
FIRST_CONFIG_ONLY = INTERPRETED or os.environ.get("LINA_BENCH_AUTOTUNE") == "off"


def autotune_configs(grid: list[dict[str, int]], **launch: int) -> list[triton.Config]:
    """Autotune configs (constexprs, plus ``num_warps``/``num_stages`` given per entry or in ``launch``);
    in the interpreter (the CPU tests: nothing to time) or with ``LINA_BENCH_AUTOTUNE=off`` only the
    first, which the autotuner then takes without timing."""
    configs = []
    for entry in grid:
        entry = {**launch, **entry}
        warps, stages = entry.pop("num_warps", 4), entry.pop("num_stages", 3)
        configs.append(triton.Config(entry, num_warps=warps, num_stages=stages))
    return configs[:1] if FIRST_CONFIG_ONLY else configs


@triton.jit
def dot(a, b, IEEE: tl.constexpr):
    """a @ b with float32 accumulation: IEEE float32 products for float32 inputs (no TF32), bfloat16
    tensor-core products for half-precision inputs."""
    if IEEE:
        return tl.dot(a, b, input_precision="ieee")
    return tl.dot(a.to(tl.bfloat16), b.to(tl.bfloat16))

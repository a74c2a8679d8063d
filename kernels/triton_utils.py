"""Triton helpers shared by the kernels."""

from __future__ import annotations

import os
from collections.abc import Callable

import triton
import triton.language as tl

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"


def _timing_wanted() -> bool:
    """False in the interpreter (the CPU tests: nothing to time) and with ``LINA_BENCH_AUTOTUNE=off``
    (quick correctness runs on a GPU): then every kernel launches its first config untimed."""
    return not (INTERPRETED or os.environ.get("LINA_BENCH_AUTOTUNE") == "off")


def _first_unless_timed(configs: list[triton.Config], named_args: dict, **kwargs) -> list[triton.Config]:
    return configs if _timing_wanted() else configs[:1]


def autotune(grid: list[dict[str, int]], key: list[str], **launch: int) -> Callable:
    """``triton.autotune`` over one config per ``grid`` entry (constexprs, plus ``num_warps`` /
    ``num_stages`` given per entry or in ``launch``), keyed on ``key`` and the tensors' dtypes.

    The kernel's ``configs`` always hold every config (what the AOT compile and the bounds tests
    cover); untimed runs launch the first through the autotuner's early pruning."""
    configs = []
    for entry in grid:
        entry = {**launch, **entry}
        warps, stages = entry.pop("num_warps", 4), entry.pop("num_stages", 3)
        configs.append(triton.Config(entry, num_warps=warps, num_stages=stages))
    return triton.autotune(configs=configs, key=key, prune_configs_by={"early_config_prune": _first_unless_timed})


@triton.jit
def dot(a, b, IEEE: tl.constexpr):
    """a @ b with float32 accumulation: IEEE float32 products for float32 inputs (no TF32), bfloat16
    tensor-core products for half-precision inputs."""
    if IEEE:
        return tl.dot(a, b, input_precision="ieee")
    return tl.dot(a.to(tl.bfloat16), b.to(tl.bfloat16))

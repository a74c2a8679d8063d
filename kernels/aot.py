"""Ahead-of-time compilation of every Triton kernel for real GPU targets, on a machine without a GPU.

Triton's interpreter (how the CPU tests run the kernels) accepts code that a GPU compile rejects, so
:func:`compile_all` compiles each kernel with ``triton.compile`` for a ``GPUTarget`` (Triton ships
ptxas) and checks its shared memory against the target's per-block limit. Run it in a process
where ``TRITON_INTERPRET`` is not set: under the interpreter there is nothing to compile.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import triton
from triton.runtime.interpreter import InterpretedFunction
from triton.runtime.jit import JITFunction

from lina_bench.api.errors import LinaBenchError

# Opt-in shared memory per block (bytes): A100 (sm_80) 163 KiB, H100 (sm_90) 227 KiB.
SHARED_LIMITS = {80: 166912, 90: 232448}
DTYPES = {"float32": ("fp32", True), "bfloat16": ("bf16", False), "float16": ("fp16", False)}
BLOCKS = {"BLOCK_N": 64, "BLOCK_D": 64, "BLOCK_DV": 64}


def _signature(io_pointers: str, float_pointers: str, ints: str, io: str, constexprs: dict[str, Any],
               floats: str = "") -> tuple[dict[str, str], dict[str, Any]]:
    """Pointers that carry the input dtype ``io``, float32 pointers, i32 and float32 scalars, constexprs
    (in the kernel's parameter order, which ``triton.compile`` takes from the function itself)."""
    signature = {**{name: f"*{io}" for name in io_pointers.split()},
                 **{name: "*fp32" for name in float_pointers.split()}, **{name: "i32" for name in ints.split()},
                 **{name: "fp32" for name in floats.split()}, **{name: "constexpr" for name in constexprs}}
    return signature, constexprs


def kernel_specs(dtype: str) -> dict[str, tuple[dict[str, str], dict[str, Any]]]:
    """Each kernel's launch signature as the custom ops (``kernels/*/ops.py``) launch it, for one input dtype."""
    io, ieee = DTYPES[dtype]
    return {
        "lina_state_kernel": _signature("k_ptr v_ptr", "ks_ptr vs_ptr s_ptr ksum_ptr", "H N D DV TOKENS_PER_SPLIT",
                                        io, {"HAS_GATE": True, "IEEE": ieee, **BLOCKS}),
        "lina_output_kernel": _signature("q_ptr o_ptr", "s_ptr kmean_ptr", "N D DV", io, {"IEEE": ieee, **BLOCKS}),
        "lina_backward_query_kernel": _signature("q_ptr do_ptr dq_ptr", "s_ptr kmean_ptr ds_ptr dkm_ptr",
                                                 "N D DV TOKENS_PER_SPLIT", io, {"IEEE": ieee, **BLOCKS}),
        "lina_backward_kv_kernel": _signature("k_ptr v_ptr dk_ptr dv_ptr",
                                              "ks_ptr vs_ptr ds_ptr dkm_ptr dks_ptr dvs_ptr", "H N D DV", io,
                                              {"HAS_GATE": True, "IEEE": ieee, **BLOCKS}),
        "decayed_forward_kernel": _signature("q_ptr k_ptr v_ptr g_ptr o_ptr", "s0_ptr sn_ptr", "N D DV", io,
                                             {"HAS_INITIAL": True, "STORE_FINAL": True, "IEEE": ieee, "CHUNK": 64,
                                              "BLOCK_D": 64, "BLOCK_DV": 64}, floats="scale"),
    }


def kernel_functions() -> dict[str, Any]:
    """Every ``*_kernel`` Triton function of lina_bench.kernels (the helpers they call are inlined)."""
    import lina_bench.kernels

    found = {}
    for info in pkgutil.walk_packages(lina_bench.kernels.__path__, "lina_bench.kernels."):
        module = importlib.import_module(info.name)
        found.update({name: obj for name, obj in vars(module).items()
                      if isinstance(obj, (JITFunction, InterpretedFunction)) and name.endswith("_kernel")})
    return found


def compile_all(targets: tuple[int, ...] = (80, 90), dtypes: tuple[str, ...] = ("float32", "bfloat16")
                ) -> list[dict[str, Any]]:
    """Compile every kernel for each ``sm_<target>`` and input dtype: one row per (kernel, target, dtype)
    with its shared memory, whether it fits and the compile error, if any."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    functions = kernel_functions()
    if any(not isinstance(fn, JITFunction) for fn in functions.values()):
        raise LinaBenchError("TRITON_INTERPRET is set: kernels run interpreted and cannot be compiled here")
    rows = []
    for arch in targets:
        for dtype in dtypes:
            for name, (signature, constexprs) in kernel_specs(dtype).items():
                row = {"kernel": name, "target": f"sm_{arch}", "dtype": dtype, "shared_bytes": None, "error": None}
                try:
                    compiled = triton.compile(ASTSource(fn=functions[name], signature=signature, constexprs=constexprs),
                                              target=GPUTarget("cuda", arch, 32))
                    row["shared_bytes"] = compiled.metadata.shared
                except Exception as exc:  # reported per kernel, so one failure does not hide the others
                    row["error"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1]}"
                row["fits"] = row["error"] is None and row["shared_bytes"] <= SHARED_LIMITS[arch]
                rows.append(row)
    return rows

"""Ahead-of-time compilation of every Triton kernel for real GPU targets, on a machine without a GPU.

Triton's interpreter (how the CPU tests run the kernels) accepts code that a GPU compile rejects, so
:func:`compile_all` compiles each kernel with ``triton.compile`` for a ``GPUTarget`` (Triton ships
ptxas) and checks its shared memory against the target's per-block limit. Run it in a process
where ``TRITON_INTERPRET`` is not set: under the interpreter there is nothing to compile.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from pathlib import Path
from typing import Any

import torch
import triton
from triton.runtime.autotuner import Autotuner
from triton.runtime.interpreter import InterpretedFunction
from triton.runtime.jit import JITFunction

from lina_bench.api.errors import LinaBenchError

# Opt-in shared memory per block (bytes): A100 (sm_80) 163 KiB, H100 (sm_90) 227 KiB.
SHARED_LIMITS = {80: 166912, 90: 232448}
DTYPES = {"float32": ("fp32", True), "bfloat16": ("bf16", False), "float16": ("fp16", False)}
HEAD_DIMS = (16, 32, 64, 96, 128)  # every head dimension the variants use (LINA: 96 = 1536 / 16 heads)
CHUNK = 64  # the decayed op's default chunk


def _signature(io_pointers: str, float_pointers: str, ints: str, io: str, constexprs: dict[str, Any],
               floats: str = "") -> tuple[dict[str, str], dict[str, Any]]:
    """Pointers that carry the input dtype ``io``, float32 pointers, i32 and float32 scalars, constexprs
    (by name: ``triton.compile`` takes the parameter order from the function itself)."""
    signature = {**{name: f"*{io}" for name in io_pointers.split()},
                 **{name: "*fp32" for name in float_pointers.split()}, **{name: "i32" for name in ints.split()},
                 **{name: "fp32" for name in floats.split()}, **{name: "constexpr" for name in constexprs}}
    return signature, constexprs


def kernel_specs(dtype: str, head_dim: int = 64) -> dict[str, list[tuple[dict[str, str], dict[str, Any]]]]:
    """Each kernel's launch signature as the custom ops (``kernels/*/ops.py``) launch it, for one input
    dtype and head dimension (d = dv): one entry per combination of boolean constexpr flags the ops
    launch; autotuned kernels add each config's constexprs at compile time (:func:`launch_configs`)."""
    from lina_bench.kernels.decayed_attn.ops import key_block
    from lina_bench.kernels.lina_attn.ops import head_block

    io, ieee = DTYPES[dtype]
    block = head_block(head_dim, getattr(torch, dtype))
    tiles = {"IEEE": ieee, "BLOCK_D": block, "BLOCK_DV": block}
    reduce_flags = [  # the state (ungated, gated) and the backward's dS
        {"HAS_WX": False, "HAS_WY": False, "HAS_WV": False, "PER_HEAD": True},
        {"HAS_WX": True, "HAS_WY": True, "HAS_WV": False, "PER_HEAD": True},
        {"HAS_WX": False, "HAS_WY": True, "HAS_WV": True, "PER_HEAD": False}]
    return {
        "lina_reduce_kernel": [_signature("x_ptr y_ptr", "wx_ptr wy_ptr wv_ptr s_ptr vec_ptr",
                                          "BH H N D DV SPLIT_STRIDE", io,
                                          {**flags, **tiles}) for flags in reduce_flags],
        "lina_output_kernel": [_signature("q_ptr o_ptr", "s_ptr kmean_ptr", "BH N D DV", io, tiles)],
        "lina_row_stats_kernel": [_signature("q_ptr do_ptr", "s_ptr kmean_ptr inv_a_ptr c_ptr", "BH N D DV", io,
                                             tiles)],
        "lina_backward_q_kernel": [_signature("q_ptr do_ptr dq_ptr", "s_ptr kmean_ptr inv_a_ptr c_ptr",
                                              "BH N D DV", io, tiles)],
        "lina_backward_kv_kernel": [_signature("k_ptr v_ptr dk_ptr dv_ptr",
                                               "ks_ptr vs_ptr ds_ptr dkm_ptr dks_ptr dvs_ptr", "BH H N D DV", io,
                                               {"HAS_GATE": gate, **tiles}) for gate in (False, True)],
        "decayed_forward_kernel": [_signature("q_ptr k_ptr v_ptr g_ptr o_ptr", "s0_ptr sn_ptr", "N D DV", io,
                                              {"HAS_INITIAL": initial, "STORE_FINAL": final, "IEEE": ieee,
                                               "CHUNK": CHUNK, "BLOCK_D": key_block(head_dim),
                                               "BLOCK_DV": block}, floats="scale")
                                   for initial in (False, True) for final in (False, True)],
    }


def launch_configs(kernel: Any) -> list[tuple[dict[str, Any], int, int]]:
    """(constexprs, num_warps, num_stages) of every config a kernel may launch with: each autotune
    config, or Triton's default launch for a plain ``@triton.jit`` function."""
    if isinstance(kernel, Autotuner):
        return [(dict(c.kwargs), c.num_warps, c.num_stages) for c in kernel.configs]
    return [({}, 4, 3)]


def kernel_functions() -> dict[str, Any]:
    """Every ``*_kernel`` Triton function of lina_bench.kernels, autotuned or not (the helpers they call
    are inlined)."""
    import lina_bench.kernels

    found = {}
    for info in pkgutil.walk_packages(lina_bench.kernels.__path__, "lina_bench.kernels."):
        module = importlib.import_module(info.name)
        found.update({name: obj for name, obj in vars(module).items()
                      if isinstance(obj, (JITFunction, InterpretedFunction, Autotuner)) and name.endswith("_kernel")})
    return found


def resource_usage(cubin: bytes) -> dict[str, int]:
    """Registers, stack (spills and local arrays) and static shared memory of a cubin, by the CUDA
    ``cuobjdump`` that ships with Triton."""
    import re
    import subprocess
    import tempfile

    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    with tempfile.NamedTemporaryFile(suffix=".cubin", delete=False) as handle:
        handle.write(cubin)
    try:
        text = subprocess.run([str(tool), "--dump-resource-usage", handle.name], capture_output=True, text=True,
                              check=True).stdout
    finally:
        os.unlink(handle.name)
    found = dict(re.findall(r"\b(REG|STACK|SHARED|LOCAL):(\d+)", text.split("Function", 1)[-1]))
    return {"registers": int(found["REG"]), "stack_bytes": int(found["STACK"]) + int(found["LOCAL"]),
            "static_shared_bytes": int(found["SHARED"])}


def _compile_one(function: Any, signature: dict[str, str], constexprs: dict[str, Any], arch: int,
                 num_warps: int, num_stages: int) -> dict[str, Any]:
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    try:
        compiled = triton.compile(ASTSource(fn=function, signature=signature, constexprs=constexprs),
                                  target=GPUTarget("cuda", arch, 32),
                                  options={"num_warps": num_warps, "num_stages": num_stages})
    except Exception as exc:  # reported per configuration, so one failure does not hide the others
        return {"error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1]}"}
    usage = resource_usage(compiled.asm["cubin"])
    shared = compiled.metadata.shared + usage.pop("static_shared_bytes")
    return {**usage, "shared_bytes": shared, "num_warps": compiled.metadata.num_warps,
            "num_stages": compiled.metadata.num_stages, "error": None}


def compile_all(targets: tuple[int, ...] = (80, 90), dtypes: tuple[str, ...] = tuple(DTYPES),
                head_dims: tuple[int, ...] = HEAD_DIMS, progress: bool = False) -> list[dict[str, Any]]:
    """Compile every kernel in every configuration the custom ops can launch, for each ``sm_<target>``.

    One row per (kernel, target, dtype, head dimension, flags, autotune config): registers, stack bytes
    (spills), shared memory, whether it fits the target and the compile error, if any (see
    :func:`unusable` for which of them make a launch fail). Configurations
    that launch the same constexprs are compiled once. Raises if the kernels run interpreted
    (``TRITON_INTERPRET``).
    """
    from concurrent.futures import ThreadPoolExecutor
    from itertools import product

    from tqdm import tqdm

    functions = kernel_functions()
    if any(isinstance(getattr(fn, "fn", fn), InterpretedFunction) for fn in functions.values()):
        raise LinaBenchError("TRITON_INTERPRET is set: the kernels run interpreted and cannot be compiled; "
                             "unset it (e.g. `env -u TRITON_INTERPRET lina-bench kernels compile`)")
    jobs = {}
    rows = []
    for arch in targets:
        if arch not in SHARED_LIMITS:
            raise LinaBenchError(f"unknown target sm_{arch} (known: {', '.join(f'sm_{a}' for a in SHARED_LIMITS)})")
        for dtype in dtypes:
            for head_dim in head_dims:
                for name, specs in kernel_specs(dtype, head_dim).items():
                    kernel = functions[name]
                    for (signature, constexprs), (tuned, warps, stages) in product(specs, launch_configs(kernel)):
                        constexprs = {**constexprs, **tuned}
                        signature = {**signature, **{k: "constexpr" for k in tuned}}
                        key = (name, arch, dtype, warps, stages, tuple(sorted(constexprs.items())))
                        function = kernel.fn if isinstance(kernel, Autotuner) else kernel
                        jobs.setdefault(key, (function, signature, constexprs, arch, warps, stages))
                        flags = {k: v for k, v in constexprs.items() if isinstance(v, bool) and k != "IEEE"}
                        rows.append({"kernel": name, "target": f"sm_{arch}", "dtype": dtype, "head_dim": head_dim,
                                     "flags": flags, "config": {**tuned, "num_warps": warps, "num_stages": stages},
                                     "block_d": constexprs["BLOCK_D"], "_key": key})
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:  # ptxas: a process of its own
        futures = {key: pool.submit(_compile_one, *args) for key, args in jobs.items()}
        results = {key: future.result() for key, future in tqdm(futures.items(), desc="compile", unit="kernel",
                                                                 disable=not progress)}
    for row in rows:
        row.update(results[row.pop("_key")])
        row["fits"] = row["error"] is None and row["shared_bytes"] <= SHARED_LIMITS[int(row["target"][3:])]
    return rows


def unusable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows that make a launch impossible: a compile error, or a (kernel, target, dtype, head dim,
    flags) launch of which no autotune config fits the target (a config that does not fit while
    another does is one the autotuner skips, as Triton's does on ``OutOfResources``)."""
    def launch(row: dict[str, Any]) -> tuple:
        return row["kernel"], row["target"], row["dtype"], row["head_dim"], tuple(sorted(row["flags"].items()))

    usable = {launch(r) for r in rows if r["fits"]}
    return [r for r in rows if r["error"] is not None or launch(r) not in usable]

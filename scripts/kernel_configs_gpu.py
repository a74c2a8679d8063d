#!/usr/bin/env python3
"""Every launch configuration of the Triton kernels, compiled and checked on this GPU, one process each.

The GPU tests launch each kernel's first autotune config only, and the autotuner times the others
without checking their numbers; a config that computes wrong values, or that faults (a CUDA illegal
memory access ends the process and poisons its context), is found here and named:

    python scripts/kernel_configs_gpu.py [--tokens 5120] [--dtype bfloat16] [--jobs 4]

For config index i, a child process forces the i-th config on every LINA kernel (modulo each kernel's
count) and checks ``lina_attention`` forward and every gradient against the float32 PyTorch reference; for
the decayed op it forces each candidate (num_warps, num_stages), including ones not kept in its autotune
list, and checks the forward. Shapes: heads of 96 (LINA's), by default 16 of them, batch 2 and 5120 tokens.
Prints one line per child (ok / WRONG with the error / CRASHED with the last line of its output / TIMED OUT
after ``--child-timeout`` seconds) and exits 1 if any child did not pass. Without a GPU it exits 2, unless
``--device cpu`` runs the same checks in Triton's interpreter (a check of this script).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

# (num_warps, num_stages) tried for the decayed op: its kept config first, then those its first GPU run
# autotuned over when it ended in an illegal memory access.
DECAYED_CANDIDATES = [(4, 2), (4, 3), (8, 2), (8, 3)]
TOLERANCE = 2e-2  # half-precision inputs against the float32 reference, relative to its largest magnitude


def relative_error(actual, expected) -> float:
    scale = expected.abs().max().clamp_min(1e-12)
    return ((actual.float() - expected.float()).abs().max() / scale).item()


def run_lina(index: int, shape: tuple[int, int, int], dtype_name: str, device: str) -> tuple[str, float]:
    import torch

    from lina_bench.kernels import lina_attention, lina_attention_naive
    from lina_bench.kernels.aot import kernel_functions
    from lina_bench.kernels.lina_attn import ops

    most = ops.max_splits()
    ops.max_splits = lambda: most  # the partial-sum buffers keep the room of every config, as when autotuning
    forced = []
    for name, kernel in kernel_functions().items():
        if name.startswith("lina_"):
            kernel.configs = [kernel.configs[index % len(kernel.configs)]]
            forced.append(f"{name} {' '.join(f'{k}={v}' for k, v in kernel.configs[0].kwargs.items())}")
    batch, heads, tokens = shape
    gen = torch.Generator(device=device).manual_seed(index)
    dtype = getattr(torch, dtype_name)
    q, k, v = (torch.randn(batch, heads, tokens, 96, device=device, generator=gen, dtype=dtype).requires_grad_()
               for _ in range(3))
    gates = [(torch.rand(1, heads, tokens, 1, device=device, generator=gen) + 0.5).requires_grad_() for _ in range(2)]
    out = lina_attention(q, k, v, *gates, backend="triton")
    grad = torch.randn_like(out)
    grads = torch.autograd.grad(out, [q, k, v, *gates], grad)
    reference = [t.detach().float().requires_grad_() for t in (q, k, v, *gates)]
    ref = lina_attention_naive(*reference)
    ref_grads = torch.autograd.grad(ref, reference, grad.float())
    errors = [relative_error(out, ref)] + [relative_error(a, b) for a, b in zip(grads, ref_grads, strict=True)]
    return ", ".join(forced) + f" | max relative error {max(errors):.2e}", max(errors)


def run_decayed(index: int, shape: tuple[int, int, int], dtype_name: str, device: str) -> tuple[str, float]:
    import torch
    import triton

    from lina_bench.kernels import decayed_linear_attention
    from lina_bench.kernels.decayed_attn import triton_kernels as tk

    warps, stages = DECAYED_CANDIDATES[index]
    tk.decayed_forward_kernel.configs = [triton.Config({}, num_warps=warps, num_stages=stages)]
    batch, heads, tokens = shape
    gen = torch.Generator(device=device).manual_seed(index)
    dtype = getattr(torch, dtype_name)
    q, k, v = (torch.randn(batch, heads, tokens, 96, device=device, generator=gen, dtype=dtype) for _ in range(3))
    g = -torch.rand(batch, heads, tokens, device=device, generator=gen)
    out, final = decayed_linear_attention(q, k, v, g, output_final_state=True, backend="triton")
    ref, ref_final = decayed_linear_attention(q.float(), k.float(), v.float(), g, output_final_state=True,
                                              backend="torch")
    error = max(relative_error(out, ref), relative_error(final, ref_final))
    return f"decayed_forward_kernel: num_warps={warps} num_stages={stages} | max relative error {error:.2e}", error


def child(kind: str, index: int, shape: tuple[int, int, int], dtype_name: str, device: str) -> None:
    description, error = (run_lina if kind == "lina" else run_decayed)(index, shape, dtype_name, device)
    print(description)
    sys.exit(0 if error <= TOLERANCE else 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=5120)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--device", default="cuda", help="cuda; cpu runs Triton's interpreter (TRITON_INTERPRET=1), "
                        "where warps and stages mean nothing: a check of this script")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--jobs", type=int, default=4, help="child processes at a time")
    parser.add_argument("--child-timeout", type=float, default=120, help="seconds for one child")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "INDEX"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    shape = (args.batch, args.heads, args.tokens)
    if args.child:
        child(args.child[0], int(args.child[1]), shape, args.dtype, args.device)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: this script checks compiled kernels on a GPU", file=sys.stderr)
        sys.exit(2)
    from lina_bench.kernels.aot import kernel_functions

    lina_count = max(len(k.configs) for name, k in kernel_functions().items() if name.startswith("lina_"))
    runs = [("lina", i) for i in range(lina_count)] + [("decayed", i) for i in range(len(DECAYED_CANDIDATES))]

    def run(kind_index: tuple[str, int]) -> tuple[str, int, str, str]:
        """(kind, index, status, detail) of one child."""
        kind, index = kind_index
        command = [sys.executable, __file__, "--tokens", str(args.tokens), "--batch", str(args.batch), "--heads",
                   str(args.heads), "--dtype", args.dtype, "--device", args.device, "--child", kind, str(index)]
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=args.child_timeout)
        except subprocess.TimeoutExpired:
            return kind, index, "TIMED OUT", f"after {args.child_timeout:g} s"
        lines = (proc.stdout + proc.stderr).strip().splitlines() or ["(no output)"]
        status = {0: "ok", 1: "WRONG"}.get(proc.returncode, f"CRASHED (exit {proc.returncode})")
        return kind, index, status, lines[0] if proc.returncode in (0, 1) else lines[-1]

    failed = 0
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for kind, index, status, detail in pool.map(run, runs):
            failed += status != "ok"
            print(f"{kind} config {index}: {status}: {detail}", flush=True)
    print(f"{len(runs) - failed} of {len(runs)} launch configurations pass at N = {args.tokens}, {args.dtype}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

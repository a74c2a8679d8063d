"""Benchmark the attention kernels and modules; prints a table and writes CSV + markdown.

    python benchmarks/bench_attention_kernels.py                 # GPU if there is one, else CPU
    python benchmarks/bench_attention_kernels.py --device cpu --tokens 1024 4096

Rows, all at the same shape and measured side by side in one run:
  kernel  lina_attention: Triton (GPU only), official-style PyTorch reference (float32 attention,
          as the LINA code runs it), reference at the input dtype; softmax SDPA (FlashAttention on
          GPU); flash-linear-attention's kernels when installed and the semantics match (its
          causal simple-GLA kernel is the decayed op's equivalent).
  kernel  decayed_linear_attention: Triton (GPU only) and the chunked PyTorch reference.
  module  the whole `lina` module (projections, conv branch, gate) vs the `softmax` module.
Forward and forward+backward latency (median of repeats, every op of a level timed side by side:
A B C A B C ...; CUDA events on GPU), speed-ups over softmax as median and IQR of the per-repeat
ratios, peak memory (CUDA
allocator on GPU), and for the Triton LINA forward the bytes it must move and the achieved
bandwidth as a fraction of the card's peak.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import torch
import torch.nn.functional as F

from lina_bench.engine.provenance import cpu_model
from lina_bench.evaluators.timing import ratio_spread, time_interleaved
from lina_bench.kernels import decayed_linear_attention, lina_attention, lina_attention_naive
from lina_bench.models import attention

from bench_output import results_dir, write_csv

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
# Nominal peak memory bandwidth (bytes/s) of cards we may be lent, from their data sheets.
PEAK_BANDWIDTH = {"H100 80GB HBM3": 3.35e12, "H100": 3.35e12, "H200": 4.8e12}


def peak_bandwidth(name: str) -> float | None:
    return next((bw for key, bw in PEAK_BANDWIDTH.items() if key in name), None)


def measure(fns: dict, device: str, repeats: int, leaves_of: dict | None = None) -> dict[str, tuple]:
    """Per function: (Timing, peak MiB or nan), the timings taken side by side (each repeat calls every
    function in turn, A B C A B C ...). ``leaves_of``: per function, inputs whose grads to clear per call."""
    def prepared(name, fn):
        def call():
            for t in (leaves_of or {}).get(name, ()):
                t.grad = None
            return fn()
        return call
    calls = {name: prepared(name, fn) for name, fn in fns.items()}
    timings = time_interleaved(calls, device, repeats, warmup=3)
    return {name: (timings[name], peak_mib(call, device)) for name, call in calls.items()}


def peak_mib(call, device: str) -> float:
    """Peak CUDA memory of one call above what was allocated before, in MiB (nan on CPU)."""
    if not device.startswith("cuda"):
        return float("nan")
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    call()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def speedups(rows: list[dict], timings: dict, baseline: str) -> None:
    """Each row's forward speed-up over ``baseline`` from the per-repeat ratios: median and IQR."""
    for row in rows:
        median, p25, p75 = ratio_spread(timings[baseline], timings[row["op"]])
        row.update({"fwd_speedup": median, "fwd_speedup_p25": p25, "fwd_speedup_p75": p75})


def fla_simple_gla():
    try:
        from fla.ops.simple_gla import chunk_simple_gla
    except ImportError:
        return None
    return chunk_simple_gla


def kernel_rows(n: int, args, device: str, dtype: torch.dtype) -> list[dict]:
    b, h, d = args.batch, args.heads, args.width // args.heads
    gen = torch.Generator(device=device).manual_seed(0)
    q, k, v = (torch.randn(b, h, n, d, device=device, dtype=dtype, generator=gen) for _ in range(3))
    gates = [torch.rand(1, h, n, 1, device=device, dtype=dtype, generator=gen) + 0.5 for _ in range(2)]
    g = -torch.rand(b, h, n, device=device, generator=gen) * 0.1
    cuda = device.startswith("cuda")
    candidates = {
        "lina_attention triton": (lambda *t: lina_attention(*t, *gates, backend="triton")) if cuda else None,
        "lina_attention reference fp32 (official)": lambda *t: lina_attention_naive(*(x.float() for x in t),
                                                                                     *gates).to(dtype),
        "lina_attention reference input dtype": (lambda *t: lina_attention_naive(*t, *gates))
        if dtype != torch.float32 else None,
        "softmax SDPA": lambda *t: F.scaled_dot_product_attention(*t),
        "decayed triton": (lambda *t: decayed_linear_attention(*t, g, backend="triton")[0]) if cuda else None,
        "decayed reference": lambda *t: decayed_linear_attention(*t, g, backend="torch")[0],
    }
    simple_gla = fla_simple_gla()
    if simple_gla is not None and cuda:  # fla takes (B, N, H, d) and the same scale d^-0.5
        candidates["decayed fla chunk_simple_gla"] = lambda *t: simple_gla(
            *(x.transpose(1, 2) for x in t), g=g.transpose(1, 2), scale=d**-0.5)[0]
    candidates = {name: fn for name, fn in candidates.items() if fn is not None}
    with torch.no_grad():
        forward = measure({name: (lambda fn=fn: fn(q, k, v)) for name, fn in candidates.items()}, device,
                          args.repeats)
    leaves = {name: [t.detach().requires_grad_() for t in (q, k, v)] for name in candidates}
    backward = measure({name: (lambda fn=fn, t=leaves[name]: fn(*t).float().sum().backward())
                        for name, fn in candidates.items()}, device, args.repeats, leaves)
    rows = []
    for name in candidates:
        (fwd, fwd_mib), (bwd, bwd_mib) = forward[name], backward[name]
        row = {"level": "kernel", "op": name, "tokens": n, "batch": b, "heads": h, "head_dim": d,
               "dtype": str(dtype).removeprefix("torch."), "fwd_ms": fwd.median_ms, "fwd_bwd_ms": bwd.median_ms,
               "fwd_peak_mib": fwd_mib, "fwd_bwd_peak_mib": bwd_mib}
        if name == "lina_attention triton":
            moved = (4 * b * h * n * d) * q.element_size()  # read q, k, v; write o (the state is tiny)
            row["fwd_bytes"] = moved
            row["fwd_bandwidth_gbs"] = moved / (fwd.median_ms / 1e3) / 1e9
            peak = peak_bandwidth(torch.cuda.get_device_name())
            row["fwd_bandwidth_fraction"] = moved / (fwd.median_ms / 1e3) / peak if peak else float("nan")
        rows.append(row)
    speedups(rows, {name: timing for name, (timing, _) in forward.items()}, "softmax SDPA")
    return rows


def module_rows(n: int, args, device: str, dtype: torch.dtype) -> list[dict]:
    side = int(round((n * 0.8) ** 0.5))  # LINA's layout: prefix = 1/5 of the tokens, a square grid
    prefix = n - side * side
    x = torch.randn(args.batch, n, args.width, device=device, dtype=dtype)
    modules = {variant: attention.build(variant, dim=args.width, num_heads=args.heads, grid=(side, side),
                                        prefix=prefix).to(device, dtype) for variant in ("softmax", "lina")}
    with torch.no_grad():
        forward = measure({variant: (lambda m=module: m(x)) for variant, module in modules.items()}, device,
                          args.repeats)
    rows = [{"level": "module", "op": variant, "tokens": n, "batch": args.batch, "heads": args.heads,
             "head_dim": args.width // args.heads, "dtype": str(dtype).removeprefix("torch."),
             "fwd_ms": timing.median_ms, "fwd_peak_mib": mib} for variant, (timing, mib) in forward.items()]
    speedups(rows, {name: timing for name, (timing, _) in forward.items()}, "softmax")
    return rows


def main() -> None:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if cuda else "cpu")
    parser.add_argument("--tokens", type=int, nargs="+",
                        default=[1024, 4096, 5120, 16384] if cuda else [1024, 4096])
    parser.add_argument("--width", type=int, default=1536 if cuda else 512)
    parser.add_argument("--heads", type=int, default=16 if cuda else 8)
    parser.add_argument("--batch", type=int, default=8 if cuda else 1)
    parser.add_argument("--dtype", choices=list(DTYPES), default="bfloat16" if cuda else "float32")
    parser.add_argument("--repeats", type=int, default=20 if cuda else 5)
    parser.add_argument("--out", type=Path, default=None, help="Folder for CSV + markdown (default: "
                        "benchmarks/results/<device>)")
    args = parser.parse_args()
    device, dtype = args.device, DTYPES[args.dtype]
    card = (torch.cuda.get_device_name() if device.startswith("cuda")
            else f"{cpu_model()} ({torch.get_num_threads()} threads)")
    rows = []
    for n in args.tokens:
        rows += kernel_rows(n, args, device, dtype) + module_rows(n, args, device, dtype)
        print(f"done N={n}", flush=True)
    out = results_dir(card, device.startswith("cuda"), args.out)
    write_csv(out / "attention_kernels.csv", rows)
    lines = [f"# Attention kernel benchmark on {card}", "",
             f"torch {torch.__version__}, python {platform.python_version()}, width {args.width}, "
             f"{args.heads} heads, batch {args.batch}, {args.dtype}, median of {args.repeats} calls.", "",
             "Peak memory is measured on GPU only (on CPU: `lina-bench speed module`). Ops of one level and "
             "shape are timed side by side (each repeat runs every op in turn), and the last column is the "
             "forward speed-up over softmax: the median of the per-repeat ratios, with their IQR.", "",
             "| level | op | tokens | fwd ms | fwd+bwd ms | fwd peak MiB | speed-up vs softmax (fwd, IQR) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['level']} | {row['op']} | {row['tokens']} | {row['fwd_ms']:.3f} | "
                     f"{row.get('fwd_bwd_ms', float('nan')):.3f} | {row['fwd_peak_mib']:.1f} | "
                     f"{row['fwd_speedup']:.2f} ({row['fwd_speedup_p25']:.2f}-{row['fwd_speedup_p75']:.2f}) |")
    (out / "attention_kernels.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {out}/attention_kernels.csv and .md")


if __name__ == "__main__":
    main()

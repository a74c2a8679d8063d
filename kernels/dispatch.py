"""Public kernel entry points: pick the Triton kernel or the PyTorch reference per call."""

from __future__ import annotations

import importlib

import torch

from lina_bench.api.errors import LinaBenchError

BACKENDS = ("auto", "triton", "torch")


def triton_interpreting() -> bool:
    """True when Triton runs kernels in its CPU interpreter (TRITON_INTERPRET=1 at import)."""
    try:
        from triton import knobs
    except ImportError:
        return False
    return bool(knobs.runtime.interpret)


def resolve_backend(backend: str, tensor: torch.Tensor) -> str:
    """``auto``: Triton on CUDA tensors, the reference elsewhere. ``triton`` on CPU tensors needs
    Triton's interpreter (TRITON_INTERPRET=1 set before lina-bench's kernels are imported)."""
    if backend not in BACKENDS:
        raise LinaBenchError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "auto":
        return "triton" if tensor.is_cuda and importlib.util.find_spec("triton") else "torch"
    if backend == "triton" and not tensor.is_cuda and not triton_interpreting():
        raise LinaBenchError("backend='triton' on CPU tensors needs Triton's interpreter: set TRITON_INTERPRET=1 "
                             "before importing lina_bench kernels, or use backend='torch'")
    return backend


def check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise LinaBenchError(f"q, k, v must be (B, H, N, d); got {tuple(q.shape)}, {tuple(k.shape)}, "
                             f"{tuple(v.shape)}")
    if q.shape != k.shape or v.shape[:3] != q.shape[:3]:
        raise LinaBenchError(f"q and k must match and v must share (B, H, N): got {tuple(q.shape)}, "
                             f"{tuple(k.shape)}, {tuple(v.shape)}")

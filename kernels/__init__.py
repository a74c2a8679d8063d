"""Attention kernels: Triton kernels beside their PyTorch references (``naive.py``).

Public ops (``backend`` = "auto" | "triton" | "torch"; "auto" runs Triton on CUDA tensors and the
reference elsewhere, with the same numbers):

* :func:`lina_attention` -- LINA's bidirectional, division-normalised linear attention with the
  optional KV gate; forward and backward. Torch custom op ``lina_bench::lina_attention``.
* :func:`decayed_linear_attention` -- causal linear attention with a per-token log-decay (chunked
  forward); :func:`decayed_linear_attention_step` is the one-token recurrent form for decoding.
  Torch custom op ``lina_bench::decayed_linear_attention``.
"""

from __future__ import annotations

import torch

from lina_bench.api.errors import LinaBenchError
from lina_bench.kernels.decayed_attn.naive import (
    decayed_linear_attention_chunked,
    decayed_linear_attention_step,
)
from lina_bench.kernels.dispatch import check_qkv, resolve_backend
from lina_bench.kernels.lina_attn.naive import lina_attention_naive


def lina_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_scale: torch.Tensor | None = None,
                   value_scale: torch.Tensor | None = None, *, backend: str = "auto") -> torch.Tensor:
    """o_i = phi(q_i) S / (phi(q_i) . mean phi(k) + 1e-6), S = (1/N) sum_j phi(k_j)^T v_j, phi = relu + 1e-6.

    q, k: (B, H, N, d); v: (B, H, N, dv); key_scale, value_scale: optional (1, H, N, 1) gates
    multiplying phi(k) and v. Returns (B, H, N, dv). Differentiable in every input.
    """
    check_qkv(q, k, v)
    for name, gate in (("key_scale", key_scale), ("value_scale", value_scale)):
        if gate is not None and tuple(gate.shape) != (1, q.shape[1], q.shape[2], 1):
            raise LinaBenchError(f"{name} must be (1, H, N, 1) = (1, {q.shape[1]}, {q.shape[2]}, 1), "
                                 f"got {tuple(gate.shape)}")
    if resolve_backend(backend, q) == "torch":
        return lina_attention_naive(q, k, v, key_scale, value_scale)
    from lina_bench.kernels.lina_attn import ops  # noqa: F401  (registers the custom op)

    return torch.ops.lina_bench.lina_attention(q, k, v, key_scale, value_scale)


def decayed_linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, log_decay: torch.Tensor, *,
                             scale: float | None = None, initial_state: torch.Tensor | None = None,
                             output_final_state: bool = False, backend: str = "auto", chunk_size: int = 64
                             ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """o_t = sum_{s<=t} exp(sum_{u=s+1..t} g_u) scale (q_t . k_s) v_s, g = log_decay (B, H, N).

    q, k: (B, H, N, d); v: (B, H, N, dv); scale defaults to d^-0.5; initial_state: (B, H, d, dv).
    Returns (o, final state or None). ``chunk_size`` sets the chunked algorithm's block (a power of
    two >= 16 on Triton); it changes the cost, not the result. Differentiable (the Triton path's
    backward recomputes through the PyTorch reference).
    """
    check_qkv(q, k, v)
    if tuple(log_decay.shape) != tuple(q.shape[:3]):
        raise LinaBenchError(f"log_decay must be (B, H, N) = {tuple(q.shape[:3])}, got {tuple(log_decay.shape)}")
    scale = q.shape[-1] ** -0.5 if scale is None else float(scale)
    if resolve_backend(backend, q) == "torch":
        return decayed_linear_attention_chunked(q, k, v, log_decay, scale, initial_state, output_final_state,
                                                chunk_size)
    if chunk_size < 16 or chunk_size & (chunk_size - 1):
        raise LinaBenchError(f"the Triton kernel needs chunk_size a power of two >= 16, got {chunk_size}")
    from lina_bench.kernels.decayed_attn import ops  # noqa: F401  (registers the custom op)

    o, final = torch.ops.lina_bench.decayed_linear_attention(q, k, v, log_decay, scale, initial_state,
                                                            output_final_state, chunk_size)
    return o, (final if output_final_state else None)


__all__ = [
    "decayed_linear_attention",
    "decayed_linear_attention_chunked",
    "decayed_linear_attention_step",
    "lina_attention",
    "lina_attention_naive",
]

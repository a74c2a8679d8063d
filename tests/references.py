"""Independent references shared by the kernel tests."""

from __future__ import annotations

import torch

from lina_bench.kernels import decayed_linear_attention_step


def decayed_loop_reference(q, k, v, g, scale, state=None) -> tuple[torch.Tensor, torch.Tensor]:
    """o_t = scale q_t S_t, S_t = exp(g_t) S_{t-1} + k_t^T v_t, one token at a time."""
    outs = []
    for t in range(q.shape[2]):
        o, state = decayed_linear_attention_step(q[:, :, t], k[:, :, t], v[:, :, t], g[:, :, t], state, scale)
        outs.append(o)
    return torch.stack(outs, 2), state

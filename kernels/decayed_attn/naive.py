"""PyTorch reference of causal linear attention with a per-token log-decay.

    o_t = scale * sum_{s <= t} exp(G_t - G_s) (q_t . k_s) v_s,   G_t = sum_{u <= t} g_u

i.e. the (d_k x d_v) state follows S_t = exp(g_t) S_{t-1} + k_t^T v_t and o_t = scale * q_t S_t.
g (the log-decay) is expected to be <= 0, so the state only forgets.
"""

from __future__ import annotations

import torch


def decayed_linear_attention_step(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_decay: torch.Tensor,
    state: torch.Tensor | None = None,
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One decoding step. q, k: (B, H, d_k); v: (B, H, d_v); log_decay: (B, H);
    state: (B, H, d_k, d_v) or None (zeros). Returns (o: (B, H, d_v), new state)."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    kv = k.unsqueeze(-1) * v.unsqueeze(-2)
    state = kv if state is None else state * log_decay.exp()[..., None, None] + kv
    o = scale * (q.unsqueeze(-2) @ state).squeeze(-2)
    return o, state


def decayed_linear_attention_chunked(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_decay: torch.Tensor,
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = False,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Chunked parallel form: quadratic inside chunks of ``chunk_size`` tokens, recurrent across.

    q, k: (B, H, N, d_k); v: (B, H, N, d_v); log_decay: (B, H, N); initial_state:
    (B, H, d_k, d_v) or None. Returns (o: (B, H, N, d_v), final state or None). Cost is
    O(N * chunk_size * d + N * d^2), memory O(N * d + chunk_size^2).
    """
    b, h, n, dk = q.shape
    scale = dk**-0.5 if scale is None else scale
    state = q.new_zeros(b, h, dk, v.shape[-1]) if initial_state is None else initial_state.to(q.dtype)
    outputs = []
    for start in range(0, n, chunk_size):
        sl = slice(start, min(start + chunk_size, n))
        qc, kc, vc = q[:, :, sl], k[:, :, sl], v[:, :, sl]
        cum = log_decay[:, :, sl].to(q.dtype).cumsum(-1)  # (B, H, L): G relative to chunk start
        length = cum.shape[-1]
        causal = torch.ones(length, length, dtype=torch.bool, device=q.device).tril()
        rel = (cum.unsqueeze(-1) - cum.unsqueeze(-2)).masked_fill(~causal, float("-inf")).exp()
        intra = ((qc @ kc.transpose(-2, -1)) * rel) @ vc
        inter = (qc * cum.exp().unsqueeze(-1)) @ state
        outputs.append(scale * (intra + inter))
        if start + chunk_size < n or output_final_state:  # the last update is needed only when returned
            last = cum[:, :, -1:]  # (B, H, 1)
            decayed_k = kc * (last - cum).exp().unsqueeze(-1)
            state = state * last.exp().unsqueeze(-1) + decayed_k.transpose(-2, -1) @ vc
    o = torch.cat(outputs, dim=2)
    return o, (state if output_final_state else None)

"""Per-layer decoding memory: a KV cache for softmax attention, a constant-size state for LASAD.

Both are mutable holders that one decoding step updates in place (a step at position ``pos`` writes
the KV cache's slot ``pos``; the recurrent step replaces the state), and both report ``nbytes(pos)``,
the memory the layer holds for the sequence after that step (the decode-profile evaluator's numbers).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lina_bench.kernels import decayed_linear_attention_step
from lina_bench.models.attention.base import fused_qkv, upcast
from lina_bench.models.attention.lasad import LasadAttention


@dataclass
class KVCache:
    """Keys and values of every position so far: k, v (B, H_kv, max_len, d), filled up to the current step.

    Like the official ``KVCache`` it is allocated for the whole sequence up front; ``nbytes(pos)``
    counts the filled slots 0..pos, the memory a cache sized to the position needs.
    """

    k: torch.Tensor
    v: torch.Tensor

    def nbytes(self, pos: int) -> int:
        b, h, _, d = self.k.shape
        return 2 * b * h * (pos + 1) * d * self.k.element_size()

    def fork(self) -> KVCache:
        """The same cache: a step writes slot ``pos`` only, so repeating a step at one position is idempotent."""
        return self


@dataclass
class RecurrentState:
    """The decayed linear attention's state S (B, H, d_k, d_v), None before the first token."""

    state: torch.Tensor | None = None

    def nbytes(self, pos: int) -> int:
        return 0 if self.state is None else self.state.numel() * self.state.element_size()

    def fork(self) -> RecurrentState:
        """A new holder of the same state: a step on the fork leaves this one unchanged."""
        return RecurrentState(self.state)


def lasad_step(attn: LasadAttention, x: torch.Tensor, pos: int, cache: RecurrentState) -> torch.Tensor:
    """The recurrent form of :class:`LasadAttention` for the token at sequence position ``pos``:
    x (B, 1, C) -> (B, 1, C), updating ``cache`` (S <- exp(g_pos) S + k^T v, o = scale q S).

    Equal to row ``pos`` of ``attn(x_full)`` for the whole sequence (the parallel form)."""
    b, _, c = x.shape
    q, k, v = (t[:, :, 0] for t in upcast(*fused_qkv(attn.qkv, x, attn.num_heads)))  # (B, H, d)
    g = attn.log_decay()[:, pos].to(q.dtype).expand(b, -1)  # (B, H)
    o, cache.state = decayed_linear_attention_step(q, k, v, g, cache.state, scale=attn.head_dim**-0.5)
    o = attn.norm(o.reshape(b, c).to(x.dtype))  # (B, H*d): GroupNorm per head, as per token in the parallel form
    return attn.proj(o).unsqueeze(1)

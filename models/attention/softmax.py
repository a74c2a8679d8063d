"""Softmax attention (NOVA's ``Attention`` in LINA's ``diffnext/models/vision_transformer.py``)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lina_bench.models.attention.base import AttentionModule, fused_qkv, head_shape, merge_heads, projection_macs


class SoftmaxAttention(AttentionModule):
    """Softmax attention (NOVA's ``Attention``), bidirectional or causal.

    o = proj(softmax(q k^T / sqrt(d)) v); ``causal=True`` masks future tokens.

    Parameters: ``qkv`` (C -> 3C), ``proj`` (C -> C), as in the official module.
    """

    def __init__(self, dim: int, num_heads: int, grid: tuple[int, int], prefix: int = 0,
                 qkv_bias: bool = True, causal: bool = False) -> None:
        super().__init__(dim, num_heads, grid, prefix)
        self.causal = causal
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        q, k, v = fused_qkv(self.qkv, x, self.num_heads)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        return self.proj(merge_heads(o))

    @classmethod
    def analytic_macs(cls, dim: int, num_heads: int, grid: tuple[int, int], prefix: int = 0, batch: int = 1,
                      **options: Any) -> dict[str, int]:
        """4 N C^2 projections and 2 N^2 C for QK^T and PV (full matrices, causal or not)."""
        shape = head_shape(dim, num_heads, grid, prefix, batch)
        b, _, n, _ = shape
        return {"linear": projection_macs(shape), "scaled_dot_product_attention": 2 * b * n * n * dim}

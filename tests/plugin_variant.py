"""A third-party attention variant for the tests: registered like a plugin, with its own closed form."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lina_bench.api import registry
from lina_bench.api.errors import LinaBenchError
from lina_bench.models.attention.base import AttentionModule, head_shape, merge_heads, split_heads


class GroupedQueryAttention(AttentionModule):
    """Softmax attention whose H query heads share ``kv_heads`` key/value heads (grouped-query).

    Projections ``q`` (C -> C), ``kv`` (C -> 2 G d, G = ``kv_heads``), ``proj`` (C -> C).
    """

    def __init__(self, dim: int, num_heads: int, grid: tuple[int, int], prefix: int = 0, kv_heads: int = 1) -> None:
        super().__init__(dim, num_heads, grid, prefix)
        if kv_heads <= 0 or num_heads % kv_heads:
            raise LinaBenchError(f"kv_heads ({kv_heads}) must divide num_heads ({num_heads})")
        self.kv_heads = kv_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * kv_heads * self.head_dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        b, n, _ = x.shape
        g, d, r = self.kv_heads, self.head_dim, self.num_heads // self.kv_heads
        k, v = split_heads(self.kv(x), 2 * g).chunk(2, dim=1)  # (B, G, N, d) each
        k, v = (t[:, :, None].expand(b, g, r, n, d).reshape(b, g * r, n, d) for t in (k, v))
        o = F.scaled_dot_product_attention(split_heads(self.q(x), self.num_heads), k, v)
        return self.proj(merge_heads(o))

    @classmethod
    def analytic_macs(cls, dim: int, num_heads: int, grid: tuple[int, int], prefix: int = 0, batch: int = 1,
                      **options: Any) -> dict[str, int]:
        """q and proj 2 N C^2, kv 2 N C G d; QK^T and PV 2 N^2 C."""
        b, _, n, d = head_shape(dim, num_heads, grid, prefix, batch)
        g = cls.option(options, "kv_heads")
        return {"linear": 2 * b * n * dim * (dim + g * d), "scaled_dot_product_attention": 2 * b * n * n * dim}


def register() -> None:
    """The plugin's entry point: register the variant lazily, as a third-party package would."""
    registry.attention.register("test-gqa", f"{__name__}:GroupedQueryAttention")

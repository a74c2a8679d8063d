"""LiT's simplified linear attention (Wang et al., 2025, "LiT: Delving into a Simple Linear
Diffusion Transformer for Image Generation").

LiT's own code is not public. This module follows the LiT-style attention whose pieces survive in
the LINA repository (same first author): ``vision_transformer_linear1.py``, ``Attention``, with its
commented-out depthwise convolution on the values enabled. Parameter names follow that file.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lina_bench.kernels import lina_attention
from lina_bench.models.attention.base import conv_on_grid, grid_conv_macs
from lina_bench.models.attention.linear import _LinearAttentionBase


class LiTAttention(_LinearAttentionBase):
    """LiT's simplified linear attention: ReLU kernel, few heads, dw-conv on the values.

    o_h = phi(q) S_h / (phi(q) . mean phi(k) + 1e-6) + DWConv5x5(v_h), phi = relu + 1e-6.

    The depthwise convolution ``dwc`` has head_dim channels and its weights are shared by all
    heads; it runs over the image tokens of each head's values (zero on prefix tokens). LiT uses
    few heads (the caller's ``num_heads``). Projections ``q``, ``kv``, ``proj``.
    """

    fused_projection = False

    def __init__(self, dim: int, num_heads: int, grid: tuple[int, int], prefix: int = 0,
                 qkv_bias: bool = True, fp32_attention: bool = True, backend: str = "auto",
                 kernel_size: int = 5) -> None:
        super().__init__(dim, num_heads, grid, prefix, qkv_bias=qkv_bias, fp32_attention=fp32_attention,
                         backend=backend)
        d = self.head_dim
        self.dwc = nn.Conv2d(d, d, kernel_size=kernel_size, padding=kernel_size // 2, groups=d)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        b, h, n, d = v.shape
        values = v.reshape(b * h, n, d).to(self.dwc.weight.dtype)
        conv = conv_on_grid(values, self.dwc, self.prefix, self.grid).to(v.dtype)
        return lina_attention(q, k, v, backend=self.backend) + conv.view(b, h, n, d)

    @classmethod
    def analytic_macs(cls, dim: int, num_heads: int, grid: tuple[int, int], prefix: int = 0, batch: int = 1,
                      **options: Any) -> dict[str, int]:
        """Linear attention's count plus C h w k^2 for ``dwc`` (d channels, on each of the H heads)."""
        macs = super().analytic_macs(dim, num_heads, grid, prefix, batch, **options)
        macs["conv"] = batch * grid_conv_macs(dim, grid, cls.option(options, "kernel_size"))
        return macs

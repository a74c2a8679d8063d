"""LINA's linear-attention variants (LINA repo, ``diffnext/models/vision_transformer_linear*.py``).

The variants share one forward pass and differ only in their parts:

=================  ===============  ==============  ===================  =======
variant            normalisation    projections     5x5 dw-conv branch   KV gate
=================  ===============  ==============  ===================  =======
``linear``         division         ``qkv``         no                   no
``linear-sub``     subtraction      ``q``, ``kv``   no                   no
``linear-dwc``     division         ``qkv``         ``dw_conv``          no
``linear-sub-dwc`` subtraction      ``q``, ``kv``   ``dw_conv``          no
``lina``           division         ``qkv``         ``dw_conv``          ``key_scale``, ``value_scale``
=================  ===============  ==============  ===================  =======
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from lina_bench.kernels import lina_attention
from lina_bench.kernels.formulas import lina_forward_macs
from lina_bench.models.attention.base import (
    AttentionModule,
    conv_on_grid,
    fused_qkv,
    grid_conv_macs,
    head_shape,
    merge_heads,
    projection_macs,
    split_qkv,
    upcast,
)

DW_CONV_KERNEL = 5  # the ``dw_conv`` branch's kernel size


def subtraction_linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """o_i = (s/N) phi(q_i) sum_j phi(k_j)^T v_j + (1 - s phi(q_i) . mean_j phi(k_j)) mean_j v_j.

    phi = relu, s = d^-0.5 (InLine-style normalisation). q, k, v: (B, H, N, d) before the feature
    map; returns (B, H, N, d).
    """
    n, d = k.shape[-2], k.shape[-1]
    scale = d**-0.5
    q, k = torch.relu(q), torch.relu(k)
    state = (k.transpose(-2, -1) * (scale / n) ** 0.5) @ (v * (scale / n) ** 0.5)  # (B, H, d, d)
    mean_k, mean_v = k.mean(dim=-2, keepdim=True), v.mean(dim=-2, keepdim=True)
    return q @ state + (1 - q @ mean_k.transpose(-2, -1) * scale) * mean_v


class _LinearAttentionBase(AttentionModule):
    """Shared forward: project, attend in at least float32 (``fp32_attention``), add the conv branch,
    project. ``backend`` picks the attention kernel ("auto": Triton on CUDA, the PyTorch reference
    elsewhere; the subtraction form always uses PyTorch).

    Subclasses set the class attributes that choose their parts and implement ``attend``.
    """

    fused_projection = True  # one ``qkv`` layer, else ``q`` + ``kv``
    conv_branch = False  # 5x5 depthwise convolution of the input's image tokens (``dw_conv``)
    kv_gate = False  # learned per-head, per-token ``key_scale`` / ``value_scale``

    def __init__(self, dim: int, num_heads: int, grid: tuple[int, int], prefix: int = 0,
                 qkv_bias: bool = True, fp32_attention: bool = True, backend: str = "auto") -> None:
        super().__init__(dim, num_heads, grid, prefix)
        self.fp32_attention, self.backend = fp32_attention, backend
        if self.fused_projection:
            self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        else:
            self.q = nn.Linear(dim, dim, bias=qkv_bias)
            self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        if self.conv_branch:
            self.dw_conv = nn.Conv2d(dim, dim, kernel_size=DW_CONV_KERNEL, padding=DW_CONV_KERNEL // 2, groups=dim)
        if self.kv_gate:
            self.key_scale = nn.Parameter(torch.ones(1, num_heads, self.num_tokens, 1))
            self.value_scale = nn.Parameter(torch.ones(1, num_heads, self.num_tokens, 1))

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.fused_projection:
            return fused_qkv(self.qkv, x, self.num_heads)
        return split_qkv(self.q, self.kv, x, self.num_heads)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """(B, H, N, d) x3, before the feature map -> (B, H, N, d)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.mix(x)

    def mix(self, x: torch.Tensor, rotate: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
            | None = None) -> torch.Tensor:
        """The module on (B, N, C) tokens without the check of N against the built geometry (NOVA's
        encoder half sees only the visible tokens; the conv branch still needs the whole grid);
        ``rotate`` maps the projected (q, k), (B, H, N, d) each, before the attention (e.g. RoPE)."""
        q, k, v = self.project(x)
        if rotate is not None:
            q, k = rotate(q, k)
        if self.fp32_attention:
            q, k, v = upcast(q, k, v)
        out = merge_heads(self.attend(q, k, v)).to(x.dtype)
        if self.conv_branch:
            out = out + conv_on_grid(x, self.dw_conv, self.prefix, self.grid).to(x.dtype)
        return self.proj(out)

    @classmethod
    def analytic_macs(cls, dim: int, num_heads: int, grid: tuple[int, int], prefix: int = 0, batch: int = 1,
                      **options: Any) -> dict[str, int]:
        """4 N C^2 projections; N H (2 d^2 + d) attention (state, query x state, normaliser: the same
        for division and subtraction); C h w 5^2 for the dw-conv branch."""
        shape = head_shape(dim, num_heads, grid, prefix, batch)
        macs = {"linear": projection_macs(shape), "matmul": lina_forward_macs(shape, shape)}
        if cls.conv_branch:
            macs["conv"] = batch * grid_conv_macs(dim, grid, DW_CONV_KERNEL)
        return macs


class LinearAttention(_LinearAttentionBase):
    """Division-normalised linear attention (LINA ``linear6``).

    Official module: ``vision_transformer_linear6.py``, ``Attention``.

    o_i = phi(q_i) S / (phi(q_i) . mean_j phi(k_j) + 1e-6), S = (1/N) sum_j phi(k_j)^T v_j,
    phi(x) = relu(x) + 1e-6.
    """

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return lina_attention(q, k, v, backend=self.backend)


class SubtractionLinearAttention(_LinearAttentionBase):
    """Subtraction-normalised linear attention (LINA ``linear9``).

    Official module: ``vision_transformer_linear9.py``, ``Attention``.

    o_i = (s/N) phi(q_i) sum_j phi(k_j)^T v_j + (1 - s phi(q_i) . mean phi(k)) mean v,
    phi = relu, s = d^-0.5.
    """

    fused_projection = False

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return subtraction_linear_attention(q, k, v)


class LinearDWCAttention(LinearAttention):
    """Division-normalised linear attention + 5x5 depthwise-conv branch (LINA ``decouple1``).

    Official module: ``vision_transformer_linear_decouple1.py``, ``LinearAttentionDecoder``.

    o = proj(linear(x) + DWConv5x5(x_image)), the conv branch being zero on prefix tokens.
    """

    conv_branch = True


class SubtractionLinearDWCAttention(SubtractionLinearAttention):
    """Subtraction-normalised linear attention + 5x5 depthwise-conv branch (LINA ``decouple10``).

    Official module: ``vision_transformer_linear_decouple10.py``, ``LinearAttentionDecoder``.
    """

    conv_branch = True


class LinaAttention(LinearDWCAttention):
    """LINA's final module: division-normalised linear attention + dw-conv branch + KV gate.

    Official module: ``vision_transformer_linear_decouple1_kvscale1.py``, ``LinearAttentionDecoder``.

    Like ``linear-dwc`` with phi(k_j) -> a_hj phi(k_j) and v_j -> b_hj v_j, where
    a = ``key_scale`` and b = ``value_scale`` are learned per head and per token position,
    shape (1, H, N, 1). Carry a trained gate to another resolution with
    :func:`lina_bench.models.attention.gate.adapt_state_dict`.
    """

    kv_gate = True

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return lina_attention(q, k, v, self.key_scale, self.value_scale, backend=self.backend)

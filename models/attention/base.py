"""Parts shared by every attention variant: token geometry, head split/merge, grid convolution."""

from __future__ import annotations

import torch
from torch import nn

from lina_bench.api.attention import GEOMETRY, AttentionModule  # noqa: F401  (re-exported: its old home)


def head_shape(dim: int, num_heads: int, grid: tuple[int, int], prefix: int = 0,
               batch: int = 1) -> tuple[int, int, int, int]:
    """(B, H, N, d) of the per-head queries, keys and values: N = prefix + h*w, d = C / H."""
    return batch, num_heads, prefix + grid[0] * grid[1], dim // num_heads


def projection_macs(shape: tuple[int, int, int, int]) -> int:
    """4 B N C^2 for (B, H, N, d) heads, C = H d: the q, k, v projections (``qkv`` or ``q`` + ``kv``)
    and ``proj``."""
    b, h, n, d = shape
    return 4 * b * n * (h * d) ** 2


def grid_conv_macs(channels: int, grid: tuple[int, int], kernel_size: int) -> int:
    """C h w k^2: a depthwise k x k convolution of C channels over the image tokens (:func:`conv_on_grid`)."""
    return channels * grid[0] * grid[1] * kernel_size**2


def upcast(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Cast half-precision tensors to float32 and leave float32/float64 alone (``fp32_attention``)."""
    return tuple(t.float() if t.dtype in (torch.float16, torch.bfloat16) else t for t in tensors)


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(B, N, C) -> (B, H, N, C/H)."""
    b, n, c = x.shape
    return x.view(b, n, num_heads, c // num_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, H, N, d) -> (B, N, H*d)."""
    return x.transpose(1, 2).flatten(2)


def fused_qkv(layer: nn.Linear, x: torch.Tensor, num_heads: int) -> tuple[torch.Tensor, ...]:
    """q, k, v of shape (B, H, N, d) from one (C -> 3C) projection laid out as [q | k | v]."""
    b, n, _ = x.shape
    return layer(x).view(b, n, 3, num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)


def split_qkv(q_layer: nn.Linear, kv_layer: nn.Linear, x: torch.Tensor,
              num_heads: int) -> tuple[torch.Tensor, ...]:
    """q, k, v of shape (B, H, N, d) from a (C -> C) query and a (C -> 2C) [k | v] projection."""
    k, v = kv_layer(x).chunk(2, dim=-1)
    return tuple(split_heads(t, num_heads) for t in (q_layer(x), k, v))


def conv_on_grid(tokens: torch.Tensor, conv: nn.Conv2d, prefix: int, grid: tuple[int, int]) -> torch.Tensor:
    """Apply a 2D convolution to the image tokens; condition (prefix) tokens get zeros.

    tokens: (B, N, C) with N = prefix + h*w. Returns (B, N, C_out).
    """
    b, _, c = tokens.shape
    h, w = grid
    image = tokens[:, prefix:].transpose(1, 2).reshape(b, c, h, w)
    out = conv(image).flatten(2).transpose(1, 2)  # (B, h*w, C_out)
    return torch.cat([out.new_zeros(b, prefix, out.shape[-1]), out], dim=1)

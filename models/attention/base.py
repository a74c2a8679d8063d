"""Parts shared by every attention variant: token geometry, head split/merge, grid convolution."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from lina_bench.errors import LinaBenchError


class AttentionModule(nn.Module):
    """Base of all variants: maps (B, N, C) -> (B, N, C) with N = prefix + h * w.

    The first ``prefix`` tokens are condition tokens; the remaining h * w are image tokens in
    row-major order.
    """

    def __init__(self, dim: int, num_heads: int, grid: tuple[int, int], prefix: int = 0) -> None:
        super().__init__()
        grid = tuple(grid)
        if dim <= 0 or num_heads <= 0 or dim % num_heads:
            raise LinaBenchError(f"dim ({dim}) must be a positive multiple of num_heads ({num_heads})")
        if len(grid) != 2 or min(grid) <= 0:
            raise LinaBenchError(f"grid must be two positive ints (h, w), got {grid!r}")
        if prefix < 0:
            raise LinaBenchError(f"prefix must be >= 0, got {prefix}")
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.grid, self.prefix = (int(grid[0]), int(grid[1])), int(prefix)

    @property
    def num_tokens(self) -> int:
        return self.prefix + self.grid[0] * self.grid[1]

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a clear error unless x is (B, prefix + h*w, dim)."""
        expected = (self.num_tokens, self.dim)
        if x.dim() != 3 or tuple(x.shape[1:]) != expected:
            raise LinaBenchError(
                f"{type(self).__name__} built for prefix={self.prefix}, grid={self.grid}, dim={self.dim} "
                f"expects input (B, {expected[0]}, {expected[1]}), got {tuple(x.shape)}")

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_heads={self.num_heads}, grid={self.grid}, prefix={self.prefix}"

    @classmethod
    def analytic_macs(cls, dim: int, num_heads: int, grid: tuple[int, int], prefix: int = 0, batch: int = 1,
                      **options: Any) -> dict[str, int]:
        """Closed-form MACs of one call on a (batch, N, C) input, by operator kind in fvcore's names and
        convention (1 multiply-add = 1 FLOP, elementwise ops not counted); N = prefix + h*w, C = dim,
        d = C / num_heads. ``options`` are constructor options; those that change the cost are read,
        with the constructor's defaults (:meth:`option`). Variants without a closed form raise.
        """
        raise LinaBenchError(f"no closed-form FLOP count for attention variant {cls.__name__!r} "
                             "(it does not define AttentionModule.analytic_macs)")

    @classmethod
    def option(cls, options: dict[str, Any], name: str) -> Any:
        """``options[name]``, else the constructor's default for ``name``."""
        return options.get(name, inspect.signature(cls).parameters[name].default)


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

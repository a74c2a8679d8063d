"""The attention-variant contract: every variant is an :class:`AttentionModule` built with the same
geometry keywords, mapping (B, N, C) -> (B, N, C) with N = prefix + h * w."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from lina_bench.api.errors import LinaBenchError
from lina_bench.api.geometry import GEOMETRY  # noqa: F401  (part of this contract)


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

"""Causal linear attention with 2D spatial-aware decay, for raster-order autoregression (LASADGen).

**This is our reading of the LASADGen paper, not a reproduction**: its exact decay formula is not
public. What we implement: a RetNet-style causal linear attention whose state forgets by a factor
exp(g_t) at every token t, where the per-head, per-token log-decay g_t is computed from token t's
2D grid position by a *decay function* (the ``decay`` option):

``"2d"`` (default)
    g_t = log gamma_row[h] when t starts a row of the image (column 0), log gamma_col[h] at the
    other image tokens, 0 on condition (prefix) tokens. The decay between an earlier token s and t
    is therefore gamma_row^(rows started after s) * gamma_col^(other steps): with gamma_col close to
    1, memory fades with the number of rows between the tokens (vertical distance) and only mildly
    with horizontal steps, instead of with the raster (1D) distance that puts a token's upper
    neighbour w steps away.
``"1d"``
    g_t = log gamma_col[h] at every image token: plain raster-order (1D) decay, for comparison.
``"none"``
    g_t = 0: causal linear attention without decay.

gamma_row = sigmoid(``decay_row``) and gamma_col = sigmoid(``decay_col``) are learned per head,
initialised at gamma_col = 1 - 2^-(8 .. 10) and gamma_row = 1 - 2^-(2 .. 5) across heads.
o = proj(GroupNorm_H(decayed_attention(q, k, v))) with scale d^-0.5 and no feature map (RetNet).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from lina_bench.api.errors import LinaBenchError
from lina_bench.kernels import decayed_linear_attention
from lina_bench.kernels.formulas import chunked_decay_macs
from lina_bench.models.attention.base import (
    AttentionModule,
    fused_qkv,
    head_shape,
    merge_heads,
    projection_macs,
    upcast,
)


def _image_mask(prefix: int, grid: tuple[int, int], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean (N,) masks: image tokens, and image tokens at column 0 (row starts)."""
    h, w = grid
    n = prefix + h * w
    pos = torch.arange(n, device=device)
    image = pos >= prefix
    row_start = image & ((pos - prefix) % w == 0)
    return image, row_start


def decay_2d(log_row: torch.Tensor, log_col: torch.Tensor, prefix: int, grid: tuple[int, int]) -> torch.Tensor:
    """(H,), (H,) log-decays -> (H, N): row decay at row starts, column decay elsewhere in the image."""
    image, row_start = _image_mask(prefix, grid, log_row.device)
    g = torch.where(row_start, log_row[:, None], log_col[:, None])
    return g * image


def decay_1d(log_row: torch.Tensor, log_col: torch.Tensor, prefix: int, grid: tuple[int, int]) -> torch.Tensor:
    """(H,), (H,) -> (H, N): the column decay at every image token (raster-order decay)."""
    image, _ = _image_mask(prefix, grid, log_col.device)
    return log_col[:, None] * image


def decay_none(log_row: torch.Tensor, log_col: torch.Tensor, prefix: int, grid: tuple[int, int]) -> torch.Tensor:
    """(H, N) zeros: no decay."""
    return log_col.new_zeros(log_col.shape[0], prefix + grid[0] * grid[1])


DECAY_FUNCTIONS: dict[str, Callable[..., torch.Tensor]] = {"2d": decay_2d, "1d": decay_1d, "none": decay_none}


def _logit(p: torch.Tensor) -> torch.Tensor:
    return torch.log(p) - torch.log1p(-p)


class LasadAttention(AttentionModule):
    """Causal linear attention with 2D spatial-aware decay (our reading of LASADGen).

    o_t = scale sum_{s<=t} exp(G_t - G_s) (q_t . k_s) v_s, G = cumsum(g), with a per-token
    log-decay g from each token's 2D grid position (``decay`` = "2d" | "1d" | "none"; module docs).

    Parameters: ``qkv``, ``decay_row``, ``decay_col`` (per head), ``norm`` (GroupNorm, one group per
    head), ``proj``. This is our reading of LASADGen; the paper's exact decay is not public.
    """

    def __init__(self, dim: int, num_heads: int, grid: tuple[int, int], prefix: int = 0,
                 qkv_bias: bool = True, decay: str = "2d", chunk_size: int = 64, backend: str = "auto") -> None:
        super().__init__(dim, num_heads, grid, prefix)
        if decay not in DECAY_FUNCTIONS:
            raise LinaBenchError(f"unknown lasad decay {decay!r} (choose from {', '.join(DECAY_FUNCTIONS)})")
        self.decay, self.chunk_size, self.backend = decay, chunk_size, backend
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        # An explicit device: transformers swaps torch.linspace while it loads a model, and torch caches
        # the swapped function as the constructor that `with torch.device(...)` redirects, so after a
        # transformers load the real linspace would ignore that context (e.g. the meta device of FLOP counts).
        frac = torch.linspace(0, 1, num_heads, device=torch.get_default_device()) if num_heads > 1 \
            else torch.zeros(1)
        self.decay_col = nn.Parameter(_logit(1 - 2.0 ** -(8 + 2 * frac)))
        self.decay_row = nn.Parameter(_logit(1 - 2.0 ** -(2 + 3 * frac)))
        self.norm = nn.GroupNorm(num_heads, dim)
        self.proj = nn.Linear(dim, dim)

    def log_decay(self) -> torch.Tensor:
        """(H, N) per-token log-decay from the 2D grid positions."""
        fn = DECAY_FUNCTIONS[self.decay]
        return fn(nn.functional.logsigmoid(self.decay_row), nn.functional.logsigmoid(self.decay_col),
                  self.prefix, self.grid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        b, n, c = x.shape
        q, k, v = upcast(*fused_qkv(self.qkv, x, self.num_heads))
        g = self.log_decay().to(q.dtype).unsqueeze(0).expand(b, -1, -1)
        o, _ = decayed_linear_attention(q, k, v, g, scale=self.head_dim**-0.5, chunk_size=self.chunk_size,
                                        backend=self.backend)
        o = merge_heads(o).to(x.dtype)
        o = self.norm(o.reshape(b * n, c)).view(b, n, c)
        return self.proj(o)

    @classmethod
    def analytic_macs(cls, dim: int, num_heads: int, grid: tuple[int, int], prefix: int = 0, batch: int = 1,
                      **options: Any) -> dict[str, int]:
        """4 N C^2 projections; per head, the sum over chunks of L tokens (``chunk_size``) of
        2 L^2 d + 2 L d^2 (scores, scores x v, query x state, state update; none after the last chunk)."""
        shape = head_shape(dim, num_heads, grid, prefix, batch)
        return {"linear": projection_macs(shape),
                "matmul": chunked_decay_macs(shape, shape, cls.option(options, "chunk_size"), final_state=False)}


__all__ = ["DECAY_FUNCTIONS", "LasadAttention"]

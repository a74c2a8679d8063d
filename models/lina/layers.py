"""LINA / NOVA building blocks (LINA repo, ``diffnext/models/embeddings.py`` and ``vision_transformer*.py``):
patch, position, label and mask embeddings, 3D RoPE, and the transformer block around a zoo attention.

Parameter names are the official ones, so official state dicts load strictly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lina_bench.models.attention.base import AttentionModule, fused_qkv, merge_heads
from lina_bench.models.attention.softmax import SoftmaxAttention


class PatchEmbed(nn.Module):
    """(B, C, H, W) latents <-> (B, h*w, C p^2) patches; ``proj`` embeds them ((B, h*w, dim))."""

    def __init__(self, image_dim: int, embed_dim: int, patch_size: int) -> None:
        super().__init__()
        self.image_dim, self.patch_size = image_dim, patch_size
        self.proj = nn.Conv2d(image_dim, embed_dim, patch_size, patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, h p, w p) -> (B, h*w, p*p*C), channels last within a patch (the official order)."""
        b, c, hp, wp = x.shape
        p = self.patch_size
        x = x.view(b, c, hp // p, p, wp // p, p)
        return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (hp // p) * (wp // p), p * p * c)

    def unpatchify(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """(B, h*w, p*p*C) -> (B, C, h p, w p)."""
        (h, w), p = grid, self.patch_size
        x = x.view(-1, h, w, p, p, self.image_dim)
        return x.permute(0, 5, 1, 3, 2, 4).reshape(-1, self.image_dim, h * p, w * p)


def sincos_2d(dim: int, grid: tuple[int, int]) -> torch.Tensor:
    """(h*w, dim) fixed embedding [sin(w f), cos(w f), sin(h f), cos(h f)], f_i = 10000^(-i/(dim/4))
    (the official ``PosEmbed``; no parameters)."""
    h, w = grid
    freq = 1 / (10000 ** (torch.arange(dim // 4, dtype=torch.float32) / (dim // 4)))
    grid_w, grid_h = torch.meshgrid(torch.arange(w, dtype=torch.float32), torch.arange(h, dtype=torch.float32),
                                    indexing="xy")
    fw, fh = (g.reshape(-1, 1) * freq for g in (grid_w, grid_h))
    return torch.cat([fw.sin(), fw.cos(), fh.sin(), fh.cos()], dim=-1)


class VideoPosEmbed(nn.Module):
    """Learned time embedding of frame 0 plus the fixed 2D sin-cos embedding, for the condition tokens.

    The official module embeds time t as ``norm(time_proj([sin(t f), cos(t f)]))``; class-to-image
    generation has one frame, t = 0.
    """

    def __init__(self, dim: int, grid: tuple[int, int]) -> None:
        super().__init__()
        self.grid = grid
        self.norm = nn.LayerNorm(dim)
        self.time_proj = nn.Sequential(nn.Linear(256, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, h*w, dim) -> (B, h*w, dim) with the embedding of frame 0 added."""
        sincos = torch.cat([torch.zeros(1, 128), torch.ones(1, 128)], dim=-1).to(x)  # [sin 0, cos 0]
        space = sincos_2d(x.shape[-1], self.grid).to(x)
        return x + self.norm(self.time_proj(sincos)) + space


class Rope3D:
    """The official ``RotaryEmbed3D``: per-head rotary embedding over (t, h, w) positions, the t part on
    ``dim // 8`` channels and h, w on ``(dim - dim // 8) // 2`` each, rotating interleaved channel pairs.
    Condition (prefix) tokens get position 0."""

    def __init__(self, head_dim: int, theta: float = 10000.0) -> None:
        self.parts = [head_dim // 8] + [(head_dim - head_dim // 8) // 2] * 2
        self.theta = theta

    @staticmethod
    def positions(grid: tuple[int, int]) -> torch.Tensor:
        """(h*w, 3) positions (0, row, column) of a frame's tokens."""
        rows, cols = torch.meshgrid(torch.arange(grid[0]), torch.arange(grid[1]), indexing="ij")
        return torch.stack([torch.zeros_like(rows), rows, cols], dim=-1).view(-1, 3).float()

    def rotation(self, pos: torch.Tensor, prefix: int) -> tuple[torch.Tensor, torch.Tensor]:
        """pos (B, n, 3) -> cos, sin of shape (B, 1, prefix + n, head_dim / 2)."""
        pos = F.pad(pos, (0, 0, prefix, 0)) if prefix else pos
        angles = [pos[..., i:i + 1] * torch.pow(self.theta, torch.arange(0, d, 2, device=pos.device).float() / d)
                  .reciprocal() for i, d in enumerate(self.parts)]
        angles = torch.cat(angles, dim=-1).unsqueeze(1)
        return angles.cos(), angles.sin()

    @staticmethod
    def apply(x: torch.Tensor, rotation: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Rotate channel pairs (x0, x1) of x (B, H, N, d) by the angles of ``rotation``."""
        cos, sin = (t.to(x.dtype) for t in rotation)
        x0, x1 = x.unflatten(-1, (-1, 2)).unbind(-1)
        return torch.stack([cos * x0 - sin * x1, sin * x0 + cos * x1], dim=-1).flatten(-2)


def run_attention(attn: AttentionModule, x: torch.Tensor,
                  rotation: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """A zoo attention on (B, N, C) tokens, N free (NOVA's encoder half sees only the visible tokens),
    with RoPE on q and k after the projection where the official module applies it.

    The zoo's ``forward`` checks N against the geometry it was built for, so the variable-length path
    runs the linear variants' ``mix`` (with RoPE as its ``rotate``) and softmax's parts here.
    """
    if rotation is None and x.shape[1] == attn.num_tokens:
        return attn(x)
    if isinstance(attn, SoftmaxAttention):
        q, k, v = fused_qkv(attn.qkv, x, attn.num_heads)
        if rotation is not None:
            q, k = Rope3D.apply(q, rotation), Rope3D.apply(k, rotation)
        return attn.proj(merge_heads(F.scaled_dot_product_attention(q, k, v)))
    if rotation is None or not attn.fused_projection:  # the subtraction variants ignore RoPE officially
        return attn.mix(x)
    return attn.mix(x, lambda q, k: (Rope3D.apply(q, rotation), Rope3D.apply(k, rotation)))


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2."""

    def __init__(self, dim: int, mlp_ratio: float = 4) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, int(dim * mlp_ratio))
        self.fc2 = nn.Linear(int(dim * mlp_ratio), dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """NOVA's block, normalising each branch's output: x + norm1(attn(x)), then + norm2(mlp(x))."""

    def __init__(self, attn: AttentionModule, dim: int, mlp_ratio: float = 4) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), attn
        self.norm2, self.mlp = nn.LayerNorm(dim), Mlp(dim, mlp_ratio)

    def forward(self, x: torch.Tensor, rotation: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        x = x + self.norm1(run_attention(self.attn, x, rotation))
        return x + self.norm2(self.mlp(x))


class LabelEmbed(nn.Module):
    """Class label -> LayerNorm(weight[label]); row ``num_classes`` is the null (CFG) class."""

    def __init__(self, embed_dim: int, num_classes: int = 1000) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.weight = nn.Parameter(torch.randn(num_classes + 1, embed_dim) * 0.02)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        """(B,) -> (B, 1, dim)."""
        return self.norm(self.weight[labels.unsqueeze(-1)])


class MaskEmbed(nn.Module):
    """The begin-of-video token (every condition-encoder input token) and the mask token."""

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.bos_token = nn.Parameter(torch.randn(1, embed_dim) * 0.02)
        self.mask_token = nn.Parameter(torch.randn(1, embed_dim) * 0.02)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Tokens (B, N, dim) with masked positions (mask (B, N, 1) = 1) replaced by the mask token."""
        return x * (1 - mask) + self.mask_token * mask


def timestep_embedding(t: torch.Tensor, dim: int = 256) -> torch.Tensor:
    """(...) -> (..., dim) [cos(t f), sin(t f)], f_i = 10000^(-i / (dim/2))."""
    freq = torch.exp(torch.arange(dim // 2, dtype=torch.float32, device=t.device) * (-math.log(10000) / (dim // 2)))
    emb = t.float().unsqueeze(-1) * freq
    return torch.cat([emb.cos(), emb.sin()], dim=-1)

"""NOVA's per-token flow-matching head (LINA repo, ``diffnext/models/diffusion_mlp.py``, ``DiffusionMLP``).

Not MAR's ``SimpleMLPAdaLN``: the block layout differs (a 3-statistic AdaLN-Zero before a SiLU MLP, a
LayerNorm after it, a gated residual; condition and time MLPs instead of linear maps), so the official
names and numbers need their own module.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lina_bench.models.lina.layers import PatchEmbed, timestep_embedding


class Projector(nn.Module):
    """fc1 -> SiLU -> fc2."""

    def __init__(self, dim: int, mlp_dim: int, out_dim: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, mlp_dim), nn.Linear(mlp_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.silu(self.fc1(x)))


class AdaLayerNormZero(nn.Module):
    """LayerNorm(x) (1 + scale) + shift with (scale, shift, *rest) = proj(SiLU(z)).chunk(num_stats)."""

    def __init__(self, dim: int, num_stats: int) -> None:
        super().__init__()
        self.num_stats = num_stats
        self.proj = nn.Linear(dim, num_stats * dim)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        stats = self.proj(F.silu(z)).chunk(self.num_stats, dim=-1)
        return F.layer_norm(x, x.shape[-1:], eps=1e-6) * (1 + stats[0]) + stats[1], stats[2:]


class DiffusionBlock(nn.Module):
    """x + gate * LayerNorm(MLP(AdaLN(x, z)))."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm1 = AdaLayerNormZero(dim, num_stats=3)
        self.proj, self.norm2 = Projector(dim, dim, dim), nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        h, (gate,) = self.norm1(x, z)
        return self.norm2(self.proj(h)) * gate + x


class TimeCondEmbed(nn.Module):
    """condition_proj(z) + timestep_proj(sinusoid(t))."""

    def __init__(self, cond_dim: int, embed_dim: int, freq_dim: int = 256) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.timestep_proj = Projector(freq_dim, embed_dim, embed_dim)
        self.condition_proj = Projector(cond_dim, embed_dim, embed_dim)

    def forward(self, timestep: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """timestep (B,) or per token (B, n), condition = ``condition_proj(z)`` (B, n, embed_dim) ->
        (B, n, embed_dim)."""
        t = self.timestep_proj(timestep_embedding(timestep, self.freq_dim).to(condition.dtype))
        return condition + (t.unsqueeze(1) if t.dim() == 2 else t)


class DiffusionMLP(nn.Module):
    """Velocity of noisy tokens given the transformer's condition tokens.

    ``forward(x, timestep, z)``: x (B, n, p*p*C) noisy latent patches, timestep (B,) or (B, n), z (B, n, cond_dim)
    -> (B, n, p*p*C). ``patch_embed`` embeds patches; the official module convolves the whole latent
    and then gathers the predicted tokens, which is the same per token (a p x p, stride-p convolution).
    A sampler calls ``velocity`` with ``embed_condition(z)`` computed once for all flow steps of an AR
    step (z does not change between them; the official head recomputes it at every step).
    """

    def __init__(self, depth: int, embed_dim: int, cond_dim: int, patch_size: int, image_dim: int) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(image_dim, embed_dim, patch_size)
        self.time_cond_embed = TimeCondEmbed(cond_dim, embed_dim)
        self.blocks = nn.ModuleList(DiffusionBlock(embed_dim) for _ in range(depth))
        self.norm = AdaLayerNormZero(embed_dim, num_stats=2)
        self.head = nn.Linear(embed_dim, patch_size**2 * image_dim)

    def embed_patches(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n, p*p*C) patches -> (B, n, embed_dim): ``patch_embed.proj`` as a matrix product."""
        weight = self.patch_embed.proj.weight  # (D, C, p, p); patches are ordered (p, p, C)
        return F.linear(x, weight.permute(0, 2, 3, 1).flatten(1), self.patch_embed.proj.bias)

    def embed_condition(self, z: torch.Tensor) -> torch.Tensor:
        """(B, n, cond_dim) -> (B, n, embed_dim): the condition's part of the blocks' modulation input."""
        return self.time_cond_embed.condition_proj(z)

    def forward(self, x: torch.Tensor, timestep: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.velocity(x, timestep, self.embed_condition(z))

    def velocity(self, x: torch.Tensor, timestep: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """``forward`` given ``condition = embed_condition(z)``."""
        x = self.embed_patches(x)
        z = self.time_cond_embed(timestep, condition)
        for block in self.blocks:
            x = block(x, z)
        return self.head(self.norm(x, z)[0])

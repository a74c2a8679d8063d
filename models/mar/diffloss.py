"""MAR's diffusion head (LTH14/mar ``models/diffloss.py``): ``SimpleMLPAdaLN``, a stack of adaLN-modulated
residual MLP blocks denoising one token latent conditioned on the transformer's output z for that token.

Parameter names are the official ones (``diffloss.net.res_blocks.0.adaLN_modulation.1.weight``, ...).
The network differs from LINA/NOVA's ``DiffusionMLP`` (single-linear condition embedding, no post-MLP norm, a
DiT final layer), so it lives with MAR rather than in ``models/blocks``.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from lina_bench.models.mar.diffusion import SpacedDDPM

NoiseFn = Callable[[int], torch.Tensor]


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class TimestepEmbedder(nn.Module):
    """(N,) timesteps -> (N, hidden): sinusoidal features [cos | sin] through Linear-SiLU-Linear (``mlp``)."""

    def __init__(self, hidden_size: int, frequency_embedding_size: int = 256) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(frequency_embedding_size, hidden_size), nn.SiLU(),
                                 nn.Linear(hidden_size, hidden_size))
        self.frequency_embedding_size = frequency_embedding_size

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.frequency_embedding_size // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half).to(t.device)
        args = t[:, None].float() * freqs[None]
        return self.mlp(torch.cat([torch.cos(args), torch.sin(args)], dim=-1).to(self.mlp[0].weight.dtype))


class AdaLNModulation(nn.Sequential):
    """SiLU then Linear(width -> k * width): the adaLN shift/scale(/gate) of a block (``adaLN_modulation``)."""

    def __init__(self, width: int, k: int) -> None:
        super().__init__(nn.SiLU(), nn.Linear(width, k * width))


class ResBlock(nn.Module):
    """x + gate * MLP(modulate(LN(x), shift, scale)), (shift, scale, gate) from the condition y; (N, W) -> (N, W)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.in_ln = nn.LayerNorm(channels, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(channels, channels), nn.SiLU(), nn.Linear(channels, channels))
        self.adaLN_modulation = AdaLNModulation(channels, 3)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        shift, scale, gate = self.adaLN_modulation(y).chunk(3, dim=-1)
        return x + gate * self.mlp(modulate(self.in_ln(x), shift, scale))


class FinalLayer(nn.Module):
    """DiT's final layer: Linear(modulate(LN(x), shift, scale)); (N, W) -> (N, out)."""

    def __init__(self, model_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm_final = nn.LayerNorm(model_channels, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(model_channels, out_channels)
        self.adaLN_modulation = AdaLNModulation(model_channels, 2)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class SimpleMLPAdaLN(nn.Module):
    """The denoiser: noisy tokens x (N, C), timesteps t (N,), conditions c (N, D) -> (N, 2C) [eps | variance]."""

    def __init__(self, in_channels: int, model_channels: int, out_channels: int, z_channels: int,
                 num_res_blocks: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.time_embed = TimestepEmbedder(model_channels)
        self.cond_embed = nn.Linear(z_channels, model_channels)
        self.input_proj = nn.Linear(in_channels, model_channels)
        self.res_blocks = nn.ModuleList(ResBlock(model_channels) for _ in range(num_res_blocks))
        self.final_layer = FinalLayer(model_channels, out_channels)

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        x = self.input_proj(x)
        y = self.time_embed(t) + self.cond_embed(c)
        for block in self.res_blocks:
            x = block(x, y)
        return self.final_layer(x, y)


class DiffLoss(nn.Module):
    """The diffusion head with its sampler: ``net`` (official name) and a :class:`SpacedDDPM` of ``num_steps``."""

    def __init__(self, target_channels: int, z_channels: int, depth: int, width: int, num_steps: int) -> None:
        super().__init__()
        self.in_channels = target_channels
        self.net = SimpleMLPAdaLN(target_channels, width, 2 * target_channels, z_channels, depth)
        self.gen_diffusion = SpacedDDPM(num_steps)

    def sample(self, z: torch.Tensor, noise: NoiseFn, temperature: float,
               cfg: float | torch.Tensor | None) -> torch.Tensor:
        """Token latents (M, C) for conditions z: (M, D), or (2M, D) = [conditional; unconditional] under CFG.

        ``noise(factor)`` returns (M, C) standard normals; ``factor`` is how many rows per token the official
        sampler draws (2 for the per-step noise under CFG, whose unconditional half it discards)."""
        guided = cfg is not None
        x = noise(1)
        for step in reversed(range(self.gen_diffusion.num_steps)):
            t = torch.full((len(z),), self.gen_diffusion.timestep_map[step], dtype=torch.long, device=z.device)
            out = self.guided(x, t, z, cfg) if guided else self.net(x, t, z)
            x = self.gen_diffusion.step(x, out, step, noise(2 if guided else 1), temperature)
        return x

    def guided(self, x: torch.Tensor, t: torch.Tensor, z: torch.Tensor, cfg: float | torch.Tensor) -> torch.Tensor:
        """The network under CFG: x (M, C), t (2M,), z (2M, D) = [conditional; unconditional] ->
        (M, 2C) [eps_u + cfg (eps_c - eps_u) | the conditional rows' variance values]."""
        cond, uncond = self.net(torch.cat([x, x]), t, z).chunk(2)
        eps_c, eps_u = cond[:, :self.in_channels], uncond[:, :self.in_channels]
        return torch.cat([eps_u + cfg * (eps_c - eps_u), cond[:, self.in_channels:]], dim=1)


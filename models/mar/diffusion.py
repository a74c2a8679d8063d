"""MAR's DDPM sampler for the diffusion head (LTH14/mar ``diffusion/``: IDDPM's ``GaussianDiffusion`` with the
cosine schedule over 1000 steps, respaced to ``num_steps``, epsilon prediction and learned-range variance).

Written out rather than taken from diffusers' ``DDPMScheduler``: that scheduler spaces timesteps differently
from IDDPM's ``space_timesteps``, recomputes no betas for the kept steps, and keeps its tables in float32;
reproducing the official samples needs IDDPM's float64 tables, cast to float32 per step as the official code does.
"""

from __future__ import annotations

import math

import numpy as np
import torch

TRAIN_STEPS = 1000


def space_timesteps(num_timesteps: int, num_steps: int) -> list[int]:
    """The kept timesteps of IDDPM's ``space_timesteps(num_timesteps, str(num_steps))`` (one section), ascending.

    The stride is accumulated in floating point and rounded half to even, as officially."""
    if not 1 <= num_steps <= num_timesteps:
        raise ValueError(f"cannot divide {num_timesteps} steps into {num_steps}")
    stride = 1 if num_steps <= 1 else (num_timesteps - 1) / (num_steps - 1)
    taken, cur = [], 0.0
    for _ in range(num_steps):
        taken.append(round(cur))
        cur += stride
    return sorted(set(taken))


def cosine_betas(num_timesteps: int = TRAIN_STEPS, max_beta: float = 0.999) -> np.ndarray:
    """Nichol & Dhariwal's cosine schedule: betas from alpha_bar(t) = cos((t + 0.008) / 1.008 * pi / 2)^2."""
    def alpha_bar(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
    return np.array([min(1 - alpha_bar((i + 1) / num_timesteps) / alpha_bar(i / num_timesteps), max_beta)
                     for i in range(num_timesteps)])


class SpacedDDPM:
    """Ancestral DDPM sampling with ``num_steps`` respaced steps (tables in float64, as officially).

    ``timestep_map[i]`` is the training timestep the network sees at sampling step i."""

    def __init__(self, num_steps: int) -> None:
        full_alphas_cumprod = np.cumprod(1.0 - cosine_betas())
        self.timestep_map = space_timesteps(TRAIN_STEPS, num_steps)
        kept = full_alphas_cumprod[self.timestep_map]
        betas = 1 - kept / np.append(1.0, kept[:-1])
        alphas_cumprod = np.cumprod(1.0 - betas)
        prev = np.append(1.0, alphas_cumprod[:-1])
        posterior_variance = betas * (1.0 - prev) / (1.0 - alphas_cumprod)
        self.num_steps = len(betas)
        self._float32: dict[tuple[str, torch.device], torch.Tensor] = {}
        self.tables = {
            "sqrt_recip_alphas_cumprod": np.sqrt(1.0 / alphas_cumprod),
            "sqrt_recipm1_alphas_cumprod": np.sqrt(1.0 / alphas_cumprod - 1),
            "posterior_mean_coef1": betas * np.sqrt(prev) / (1.0 - alphas_cumprod),
            "posterior_mean_coef2": (1.0 - prev) * np.sqrt(1.0 - betas) / (1.0 - alphas_cumprod),
            "min_log": np.log(np.append(posterior_variance[1], posterior_variance[1:])),
            "max_log": np.log(betas),
        }

    def coef(self, name: str, step: int, like: torch.Tensor) -> torch.Tensor:
        """Table ``name`` at ``step`` as a float32 scalar tensor on ``like``'s device (the official cast)."""
        key = (name, like.device)
        if key not in self._float32:
            self._float32[key] = torch.from_numpy(self.tables[name]).float().to(like.device)
        return self._float32[key][step]

    def step(self, x: torch.Tensor, model_output: torch.Tensor, step: int, noise: torch.Tensor,
             temperature: float) -> torch.Tensor:
        """x_t (M, C) and the network's (M, 2C) output [eps | variance values] at sampling ``step`` -> x_{t-1}."""
        eps, var_values = model_output.split(x.shape[1], dim=1)
        frac = (var_values + 1) / 2
        log_variance = frac * self.coef("max_log", step, x) + (1 - frac) * self.coef("min_log", step, x)
        x0 = (self.coef("sqrt_recip_alphas_cumprod", step, x) * x
              - self.coef("sqrt_recipm1_alphas_cumprod", step, x) * eps)
        mean = self.coef("posterior_mean_coef1", step, x) * x0 + self.coef("posterior_mean_coef2", step, x) * x
        nonzero = float(step != 0)
        return mean + nonzero * torch.exp(0.5 * log_variance) * noise * temperature

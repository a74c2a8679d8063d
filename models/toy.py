"""A tiny built-in generator that honours the generator contract, for testing evaluators end to end.

It is a small class-conditional transformer with random (seeded) weights: class-embedding prefix
tokens, ``steps`` residual refinement steps over per-sample noise tokens, and a linear patch decoder.
Its images mean nothing; they are deterministic, cheap, and depend only on (label, seed).
With ``cfg`` it uses classifier-free guidance: an extra null-class embedding, and every step runs the
denoiser on the conditional and unconditional rows together (the batch doubles).
With ``conditioning="text"`` it takes prompts instead, each hashed to one of ``num_classes``
condition embeddings (a stand-in for a text-to-image model in GenEval and CLIP-score tests).
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import torch
from torch import nn

from lina_bench.api.errors import LinaBenchError
from lina_bench.api.generator import CostStage, Generator, GeneratorInfo, to_uint8
from lina_bench.models import attention

DTYPES = {"float32": torch.float32, "float64": torch.float64}


class ToyBlock(nn.Module):
    """Pre-norm transformer block around any attention variant."""

    def __init__(self, attn: nn.Module, dim: int) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), attn
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ToyDenoiser(nn.Module):
    """One refinement step: (B, h*w, C) image tokens and (B,) labels -> (B, h*w, C) update."""

    def __init__(self, variant: str, variant_options: dict, dim: int, num_heads: int, depth: int,
                 grid: tuple[int, int], prefix: int, num_classes: int) -> None:
        super().__init__()
        self.prefix, self.dim = prefix, dim
        self.class_embed = nn.Embedding(num_classes, prefix * dim)
        self.blocks = nn.ModuleList(
            ToyBlock(attention.build(variant, dim=dim, num_heads=num_heads, grid=grid, prefix=prefix,
                                     **variant_options), dim)
            for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cond = self.class_embed(labels).view(len(labels), self.prefix, self.dim)
        x = torch.cat([cond, tokens], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.norm(x[:, self.prefix:])


class ToyGenerator(Generator):
    """Tiny random-init class-conditional generator (any attention variant), for tests and smoke runs."""

    def __init__(self, attention: str = "softmax", attention_options: dict | None = None, dim: int = 32,
                 num_heads: int = 2, depth: int = 2, grid: tuple[int, int] = (8, 8), patch: int = 4,
                 prefix: int = 4, num_classes: int = 10, steps: int = 4, weight_seed: int = 0,
                 dtype: str = "float64", conditioning: str = "class", cfg: float | None = None) -> None:
        super().__init__()
        if dtype not in DTYPES:
            raise LinaBenchError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        if conditioning not in ("class", "text"):
            raise LinaBenchError(f"conditioning must be 'class' or 'text', got {conditioning!r}")
        self.conditioning = conditioning
        if steps < 1 or patch < 1 or num_classes < 1:
            raise LinaBenchError("steps, patch and num_classes must be >= 1")
        self.variant, self.grid, self.patch = attention, tuple(grid), patch
        self.num_classes, self.steps, self.dim, self.cfg = num_classes, steps, dim, cfg
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(weight_seed)
            self.denoiser = ToyDenoiser(attention, attention_options or {}, dim, num_heads, depth, self.grid,
                                        prefix, num_classes + (cfg is not None))  # + the null class under CFG
            self.decoder = nn.Linear(dim, 3 * patch * patch)
        self.to(DTYPES[dtype])

    @property
    def dtype(self) -> torch.dtype:
        return self.decoder.weight.dtype

    def info(self) -> GeneratorInfo:
        h, w = self.grid
        return GeneratorInfo(family="toy", resolution=(h * self.patch, w * self.patch), conditioning=self.conditioning,
                             steps=self.steps, num_classes=self.num_classes if self.conditioning == "class" else None,
                             guidance=self.cfg, attention=self.variant)

    def _labels(self, conditions: Sequence[int] | Sequence[str]) -> list[int]:
        if self.conditioning == "class":
            return list(conditions)
        return [int.from_bytes(hashlib.sha256(c.encode()).digest()[:4], "little") % self.num_classes
                for c in conditions]

    def _noise(self, seeds: Sequence[int]) -> torch.Tensor:
        n = self.grid[0] * self.grid[1]
        return torch.stack([torch.randn(n, self.dim, generator=torch.Generator().manual_seed(int(s)),
                                        dtype=self.dtype) for s in seeds])

    def _update(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """One denoiser step on (B, h*w, C) tokens; under CFG on 2B rows (labels, then the null class)."""
        if self.cfg is None:
            return self.denoiser(x, labels)
        null = torch.full_like(labels, self.num_classes)
        cond, uncond = self.denoiser(torch.cat([x, x]), torch.cat([labels, null])).chunk(2)
        return uncond + self.cfg * (cond - uncond)

    @torch.no_grad()
    def sample(self, conditions: Sequence[int] | Sequence[str], seeds: Sequence[int]) -> torch.Tensor:
        self.check_conditions(conditions, seeds)
        device = self.decoder.weight.device
        labels = torch.tensor(self._labels(conditions), device=device, dtype=torch.long)
        x = self._noise(seeds).to(device)
        for _ in range(self.steps):
            x = x + self._update(x, labels) / self.steps
        b, (h, w), p = len(seeds), self.grid, self.patch
        patches = torch.sigmoid(self.decoder(x)).view(b, h, w, 3, p, p)
        images = patches.permute(0, 3, 1, 4, 2, 5).reshape(b, 3, h * p, w * p)
        return to_uint8(images).cpu()

    def cost_probes(self, batch_size: int = 1) -> list[CostStage]:
        """The denoiser once per step (twice the rows under CFG), the patch decoder once per image."""
        n = self.grid[0] * self.grid[1]
        device = self.decoder.weight.device
        tokens = torch.zeros(batch_size, n, self.dim, dtype=self.dtype, device=device)
        labels = torch.zeros(batch_size, dtype=torch.long, device=device)
        return [CostStage("denoiser", self.denoiser, (tokens, labels), self.steps, self.cfg is not None),
                CostStage("decoder", self.decoder, (tokens,), 1)]

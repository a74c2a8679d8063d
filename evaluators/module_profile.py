"""Parameter count and forward latency of one attention variant at one size."""

from __future__ import annotations

from typing import Any

import torch

from lina_bench.errors import JobFailed
from lina_bench.evaluators.base import AttentionTarget, EvalContext, Evaluator
from lina_bench.evaluators.timing import median_ms
from lina_bench.schema import Metric


class ModuleProfile(Evaluator):
    """Builds an attention variant, counts its parameters and times its forward pass (median)."""

    scope = "attention"

    def __init__(self, dim: int = 64, num_heads: int = 4, grid: tuple[int, int] = (8, 8), prefix: int = 16,
                 batch: int = 2, repeats: int = 5) -> None:
        self.dim, self.num_heads, self.grid = dim, num_heads, tuple(grid)
        self.prefix, self.batch, self.repeats = prefix, batch, repeats

    def protocol(self) -> dict[str, Any]:
        return {"dim": self.dim, "num_heads": self.num_heads, "grid": list(self.grid), "prefix": self.prefix,
                "batch": self.batch, "repeats": self.repeats, "dtype": "float32", "timing": "median, 1 warm-up"}

    @torch.no_grad()
    def evaluate(self, target: AttentionTarget, context: EvalContext) -> list[Metric]:
        module = target.build(self.dim, self.num_heads, self.grid, self.prefix).to(context.device).eval()
        tokens = self.prefix + self.grid[0] * self.grid[1]
        gen = torch.Generator().manual_seed(context.seed)
        x = torch.randn(self.batch, tokens, self.dim, generator=gen).to(context.device)
        out = module(x)
        if out.shape != x.shape or not torch.isfinite(out).all():
            raise JobFailed(f"{target.name}: forward gave shape {tuple(out.shape)}, "
                            f"finite={bool(torch.isfinite(out).all())}")
        ms = median_ms(lambda: module(x), context.device, self.repeats)
        params = sum(p.numel() for p in module.parameters())
        return [Metric("params", float(params), "params"),
                Metric("forward_ms", ms, "ms", higher_is_better=False),
                Metric("tokens_per_s", self.batch * tokens / (ms / 1e3), "tokens/s", higher_is_better=True)]

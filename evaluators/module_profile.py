"""Parameter count and forward latency of one attention variant at one size."""

from __future__ import annotations

from typing import Any

import torch

from lina_bench.api.errors import JobFailed
from lina_bench.api.schema import Metric
from lina_bench.evaluators.base import AttentionTarget, EvalContext, Evaluator, ModuleSetting
from lina_bench.evaluators.timing import median_ms


class ModuleProfile(Evaluator):
    """Builds an attention variant, counts its parameters and times its forward pass (median)."""

    scope = "attention"

    def __init__(self, dim: int = 64, num_heads: int = 4, grid: tuple[int, int] = (8, 8), prefix: int = 16,
                 batch: int = 2, repeats: int = 5) -> None:
        self.setting = ModuleSetting(dim, num_heads, grid, prefix, batch)
        self.repeats = repeats

    def protocol(self) -> dict[str, Any]:
        return {**self.setting.as_dict(), "repeats": self.repeats, "dtype": "float32",
                "timing": "median, 1 warm-up"}

    @torch.no_grad()
    def evaluate(self, target: AttentionTarget, context: EvalContext) -> list[Metric]:
        module = target.build(self.setting).to(context.device).eval()
        (x,) = self.setting.inputs(context.device, seed=context.seed)
        out = module(x)
        if out.shape != x.shape or not torch.isfinite(out).all():
            raise JobFailed(f"{target.name}: forward gave shape {tuple(out.shape)}, "
                            f"finite={bool(torch.isfinite(out).all())}")
        ms = median_ms(lambda: module(x), context.device, self.repeats)
        params = sum(p.numel() for p in module.parameters())
        return [Metric("params", float(params), "params"),
                Metric("forward_ms", ms, "ms", higher_is_better=False),
                Metric("tokens_per_s", x.shape[0] * x.shape[1] / (ms / 1e3), "tokens/s", higher_is_better=True)]

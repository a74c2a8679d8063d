"""Checks a generator's determinism contract and measures its sampling speed."""

from __future__ import annotations

import time
from typing import Any

import torch

from lina_bench.api.errors import JobFailed, LinaBenchError
from lina_bench.api.generator import Generator, placeholder_conditions, sample_seed
from lina_bench.api.schema import Metric
from lina_bench.evaluators.base import EvalContext, Evaluator


class SampleDeterminism(Evaluator):
    """Samples the same images in batches of different sizes and twice; they must be identical."""

    scope = "generator"

    def __init__(self, num_samples: int = 8, batch_sizes: tuple[int, ...] = (1, 8)) -> None:
        if num_samples < 1 or not batch_sizes or min(batch_sizes) < 1:
            raise LinaBenchError("num_samples and every batch size must be >= 1")
        self.num_samples, self.batch_sizes = num_samples, tuple(batch_sizes)

    def protocol(self) -> dict[str, Any]:
        return {"num_samples": self.num_samples, "batch_sizes": list(self.batch_sizes),
                "labels": "index % num_classes", "seeds": "sample_seed(seed, index)"}

    def _sample_all(self, generator: Generator, batch: int, seed: int) -> tuple[torch.Tensor, float]:
        conditions = placeholder_conditions(generator.info(), self.num_samples)
        seeds = [sample_seed(seed, i) for i in range(self.num_samples)]
        start = time.perf_counter()
        images = torch.cat([generator.sample(conditions[i:i + batch], seeds[i:i + batch])
                            for i in range(0, self.num_samples, batch)])
        return images, time.perf_counter() - start

    def evaluate(self, generator: Generator, context: EvalContext) -> list[Metric]:
        runs = [self._sample_all(generator, b, context.seed) for b in self.batch_sizes]
        repeat, _ = self._sample_all(generator, self.batch_sizes[0], context.seed)
        reference = runs[0][0]
        h, w = generator.info().resolution
        if reference.dtype != torch.uint8 or tuple(reference.shape) != (self.num_samples, 3, h, w):
            raise JobFailed(f"sample() returned {reference.dtype} {tuple(reference.shape)}, "
                            f"expected uint8 ({self.num_samples}, 3, {h}, {w})")
        diff = max(int((images.int() - reference.int()).abs().max()) for images, _ in runs[1:] + [(repeat, 0)])
        if diff:
            raise JobFailed(f"images differ by up to {diff}/255 between batch sizes {self.batch_sizes} "
                            "or between two identical calls: the generator breaks the determinism contract")
        best = min(seconds for _, seconds in runs)
        return [Metric("max_pixel_diff", float(diff), "1/255", higher_is_better=False),
                Metric("images_per_s", self.num_samples / best, "images/s", higher_is_better=True),
                Metric("pixel_mean", float(reference.float().mean()), "1/255")]

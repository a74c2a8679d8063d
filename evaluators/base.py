"""What an evaluator is, and what it is given."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from torch import nn

from lina_bench.models import attention
from lina_bench.schema import Metric


@dataclass
class EvalContext:
    """Run-wide settings a job gets: device, the suite's seed, and a scratch folder for artefacts."""

    device: str = "cpu"
    seed: int = 0
    work_dir: Path | None = None
    progress: bool = False


@dataclass
class AttentionTarget:
    """An attention variant to be built at the sizes the evaluator chooses."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)

    def build(self, dim: int, num_heads: int, grid: tuple[int, int], prefix: int) -> nn.Module:
        return attention.build(self.name, dim=dim, num_heads=num_heads, grid=grid, prefix=prefix, **self.options)


class Evaluator(ABC):
    """Base class of evaluators. ``scope`` says what a job hands to :meth:`evaluate`:

    * ``"attention"`` -- an :class:`AttentionTarget`, one job per attention variant of the suite;
    * ``"generator"`` -- a built :class:`lina_bench.models.generator.Generator`, one job per
      generator (and per variant, for generator entries that list variants).

    Options come from the suite and are validated against ``__init__``'s signature.
    """

    scope: ClassVar[str]

    @abstractmethod
    def protocol(self) -> dict[str, Any]:
        """Everything that must match for two results of this evaluator to be comparable."""

    @abstractmethod
    def evaluate(self, target: Any, context: EvalContext) -> list[Metric]:
        """Measure ``target``; raise on failure (the runner records the job as failed)."""

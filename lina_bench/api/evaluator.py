"""What an evaluator is, what it is given and what it returns; what a target kind is."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from lina_bench.api.errors import LinaBenchError
from lina_bench.api.schema import Metric


@dataclass
class EvalContext:
    """Run-wide settings a job gets: device, the suite's seed, and a scratch folder for artefacts."""

    device: str = "cpu"
    seed: int = 0
    work_dir: Path | None = None
    progress: bool = False


@dataclass(frozen=True)
class ModuleSetting:
    """The size an attention module is measured at: width, heads, h x w grid, prefix, batch."""

    dim: int
    num_heads: int
    grid: tuple[int, int]
    prefix: int = 0
    batch: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "grid", tuple(int(g) for g in self.grid))
        if len(self.grid) != 2 or min(self.grid) < 1:
            raise LinaBenchError(f"grid must be two positive sizes (h, w), got {self.grid}")
        if self.dim < 1 or self.num_heads < 1 or self.batch < 1 or self.prefix < 0:
            raise LinaBenchError(f"dim, heads and batch must be >= 1 and prefix >= 0, got dim={self.dim}, "
                                 f"heads={self.num_heads}, batch={self.batch}, prefix={self.prefix}")
        if self.dim % self.num_heads:
            raise LinaBenchError(f"heads ({self.num_heads}) must divide the width ({self.dim})")

    @property
    def tokens(self) -> int:
        return self.prefix + self.grid[0] * self.grid[1]

    def inputs(self, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
               seed: int = 0) -> tuple[torch.Tensor]:
        """One (batch, tokens, dim) input, random (seeded) unless on the meta device."""
        shape = (self.batch, self.tokens, self.dim)
        if str(device) == "meta":
            return (torch.empty(shape, device="meta", dtype=dtype),)
        gen = torch.Generator().manual_seed(seed)
        return (torch.randn(shape, generator=gen).to(device=device, dtype=dtype),)

    def as_dict(self) -> dict[str, Any]:
        return {"dim": self.dim, "num_heads": self.num_heads, "grid": list(self.grid), "prefix": self.prefix,
                "batch": self.batch, "tokens": self.tokens}


@dataclass
class Measurement:
    """What an evaluation returns: its metrics and the protocol it learned while measuring (weights
    and reference sha256, sample counts, conventions), which replaces :meth:`Evaluator.protocol` in
    the stored rows, so two rows are comparable exactly when metric and this protocol are equal."""

    metrics: list[Metric]
    protocol: dict[str, Any]
    details: Any = field(default=None, compare=False)  # a command's fuller report (printed, not stored)


class Evaluator(ABC):
    """Base class of evaluators. ``targets`` names the registered target kinds (see
    :mod:`lina_bench.evaluators.targets`) a job may hand to :meth:`evaluate`:

    * ``"attention"`` -- an :class:`AttentionTarget`, one job per attention variant of the suite;
    * ``"generator"`` -- a built :class:`lina_bench.api.generator.Generator`, one job per
      generator (and per variant, for generator entries that list variants);
    * ``"samples"`` -- a :class:`lina_bench.evaluators.targets.Samples` folder or npz made elsewhere.

    ``scope`` is the first of them (kept for plugins that read it). Options come from the suite and
    are validated against ``__init__``'s signature.
    """

    scope: ClassVar[str]
    targets: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("targets") and "scope" in cls.__dict__:
            cls.targets = (cls.scope,)
        elif cls.__dict__.get("targets") and "scope" not in cls.__dict__:
            cls.scope = cls.targets[0]

    @abstractmethod
    def protocol(self) -> dict[str, Any]:
        """What must match for two results of this evaluator to be comparable, as far as it is known
        before measuring (stored when :meth:`evaluate` returns bare metrics)."""

    @abstractmethod
    def evaluate(self, target: Any, context: EvalContext) -> Measurement | list[Metric]:
        """Measure ``target``; raise on failure (the runner records the job as failed). Return a
        :class:`Measurement` with the learned protocol, or bare metrics (then :meth:`protocol` is stored)."""


class TargetKind(ABC):
    """A registered kind of target (``lina_bench.api.registry.targets``): which suite section lists its
    entries, how a job's target is built, and its part of the stored protocol."""

    name: ClassVar[str]  # the kind, as evaluators name it in ``targets``
    section: ClassVar[str]  # the suite key that lists its entries
    noun: ClassVar[str]  # for messages: "generators"
    protocol_key: ClassVar[str]  # the key of its part in a row's protocol

    @abstractmethod
    def entries(self, suite: Any) -> list[tuple[str, dict[str, Any]]]:
        """(job label, job fields such as ``generator``/``variant``/``samples``) for each entry of ``suite``."""

    def job_config(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Keys a job's config adds for its target beyond the entries (what identifies it); none by default."""
        return {}

    @abstractmethod
    def build(self, job: Any, device: str) -> Any:
        """The target a job hands to :meth:`Evaluator.evaluate`."""

    @abstractmethod
    def protocol(self, target: Any) -> dict[str, Any]:
        """What about the target makes two results comparable."""

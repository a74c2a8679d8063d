"""The evaluator contract (:mod:`lina_bench.api.evaluator`, re-exported here) and the attention target
evaluators build at the sizes they choose."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from lina_bench.api.evaluator import EvalContext, Evaluator, Measurement, ModuleSetting, TargetKind
from lina_bench.models import attention

__all__ = ["AttentionTarget", "EvalContext", "Evaluator", "Measurement", "ModuleSetting", "TargetKind"]


@dataclass
class AttentionTarget:
    """An attention variant to be built at the sizes the evaluator chooses."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)

    def build(self, setting: ModuleSetting) -> nn.Module:
        return attention.build(self.name, dim=setting.dim, num_heads=setting.num_heads, grid=setting.grid,
                               prefix=setting.prefix, **self.options)

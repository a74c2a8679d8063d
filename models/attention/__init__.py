"""The attention-variant zoo.

Every variant is built the same way and maps (B, N, C) -> (B, N, C), N = prefix + h*w (prefix
condition tokens first, then h x w image tokens in row-major order)::

    from lina_bench.models import attention
    module = attention.build("lina", dim=768, num_heads=12, grid=(16, 16), prefix=64)

Variants keep the parameter names of the official modules they reproduce, so official weights
load with ``strict=True``. ``names()`` lists the registered variants (plugins included).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from lina_bench.api import registry
from lina_bench.api.attention import GEOMETRY
from lina_bench.api.errors import LinaBenchError
from lina_bench.models.attention.gate import adapt_state_dict, resample_gate


def build(name: str, *, dim: int, num_heads: int, grid: tuple[int, int], prefix: int = 0,
          **options: Any) -> nn.Module:
    """Build attention variant ``name`` for width ``dim``, ``num_heads`` heads, an h x w ``grid``
    of image tokens after ``prefix`` condition tokens. ``options`` are the variant's own."""
    problems = registry.attention.check_options(name, options, reserved=GEOMETRY)
    if problems:
        raise LinaBenchError("; ".join(problems))
    return registry.attention.get(name)(dim=dim, num_heads=num_heads, grid=tuple(grid), prefix=prefix,
                                        **options)


def names() -> list[str]:
    """Registered attention variants."""
    return registry.attention.names()


__all__ = ["adapt_state_dict", "build", "names", "resample_gate"]

"""Attention kernels. Each op has a PyTorch reference (``naive.py``) beside its faster kernels.

References exported here:

* :func:`lina_attention_naive` -- LINA's bidirectional, division-normalised linear attention.
* :func:`decayed_linear_attention_chunked` / :func:`decayed_linear_attention_step` -- causal linear
  attention with a per-token log-decay (chunked parallel form and the one-token recurrent form).
"""

from lina_bench.kernels.decayed_attn.naive import (
    decayed_linear_attention_chunked,
    decayed_linear_attention_step,
)
from lina_bench.kernels.lina_attn.naive import lina_attention_naive

__all__ = [
    "decayed_linear_attention_chunked",
    "decayed_linear_attention_step",
    "lina_attention_naive",
]

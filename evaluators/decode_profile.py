"""Decoding memory and latency per generated token of a token-by-token (raster-order AR) generator.

For each position p of the image's token sequence it builds the generator's decoding state as sampling
has it when token p is fed (the KV cache of positions 0..p-1 for softmax attention, the recurrent state
for decayed linear attention) and reports, for one decoding step of ``batch`` images (twice the rows
under classifier-free guidance, as sampling runs them):

* ``cache_bytes@<p>``: the bytes all layers hold after that step (KV slots 0..p, or the states);
* ``ms_per_token@<p>``: the step's median latency (one token for each of the ``batch`` images).

The generator implements the optional hook :meth:`Generator.decode_step(batch, position)
<lina_bench.api.generator.Generator.decode_step>`: a module holding caches filled up to ``position``, whose
``inputs`` it is called with, repeatably, and whose ``cache_bytes()`` gives the memory (``llamagen`` does, for
``softmax`` and ``lasad``); the base class's default raises a clear error for other families. Positions default
to the first, quarter, half, three-quarter and last decoding positions of the generator's sequence.
:func:`decode_call` is the measured call, shared with ``benchmarks/bench_generators.py``.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from lina_bench.api.errors import LinaBenchError
from lina_bench.api.generator import Generator, GeneratorInfo
from lina_bench.api.schema import Metric
from lina_bench.evaluators.base import EvalContext, Evaluator, Measurement
from lina_bench.evaluators.timing import time_calls


def default_positions(tokens: int) -> list[int]:
    """1, and the quarter, half, three-quarter and last positions of a ``tokens``-long sequence."""
    return sorted({p for p in (1, tokens // 4, tokens // 2, 3 * tokens // 4, tokens - 1) if 1 <= p < tokens})


def decode_rows(info: GeneratorInfo, batch: int) -> int:
    """Rows one decoding step runs for ``batch`` images: twice as many under classifier-free guidance."""
    return batch * (2 if info.guidance is not None else 1)


def decode_call(generator: Generator, batch: int, position: int) -> tuple[Callable[[], object], int]:
    """The measured decoding step of ``batch`` images at ``position`` (a repeatable call) and the bytes all
    layers hold after it."""
    step = generator.decode_step(decode_rows(generator.info(), batch), position)
    return (lambda: step(*step.inputs)), int(step.cache_bytes())


class DecodeProfile(Evaluator):
    """Per generated token: decoding memory (KV cache or recurrent state) and latency at chosen positions."""

    scope = "generator"

    def __init__(self, positions: list[int] | None = None, batch: int = 1, repeats: int = 5,
                 warmup: int = 1) -> None:
        if batch < 1 or repeats < 1 or warmup < 0:
            raise LinaBenchError("batch and repeats must be >= 1, warmup >= 0")
        if positions is not None and (not positions or any(not isinstance(p, int) or p < 1 for p in positions)):
            raise LinaBenchError(f"positions must be a non-empty list of ints >= 1, got {positions!r}")
        self.positions = None if positions is None else sorted(set(positions))
        self.batch, self.repeats, self.warmup = batch, repeats, warmup

    def protocol(self) -> dict[str, Any]:
        return {"positions": self.positions or "default (1, 1/4, 1/2, 3/4, last)", "batch": self.batch,
                "repeats": self.repeats, "warmup": self.warmup, "statistic": "median",
                "cache_bytes": "all layers after the step at the position: KV slots 0..p, or recurrent states"}

    @torch.no_grad()
    def evaluate(self, generator: Generator, context: EvalContext) -> Measurement:
        info = generator.info()
        if type(generator).decode_step is Generator.decode_step:  # the contract's default: raises its clear error
            generator.decode_step(self.batch, 1)
        positions = self.positions or default_positions(info.steps)
        beyond = [p for p in positions if p >= info.steps]
        if beyond:
            raise LinaBenchError(f"positions {beyond} are beyond the last decoding position {info.steps - 1} "
                                 f"of this generator ({info.steps} tokens per image)")
        metrics = []
        for p in positions:
            call, cache_bytes = decode_call(generator, self.batch, p)
            timing = time_calls(call, context.device, self.repeats, self.warmup)
            metrics += [Metric(f"cache_bytes@{p}", float(cache_bytes), "bytes", higher_is_better=False),
                        Metric(f"ms_per_token@{p}", timing.median_ms, "ms", higher_is_better=False)]
        protocol = {**self.protocol(), "positions": positions, "rows": decode_rows(info, self.batch),
                    "attention": info.attention}
        return Measurement(metrics, protocol)

"""Wall-clock timing shared by evaluators: repeated calls after warm-up, with their spread."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class Timing:
    """Latencies of ``repeats`` calls, in milliseconds."""

    samples_ms: tuple[float, ...]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p25_ms(self) -> float:
        return _quantile(self.samples_ms, 0.25)

    @property
    def p75_ms(self) -> float:
        return _quantile(self.samples_ms, 0.75)


def _quantile(values: tuple[float, ...], q: float) -> float:
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def time_calls(fn: Callable[[], object], device: str, repeats: int, warmup: int = 1) -> Timing:
    """Time ``fn()``: CUDA events on GPU, ``time.perf_counter`` on CPU."""
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    for _ in range(warmup):
        fn()
    samples = []
    if device.startswith("cuda"):
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            samples.append(start.elapsed_time(end))
    else:
        for _ in range(repeats):
            start_s = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - start_s) * 1e3)
    return Timing(tuple(samples))


def median_ms(fn: Callable[[], object], device: str, repeats: int, warmup: int = 1) -> float:
    """Median latency of ``fn()`` in milliseconds."""
    return time_calls(fn, device, repeats, warmup).median_ms

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


def _one_call_ms(fn: Callable[[], object], device: str) -> float:
    """One timed call: CUDA events on GPU, ``time.perf_counter`` on CPU."""
    if device.startswith("cuda"):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(end)
    start_s = time.perf_counter()
    fn()
    return (time.perf_counter() - start_s) * 1e3


def time_calls(fn: Callable[[], object], device: str, repeats: int, warmup: int = 1) -> Timing:
    """Time ``fn()`` ``repeats`` times after ``warmup`` untimed calls."""
    return time_interleaved({"fn": fn}, device, repeats, warmup)["fn"]


def time_interleaved(fns: dict[str, Callable[[], object]], device: str, repeats: int, warmup: int = 1,
                     one_call_ms: Callable[[Callable[[], object], str], float] = _one_call_ms) -> dict[str, Timing]:
    """Time several functions side by side: each repeat calls every function once in turn (A B C A B C
    ...), after the same warm-up, so a load change on a shared machine hits all of them alike."""
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            samples[name].append(one_call_ms(fn, device))
    return {name: Timing(tuple(values)) for name, values in samples.items()}


def ratio_spread(numerator: Timing, denominator: Timing) -> tuple[float, float, float]:
    """(median, p25, p75) of the per-repeat latency ratios of two interleaved timings."""
    ratios = tuple(a / b for a, b in zip(numerator.samples_ms, denominator.samples_ms, strict=True))
    return statistics.median(ratios), _quantile(ratios, 0.25), _quantile(ratios, 0.75)


def median_ms(fn: Callable[[], object], device: str, repeats: int, warmup: int = 1) -> float:
    """Median latency of ``fn()`` in milliseconds."""
    return time_calls(fn, device, repeats, warmup).median_ms

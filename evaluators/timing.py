"""Wall-clock timing shared by evaluators: median of repeats after warm-up."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


def median_ms(fn: Callable[[], object], device: str, repeats: int, warmup: int = 1) -> float:
    """Median latency of ``fn()`` in milliseconds (CUDA-synchronised on GPU)."""
    cuda = device.startswith("cuda")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)

"""Latency, throughput and peak memory of attention variants and of generators' sampling.

Latency: median and interquartile range of ``repeats`` calls after ``warmup`` calls (CUDA events
on GPU, ``perf_counter`` on CPU), measured in this process. A generator is timed as whole
``sample()`` calls, and each of its cost stages as probe calls of the stage's module.

Peak memory of one call, after a warm-up call: on GPU, the CUDA allocator's peak over what was
allocated before the call. On CPU, torch keeps no allocator statistics, so we measure the process:
a fresh subprocess builds the same module, sets glibc's allocator to return every block of 64 KiB
or more to the system when freed (``mallopt``: ``M_MMAP_THRESHOLD``, ``M_TRIM_THRESHOLD``), resets
the peak-RSS mark (Linux ``/proc/self/clear_refs``) and reports the peak resident set (``VmHWM``)
minus the resident set before the call. Resident memory sees every allocation torch makes; the
allocator settings keep freed tensors from hiding in malloc's cache. Linux with glibc only.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, Callable

import torch

from lina_bench.api.errors import JobFailed, LinaBenchError
from lina_bench.api.generator import CostStage, Generator
from lina_bench.api.schema import Metric
from lina_bench.evaluators.base import AttentionTarget, EvalContext, Evaluator, Measurement, ModuleSetting
from lina_bench.evaluators.timing import Timing, ratio_spread, time_calls, time_interleaved

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
CPU_MEMORY_METHOD = "peak RSS (VmHWM) growth during one call, fresh subprocess, malloc returns blocks >= 64 KiB"
CUDA_MEMORY_METHOD = "torch.cuda.max_memory_allocated during one call, minus allocated before"


@dataclass
class SpeedResult:
    """One measurement. ``unit`` is what ``per_call_ms`` times: a module call or an image."""

    median_ms: float
    p25_ms: float
    p75_ms: float
    repeats: int
    peak_mem_bytes: int
    memory_method: str
    work_per_call: int  # tokens (modules) or images (generators) processed by one call
    device: str
    dtype: str

    @property
    def per_second(self) -> float:
        return self.work_per_call / (self.median_ms / 1e3)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise LinaBenchError("/proc/self/status has no VmHWM: CPU peak memory needs Linux")


def cpu_peak_memory(spec: dict[str, Any]) -> int:
    """Run in the fresh subprocess: peak resident-memory growth of one call (see module docs)."""
    libc = ctypes.CDLL("libc.so.6")
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 64 * 1024)
    libc.mallopt(m_trim_threshold, 0)
    fn, _ = _call(spec)
    fn()
    return rss_peak_growth(fn)


def rss_peak_growth(fn: Callable[[], object]) -> int:
    """Peak resident-memory growth of one call of ``fn`` in this process, in bytes (the peak-RSS mark
    is reset to the current resident set first; Linux)."""
    gc.collect()
    before = _rss_bytes()
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # reset the peak-RSS mark to the current RSS
    fn()
    return max(_peak_rss_bytes() - before, 0)


def _cuda_peak_memory(fn: Callable[[], object], device: str) -> int:
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


def _cpu_peak_memory_isolated(spec: dict[str, Any]) -> int:
    proc = subprocess.run([sys.executable, "-m", "lina_bench.evaluators.speed"], input=json.dumps(spec),
                          capture_output=True, text=True)
    if proc.returncode:
        lines = proc.stderr.strip().splitlines()
        raise JobFailed(f"memory measurement failed: {lines[-1] if lines else 'no output'}")
    return int(proc.stdout.strip().splitlines()[-1])


def _call(spec: dict[str, Any]):
    """Build what ``spec`` names and return (one-call function, work per call)."""
    device, dtype = spec["device"], DTYPES[spec["dtype"]]
    if spec["kind"] == "module":
        setting = ModuleSetting(**spec["setting"])
        module = AttentionTarget(spec["variant"], spec["options"]).build(setting).to(device=device, dtype=dtype)
        (x,) = setting.inputs(device, dtype)
        if not spec["backward"]:
            module.eval()

            def forward():
                with torch.no_grad():
                    return module(x)
            return forward, setting.batch * setting.tokens
        x.requires_grad_(True)
        grad = torch.ones_like(x)

        def forward_backward():
            x.grad = None
            module.zero_grad(set_to_none=True)
            module(x).backward(grad)
        return forward_backward, setting.batch * setting.tokens
    from lina_bench.api.generator import build_generator, placeholder_conditions, sample_seed

    generator = build_generator(spec["generator"], spec["options"], spec.get("checkpoint")).to(device)
    batch = spec["batch"]
    conditions = placeholder_conditions(generator.info(), batch)
    seeds = [sample_seed(0, i) for i in range(batch)]
    return (lambda: generator.sample(conditions, seeds)), batch


def measure(spec: dict[str, Any], baseline: dict[str, Any] | None = None
            ) -> SpeedResult | tuple[SpeedResult, tuple[float, float, float]]:
    """Latency here; peak memory here on GPU, in a fresh subprocess on CPU. With a ``baseline`` spec,
    both are timed side by side (A B A B ...) and the result comes with the latency ratio to the
    baseline: (median, p25, p75) of the per-repeat ratios."""
    if spec["dtype"] not in DTYPES:
        raise LinaBenchError(f"dtype must be one of {', '.join(DTYPES)}, got {spec['dtype']!r}")
    device = spec["device"]
    fn, work = _call(spec)
    fn()  # warm-up: one-time allocations (thread pools, autograd engine) are not the call's memory
    if device.startswith("cuda"):
        peak, method = _cuda_peak_memory(fn, device), CUDA_MEMORY_METHOD
    else:
        peak, method = _cpu_peak_memory_isolated(spec), CPU_MEMORY_METHOD
    fns = {"target": fn} if baseline is None else {"target": fn, "baseline": _call(baseline)[0]}
    timings = time_interleaved(fns, device, spec["repeats"], spec["warmup"])
    timing: Timing = timings["target"]
    result = SpeedResult(timing.median_ms, timing.p25_ms, timing.p75_ms, spec["repeats"], peak, method, work,
                         device, spec["dtype"])
    return result if baseline is None else (result, ratio_spread(timing, timings["baseline"]))


def module_spec(target: AttentionTarget, setting: ModuleSetting, device: str = "cpu", dtype: str = "float32",
                backward: bool = False, repeats: int = 10, warmup: int = 2) -> dict[str, Any]:
    setting_dict = {k: v for k, v in setting.as_dict().items() if k != "tokens"}
    return {"kind": "module", "variant": target.name, "options": target.options, "setting": setting_dict,
            "device": device, "dtype": dtype, "backward": backward, "repeats": repeats, "warmup": warmup}


def generator_spec(name: str, options: dict[str, Any], checkpoint: str | None, device: str = "cpu",
                   batch: int = 1, repeats: int = 3, warmup: int = 1) -> dict[str, Any]:
    return {"kind": "generator", "generator": name, "options": options, "checkpoint": checkpoint,
            "device": device, "dtype": "float32", "batch": batch, "repeats": repeats, "warmup": warmup}


class Speed(Evaluator):
    """Latency (median, IQR), tokens/s and peak memory of an attention variant at one size."""

    scope = "attention"

    def __init__(self, dim: int, num_heads: int, grid: tuple[int, int], prefix: int = 0, batch: int = 1,
                 dtype: str = "float32", backward: bool = False, repeats: int = 10, warmup: int = 2,
                 baseline: str | None = None) -> None:
        if dtype not in DTYPES:
            raise LinaBenchError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        if repeats < 1 or warmup < 0:
            raise LinaBenchError("repeats must be >= 1 and warmup >= 0")
        self.setting = ModuleSetting(dim, num_heads, grid, prefix, batch)
        self.dtype, self.backward, self.repeats, self.warmup = dtype, backward, repeats, warmup
        self.baseline = baseline  # a variant timed side by side with each target, for latency ratios

    def protocol(self) -> dict[str, Any]:
        side_by_side = {} if self.baseline is None else {"baseline": self.baseline, "timing": "interleaved"}
        return {**self.setting.as_dict(), "dtype": self.dtype, "backward": self.backward, "repeats": self.repeats,
                "warmup": self.warmup, "statistic": "median, IQR", "torch_threads": torch.get_num_threads(),
                **side_by_side}

    def evaluate(self, target: AttentionTarget, context: EvalContext) -> Measurement:
        spec = module_spec(target, self.setting, context.device, self.dtype, self.backward, self.repeats,
                           self.warmup)
        if self.baseline is None:
            result = measure(spec)
            return Measurement(speed_metrics(result, "tokens/s"), self.protocol(), details=result)
        baseline = module_spec(AttentionTarget(self.baseline), self.setting, context.device, self.dtype,
                               self.backward, self.repeats, self.warmup)
        result, (ratio, ratio_p25, ratio_p75) = measure(spec, baseline)
        ratios = [Metric("latency_ratio", ratio, "x", higher_is_better=False),
                  Metric("latency_ratio_p25", ratio_p25, "x"), Metric("latency_ratio_p75", ratio_p75, "x")]
        return Measurement(speed_metrics(result, "tokens/s") + ratios, self.protocol(), details=result)


def speed_metrics(result: SpeedResult, rate_unit: str) -> list[Metric]:
    return [Metric("latency_ms", result.median_ms, "ms", higher_is_better=False),
            Metric("latency_p25_ms", result.p25_ms, "ms", higher_is_better=False),
            Metric("latency_p75_ms", result.p75_ms, "ms", higher_is_better=False),
            Metric("throughput", result.per_second, rate_unit, higher_is_better=True),
            Metric("peak_mem_mib", result.peak_mem_bytes / 2**20, "MiB", higher_is_better=False)]


@dataclass
class StageSpeed:
    """Latency of one probe call of a cost stage on ``batch`` images (one CFG half), and the seconds
    per image it implies: median / batch x calls_per_image, x2 under CFG (an estimate: linear in the
    batch, without the work sample() does between calls)."""

    stage: CostStage
    timing: Timing
    batch: int

    @property
    def seconds_per_image(self) -> float:
        return self.timing.median_ms / 1e3 / self.batch * self.stage.batch_multiplier * self.stage.calls_per_image

    def as_json(self) -> dict[str, Any]:
        return {**self.stage.describe(), "latency_ms": self.timing.median_ms, "latency_p25_ms": self.timing.p25_ms,
                "latency_p75_ms": self.timing.p75_ms, "seconds_per_image": self.seconds_per_image}


def time_stages(generator: Generator, batch: int, device: str, repeats: int, warmup: int) -> list[StageSpeed]:
    """Time each cost stage's ``module(*inputs)`` for ``batch`` images, where the generator's weights are."""
    results = []
    for stage in generator.cost_probes(batch):
        def call(stage: CostStage = stage) -> None:
            with torch.no_grad():
                stage.module(*stage.inputs)
        results.append(StageSpeed(stage, time_calls(call, device, repeats, warmup), batch))
    return results


class ModelSpeed(Evaluator):
    """Sampling latency of a generator: seconds per image and per network step, and peak memory;
    per cost stage, the latency of one probe call (``latency_ms.<stage>``, for ``batch`` images) and
    the seconds per image it implies (``seconds_per_image.<stage>``, see :class:`StageSpeed`)."""

    scope = "generator"

    def __init__(self, batch: int = 1, repeats: int = 3, warmup: int = 1) -> None:
        if batch < 1 or repeats < 1 or warmup < 0:
            raise LinaBenchError("batch and repeats must be >= 1, warmup >= 0")
        self.batch, self.repeats, self.warmup = batch, repeats, warmup

    def protocol(self) -> dict[str, Any]:
        return {"batch": self.batch, "repeats": self.repeats, "warmup": self.warmup, "statistic": "median"}

    def evaluate(self, generator: Generator, context: EvalContext) -> Measurement:
        spec = generator.build_spec  # rebuilt in a fresh process on CPU, for the memory peak
        result = measure(generator_spec(spec.name, spec.options, spec.checkpoint, context.device,
                                                 self.batch, self.repeats, self.warmup))
        steps = generator.info().steps
        per_image_s = result.median_ms / 1e3 / self.batch
        stages = time_stages(generator, self.batch, context.device, self.repeats, self.warmup)
        per_stage = [metric for s in stages for metric in (
            Metric(f"latency_ms.{s.stage.name}", s.timing.median_ms, "ms", higher_is_better=False),
            Metric(f"seconds_per_image.{s.stage.name}", s.seconds_per_image, "s", higher_is_better=False))]
        metrics = [Metric("seconds_per_image", per_image_s, "s", higher_is_better=False),
                   Metric("seconds_per_step", per_image_s / steps, "s", higher_is_better=False),
                   Metric("images_per_s", result.per_second, "images/s", higher_is_better=True),
                   Metric("peak_mem_mib", result.peak_mem_bytes / 2**20, "MiB", higher_is_better=False), *per_stage]
        return Measurement(metrics, self.protocol(), details=(result, stages))


if __name__ == "__main__":  # the CPU memory subprocess: a JSON spec on stdin, the peak in bytes on stdout
    print(cpu_peak_memory(json.loads(sys.stdin.read())))

"""Latency statistics, CPU peak-memory measurement against a known allocation, speed CLI."""

from __future__ import annotations

import json
import multiprocessing as mp
import re

import pytest
import torch
from torch import nn

from lina_bench.api import registry
from lina_bench.evaluators.base import AttentionTarget, ModuleSetting
from lina_bench.evaluators.speed import cpu_peak_memory, module_spec
from lina_bench.evaluators.timing import Timing, ratio_spread, time_calls, time_interleaved
from lina_bench.models.attention.base import AttentionModule

from cli_helpers import run_cli, stored_rows

MIB = 2**20


def test_timing_statistics_closed_form():
    timing = Timing((5.0, 1.0, 3.0, 2.0, 4.0))
    assert (timing.median_ms, timing.p25_ms, timing.p75_ms) == (3.0, 2.0, 4.0)
    calls = []
    result = time_calls(lambda: calls.append(1), "cpu", repeats=4, warmup=3)
    assert len(calls) == 7 and len(result.samples_ms) == 4 and min(result.samples_ms) >= 0


def test_interleaved_timing_order_and_ratio_spread():
    """Each repeat calls every function once, in turn, after a shared warm-up; ratios come per repeat.
    A fake per-call clock stands in for wall time: B always takes twice as long as A in the same repeat,
    while the machine's load (the repeat's factor) changes."""
    order, load = [], iter([1.0, 2.0, 2.0, 4.0, 3.0, 6.0])
    fns = {"a": lambda: order.append("a"), "b": lambda: order.append("b")}
    timings = time_interleaved(fns, "cpu", repeats=3, warmup=1,
                               one_call_ms=lambda fn, device: fn() or next(load))
    assert order == ["a", "b"] * 4  # one warm-up round, then A B A B A B
    assert timings["a"].samples_ms == (1.0, 2.0, 3.0) and timings["b"].samples_ms == (2.0, 4.0, 6.0)
    assert ratio_spread(timings["b"], timings["a"]) == (2.0, 2.0, 2.0)  # the load cancels out
    skewed = ratio_spread(Timing((1.0, 1.0, 1.0, 1.0)), Timing((1.0, 2.0, 4.0, 1.0)))
    assert skewed == (0.75, 0.4375, 1.0)  # ratios 1, 0.5, 0.25, 1


class Allocates64MiB(AttentionModule):
    """Allocates a 64 MiB scratch tensor in every call, then frees it."""

    def __init__(self, dim: int, num_heads: int, grid: tuple[int, int], prefix: int = 0) -> None:
        super().__init__(dim, num_heads, grid, prefix)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scratch = torch.ones(16 * MIB)  # 16 Mi floats = 64 MiB
        return self.proj(x) + scratch[0]


def _peak_in_child(queue) -> None:
    registry.attention.register("alloc-64mib", Allocates64MiB)
    spec = module_spec(AttentionTarget("alloc-64mib"), ModuleSetting(8, 2, (2, 2)))
    queue.put(cpu_peak_memory(spec))


def test_cpu_peak_memory_sees_a_known_allocation():
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_peak_in_child, args=(queue,))
    child.start()
    peak = queue.get(timeout=120)
    child.join(60)
    assert 63 * MIB <= peak <= 66 * MIB, peak / MIB  # 64 MiB, within 1-2 MiB of interpreter noise


def test_speed_cli_json_and_suite_evaluators(write_suite, tmp_path):
    code, text = run_cli("speed", "module", "--variant", "lina", "--dim", "32", "--heads", "2", "--grid", "4x4",
                         "--prefix", "2", "--backward", "--repeats", "3", "--json")
    assert code == 0, text
    data = json.loads(text)
    assert data["work_per_call"] == 18 and data["repeats"] == 3 and data["peak_mem_bytes"] > 0
    assert data["p25_ms"] <= data["median_ms"] <= data["p75_ms"]
    code, text = run_cli("speed", "module", "--variant", "lina", "--dim", "32", "--heads", "2", "--grid", "4x4",
                         "--baseline", "softmax", "--repeats", "3", "--json", "--no-store")
    assert code == 0, text
    data = json.loads(text)
    assert data["baseline"] == "softmax" and 0 < data["latency_ratio_p25"] <= data["latency_ratio"] \
        <= data["latency_ratio_p75"]
    code, text = run_cli("speed", "model", "--generator", "toy", "--attention", "lasad", "--set", "cfg=2",
                         "--batch", "2", "--repeats", "2", "--json")
    assert code == 0 and json.loads(text)["seconds_per_step"] > 0
    stages = json.loads(text)["stages"]
    assert [(s["name"], s["calls_per_image"], s["cfg_doubles_batch"]) for s in stages] == [
        ("denoiser", 4, True), ("decoder", 1, False)]
    for stage, factor in zip(stages, (4 * 2, 1), strict=True):  # calls_per_image, x2 under CFG
        assert 0 < stage["latency_p25_ms"] <= stage["latency_ms"] <= stage["latency_p75_ms"]
        assert stage["seconds_per_image"] == pytest.approx(stage["latency_ms"] / 1e3 / 2 * factor, rel=1e-12)
    path = write_suite("""\
attention: [softmax]
generators: [{name: toy, options: {steps: 2}}]
evaluators:
  - {name: speed, options: {dim: 32, num_heads: 2, grid: [4, 4], repeats: 2, dtype: bfloat16}}
  - {name: model-speed, options: {repeats: 2}}
""")
    code, text = run_cli("run", str(path), "--out", str(tmp_path / "out"), "--no-progress")
    assert code == 0, text
    code, text = run_cli("results", "--out", str(tmp_path / "out"), "--format", "json")
    rows = {(row["evaluator"], row["metric"]): row for row in json.loads(text)}
    value = {key: row["value"] for key, row in rows.items()}
    assert value["speed", "latency_p25_ms"] <= value["speed", "latency_ms"] <= value["speed", "latency_p75_ms"]
    assert rows["speed", "throughput"]["unit"] == "tokens/s"  # 16 tokens per call
    assert value["speed", "throughput"] == pytest.approx(16 / (value["speed", "latency_ms"] / 1e3), rel=1e-9)
    assert rows["speed", "latency_ms"]["protocol"]["evaluator"]["dtype"] == "bfloat16"
    per_image = value["model-speed", "seconds_per_image"]
    assert value["model-speed", "seconds_per_step"] == pytest.approx(per_image / 2, rel=1e-9)  # steps: 2
    assert value["model-speed", "images_per_s"] == pytest.approx(1 / per_image, rel=1e-9)
    for stage, calls in (("denoiser", 2), ("decoder", 1)):  # batch 1
        assert value["model-speed", f"seconds_per_image.{stage}"] == pytest.approx(
            value["model-speed", f"latency_ms.{stage}"] / 1e3 * calls, rel=1e-9)


@pytest.mark.parametrize("args,message", [
    (["--dtype", "float8"], "Invalid value for '--dtype'"),
    (["--variant", "nope"], "unknown attention variant 'nope'"),
])
def test_speed_cli_errors(args, message):
    base = {"--variant": "lina", "--dim": "32", "--heads": "2", "--grid": "4x4"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    code, text = run_cli("speed", "module", *[x for kv in base.items() for x in kv])
    assert code == 2 and message in text


def test_speed_commands_and_suite_store_rows_of_equal_protocol(write_suite, tmp_path):
    """Timings differ run to run; metric names and protocols must not."""
    assert run_cli("speed", "module", "--variant", "softmax", "--dim", "32", "--heads", "2", "--grid", "4x4",
                   "--repeats", "2", "--out", str(tmp_path / "cmd"))[0] == 0
    assert run_cli("speed", "model", "--generator", "toy", "--set", "steps=2", "--repeats", "2",
                   "--out", str(tmp_path / "cmd"))[0] == 0
    path = write_suite("""\
attention: [softmax]
generators: [{name: toy, options: {steps: 2}}]
evaluators:
  - {name: speed, options: {dim: 32, num_heads: 2, grid: [4, 4], repeats: 2}}
  - {name: model-speed, options: {repeats: 2}}
""")
    assert run_cli("run", str(path), "--out", str(tmp_path / "suite"), "--no-progress")[0] == 0
    command, suite = stored_rows(tmp_path / "cmd"), stored_rows(tmp_path / "suite")
    assert command.keys() == suite.keys() and "latency_ms" in command and "seconds_per_image" in command
    assert all(command[m]["protocol"] == suite[m]["protocol"] for m in command)


def test_speed_with_a_baseline_times_both_side_by_side(write_suite, tmp_path, monkeypatch):
    """With ``baseline``, every repeat times the variant and the baseline in turn; the job stores the
    per-repeat latency ratio (median, IQR) and the report prints it with its spread."""
    from lina_bench.evaluators import speed as speed_module

    seen = []
    real = speed_module.time_interleaved
    monkeypatch.setattr(speed_module, "time_interleaved",
                        lambda fns, *a, **k: seen.append(list(fns)) or real(fns, *a, **k))
    path = write_suite("""\
attention: [softmax, lina]
evaluators:
  - {name: speed, options: {dim: 32, num_heads: 2, grid: [4, 4], repeats: 3, baseline: softmax}}
reports: [efficiency]
""")
    code, text = run_cli("run", str(path), "--out", str(tmp_path / "out"), "--no-progress")
    assert code == 0, text
    assert seen == [["target", "baseline"], ["target", "baseline"]]  # one interleaved timing per job
    rows = stored_rows(tmp_path / "out")
    assert rows["latency_ratio"]["protocol"]["evaluator"]["timing"] == "interleaved"
    code, text = run_cli("results", "--out", str(tmp_path / "out"), "--format", "json")
    for job in ("speed/softmax", "speed/lina"):
        value = {r["metric"]: r["value"] for r in json.loads(text) if r["job"] == job}
        assert 0 < value["latency_ratio_p25"] <= value["latency_ratio"] <= value["latency_ratio_p75"]
    summary = (tmp_path / "out" / "suite" / "summary.md").read_text()
    assert re.search(r"\| lina +\| [\d.]+ ms \(x[\d.]+ \[[\d.]+-[\d.]+\]\), [\d.]+ MiB", summary), summary

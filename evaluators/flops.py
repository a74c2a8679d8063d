"""Exact FLOP accounting: fvcore (primary), torch's FlopCounterMode and closed forms (cross-checks).

Convention (the LINA paper's, fvcore's): one fused multiply-add = one FLOP, reported in GMACs
(1e9). Only ops that carry multiply-add work are counted by default -- linear layers, matmuls,
convolutions, attention -- and elementwise ops (activations, additions, normalisations, reductions)
are not; ``elementwise=True`` counts them too (one FLOP per output element, fvcore's norm rules).
No op falls through silently: every op that was not counted is reported, split into the
elementwise ones (not counted by convention) and unknown ones.

Why our own handles: fvcore has none for ``aten::scaled_dot_product_attention`` (it would count
softmax attention as projections only) nor for our Triton custom ops (``lina_bench::*``, whose
FlopCounterMode formulas live beside them in ``kernels/``), and torch's FlopCounterMode counts 0
for the CPU flash path ``aten::_scaled_dot_product_flash_attention_for_cpu``. All are registered
here.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils import flop_counter

from lina_bench.api import registry
from lina_bench.api.errors import JobFailed, LinaBenchError
from lina_bench.api.generator import CostStage, Generator
from lina_bench.api.schema import Metric
from lina_bench.evaluators.base import AttentionTarget, EvalContext, Evaluator, Measurement, ModuleSetting
from lina_bench.kernels.formulas import chunked_decay_macs, lina_forward_macs
from lina_bench.models.attention.base import AttentionModule

with warnings.catch_warnings():  # fvcore's import calls the deprecated torch.jit.script
    warnings.simplefilter("ignore", FutureWarning)
    from fvcore.nn import FlopCountAnalysis
    from fvcore.nn.jit_handles import elementwise_flop_counter, get_shape

CONVENTION = "1 fused multiply-add = 1 FLOP (fvcore); GMACs = 1e9 multiply-adds; elementwise ops not counted"
CONVENTION_ELEMENTWISE = "1 fused multiply-add = 1 FLOP (fvcore); elementwise ops counted, 1 per output element"

# Elementwise ops: not counted by the paper's convention, counted with ``elementwise=True``.
ELEMENTWISE_OPS = frozenset({
    "aten::add", "aten::add_", "aten::sub", "aten::sub_", "aten::rsub", "aten::mul", "aten::mul_", "aten::div",
    "aten::div_", "aten::reciprocal", "aten::pow", "aten::exp", "aten::log", "aten::log1p", "aten::sqrt",
    "aten::rsqrt", "aten::neg", "aten::relu", "aten::relu_", "aten::gelu", "aten::silu", "aten::sigmoid",
    "aten::log_sigmoid", "aten::tanh", "aten::softmax", "aten::mean", "aten::sum", "aten::cumsum",
    "aten::where", "aten::tril", "aten::triu", "aten::remainder", "aten::lt", "aten::le", "aten::ne",
    "aten::round", "aten::clamp_min", "aten::clamp_max", "aten::layer_norm", "aten::group_norm",
    "aten::batch_norm", "aten::instance_norm", "aten::linspace",
})
NORM_OPS = ("aten::layer_norm", "aten::group_norm", "aten::batch_norm", "aten::instance_norm")
NO_ARITHMETIC_OPS = ("aten::embedding",)  # lookups: data movement, like the view/cat ops fvcore ignores


def _sdpa_macs(query: tuple[int, ...], key: tuple[int, ...], value: tuple[int, ...]) -> int:
    """b * h * Nq * Nk * (d_qk + d_v): QK^T and PV, full (unmasked) matrices."""
    *batch, n_q, d_qk = query
    n_k, d_v = key[-2], value[-1]
    count = n_q * n_k * (d_qk + d_v)
    for size in batch:
        count *= size
    return count


def _fvcore_sdpa(inputs: list, outputs: list) -> int:
    return _sdpa_macs(*(tuple(get_shape(v)) for v in inputs[:3]))


def _fvcore_lina(inputs: list, outputs: list) -> int:
    return lina_forward_macs(get_shape(inputs[0]), get_shape(inputs[2]))


def _fvcore_decayed(inputs: list, outputs: list) -> int:
    final_state, chunk = inputs[6].toIValue(), inputs[7].toIValue()
    return chunked_decay_macs(get_shape(inputs[0]), get_shape(inputs[2]), int(chunk), bool(final_state))


# Handles for ops fvcore does not know, by the name torch.jit gives them (our Triton custom ops too).
MAC_HANDLES = {"aten::scaled_dot_product_attention": _fvcore_sdpa, "lina_bench::lina_attention": _fvcore_lina,
               "lina_bench::decayed_linear_attention": _fvcore_decayed}


def _register_torch_formulas() -> None:
    """Teach FlopCounterMode the CPU flash-attention path (2 FLOPs per multiply-add there)."""
    target = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    if target in flop_counter.flop_registry:
        return

    @flop_counter.register_flop_formula(target)
    def _cpu_flash(query, key, value, *args, out_shape=None, **kwargs) -> int:
        return 2 * _sdpa_macs(tuple(query), tuple(key), tuple(value))


_register_torch_formulas()


@dataclass
class FlopReport:
    """MAC counts of one module call. by_operator / by_module (top-level submodules, "(self)" for the
    root's own ops) map names to MACs; ``modules`` has every submodule at every depth."""

    total: int
    by_operator: dict[str, int]
    by_module: dict[str, int]
    counter: str
    convention: str
    uncounted_ops: dict[str, dict[str, int]] = field(default_factory=dict)
    modules: dict[str, int] = field(default_factory=dict, repr=False)

    def share(self, module_names: list[str]) -> float:
        """Fraction of the total spent inside the named submodules."""
        return sum(self.modules.get(name, 0) for name in module_names) / self.total if self.total else 0.0

    @property
    def gmacs(self) -> float:
        return self.total / 1e9

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["modules"], data["total"]
        data["macs"] = self.total
        data["gmacs"] = self.gmacs
        data["by_operator"] = {k: v / 1e9 for k, v in self.by_operator.items()}
        data["by_module"] = {k: v / 1e9 for k, v in self.by_module.items()}
        return data


def _module_breakdown(per_module: dict[str, int], total: int, depth: int = 1) -> dict[str, int]:
    """Top-level submodules' counts, plus "(self)" for work done by the root module itself."""
    children = {name: count for name, count in per_module.items()
                if name and name.count(".") == depth - 1 and count}
    rest = total - sum(children.values())
    return {**children, **({"(self)": rest} if rest else {})}


def count_fvcore(module: nn.Module, inputs: tuple[Any, ...], elementwise: bool = False) -> FlopReport:
    """Count ``module(*inputs)`` with fvcore's FlopCountAnalysis (traces the call with torch.jit)."""
    analysis = FlopCountAnalysis(module, inputs)
    analysis.set_op_handle(**MAC_HANDLES)
    analysis.set_op_handle(**{op: None for op in NO_ARITHMETIC_OPS})
    if elementwise:
        analysis.set_op_handle(**{op: elementwise_flop_counter(0, 1) for op in ELEMENTWISE_OPS if op not in NORM_OPS})
    else:
        for op in NORM_OPS:  # fvcore counts norms by default; the paper's convention does not
            analysis._op_handles.pop(op, None)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        total = int(analysis.total())
        by_operator = {op: int(c) for op, c in analysis.by_operator().items() if c}
        per_module = {name: int(c) for name, c in analysis.by_module().items()}
        skipped = Counter(analysis.unsupported_ops())
    uncounted = {"elementwise": {op: n for op, n in skipped.items() if op in ELEMENTWISE_OPS},
                 "unknown": {op: n for op, n in skipped.items() if op not in ELEMENTWISE_OPS}}
    return FlopReport(total, by_operator, _module_breakdown(per_module, total), "fvcore",
                      CONVENTION_ELEMENTWISE if elementwise else CONVENTION,
                      {k: dict(sorted(v.items())) for k, v in uncounted.items() if v}, per_module)


def count_torch(module: nn.Module, inputs: tuple[Any, ...]) -> FlopReport:
    """Count with torch.utils.flop_counter.FlopCounterMode (2 FLOPs per MAC there; halved here).

    Works on meta tensors, so it counts any size without computing anything.
    """
    with flop_counter.FlopCounterMode(display=False) as mode:
        module(*inputs)
    counts = mode.get_flop_counts()
    by_operator = {str(op).removeprefix("aten."): int(c) // 2 for op, c in counts.get("Global", {}).items() if c}
    total = mode.get_total_flops() // 2
    root = next(iter(counts), "Global")
    per_module = {name.removeprefix(root + ".") if name != root else "": sum(ops.values()) // 2
                  for name, ops in counts.items() if name not in ("Global",)}
    return FlopReport(total, by_operator, _module_breakdown(per_module, total), "torch.FlopCounterMode",
                      CONVENTION, modules=per_module)


# ---- closed forms ---------------------------------------------------------------------------------

def analytic_macs(variant: str, dim: int, num_heads: int, grid: tuple[int, int], prefix: int = 0,
                  batch: int = 1, options: dict[str, Any] | None = None) -> dict[str, int]:
    """Closed-form MACs of one call of attention variant ``variant`` (plugins included), by operator
    kind (fvcore convention): its module class's :meth:`AttentionModule.analytic_macs`."""
    factory = registry.attention.get(variant)
    if not (isinstance(factory, type) and issubclass(factory, AttentionModule)):
        raise LinaBenchError(f"no closed-form FLOP count for attention variant {variant!r} "
                             f"(its factory {factory!r} is not an AttentionModule subclass)")
    return factory.analytic_macs(dim, num_heads, tuple(grid), prefix, batch, **(options or {}))


# ---- counting a variant or a generator ----------------------------------------------------------

COUNTERS = ("fvcore", "torch", "analytic")


def count_attention(target: AttentionTarget, setting: ModuleSetting, counter: str = "fvcore",
                    elementwise: bool = False) -> tuple[FlopReport, int]:
    """(FLOP report, parameter count) of one attention-variant call at ``setting``.

    ``fvcore`` runs the module on CPU; ``torch`` runs it on the meta device (any size, no compute);
    ``analytic`` evaluates the closed form.
    """
    if counter not in COUNTERS:
        raise LinaBenchError(f"unknown FLOP counter {counter!r} (choose from {', '.join(COUNTERS)})")
    if elementwise and counter != "fvcore":
        raise LinaBenchError("elementwise ops are counted only by the fvcore counter")
    device = "meta" if counter in ("torch", "analytic") else "cpu"
    with torch.device(device):
        module = target.build(setting).eval()
    params = sum(p.numel() for p in module.parameters())
    if counter == "analytic":
        macs = analytic_macs(target.name, setting.dim, setting.num_heads, setting.grid, setting.prefix,
                             setting.batch, target.options)
        total = sum(macs.values())
        report = FlopReport(total, macs, {"(self)": total}, "analytic", CONVENTION)
    else:
        count = count_fvcore if counter == "fvcore" else count_torch
        kwargs = {"elementwise": elementwise} if counter == "fvcore" else {}
        try:
            with torch.no_grad():
                report = count(module, setting.inputs(device), **kwargs)
        except LinaBenchError:
            raise
        except Exception as exc:  # e.g. a plugin variant that only runs at its trained length
            raise LinaBenchError(f"attention variant {target.name!r} cannot run with {setting.as_dict()}: "
                                 f"{type(exc).__name__}: {exc}") from exc
    return report, params


class Flops(Evaluator):
    """FLOPs (GMACs, fvcore convention) and parameters of an attention variant at one size."""

    scope = "attention"

    def __init__(self, dim: int, num_heads: int, grid: tuple[int, int], prefix: int = 0, batch: int = 1,
                 counter: str = "fvcore", elementwise: bool = False) -> None:
        self.setting = ModuleSetting(dim, num_heads, grid, prefix, batch)
        if counter not in COUNTERS:
            raise LinaBenchError(f"unknown FLOP counter {counter!r} (choose from {', '.join(COUNTERS)})")
        self.counter, self.elementwise = counter, elementwise

    def protocol(self) -> dict[str, Any]:
        return {**self.setting.as_dict(), "counter": self.counter,
                "convention": CONVENTION_ELEMENTWISE if self.elementwise else CONVENTION}

    def evaluate(self, target: AttentionTarget, context: EvalContext) -> Measurement:
        report, params = count_attention(target, self.setting, self.counter, self.elementwise)
        unknown = report.uncounted_ops.get("unknown")
        if unknown:
            raise JobFailed(f"ops without a FLOP handle: {unknown}; the count would be incomplete")
        projections = report.by_operator.get("linear", 0)
        metrics = [Metric("gmacs", report.gmacs, "GMACs", higher_is_better=False),
                   Metric("gmacs_mixing", (report.total - projections) / 1e9, "GMACs", higher_is_better=False),
                   Metric("params", float(params), "params")]
        return Measurement(metrics, self.protocol(), details=(report, params))


def sweep_setting(resolution: int, dim: int, num_heads: int, patch: int, prefix_ratio: float) -> ModuleSetting:
    """The token layout of a ``resolution`` px image: (res/patch)^2 image tokens plus a prefix of
    ``prefix_ratio`` times as many condition tokens (LINA: 256 px -> 64 + 16x16, 1024 px -> 1024 + 64x64)."""
    side = resolution // patch
    return ModuleSetting(dim, num_heads, (side, side), round(side * side * prefix_ratio))


class FlopsSweep(Evaluator):
    """FLOPs of an attention variant across resolutions (meta-device count: no compute, any size)."""

    scope = "attention"

    def __init__(self, dim: int = 1536, num_heads: int = 16,
                 resolutions: tuple[int, ...] = (256, 384, 512, 768, 1024, 1536, 2048), patch: int = 16,
                 prefix_ratio: float = 0.25) -> None:
        if not resolutions or min(resolutions) < patch:
            raise LinaBenchError(f"resolutions must be >= patch ({patch}), got {list(resolutions)}")
        self.dim, self.num_heads, self.patch, self.prefix_ratio = dim, num_heads, patch, prefix_ratio
        self.resolutions = tuple(sorted(resolutions))
        sweep_setting(self.resolutions[0], dim, num_heads, patch, prefix_ratio)  # validates dim / heads

    def protocol(self) -> dict[str, Any]:
        return {"dim": self.dim, "num_heads": self.num_heads, "resolutions": list(self.resolutions),
                "patch": self.patch, "prefix_ratio": self.prefix_ratio, "batch": 1,
                "counter": "torch (meta device; equal to fvcore, tested)", "convention": CONVENTION}

    def evaluate(self, target: AttentionTarget, context: EvalContext) -> list[Metric]:
        metrics = []
        for res in self.resolutions:
            setting = sweep_setting(res, self.dim, self.num_heads, self.patch, self.prefix_ratio)
            report, _ = count_attention(target, setting, "torch")
            metrics += [Metric(f"gmacs@{res}px", report.gmacs, "GMACs", higher_is_better=False),
                        Metric(f"tokens@{res}px", float(setting.tokens), "tokens")]
        return metrics


@dataclass
class StageFlops:
    """FLOPs of one cost stage: ``report`` counts one probe call on ``batch`` images (one CFG half);
    ``attention_share`` is the fraction of that call spent in the stage's attention modules."""

    stage: CostStage
    report: FlopReport
    batch: int
    attention_share: float

    @property
    def gmacs_per_call(self) -> float:
        """GMACs of one real call per image: per probe call / batch, x2 under CFG."""
        return self.report.gmacs / self.batch * self.stage.batch_multiplier

    @property
    def gmacs_per_image(self) -> float:
        return self.gmacs_per_call * self.stage.calls_per_image

    def as_json(self) -> dict[str, Any]:
        """The stage's facts; ``macs``/``gmacs`` count the probe call on the whole batch."""
        return {**self.stage.describe(), "macs": self.report.total, "gmacs": self.report.gmacs,
                "gmacs_per_call": self.gmacs_per_call, "gmacs_per_image": self.gmacs_per_image,
                "attention_share": self.attention_share}


@dataclass
class GeneratorFlops:
    """FLOPs of a generator's sampling, stage by stage (the main network first)."""

    stages: list[StageFlops]

    @property
    def gmacs_per_image(self) -> float:
        return sum(s.gmacs_per_image for s in self.stages)

    @property
    def attention_gmacs_per_image(self) -> float:
        """GMACs per image spent in the attention modules of every stage."""
        return sum(s.attention_share * s.gmacs_per_image for s in self.stages)

    @property
    def attention_share(self) -> float:
        """Attention GMACs per image of all stages / all GMACs per image."""
        total = self.gmacs_per_image
        return self.attention_gmacs_per_image / total if total else 0.0


def count_generator(generator: Generator, batch: int = 1, counter: str = "fvcore",
                    elementwise: bool = False) -> GeneratorFlops:
    """FLOPs of one probe call of every cost stage of ``generator`` (:meth:`Generator.cost_probes`)."""
    if counter not in ("fvcore", "torch"):
        raise LinaBenchError(f"generators are counted with 'fvcore' or 'torch', not {counter!r}")
    attention: dict[str, list[str]] = {}
    for name in generator.attention_modules():  # "<stage>.<name inside the stage's module>"
        stage_name, _, inner = name.partition(".")
        attention.setdefault(stage_name, []).append(inner)
    stages = []
    for stage in generator.cost_probes(batch):
        with torch.no_grad():
            report = (count_fvcore(stage.module, stage.inputs, elementwise) if counter == "fvcore"
                      else count_torch(stage.module, stage.inputs))
        stages.append(StageFlops(stage, report, batch, report.share(attention.get(stage.name, []))))
    return GeneratorFlops(stages)


class ModelFlops(Evaluator):
    """FLOPs of a generator per image, in total and per cost stage, and the attention modules' share.

    ``gmacs_per_call`` is the main (first) stage's GMACs of one call per image (x2 under CFG);
    ``gmacs_per_call.<stage>`` and ``gmacs_per_image.<stage>`` are every stage's.
    """

    scope = "generator"

    def __init__(self, batch: int = 1, counter: str = "fvcore", elementwise: bool = False) -> None:
        self.batch, self.counter, self.elementwise = batch, counter, elementwise

    def protocol(self) -> dict[str, Any]:
        return {"batch": self.batch, "counter": self.counter,
                "convention": CONVENTION_ELEMENTWISE if self.elementwise else CONVENTION}

    def evaluate(self, generator: Generator, context: EvalContext) -> Measurement:
        flops = count_generator(generator, self.batch, self.counter, self.elementwise)
        params = sum(p.numel() for p in generator.parameters())
        per_stage = [metric for s in flops.stages for metric in (
            Metric(f"gmacs_per_call.{s.stage.name}", s.gmacs_per_call, "GMACs", higher_is_better=False),
            Metric(f"gmacs_per_image.{s.stage.name}", s.gmacs_per_image, "GMACs", higher_is_better=False))]
        metrics = [Metric("gmacs_per_call", flops.stages[0].gmacs_per_call, "GMACs", higher_is_better=False),
                   Metric("gmacs_per_image", flops.gmacs_per_image, "GMACs", higher_is_better=False),
                   Metric("attention_gmacs_per_image", flops.attention_gmacs_per_image, "GMACs",
                          higher_is_better=False),
                   Metric("attention_share", flops.attention_share, "fraction"),
                   Metric("params", float(params), "params"), *per_stage]
        details = {"flops": flops, "params": params,
                   "info": generator.info().as_protocol(), "attention_modules": list(generator.attention_modules())}
        return Measurement(metrics, self.protocol(), details=details)

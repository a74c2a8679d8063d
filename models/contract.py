"""``check_generator_contract``: does a generator honour the contract of :mod:`lina_bench.api.generator`?

A family's test suite runs it on a built generator (lina-bench's own tests run it on every registered
generator). It raises :class:`ContractViolation` -- a :class:`~lina_bench.api.errors.LinaBenchError`
whose ``clause`` names the broken clause -- at the first problem:

* ``info``: family, (H, W), conditioning, steps, num_classes and guidance are sane; JSON-serialisable.
* ``stages``: ``cost_probes(b)`` is a non-empty list of :class:`CostStage` with unique names without
  ".", ``calls_per_image > 0``, inputs for ``b`` images, and each module runs on its inputs.
* ``attention_modules``: :class:`AttentionModule` instances, named ``"<stage>.<name>"``.
* ``output``: ``sample`` returns uint8 (B, 3, H, W) on the CPU at ``info().resolution``.
* ``determinism``: a batch equals the same samples drawn one by one, in reverse order, and twice.
* ``seeds``: two seeds with the same condition give different images.
* ``errors``: mismatched lengths, out-of-range class labels and non-str prompts raise LinaBenchError.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable

import torch
from torch import nn

from lina_bench.api.errors import LinaBenchError
from lina_bench.api.generator import CostStage, Generator, GeneratorInfo, placeholder_conditions, sample_seed
from lina_bench.models.attention.base import AttentionModule


class ContractViolation(LinaBenchError):
    """A generator breaks clause ``clause`` of the generator contract."""

    def __init__(self, clause: str, detail: str) -> None:
        super().__init__(f"generator contract, clause {clause!r}: {detail}")
        self.clause = clause


def _require(ok: bool, clause: str, detail: str) -> None:
    if not ok:
        raise ContractViolation(clause, detail)


def _check_info(info: Any) -> None:
    _require(isinstance(info, GeneratorInfo), "info", f"info() returned {type(info).__name__}, not GeneratorInfo")
    res = info.resolution
    _require(isinstance(info.family, str) and bool(info.family), "info", f"family must be a name, got {info.family!r}")
    _require(isinstance(res, tuple) and len(res) == 2 and all(isinstance(s, int) and s > 0 for s in res),
             "info", f"resolution must be (H, W) of positive ints, got {res!r}")
    _require(info.conditioning in ("class", "text"), "info",
             f"conditioning must be 'class' or 'text', got {info.conditioning!r}")
    _require(isinstance(info.steps, int) and info.steps >= 1, "info", f"steps must be an int >= 1, got {info.steps!r}")
    if info.conditioning == "class":
        _require(isinstance(info.num_classes, int) and info.num_classes >= 1, "info",
                 f"a class-conditional generator needs num_classes >= 1, got {info.num_classes!r}")
    _require(info.guidance is None or (isinstance(info.guidance, (int, float)) and math.isfinite(info.guidance)),
             "info", f"guidance must be None or a finite number, got {info.guidance!r}")
    try:
        json.dumps(info.as_protocol())
    except (TypeError, ValueError) as exc:
        raise ContractViolation("info", f"as_protocol() is not JSON-serialisable: {exc}") from exc


def _check_stages(generator: Generator, batch_size: int) -> list[CostStage]:
    stages = generator.cost_probes(batch_size)
    _require(isinstance(stages, list) and len(stages) > 0 and all(isinstance(s, CostStage) for s in stages),
             "stages", f"cost_probes() must return a non-empty list of CostStage, got {stages!r}")
    names = [s.name for s in stages]
    _require(len(set(names)) == len(names) and all(isinstance(n, str) and n and "." not in n for n in names),
             "stages", f"stage names must be unique, non-empty and without '.', got {names}")
    for stage in stages:
        where = f"stage {stage.name!r}"
        calls = stage.calls_per_image
        _require(isinstance(calls, (int, float)) and not isinstance(calls, bool) and math.isfinite(calls)
                 and calls > 0, "stages", f"{where}: calls_per_image must be a number > 0, got {calls!r}")
        _require(isinstance(stage.cfg_doubles_batch, bool), "stages", f"{where}: cfg_doubles_batch must be a bool")
        _require(isinstance(stage.module, nn.Module), "stages", f"{where}: module must be an nn.Module")
        rows = next((len(x) for x in stage.inputs if isinstance(x, torch.Tensor) and x.dim()), None)
        _require(rows == batch_size, "stages",
                 f"{where}: its first tensor input must have batch_size={batch_size} rows, got {rows}")
        try:
            with torch.no_grad():
                stage.module(*stage.inputs)
        except Exception as exc:
            raise ContractViolation("stages", f"{where}: module fails on its inputs: "
                                              f"{type(exc).__name__}: {exc}") from exc
    return stages


def _check_attention_modules(generator: Generator, stages: list[CostStage]) -> None:
    modules = generator.attention_modules()
    stage_names = {s.name for s in stages}
    for name, module in modules.items():
        _require(isinstance(module, AttentionModule), "attention_modules",
                 f"{name!r} is a {type(module).__name__}, not an AttentionModule")
        _require(name.partition(".")[0] in stage_names and "." in name, "attention_modules",
                 f"{name!r} is not named '<stage>.<module>' for a stage in {sorted(stage_names)}")


def _check_sampling(generator: Generator, info: GeneratorInfo, num_samples: int, seed: int) -> None:
    conditions = placeholder_conditions(info, num_samples)
    seeds = [sample_seed(seed, i) for i in range(num_samples)]
    batch = generator.sample(conditions, seeds)
    h, w = info.resolution
    _require(isinstance(batch, torch.Tensor) and batch.dtype == torch.uint8 and batch.device.type == "cpu"
             and tuple(batch.shape) == (num_samples, 3, h, w), "output",
             f"sample() must return uint8 ({num_samples}, 3, {h}, {w}) on the CPU, got "
             + (f"{batch.dtype} {tuple(batch.shape)} on {batch.device}" if isinstance(batch, torch.Tensor)
                else type(batch).__name__))
    singles = torch.cat([generator.sample([c], [s]) for c, s in zip(conditions, seeds, strict=True)])
    _require(torch.equal(singles, batch), "determinism",
             "a batch differs from the same (condition, seed) pairs sampled one by one")
    _require(torch.equal(generator.sample(conditions[::-1], seeds[::-1]), batch.flip(0)), "determinism",
             "reversing the order of the samples changes the images")
    _require(torch.equal(generator.sample(conditions, seeds), batch), "determinism",
             "two identical calls return different images")
    other = generator.sample(conditions[:1], [sample_seed(seed + 1, 0)])
    _require(not torch.equal(other[0], batch[0]), "seeds", "two seeds with the same condition give the same image")


def _expect_error(call: Callable[[], Any], what: str) -> None:
    try:
        call()
    except LinaBenchError:
        return
    except Exception as exc:
        raise ContractViolation("errors", f"{what} raised {type(exc).__name__}, not LinaBenchError: {exc}") from exc
    raise ContractViolation("errors", f"{what} raised no error")


def _check_errors(generator: Generator, info: GeneratorInfo) -> None:
    (condition,) = placeholder_conditions(info, 1)
    _expect_error(lambda: generator.sample([condition, condition], [0]), "2 conditions with 1 seed")
    if info.conditioning == "class":
        for label in (-1, info.num_classes, "a prompt"):
            _expect_error(lambda label=label: generator.sample([label], [0]), f"class label {label!r}")
    else:
        _expect_error(lambda: generator.sample([3], [0]), "a prompt that is not a str (3)")


def check_generator_contract(generator: Generator, num_samples: int = 3, batch_size: int = 2, seed: int = 0) -> None:
    """Check every clause (module docs) on ``num_samples`` placeholder samples and cost probes for
    ``batch_size`` images; raise :class:`ContractViolation` naming the first broken clause."""
    if num_samples < 2 or batch_size < 1:
        raise LinaBenchError("num_samples must be >= 2 and batch_size >= 1")
    info = generator.info()
    _check_info(info)
    stages = _check_stages(generator, batch_size)
    _check_attention_modules(generator, stages)
    _check_sampling(generator, info, num_samples, seed)
    _check_errors(generator, info)

"""The generator contract: on the built-in toy generator, and check_generator_contract on every
registered generator and on generators that break it."""

from __future__ import annotations

import itertools

import pytest
import torch
from safetensors.torch import save_file

from lina_bench.api import registry
from lina_bench.api.errors import LinaBenchError
from lina_bench.api.generator import CostStage, Generator, build_generator, sample_seed, to_uint8
from lina_bench.models import ContractViolation, check_generator_contract
from lina_bench.models.attention.base import AttentionModule
from lina_bench.models.toy import ToyGenerator


@pytest.mark.parametrize("variant", ["softmax", "lina", "lasad", "lit"])
def test_images_depend_only_on_label_and_seed(variant: str):
    gen = build_generator("toy", {"attention": variant, "grid": [4, 6], "patch": 2})
    labels = [3, 1, 4, 1, 5]
    seeds = [sample_seed(7, i) for i in range(5)]
    batch = gen.sample(labels, seeds)
    singles = torch.cat([gen.sample([c], [s]) for c, s in zip(labels, seeds, strict=True)])
    assert batch.dtype == torch.uint8 and batch.shape == (5, 3, 8, 12)
    assert torch.equal(batch, singles)
    assert torch.equal(gen.sample(labels[::-1], seeds[::-1]), batch.flip(0))  # order-independent
    assert not torch.equal(batch[1], batch[3])  # same label, different seed


def test_sample_seed_is_stable_and_distinct():
    assert sample_seed(0, 0) == sample_seed(0, 0)
    assert len({sample_seed(s, i) for s in range(3) for i in range(1000)}) == 3000
    assert 0 <= sample_seed(2**40, 10**9) < 2**63


def test_uint8_convention():
    x = torch.tensor([-0.1, 0.0, 0.5 / 255, 0.5, 1.0, 1.2])
    assert to_uint8(x).tolist() == [0, 0, 0, 128, 255, 255]  # round half to even at 0.5/255


@pytest.mark.parametrize("cfg", [None, 2.0])
def test_info_stages_and_attention_modules(cfg: float | None):
    gen = build_generator("toy", {"attention": "lina", "depth": 3, "steps": 5, "cfg": cfg})
    info = gen.info()
    assert (info.resolution, info.steps, info.conditioning, info.attention) == ((32, 32), 5, "class", "lina")
    assert info.guidance == cfg
    denoiser, decoder = gen.cost_probes(batch_size=2)
    assert (denoiser.name, denoiser.calls_per_image, denoiser.cfg_doubles_batch) == ("denoiser", 5, cfg is not None)
    assert (decoder.name, decoder.calls_per_image, decoder.cfg_doubles_batch) == ("decoder", 1, False)
    assert denoiser.module(*denoiser.inputs).shape == (2, 64, 32)
    assert decoder.module(*decoder.inputs).shape == (2, 64, 3 * 4 * 4)
    modules = gen.attention_modules()
    assert list(modules) == ["denoiser.blocks.0.attn", "denoiser.blocks.1.attn", "denoiser.blocks.2.attn"]
    assert all(isinstance(m, AttentionModule) for m in modules.values())
    assert info.as_protocol()["uint8_convention"].startswith("uint8 = round_half_even(clip")
    with pytest.deprecated_call():
        assert gen.cost_probe(2).module is gen.denoiser  # the deprecated alias: the first stage


def test_cfg_mixes_the_conditional_and_unconditional_rows():
    seeds = [sample_seed(0, i) for i in range(2)]
    plain = build_generator("toy", {"cfg": 1.0}).sample([3, 4], seeds)
    guided = build_generator("toy", {"cfg": 4.0}).sample([3, 4], seeds)
    assert not torch.equal(plain, guided)


def test_bad_conditions_are_clear_errors():
    gen = build_generator("toy")
    with pytest.raises(LinaBenchError, match=r"class labels must be ints in \[0, 10\)"):
        gen.sample([10], [0])
    with pytest.raises(LinaBenchError, match="2 conditions but 1 seeds"):
        gen.sample([1, 2], [0])


@pytest.mark.parametrize("fmt", ["safetensors", "pt", "pt-nested"])
def test_checkpoint_roundtrip(tmp_path, fmt: str):
    trained = build_generator("toy", {"weight_seed": 1})
    state = trained.state_dict()
    path = tmp_path / ("w.safetensors" if fmt == "safetensors" else "w.pt")
    if fmt == "safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save({"model": state} if fmt == "pt-nested" else state, path)
    loaded = build_generator("toy", {"weight_seed": 2}, checkpoint=path)
    seeds = [sample_seed(0, i) for i in range(2)]
    assert torch.equal(loaded.sample([0, 1], seeds), trained.sample([0, 1], seeds))


def test_checkpoint_errors(tmp_path):
    with pytest.raises(LinaBenchError, match="checkpoint not found: .*missing.pt"):
        build_generator("toy", checkpoint=tmp_path / "missing.pt")
    other = build_generator("toy", {"dim": 16}).state_dict()
    torch.save(other, tmp_path / "other.pt")
    with pytest.raises(LinaBenchError, match="does not fit ToyGenerator"):
        build_generator("toy", checkpoint=tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(LinaBenchError, match="cannot read checkpoint"):
        build_generator("toy", checkpoint=tmp_path / "junk.pt")


def test_generator_options_are_checked():
    with pytest.raises(LinaBenchError, match="unknown option 'dims'.*did you mean 'dim'"):
        build_generator("toy", {"dims": 3})
    assert issubclass(type(build_generator("toy")), Generator)


def test_determinism_evaluator_fails_generators_that_break_the_contract():
    from lina_bench.api.errors import JobFailed
    from lina_bench.evaluators.base import EvalContext
    from lina_bench.evaluators.sample_determinism import SampleDeterminism

    check = SampleDeterminism(num_samples=4, batch_sizes=(1, 4))
    metrics = {m.name: m.value for m in check.evaluate(build_generator("toy", {"steps": 1}), EvalContext())}
    assert metrics["max_pixel_diff"] == 0

    noisy = build_generator("toy", {"steps": 1})  # depends on hidden state: the count of earlier calls
    real, calls = noisy.sample, itertools.count()
    noisy.sample = lambda c, s: real(c, s) ^ torch.tensor(next(calls) % 2, dtype=torch.uint8)
    with pytest.raises(JobFailed, match="breaks the determinism contract"):
        check.evaluate(noisy, EvalContext())

    batch_dependent = build_generator("toy", {"steps": 1})  # same on every call, but not per sample
    real_b = batch_dependent.sample
    batch_dependent.sample = lambda c, s: real_b(c, s) ^ torch.tensor(len(c) > 1, dtype=torch.uint8)
    with pytest.raises(JobFailed, match="breaks the determinism contract"):
        check.evaluate(batch_dependent, EvalContext())


def registered_test_configs(name: str) -> list[dict]:
    """A generator's tiny configurations for tests (its class attribute ``test_configs``: name -> options,
    read without importing it), else its defaults."""
    configs = registry.generators.class_attribute(name, "test_configs")
    return list(configs.values()) if configs else [{}]


CONTRACT_CASES = [(name, options) for name in registry.generators.names() for options in registered_test_configs(name)
                  ] + [("toy", {"conditioning": "text"}), ("toy", {"cfg": 3.0, "attention": "lasad"})]


@pytest.mark.parametrize("name,options", CONTRACT_CASES, ids=lambda v: str(v))
def test_every_registered_generator_honours_the_contract(name: str, options: dict):
    check_generator_contract(build_generator(name, options))


class BatchDependent(ToyGenerator):
    def sample(self, conditions, seeds):
        return super().sample(conditions, seeds) ^ torch.tensor(len(seeds) > 1, dtype=torch.uint8)


class DuplicateStages(ToyGenerator):
    def cost_probes(self, batch_size=1):
        denoiser, decoder = super().cost_probes(batch_size)
        return [denoiser, CostStage("denoiser", decoder.module, decoder.inputs, 1)]


class NoCalls(ToyGenerator):
    def cost_probes(self, batch_size=1):
        denoiser, decoder = super().cost_probes(batch_size)
        return [denoiser, CostStage("decoder", decoder.module, decoder.inputs, 0)]


class WrongRows(ToyGenerator):
    def cost_probes(self, batch_size=1):
        return super().cost_probes(batch_size + 1)


class UnprefixedAttention(ToyGenerator):
    def attention_modules(self):
        return {name.partition(".")[2]: m for name, m in super().attention_modules().items()}


class WrongResolution(ToyGenerator):
    def sample(self, conditions, seeds):
        return super().sample(conditions, seeds)[..., 1:]


class IgnoresSeeds(ToyGenerator):
    def sample(self, conditions, seeds):
        return super().sample(conditions, [0] * len(seeds))


class NoLengthCheck(ToyGenerator):
    def sample(self, conditions, seeds):
        return super().sample(conditions[:len(seeds)], seeds)


@pytest.mark.parametrize("broken,clause,message", [
    (BatchDependent, "determinism", "a batch differs from the same (condition, seed) pairs sampled one by one"),
    (DuplicateStages, "stages", "stage names must be unique"),
    (NoCalls, "stages", "stage 'decoder': calls_per_image must be a number > 0, got 0"),
    (WrongRows, "stages", "first tensor input must have batch_size=2 rows, got 3"),
    (UnprefixedAttention, "attention_modules", "'blocks.0.attn' is not named '<stage>.<module>'"),
    (WrongResolution, "output", "must return uint8 (3, 3, 32, 32) on the CPU, got torch.uint8 (3, 3, 32, 31)"),
    (IgnoresSeeds, "seeds", "two seeds with the same condition give the same image"),
    (NoLengthCheck, "errors", "2 conditions with 1 seed raised no error"),
])
def test_contract_check_names_the_broken_clause(broken: type, clause: str, message: str):
    with pytest.raises(ContractViolation) as caught:
        check_generator_contract(broken(steps=1))
    assert caught.value.clause == clause and isinstance(caught.value, LinaBenchError)
    assert str(caught.value).startswith(f"generator contract, clause {clause!r}: ") and message in str(caught.value)

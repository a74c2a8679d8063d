"""The generator contract, on the built-in toy generator."""

from __future__ import annotations

import itertools

import pytest
import torch
from safetensors.torch import save_file

from lina_bench.errors import LinaBenchError
from lina_bench.models.attention.base import AttentionModule
from lina_bench.models.generator import Generator, build_generator, sample_seed, to_uint8


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


def test_info_probe_and_attention_modules():
    gen = build_generator("toy", {"attention": "lina", "depth": 3, "steps": 5})
    info = gen.info()
    assert (info.resolution, info.steps, info.conditioning, info.attention) == ((32, 32), 5, "class", "lina")
    probe = gen.cost_probe(batch_size=2)
    assert probe.calls_per_image == 5 and probe.module(*probe.inputs).shape == (2, 64, 32)
    modules = gen.attention_modules()
    assert list(modules) == ["blocks.0.attn", "blocks.1.attn", "blocks.2.attn"]
    assert all(isinstance(m, AttentionModule) for m in modules.values())
    assert info.as_protocol()["uint8_convention"].startswith("uint8 = round_half_even(clip")


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
    from lina_bench.errors import JobFailed
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

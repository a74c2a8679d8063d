"""The ``dit`` generator (DiT / LiT) against fixtures made by running the official DiT code.

Fixtures: tests/fixtures/dit (see its README: official commit, how ``sample.py`` was run). Tolerances:
model outputs and one diffusion step 1e-5 (float32, same formulas); ``official_sample`` images within 1
per pixel and at least 99.9% exact, as the issue sets.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from lina_bench.api import registry
from lina_bench.api.errors import LinaBenchError
from lina_bench.api.generator import build_generator, sample_seed
from lina_bench.models.dit import DIT_SIZES, DiTGenerator
from lina_bench.models.dit.diffusion import SpacedDiffusion, space_timesteps

FIXTURES = Path(__file__).parent / "fixtures" / "dit"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
COMMIT = "ed81ce2229091fd4ecc9a223645f95cf379d582b"
CKPT, VAE = FIXTURES / "dit-tiny.pt", FIXTURES / "vae"
TINY = {"depth": 2, "hidden_size": 32, "num_heads": 2, "patch_size": 2, "input_size": 8, "vae": str(VAE)}
ATTN_SUFFIXES = ("attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias")


@pytest.fixture(scope="module")
def refs() -> dict[str, torch.Tensor]:
    return load_file(FIXTURES / "references.safetensors")


@pytest.fixture(scope="module")
def official_state() -> dict[str, torch.Tensor]:
    return torch.load(CKPT, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def dit() -> DiTGenerator:
    return build_generator("dit", {**TINY, "guidance": 4.0}, checkpoint=CKPT)


def test_fixtures_come_from_the_official_commit():
    assert MANIFEST["commit"] == COMMIT and MANIFEST["official_repo"] == "facebookresearch/DiT"
    files = {str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*") if p.is_file()} - {"manifest.json", "README.md"}
    assert set(MANIFEST["files"]) == files


def test_official_sizes():
    assert len(DIT_SIZES) == 12
    assert DIT_SIZES["DiT-XL/2"] == (28, 1152, 2, 16) and DIT_SIZES["DiT-L/4"] == (24, 1024, 4, 16)
    assert DIT_SIZES["DiT-B/8"] == (12, 768, 8, 12) and DIT_SIZES["DiT-S/2"] == (12, 384, 2, 6)


def test_model_option_and_explicit_sizes():
    gen = build_generator("dit", {"model": "DiT-S/8", "depth": 1, "input_size": 16, "diffusion_steps": 2,
                                  "vae": str(VAE)})
    config = gen.info().extra["config"]
    assert (config["depth"], config["hidden_size"], config["patch_size"], config["num_heads"]) == (1, 384, 8, 6)
    assert gen.info().extra["model"] is None  # a preset with an override is no longer the official size
    assert len(gen.transformer.blocks) == 1 and gen.transformer.blocks[0].attn.num_heads == 6
    assert build_generator("dit", {"model": "DiT-S/8", "depth": 12, "input_size": 16, "vae": str(VAE)}
                           ).info().extra["model"] == "DiT-S/8"
    with pytest.raises(LinaBenchError, match="unknown DiT model 'DiT-M/2'"):
        build_generator("dit", {"model": "DiT-M/2"})
    with pytest.raises(LinaBenchError, match="without a model, give depth, hidden_size"):
        build_generator("dit", {"model": None, "patch_size": 2, "num_heads": 2})


def test_info(dit: DiTGenerator):
    info = dit.info()
    assert (info.family, info.resolution, info.steps, info.num_classes) == ("dit", (64, 64), 250, 1000)
    assert (info.guidance, info.attention, info.conditioning) == (4.0, "softmax", "class")
    extra = info.extra
    assert extra["latent_scale"] == 0.18215 and extra["diffusion"]["timestep_respacing"] == "250"
    assert extra["vae"]["name"] == "vae" and len(extra["vae"]["sha256"]) == 64
    assert extra["skipped_keys"] == [] and extra["new_keys"] == []
    json.dumps(info.as_protocol())


def test_forward_matches_official(dit: DiTGenerator, refs):
    with torch.no_grad():
        out = dit.transformer(refs["forward.x"], refs["forward.t"], refs["forward.y"])
        cfg = dit.transformer.forward_with_cfg(refs["cfg.x"], refs["cfg.t"], refs["cfg.y"], float(refs["cfg.scale"]))
    torch.testing.assert_close(out, refs["forward.out"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(cfg, refs["cfg.out"], atol=1e-5, rtol=1e-5)


def test_guided_is_the_conditional_half_of_forward_with_cfg(dit: DiTGenerator, refs):
    x, t, y = refs["cfg.x"][:2], refs["cfg.t"][:2], refs["cfg.y"][:2]
    with torch.no_grad():
        official = dit.transformer.forward_with_cfg(torch.cat([x, x]), torch.cat([t, t]),
                                                    torch.cat([y, torch.full_like(y, 1000)]), 4.0)
        assert torch.equal(dit.transformer.guided(x, t, y, 4.0), official[:2])


@pytest.mark.parametrize("respacing", MANIFEST["respacings"])
def test_respaced_schedule_matches_official(refs, respacing: str):
    diffusion = SpacedDiffusion(respacing)
    assert diffusion.timestep_map == refs[f"schedule.{respacing}.timestep_map"].tolist()
    assert diffusion.num_timesteps == int(respacing)
    for table in ("betas", "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
                  "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod"):
        torch.testing.assert_close(torch.from_numpy(getattr(diffusion, table)), refs[f"schedule.{respacing}.{table}"],
                                   rtol=1e-12, atol=0)


def test_space_timesteps_sections_and_ddim():
    assert sorted(space_timesteps(1000, "10")) == [0, 111, 222, 333, 444, 555, 666, 777, 888, 999]
    assert sorted(space_timesteps(300, "1,2")) == [0, 150, 299]
    assert space_timesteps(1000, "ddim4") == {0, 250, 500, 750}


@pytest.mark.parametrize("respacing,index", [tuple(s) for s in MANIFEST["steps"]])
def test_one_diffusion_step_matches_official(dit: DiTGenerator, refs, respacing: str, index: int):
    key = f"step.{respacing}.{index}"
    diffusion = SpacedDiffusion(respacing)
    x, y, scale = refs[f"{key}.x"], refs[f"{key}.y"], float(refs[f"{key}.cfg_scale"])
    with torch.no_grad():
        out = dit.transformer.forward_with_cfg(x, diffusion.model_timesteps(index, len(x)), y, scale)
    stats = diffusion.p_mean_variance(out, x, index)
    for name in ("mean", "log_variance", "pred_xstart"):
        torch.testing.assert_close(stats[name], refs[f"{key}.{name}"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(diffusion.p_sample(out, x, index, refs[f"{key}.noise"]), refs[f"{key}.sample"],
                               atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("run", sorted(MANIFEST["runs"]))
def test_official_sample_equals_sample_py(run: str):
    settings = MANIFEST["runs"][run]
    expected = load_file(FIXTURES / run)
    gen = build_generator("dit", {**TINY, "guidance": settings["cfg_scale"],
                                  "diffusion_steps": settings["num_sampling_steps"]}, checkpoint=CKPT)
    state = torch.random.get_rng_state()
    images = gen.official_sample(settings["labels"], settings["seed"])
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is left as it was
    assert images.dtype == torch.uint8 and images.shape == expected["images"].shape == (8, 3, 64, 64)
    diff = (images.int() - expected["images"].int()).abs()
    assert diff.max() <= 1 and (diff == 0).float().mean() >= 0.999
    assert 0.5 < expected["images"].float().std() / 64  # the references are real images, not flat


def test_official_sample_without_guidance_runs_unguided():
    gen = build_generator("dit", {**TINY, "guidance": None, "diffusion_steps": 3}, checkpoint=CKPT)
    a, b = gen.official_sample([1, 2], 0), gen.official_sample([1, 2], 0)
    assert torch.equal(a, b) and a.shape == (2, 3, 64, 64)
    assert gen.cost_probes()[0].cfg_doubles_batch is False


def test_sample_is_per_sample_deterministic(dit: DiTGenerator):
    gen = build_generator("dit", {**TINY, "guidance": 1.5, "diffusion_steps": 5}, checkpoint=CKPT)
    labels, seeds = [207, 360, 207], [sample_seed(0, i) for i in range(3)]
    batch = gen.sample(labels, seeds)
    singles = torch.cat([gen.sample([c], [s]) for c, s in zip(labels, seeds, strict=True)])
    assert batch.shape == (3, 3, 64, 64) and batch.dtype == torch.uint8
    diff = (batch.int() - singles.int()).abs()  # float32: the batch size may move a pixel by one level
    assert diff.max() <= 1 and (diff == 0).float().mean() > 0.999
    assert not torch.equal(batch[0], batch[2])


def test_cost_probes(dit: DiTGenerator):
    transformer, decoder = dit.cost_probes(batch_size=2)
    assert (transformer.name, transformer.calls_per_image, transformer.cfg_doubles_batch) == ("transformer", 250, True)
    assert (decoder.name, decoder.calls_per_image, decoder.cfg_doubles_batch) == ("vae_decoder", 1, False)
    with torch.no_grad():
        assert transformer.module(*transformer.inputs).shape == (2, 8, 8, 8)
        assert decoder.module(*decoder.inputs).shape == (2, 3, 64, 64)
    assert list(dit.attention_modules()) == ["transformer.blocks.0.attn", "transformer.blocks.1.attn"]
    assert set(dit.state_dict()) == {f"transformer.{k}" for k in dit.transformer.state_dict()} | {
        f"vae.{k}" for k in dit.vae.state_dict()}  # the decoder stage adds no second copy


def test_model_flops_of_both_stages():
    from lina_bench.evaluators.flops import count_generator

    for options in DiTGenerator.test_configs.values():
        flops = count_generator(build_generator("dit", options))
        transformer, decoder = flops.stages
        assert transformer.stage.calls_per_image == 4 and transformer.stage.cfg_doubles_batch
        assert transformer.gmacs_per_call > 0 and decoder.gmacs_per_call > 0 and 0 < transformer.attention_share < 1


# --- checkpoints ------------------------------------------------------------------------------------

def test_training_checkpoint_uses_ema(tmp_path: Path, official_state):
    other = {k: v + 1 for k, v in official_state.items()}
    params = [torch.nn.Parameter(v.clone()) for v in official_state.values()]
    opt = torch.optim.AdamW(params, lr=1e-4)
    sum(p.sum() for p in params).backward()
    opt.step()
    args = argparse.Namespace(model="DiT-tiny", image_size=64, global_seed=0)
    torch.save({"model": other, "ema": official_state, "opt": opt.state_dict(), "args": args}, tmp_path / "0000100.pt")
    gen = build_generator("dit", TINY, checkpoint=tmp_path / "0000100.pt")
    for key, value in gen.transformer.state_dict().items():
        assert torch.equal(value, official_state[key]), key


def test_safetensors_checkpoint(tmp_path: Path, official_state):
    save_file({k: v.contiguous() for k, v in official_state.items()}, str(tmp_path / "dit.safetensors"))
    gen = build_generator("dit", TINY, checkpoint=tmp_path / "dit.safetensors")
    assert torch.equal(gen.transformer.pos_embed, official_state["pos_embed"])


def test_strict_loading_names_the_keys(tmp_path: Path, official_state):
    missing = dict(official_state)
    del missing["final_layer.linear.bias"]
    torch.save(missing, tmp_path / "missing.pt")
    with pytest.raises(LinaBenchError, match=r"1 missing keys: final_layer\.linear\.bias"):
        build_generator("dit", TINY, checkpoint=tmp_path / "missing.pt")
    torch.save({**official_state, "extra.weight": torch.zeros(1)}, tmp_path / "unexpected.pt")
    with pytest.raises(LinaBenchError, match=r"1 unexpected keys: extra\.weight"):
        build_generator("dit", TINY, checkpoint=tmp_path / "unexpected.pt")
    shapes = r"shapes differ .*pos_embed: checkpoint \(1, 16, 32\), model \(1, 64, 32\)"
    with pytest.raises(LinaBenchError, match=shapes):
        build_generator("dit", {**TINY, "input_size": 16}, checkpoint=CKPT)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(LinaBenchError, match="cannot read checkpoint"):
        build_generator("dit", TINY, checkpoint=tmp_path / "junk.pt")
    truncated = CKPT.read_bytes()[:50_000]
    (tmp_path / "truncated.pt").write_bytes(truncated)
    with pytest.raises(LinaBenchError, match="cannot read checkpoint"):
        build_generator("dit", TINY, checkpoint=tmp_path / "truncated.pt")
    with pytest.raises(LinaBenchError, match="checkpoint not found"):
        build_generator("dit", TINY, checkpoint=tmp_path / "absent.pt")


def test_lit_inherits_every_dit_parameter_but_attention(official_state, caplog):
    """The issue's LiT inheritance test: every shared parameter equals the checkpoint's, and exactly the
    checkpoint's blocks.*.attn.* keys are reported as skipped."""
    with caplog.at_level(logging.WARNING, logger="lina_bench.models.dit.generator"):
        lit = build_generator("dit", {**TINY, "attention": "lit", "attention_heads": 1}, checkpoint=CKPT)
    state = lit.transformer.state_dict()
    ckpt_attn = sorted(k for k in official_state if ".attn." in k)
    assert ckpt_attn == sorted(f"blocks.{i}.{s}" for i in range(2) for s in ATTN_SUFFIXES)
    extra = lit.info().extra
    assert extra["skipped_keys"] == ckpt_attn
    assert extra["new_keys"] == sorted(k for k in state if ".attn." in k)
    assert "blocks.0.attn.dwc.weight" in extra["new_keys"]
    shared = set(state) - set(extra["new_keys"])
    assert shared == set(official_state) - set(ckpt_attn)
    for key in shared:
        assert torch.equal(state[key], official_state[key]), key
    # the output projection has DiT's name and shape but is the linear attention's own, not inherited
    assert not torch.equal(state["blocks.0.attn.proj.weight"], official_state["blocks.0.attn.proj.weight"])
    assert lit.info().attention == "lit" and lit.transformer.blocks[0].attn.num_heads == 1
    assert "weight inheritance" in caplog.text and "blocks.1.attn.qkv.weight" in caplog.text


def test_lit_checkpoint_loads_strictly_and_other_keys_stay_errors(tmp_path: Path, official_state):
    lit = build_generator("dit", {**TINY, "attention": "lit", "weight_seed": 3}, checkpoint=CKPT)
    torch.save(lit.transformer.state_dict(), tmp_path / "lit.pt")
    again = build_generator("dit", {**TINY, "attention": "lit"}, checkpoint=tmp_path / "lit.pt")
    assert again.info().extra["skipped_keys"] == [] and again.info().extra["new_keys"] == []
    assert torch.equal(again.transformer.blocks[0].attn.dwc.weight, lit.transformer.blocks[0].attn.dwc.weight)
    with pytest.raises(LinaBenchError, match=r"unexpected keys: blocks\.0\.attn\.dwc\.bias"):
        build_generator("dit", TINY, checkpoint=tmp_path / "lit.pt")  # softmax loads strictly
    broken = {k: v for k, v in official_state.items() if k != "y_embedder.embedding_table.weight"}
    torch.save(broken, tmp_path / "broken.pt")
    with pytest.raises(LinaBenchError, match=r"missing keys: y_embedder\.embedding_table\.weight"):
        build_generator("dit", {**TINY, "attention": "lit"}, checkpoint=tmp_path / "broken.pt")


def test_lit_samples_after_inheritance():
    lit = build_generator("dit", {**TINY, "attention": "lit", "attention_heads": 1, "diffusion_steps": 3,
                                  "guidance": 2.0}, checkpoint=CKPT)
    images = lit.sample([1, 2], [sample_seed(0, 0), sample_seed(0, 1)])
    assert images.shape == (2, 3, 64, 64) and images.dtype == torch.uint8


# --- options and errors -----------------------------------------------------------------------------

def test_vae_options_are_checked(tmp_path: Path):
    with pytest.raises(LinaBenchError, match="local diffusers AutoencoderKL folder with config.json"):
        build_generator("dit", {**TINY, "vae": str(tmp_path)})
    with pytest.raises(LinaBenchError, match="either vae .* or vae_config"):
        build_generator("dit", {**TINY, "vae_config": {"block_out_channels": [8]}})
    with pytest.raises(LinaBenchError, match="2 latent channels but the DiT takes 4"):
        build_generator("dit", {**TINY, "vae": None, "vae_config": {"block_out_channels": [8, 8], "latent_channels": 2,
                                                                     "norm_num_groups": 4}})
    with pytest.raises(LinaBenchError, match="guidance needs the null class"):
        build_generator("dit", {**TINY, "class_dropout_prob": 0.0})
    with pytest.raises(LinaBenchError, match="unknown option 'cfg_scale'"):
        build_generator("dit", {"cfg_scale": 4.0})


def test_random_vae_has_the_sd_architecture_by_default():
    gen = build_generator("dit", {"model": "DiT-S/8", "depth": 1, "input_size": 8, "diffusion_steps": 1})
    assert gen.vae_factor == 8 and gen.info().resolution == (64, 64)
    assert list(gen.vae.config.block_out_channels) == [128, 256, 512, 512]
    assert gen.info().extra["vae"] == {"weights": "random", "config": "sd-vae"}


def test_learn_sigma_false_uses_fixed_large_variance():
    gen = build_generator("dit", {**TINY, "learn_sigma": False, "diffusion_steps": 3, "guidance": None})
    assert gen.transformer.out_channels == 4
    assert gen.sample([0], [1]).shape == (1, 3, 64, 64)


def test_registered_test_configs_are_listed():
    configs = registry.generators.class_attribute("dit", "test_configs")
    assert set(configs) == {"dit-tiny", "lit-tiny"} and configs["lit-tiny"]["attention"] == "lit"

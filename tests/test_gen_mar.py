"""The ``mar`` generator and the shared KL-16 VAE against the official LTH14/mar code (fixtures in
tests/fixtures/mar/, made by tests/fixtures/make_mar_fixtures.py): module outputs, diffusion tables, the
official sampler's images, strict loading, the generator contract and the cost stages."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lina_bench.api.errors import LinaBenchError
from lina_bench.api.generator import build_generator
from lina_bench.models import check_generator_contract
from lina_bench.models.blocks.kl16_vae import KL16VAE, ldm_to_diffusers, load_strict
from lina_bench.models.mar.diffusion import SpacedDDPM
from lina_bench.models.mar.sampler import OfficialRng, sample_tokens

FIXTURES = Path(__file__).parent / "fixtures"
_spec = importlib.util.spec_from_file_location("make_mar_fixtures", FIXTURES / "make_mar_fixtures.py")
make = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make)

REF = load_file(str(FIXTURES / "mar" / "reference.safetensors"))
SPEC = json.loads((FIXTURES / "mar" / "spec.json").read_text())
CASES = json.loads((FIXTURES / "mar" / "cases.json").read_text())
TABLES = json.loads((FIXTURES / "mar" / "diffusion_tables.json").read_text())
ATOL = 1e-5  # float32 module outputs: same math, different kernels (SDPA vs bmm, linear vs 1x1 conv)


def tiny_options(**extra) -> dict:
    """The fixtures' tiny MAR (16 px, 16 tokens) with the official VAE file, as ``build_generator`` options."""
    cfg = CASES["mar_config"]
    return {**cfg, "vae_ch": CASES["vae_config"]["ch"], "vae_ch_mult": list(CASES["vae_config"]["ch_mult"]),
            "diffusion_steps": CASES["diffusion_steps"], **extra}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """The official-format files, rebuilt from spec.json: checkpoint-last.pth and kl16.ckpt."""
    root = tmp_path_factory.mktemp("mar")
    paths = {"checkpoint": root / "checkpoint-last.pth", "vae": root / "kl16.ckpt"}
    torch.save(make.mar_checkpoint(SPEC["mar"]), paths["checkpoint"])
    torch.save({"model": make.official_state(SPEC["vae"], make.SEEDS["vae"])}, paths["vae"])
    return paths


def build(files: dict[str, Path], **options):
    return build_generator("mar", tiny_options(vae=str(files["vae"]), **options), checkpoint=files["checkpoint"])


def test_kl16_vae_encode_decode_match_official(tmp_path):
    path = tmp_path / "kl16.ckpt"
    torch.save({"model": make.official_state(SPEC["vae_module"], make.SEEDS["vae_module"])}, path)
    vae = KL16VAE(**CASES["vae_module_config"])
    vae.load_mar_checkpoint(path)
    assert any(".down_blocks.1.attentions.1." in k for k in vae.state_dict())  # LDM's attention at 16 px
    with torch.no_grad():
        posterior = vae.encode(REF["vae.images"])
        decoded = vae.decode(REF["vae.mean"])
    torch.testing.assert_close(posterior.mean, REF["vae.mean"], atol=ATOL, rtol=0)
    torch.testing.assert_close(posterior.logvar, REF["vae.logvar"], atol=ATOL, rtol=0)
    torch.testing.assert_close(decoded, REF["vae.decoded"], atol=ATOL, rtol=0)


def test_kl16_vae_loads_lina_autoencoder_kl_mar_weights():
    """LINA/NOVA's AutoencoderKLMAR is the same network in diffusers' names: its state dict loads as is."""
    vae = KL16VAE.from_diffusers_config(CASES["lina_vae_config"])
    load_strict(vae, make.official_state(SPEC["lina_vae"], make.SEEDS["lina_vae"]), "AutoencoderKLMAR weights")
    with torch.no_grad():
        torch.testing.assert_close(vae.encode(REF["vae.images"]).mean, REF["lina_vae.mean"], atol=ATOL, rtol=0)
        torch.testing.assert_close(vae.decode(REF["vae.mean"]), REF["lina_vae.decoded"], atol=ATOL, rtol=0)


def test_kl16_vae_strict_loading_names_the_keys(tmp_path):
    state = make.official_state(SPEC["vae_module"], make.SEEDS["vae_module"])
    vae = KL16VAE(**CASES["vae_module_config"])
    missing = {k: v for k, v in state.items() if k != "decoder.up.0.block.2.conv1.weight"}
    with pytest.raises(LinaBenchError, match=r"missing keys: decoder\.up_blocks\.1\.resnets\.2\.conv1\.weight"):
        load_strict(vae, ldm_to_diffusers(missing, vae.num_levels), "test VAE")
    torch.save({"model": {**state, "loss.logvar": torch.zeros(())}}, tmp_path / "extra.ckpt")
    with pytest.raises(LinaBenchError, match=r"unexpected keys: loss\.logvar"):
        vae.load_mar_checkpoint(tmp_path / "extra.ckpt")
    with pytest.raises(LinaBenchError, match=r"ch_mult must start with 1"):
        KL16VAE(ch=32, ch_mult=(2, 2))
    with pytest.raises(LinaBenchError, match=r"unsupported AutoencoderKLMAR config \{'double_z': False\}"):
        KL16VAE.from_diffusers_config({**CASES["lina_vae_config"], "double_z": False})


def test_transformer_and_diffusion_head_match_official(files):
    gen = build(files)
    mar = gen.mar
    with torch.no_grad():
        z = mar(REF["mar.tokens"], REF["mar.mask"], mar.class_emb(REF["mar.labels"]))
        head = mar.diffloss.net(REF["head.x"], REF["head.t"], REF["head.c"])
        c = REF["head.c"]
        guided = mar.diffloss.guided(REF["head.x"], torch.cat([REF["head.t"]] * 2), torch.cat([c, c.flip(0)]), 2.5)
    torch.testing.assert_close(z, REF["mar.z"], atol=ATOL, rtol=0)
    torch.testing.assert_close(head, REF["head.out"], atol=ATOL, rtol=0)
    torch.testing.assert_close(guided, REF["head.out_cfg"][:len(c)], atol=ATOL, rtol=0)
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(mar.unpatchify(mar.patchify(latents)), latents)


@pytest.mark.parametrize("steps", sorted(TABLES, key=int))
def test_respaced_ddpm_tables_match_official(steps: str):
    ddpm, ref = SpacedDDPM(int(steps)), TABLES[steps]
    assert ddpm.timestep_map == ref["timestep_map"]
    pairs = {"posterior_mean_coef1": "posterior_mean_coef1", "posterior_mean_coef2": "posterior_mean_coef2",
             "min_log": "posterior_log_variance_clipped", "sqrt_recip_alphas_cumprod": "sqrt_recip_alphas_cumprod",
             "sqrt_recipm1_alphas_cumprod": "sqrt_recipm1_alphas_cumprod", "max_log": "betas"}
    for ours, theirs in pairs.items() if "betas" in ref else ():
        expected = torch.tensor(ref[theirs], dtype=torch.float64)
        expected = expected.log() if theirs == "betas" else expected
        torch.testing.assert_close(torch.from_numpy(ddpm.tables[ours]), expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("case", CASES["samples"], ids=lambda c: c["name"])
def test_official_sample_equals_the_official_images(files, case: dict):
    gen = build(files, **case["options"])
    images = gen.official_sample(case["labels"], case["seed"])
    ref = REF[f"sample.{case['name']}"]
    assert images.dtype == torch.uint8 and images.shape == ref.shape
    delta = (images.int() - ref.int()).abs()
    assert delta.max() <= 1 and (delta == 0).float().mean() >= 0.999
    tokens = sample_tokens(gen.mar, torch.tensor(case["labels"]), OfficialRng(len(case["labels"]), case["seed"]),
                           gen.ar_steps, gen.guidance, gen.guidance_schedule, gen.temperature)
    torch.testing.assert_close(tokens, REF[f"sample.{case['name']}.tokens"], atol=1e-4, rtol=0)


def test_ema_option_picks_the_weights(files):
    ema, raw = build(files), build(files, ema=False)
    state = make.mar_checkpoint(SPEC["mar"])
    assert torch.equal(ema.mar.fake_latent, state["model_ema"]["fake_latent"])
    assert torch.equal(raw.mar.fake_latent, state["model"]["fake_latent"])


def test_checkpoint_errors_name_keys_and_files(files, tmp_path):
    state = make.mar_checkpoint(SPEC["mar"])
    cases = {
        "missing": ({**state, "model_ema": {k: v for k, v in state["model_ema"].items() if k != "mask_token"}},
                    r"missing keys: mask_token"),
        "unexpected": ({**state, "model_ema": {**state["model_ema"], "encoder_blocks.9.attn.qkv.bias": torch.ones(1)}},
                       r"unexpected keys: encoder_blocks\.9\.attn\.qkv\.bias"),
        "shape": ({**state, "model_ema": {**state["model_ema"], "fake_latent": torch.ones(1, 8)}},
                  r"shape mismatches \(file vs model\): fake_latent \(1, 8\) vs \(1, 32\)"),
        "no_ema": ({**state, "model_ema": None}, r"has no 'model_ema' state dict \(set ema=false"),
    }
    for name, (payload, message) in cases.items():
        torch.save(payload, tmp_path / f"{name}.pth")
        with pytest.raises(LinaBenchError, match=message):
            build_generator("mar", tiny_options(), checkpoint=tmp_path / f"{name}.pth")
    data = files["checkpoint"].read_bytes()
    (tmp_path / "truncated.pth").write_bytes(data[: len(data) // 2])
    (tmp_path / "corrupt.pth").write_bytes(b"not a checkpoint" * 64)
    for name in ("truncated", "corrupt"):
        with pytest.raises(LinaBenchError, match=rf"cannot read MAR checkpoint .*{name}\.pth"):
            build_generator("mar", tiny_options(), checkpoint=tmp_path / f"{name}.pth")
    with pytest.raises(LinaBenchError, match=r"VAE checkpoint not found: .*nowhere\.ckpt"):
        build_generator("mar", tiny_options(vae=str(tmp_path / "nowhere.ckpt")))


@pytest.mark.parametrize("guidance", [1.0, 3.0])
def test_contract_holds(files, guidance: float):
    """In float64: in float32 a batch and its samples drawn one by one differ by rounding (batch-size-dependent
    matrix kernels), which the sampler amplifies (the DDPM's first steps scale x by 1/sqrt(alpha_bar))."""
    check_generator_contract(build(files, ar_steps=3, diffusion_steps=2, guidance=guidance, dtype="float64"))


def test_cost_stages():
    gen = build_generator("mar", tiny_options(ar_steps=4, diffusion_steps=10, guidance=2.0))
    transformer, head, decoder = gen.cost_probes(batch_size=2)
    assert [s.name for s in (transformer, head, decoder)] == ["transformer", "diffusion_head", "vae_decoder"]
    assert (transformer.calls_per_image, transformer.cfg_doubles_batch) == (4, True)
    assert (head.calls_per_image, head.cfg_doubles_batch) == (10 * 4, True)  # 16 tokens, 4 per AR step
    assert (decoder.calls_per_image, decoder.cfg_doubles_batch) == (1, False)
    with torch.no_grad():
        assert transformer.module(*transformer.inputs).shape == (2, 16, 32)
        assert head.module(*head.inputs).shape == (2, 4, 32)
        assert decoder.module(*decoder.inputs).shape == (2, 3, 16, 16)
    assert transformer.inputs[1].sum() == 2 * (16 - 4)  # visible tokens per AR step: 0, 2, 5, 10 (mean 4.25)
    assert list(gen.attention_modules()) == [f"transformer.{part}_blocks.{i}.attn"
                                             for part in ("encoder", "decoder") for i in range(2)]
    assert gen.info().steps == 4 and gen.info().guidance == 2.0 and gen.info().num_classes == 10


def test_options_are_checked():
    with pytest.raises(LinaBenchError, match=r"attention 'softmax' only, got 'lina'"):
        build_generator("mar", tiny_options(attention="lina"))
    with pytest.raises(LinaBenchError, match=r"unknown MAR model 'mar_tiny'"):
        build_generator("mar", tiny_options(model="mar_tiny"))
    with pytest.raises(LinaBenchError, match=r"guidance_schedule must be 'linear' or 'constant'"):
        build_generator("mar", tiny_options(guidance_schedule="cosine"))
    with pytest.raises(LinaBenchError, match=r"stride 4, not vae_stride=2"):
        build_generator("mar", tiny_options(vae_ch_mult=[1, 1, 1]))
    with pytest.raises(LinaBenchError, match=re.escape("unknown option 'encoder_width'")):
        build_generator("mar", tiny_options(encoder_width=3))

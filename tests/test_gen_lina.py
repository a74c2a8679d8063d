"""The ``lina`` generator (LINA / NOVA class-to-image) against the official code's outputs.

Fixtures: tests/fixtures/lina/<case>/ (see its README.md), made by tests/fixtures/make_lina_fixtures.py
from techmonsterwang/LINA at f13f7c39. Their weights are regenerated here from the fixture's seed
(sha256-pinned) and written into a temporary copy of the official pipeline directory.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from lina_bench.api.errors import LinaBenchError
from lina_bench.api.generator import build_generator, sample_seed
from lina_bench.models.lina.config import SETTINGS
from lina_bench.models.lina.generator import tokens_per_step
from lina_bench.models.lina.training import training_loss

FIXTURES = Path(__file__).parent / "fixtures"
_spec = importlib.util.spec_from_file_location("make_lina_fixtures", FIXTURES / "make_lina_fixtures.py")
fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixtures)
CASES = fixtures.CASES


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one thread is much faster than several on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def checkpoint(tmp_path: Path, name: str, fmt: str = "safetensors") -> Path:
    """A full official pipeline directory for fixture case ``name`` (weights from its seed)."""
    folder = tmp_path / name
    shutil.copytree(FIXTURES / "lina" / name, folder)
    transformer, vae = fixtures.case_weights(folder, CASES[name]["seed"])
    for part, state in (("transformer", transformer), ("vae", vae)):
        if fmt == "safetensors":
            save_file(state, str(folder / part / "diffusion_pytorch_model.safetensors"))
        else:
            torch.save(state, folder / part / "diffusion_pytorch_model.bin")
    return folder


def options(name: str, **extra) -> dict:
    case = CASES[name]
    return {"archs": str(FIXTURES / "lina" / name / "archs.json"), "ar_steps": case["ar_steps"],
            "diffusion_steps": case["diffusion_steps"], "guidance": case["guidance"],
            "min_guidance": case["min_guidance"], **extra}


def reference(name: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    path = FIXTURES / "lina" / name / "reference.safetensors"
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    return load_file(str(path)), meta


@pytest.mark.parametrize("name", list(CASES))
def test_regenerated_weights_are_the_fixtures(name: str):
    _, meta = reference(name)
    transformer, vae = fixtures.case_weights(FIXTURES / "lina" / name, CASES[name]["seed"])
    assert fixtures.state_sha256(transformer) == meta["transformer_sha256"]
    assert fixtures.state_sha256(vae) == meta["vae_sha256"]
    assert meta["commit"] == "f13f7c39066a1a60d025a5440bdb8d9304772862"


@pytest.mark.parametrize("name", list(CASES))
def test_module_outputs_match_the_official_code(tmp_path: Path, name: str):
    """Label embedding, condition encoder, one AR step of the image transformer (visible tokens only in
    the first half), diffusion head: float32, |diff| <= 1e-4 (outputs are O(1))."""
    gen = build_generator("lina", options(name), checkpoint=checkpoint(tmp_path, name))
    ref, _ = reference(name)
    tr = gen.transformer
    with torch.no_grad():
        labels = tr.label_embed(ref["labels"])
        torch.testing.assert_close(labels, ref["label_embed"], atol=1e-5, rtol=0)
        torch.testing.assert_close(tr.condition_tokens(labels), ref["prefix"], atol=1e-4, rtol=0)
        n = ref["latents"].shape[-1] ** 2
        mask = torch.ones(len(ref["labels"]), n, 1).scatter(1, ref["visible"], 0.0)
        out = tr.image_encoder(tr.image_tokens(ref["latents"], mask), ref["prefix"], ref["visible"])
        torch.testing.assert_close(out, ref["image_encoder"], atol=1e-4, rtol=0)
        patches = tr.image_encoder.patch_embed.patchify(ref["latents"])
        x = patches.gather(1, ref["new"].expand(-1, -1, patches.shape[-1]))
        z = ref["image_encoder"].gather(1, ref["new"].expand(-1, -1, out.shape[-1]))
        torch.testing.assert_close(tr.image_decoder(x, ref["timestep"], z), ref["head"], atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", list(CASES))
def test_training_loss_matches_the_official_code(tmp_path: Path, name: str):
    """The official ``get_losses`` for the reference masking, noise and timesteps drawn from seed 123."""
    gen = build_generator("lina", options(name), checkpoint=checkpoint(tmp_path, name))
    ref, _ = reference(name)
    with torch.no_grad():
        loss = training_loss(gen.transformer, ref["latents"], ref["labels"], ref["visible"],
                             torch.Generator().manual_seed(123))
    torch.testing.assert_close(loss.reshape(1), ref["loss"], atol=0, rtol=1e-5)


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.get("images", True)])
def test_official_sample_equals_the_official_pipeline(tmp_path: Path, name: str):
    """The official pipeline's images for the case's labels and seed: |diff| <= 1, >= 99.9% exact."""
    case = CASES[name]
    gen = build_generator("lina", options(name), checkpoint=checkpoint(tmp_path, name))
    ours = torch.cat(list(gen.official_sample(case["labels"], case["seed"])), dim=2)
    official = torch.from_numpy(np.array(Image.open(FIXTURES / "lina" / name / "images.png"))).permute(2, 0, 1)
    diff = (ours.int() - official.int()).abs()
    assert diff.max() <= 1
    assert (diff == 0).float().mean() >= 0.999


def test_model_index_names_the_attention_and_the_option_overrides_it(tmp_path: Path):
    lina = build_generator("lina", options("lina"), checkpoint=checkpoint(tmp_path, "lina"))
    assert lina.info().attention == "lina" and lina.info().num_classes == 1000
    assert lina.info().resolution == (256, 256) and lina.info().steps == 8
    softmax = build_generator("lina", options("softmax"), checkpoint=checkpoint(tmp_path, "softmax"))
    assert softmax.info().attention == "softmax"
    with pytest.raises(LinaBenchError, match=r"unexpected keys: .*dw_conv"):
        build_generator("lina", options("lina", attention="linear"), checkpoint=tmp_path / "lina")
    with pytest.raises(LinaBenchError, match=r"missing keys: .*key_scale"):
        build_generator("lina", options("lina", attention="lina"), checkpoint=checkpoint(tmp_path, "linear-sub-dwc"))


def test_unknown_official_module_is_a_clear_error(tmp_path: Path):
    folder = checkpoint(tmp_path, "softmax")
    index = json.loads((folder / "model_index.json").read_text())
    index["transformer"][0] = "diffnext.models.transformers.transformer_nova_linear_decouple1_mem2"
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(LinaBenchError, match="transformer_nova_linear_decouple1_mem2.*option 'attention'"):
        build_generator("lina", options("softmax"), checkpoint=folder)
    assert build_generator("lina", options("softmax", attention="softmax"), checkpoint=folder).setting == "softmax"


def test_strict_loading_names_missing_and_unexpected_keys(tmp_path: Path):
    folder = checkpoint(tmp_path, "softmax")
    path = folder / "transformer" / "diffusion_pytorch_model.safetensors"
    state = load_file(str(path))
    del state["image_encoder.blocks.1.attn.proj.weight"]
    state["image_encoder.extra.weight"] = torch.zeros(1)
    save_file(state, str(path))
    with pytest.raises(LinaBenchError, match=r"missing keys: image_encoder\.blocks\.1\.attn\.proj\.weight.*"
                                             r"unexpected keys: image_encoder\.extra\.weight"):
        build_generator("lina", options("softmax"), checkpoint=folder)


def test_bin_weights_load_like_safetensors(tmp_path: Path):
    a = build_generator("lina", options("softmax"), checkpoint=checkpoint(tmp_path / "a", "softmax"))
    b = build_generator("lina", options("softmax"), checkpoint=checkpoint(tmp_path / "b", "softmax", fmt="bin"))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


@pytest.mark.parametrize("damage", ["truncated", "missing", "not-a-directory", "bad-config"])
def test_corrupt_checkpoints_are_clear_errors(tmp_path: Path, damage: str):
    folder = checkpoint(tmp_path, "softmax")
    weights = folder / "vae" / "diffusion_pytorch_model.safetensors"
    target, match = folder, "vae"
    if damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:1000])
        match = "cannot read weights .*vae"
    elif damage == "missing":
        weights.unlink()
        match = r"no \.safetensors or \.bin weights in .*vae"
    elif damage == "not-a-directory":
        target, match = weights, "pipeline directory"
    else:
        (folder / "transformer" / "config.json").write_text("{")
        match = "cannot read .*transformer/config.json"
    with pytest.raises(LinaBenchError, match=match):
        build_generator("lina", options("softmax"), checkpoint=target)


def test_unknown_arch_points_to_the_archs_option(tmp_path: Path):
    with pytest.raises(LinaBenchError, match="unknown video encoder arch 'vit_d2w32h1'.*option 'archs'"):
        build_generator("lina", {}, checkpoint=checkpoint(tmp_path, "softmax"))


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_every_setting_builds_and_samples(setting: str):
    gen = build_generator("lina", {"attention": setting, "diffusion_steps": 2, "guidance": 2.0, "min_guidance": 1.0})
    seeds = [sample_seed(0, i) for i in range(2)]
    images = gen.sample([3, 3], seeds)
    assert images.shape == (2, 3, 32, 32) and images.dtype == torch.uint8
    assert not torch.equal(images[0], images[1])
    assert torch.equal(gen.sample([3], seeds[1:]), images[1:])  # per-sample seeds
    assert gen.info().attention == setting


def test_cosine_schedule_is_the_official_one():
    ratios = np.cos(0.5 * np.pi * np.arange(65) / 64)
    lengths = np.round(ratios * 256).astype(int)
    assert tokens_per_step(256, 64) == [int(n) for n in lengths[:-1] - lengths[1:] if n > 0]
    assert sum(tokens_per_step(256, 64)) == 256 and tokens_per_step(4, 64) == [1, 1, 1, 1]


@pytest.mark.parametrize("guidance", [1.0, 3.0])
def test_cost_stages(guidance: float):
    gen = build_generator("lina", {"ar_steps": 3, "diffusion_steps": 5, "guidance": guidance})
    stages = {s.name: s for s in gen.cost_probes(batch_size=2)}
    assert list(stages) == ["transformer", "condition", "head", "vae"]
    steps = len(tokens_per_step(4, 3))
    assert stages["transformer"].calls_per_image == steps and stages["condition"].calls_per_image == 1
    assert stages["head"].calls_per_image == steps * 5 and stages["vae"].calls_per_image == 1
    assert [s.cfg_doubles_batch for s in stages.values()] == [guidance > 1] * 3 + [False]
    names = list(gen.attention_modules())
    assert names[0] == "transformer.blocks.0.attn" and "condition.video_encoder.blocks.0.attn" in names


def test_config_alone_builds_random_weights_for_costs():
    config = FIXTURES / "lina" / "lina" / "transformer" / "config.json"
    gen = build_generator("lina", {"config": str(config), "attention": "lina",
                                   "archs": str(FIXTURES / "lina" / "lina" / "archs.json")})
    assert gen.info().resolution == (256, 256)
    stage = gen.cost_probes(1)[0]
    assert stage.module(*stage.inputs).shape == (1, 256, 32)


def test_guidance_must_keep_cfg_on_or_off():
    with pytest.raises(LinaBenchError, match="min_guidance"):
        build_generator("lina", {"guidance": 3.0, "min_guidance": 0.5})


def test_text_to_image_config_alone_serves_cost_measurements(tmp_path: Path):
    """A 1024 px text-to-image transformer config (official layout; tiny arch names) builds with random
    weights: condition encoder over 256 text tokens, 64 x 64 image tokens after a 32 x 32 prefix."""
    config = {"image_dim": 4, "image_size": [1024, 1024], "image_stride": 8, "text_token_dim": 2560,
              "text_token_len": 256, "video_base_size": [1, 32, 32], "image_base_size": [64, 64],
              "arch": ["vit_d2w32", "vit_d4w32", "mlp_d2w32"]}
    (tmp_path / "transformer").mkdir()
    (tmp_path / "transformer" / "config.json").write_text(json.dumps(config))
    gen = build_generator("lina", {"config": str(tmp_path / "transformer" / "config.json"), "attention": "lina",
                                   "archs": str(FIXTURES / "lina" / "lina" / "archs.json"), "ar_steps": 128,
                                   "guidance": 7.0})
    info = gen.info()
    assert (info.conditioning, info.resolution, info.num_classes) == ("text", (1024, 1024), None)
    transformer, condition, head, _ = gen.cost_probes(1)
    assert transformer.module(*transformer.inputs).shape == (1, 4096, 32)
    assert condition.module(*condition.inputs).shape == (1, 1024, 32)
    assert head.calls_per_image == len(tokens_per_step(4096, 128)) * 25 and head.cfg_doubles_batch
    assert gen.transformer.image_encoder.blocks[3].attn.key_scale.shape == (1, 2, 64 * 64 + 32 * 32, 1)
    with pytest.raises(LinaBenchError, match="text-to-image sampling"):
        gen.sample(["a photo of a cat"], [0])

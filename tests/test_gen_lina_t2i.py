"""The ``lina`` generator's text-to-image side (LINA / NOVA ``NOVAPipeline``) against the official code's outputs.

Fixtures: tests/fixtures/lina_t2i/<case>/ (see its README.md), made by tests/fixtures/make_lina_t2i_fixtures.py
from techmonsterwang/LINA at f13f7c39: the official T2I pipeline directory (tiny CodeGen tokenizer, tiny Phi,
SDXL-style VAE) without weights; the weights are regenerated here from the case's seed (sha256-pinned).
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
from lina_bench.models import check_generator_contract
from lina_bench.models.lina import LinaGenerator

from cli_helpers import run_cli
from geneval_helpers import METADATA, tiny_clip, tiny_mask2former, write_prompt_files

FIXTURES = Path(__file__).parent / "fixtures"
_spec = importlib.util.spec_from_file_location("make_lina_t2i_fixtures", FIXTURES / "make_lina_t2i_fixtures.py")
fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixtures)
CASES = fixtures.CASES
TINY = LinaGenerator.test_configs["lina-t2i-tiny"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one thread is much faster than several on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def checkpoint(tmp_path: Path, name: str) -> Path:
    """A full official T2I pipeline directory for fixture case ``name`` (weights from its seed)."""
    folder = tmp_path / name
    shutil.copytree(FIXTURES / "lina_t2i" / name, folder)
    fixtures.write_weights(folder, fixtures.case_weights(folder, CASES[name]["seed"]))
    return folder


def options(name: str, **extra) -> dict:
    case = CASES[name]
    return {"archs": str(FIXTURES / "lina_t2i" / name / "archs.json"), "ar_steps": case["ar_steps"],
            "diffusion_steps": case["diffusion_steps"], "guidance": case["guidance"], **extra}


def reference(name: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    path = FIXTURES / "lina_t2i" / name / "reference.safetensors"
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    return load_file(str(path)), meta


def official_images(name: str, file: str = "images.png") -> torch.Tensor:
    return torch.from_numpy(np.array(Image.open(FIXTURES / "lina_t2i" / name / file))).permute(2, 0, 1)


def assert_equal_images(ours: torch.Tensor, official: torch.Tensor) -> None:
    """|diff| <= 1 per pixel, >= 99.9 % exact (ours: (B, 3, H, W), official: side by side (3, H, B W))."""
    diff = (torch.cat(list(ours), dim=2).int() - official.int()).abs()
    assert diff.max() <= 1 and (diff == 0).float().mean() >= 0.999


@pytest.mark.parametrize("name", list(CASES))
def test_regenerated_weights_are_the_fixtures(name: str):
    _, meta = reference(name)
    weights = fixtures.case_weights(FIXTURES / "lina_t2i" / name, CASES[name]["seed"])
    assert {part: fixtures.c2i.state_sha256(state) for part, state in weights.items()} == {
        part: meta[f"{part}_sha256"] for part in ("transformer", "vae", "text_encoder")}
    assert meta["commit"] == "f13f7c39066a1a60d025a5440bdb8d9304772862"


@pytest.mark.parametrize("name", list(CASES))
def test_tokenizer_text_encoder_and_prefix_match_the_official_code(tmp_path: Path, name: str):
    """The official tokenisation (padding, truncation, token counts), Phi states, text embedding (padding
    embeddings after each prompt; the empty prompt keeps them all) and condition encoder: |diff| <= 1e-5."""
    case = CASES[name]
    gen = build_generator("lina", options(name), checkpoint=checkpoint(tmp_path, name))
    ref, _ = reference(name)
    prompts = case["prompts"] + [case["negative_prompt"] or "", ""]
    tr = gen.transformer
    with torch.no_grad():
        ids, lengths = gen.text_encoder.tokenize(prompts, tr.text_embed.num_tokens)
        assert torch.equal(ids, ref["ids"]) and lengths == ref["lengths"].tolist()
        states = gen.text_encoder(ids)
        torch.testing.assert_close(states, ref["text_states"], atol=1e-5, rtol=0)
        text = tr.text_embed(tr.text_embed.fill(states, lengths))
        torch.testing.assert_close(text, ref["text_embed"], atol=1e-5, rtol=0)
        torch.testing.assert_close(tr.condition_tokens(text), ref["prefix"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", list(CASES))
def test_official_sample_equals_the_official_pipeline(tmp_path: Path, name: str):
    """``NOVAPipeline(prompt=prompts, generator=Generator().manual_seed(seed), output_type="np")``, with the
    empty negative prompt and, for the case with CFG, with the case's negative prompt."""
    case = CASES[name]
    folder = checkpoint(tmp_path, name)
    gen = build_generator("lina", options(name), checkpoint=folder)
    assert_equal_images(gen.official_sample(case["prompts"], case["seed"]), official_images(name))
    if not case["negative_prompt"]:
        return
    negative = build_generator("lina", options(name, negative_prompt=case["negative_prompt"]), checkpoint=folder)
    assert_equal_images(negative.official_sample(case["prompts"][:1], case["seed"]),
                        official_images(name, "images_negative.png"))


def test_info_defaults_are_the_geneval_settings(tmp_path: Path):
    """guidance 7 (constant over the AR steps), 128 AR steps, 25 diffusion steps; the attention from
    model_index.json (LINA's high-resolution module is the ``lina`` setting)."""
    gen = build_generator("lina", {"archs": options("lina")["archs"]}, checkpoint=checkpoint(tmp_path, "lina"))
    info = gen.info()
    assert (info.conditioning, info.num_classes, info.resolution, info.attention) == ("text", None, (128, 128), "lina")
    assert (gen.ar_steps, gen.guidance, gen.min_guidance, gen.diffusion_steps) == (128, 7.0, 7.0, 25)
    assert info.steps == len(gen.schedule) == 64  # 8 x 8 tokens: the cosine schedule drops the empty steps
    with pytest.raises(LinaBenchError, match="takes prompts"):
        gen.sample([3], [0])


def test_strict_loading_of_the_text_encoder(tmp_path: Path):
    folder = checkpoint(tmp_path, "lina")
    path = folder / "text_encoder" / "model.safetensors"
    state = load_file(str(path))
    del state["model.layers.1.self_attn.dense.weight"]
    state["model.layers.1.extra"] = torch.zeros(1)
    save_file(state, str(path))
    with pytest.raises(LinaBenchError, match=r"text_encoder does not fit PhiModel: missing keys: "
                                             r"layers\.1\.self_attn\.dense\.weight.*unexpected keys: layers\.1\.extra"):
        build_generator("lina", options("lina"), checkpoint=folder)
    save_file({"encoder.weight": torch.zeros(1), **state}, str(path))
    with pytest.raises(LinaBenchError, match="unexpected keys: encoder.weight"):
        build_generator("lina", options("lina"), checkpoint=folder)


@pytest.mark.parametrize("damage", ["no-tokenizer", "bad-tokenizer", "truncated-text-encoder", "bad-phi-config"])
def test_damaged_text_parts_are_clear_errors(tmp_path: Path, damage: str):
    folder = checkpoint(tmp_path, "lina")
    if damage == "no-tokenizer":
        shutil.rmtree(folder / "tokenizer")
        match = "needs its tokenizer: .*tokenizer is missing"
    elif damage == "bad-tokenizer":
        (folder / "tokenizer" / "tokenizer.json").write_text("{")
        match = "cannot read the tokenizer in .*tokenizer"
    elif damage == "truncated-text-encoder":
        path = folder / "text_encoder" / "model.safetensors"
        path.write_bytes(path.read_bytes()[:500])
        match = "cannot read weights .*text_encoder"
    else:
        config = json.loads((folder / "text_encoder" / "config.json").read_text())
        (folder / "text_encoder" / "config.json").write_text(json.dumps({**config, "hidden_size": 48}))
        match = "text_encoder does not fit PhiModel: .*shape mismatches"
    with pytest.raises(LinaBenchError, match=match):
        build_generator("lina", options("lina"), checkpoint=folder)


def test_tiny_text_config_honours_the_contract():
    gen = build_generator("lina", TINY)
    check_generator_contract(gen)
    seeds = [sample_seed(0, i) for i in range(3)]
    prompts = ["a cat", "a cat", "a dog on a rather long prompt"]
    images = gen.sample(prompts, seeds)
    assert not torch.equal(images[0], images[1])  # same prompt, different seeds
    assert not torch.equal(images[1], gen.sample(["a dog"], seeds[1:2])[0])  # the prompt matters
    stages = {s.name: s for s in gen.cost_probes(2)}
    assert stages["text"].module(*stages["text"].inputs).shape == (2, 8, 32) and stages["text"].cfg_doubles_batch
    assert gen.info().conditioning == "text" and gen.info().guidance == 3.0


def test_geneval_and_clip_score_run_on_the_text_model(tmp_path: Path, write_suite):
    metadata = write_prompt_files(tmp_path / "prompts", METADATA[:2])
    clip, m2f = tiny_clip(tmp_path / "clip"), tiny_mask2former(tmp_path / "m2f")
    options = ", ".join(f"{k}: {v}" for k, v in TINY.items())
    suite = write_suite(f"""
name: lina-t2i
seed: 1
generators:
  - name: lina
    options: {{{options}}}
evaluators:
  - name: geneval
    options: {{metadata: {metadata}, detector_weights: {m2f}, clip_model: {clip}, images_per_prompt: 2}}
  - name: clip-score
    options: {{prompts: {metadata}, clip_model: {clip}, images_per_prompt: 2}}
""")
    code, output = run_cli("run", str(suite), "--out", str(tmp_path / "out"), "--device", "cpu")
    assert code == 0, output
    code, output = run_cli("results", "--out", str(tmp_path / "out"), "--format", "json")
    rows = {row["metric"]: row["value"] for row in json.loads(output)}
    assert {"geneval_overall", "clip_score"} <= set(rows) and rows["clip_score_images"] == 4

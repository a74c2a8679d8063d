"""The ``llamagen`` generator (LlamaGen / LASADGen) against the official LlamaGen code's outputs
(tests/fixtures/llamagen, made by tests/fixtures/make_llamagen_fixtures.py), and its own contracts:
strict loading, lasad's recurrent form, decoding memory, cost probes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lina_bench.api import registry
from lina_bench.api.errors import LinaBenchError
from lina_bench.api.evaluator import EvalContext
from lina_bench.api.generator import build_generator
from lina_bench.models import check_generator_contract
from lina_bench.models.llamagen import LlamaGenGenerator

FIXTURES = Path(__file__).parent / "fixtures" / "llamagen"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
REF = load_file(str(FIXTURES / "reference.safetensors"))
TINY_OPTIONS = LlamaGenGenerator.test_configs["llamagen-tiny"]
LOGIT_ATOL = 1e-4  # float32, two layers: observed max |diff| about 1e-6
IMAGE_ATOL = 1e-4  # float32 VQ decoder, outputs about [-1, 1]


def _recipe():
    path = FIXTURES.parent / "make_llamagen_fixtures.py"
    spec = importlib.util.spec_from_file_location("make_llamagen_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RECIPE = _recipe()


def _state(part: str) -> dict[str, torch.Tensor]:
    state = RECIPE.recipe_state_dict(MANIFEST["shapes"][part])
    assert RECIPE.state_sha256(state) == MANIFEST["sha256"][part], "the weight recipe no longer reproduces the fixture"
    return state


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The fixture's official-layout checkpoints: {"model": state_dict} for the GPT and the VQ."""
    folder = tmp_path_factory.mktemp("llamagen")
    paths = {part: folder / f"{part}.pt" for part in ("gpt", "vq")}
    for part, path in paths.items():
        torch.save({"model": _state(part)}, path)
    return paths


def _official(checkpoints: dict[str, Path], **options) -> LlamaGenGenerator:
    return build_generator("llamagen", {**MANIFEST["our_options"], "vq": str(checkpoints["vq"]), **options},
                           checkpoint=checkpoints["gpt"])


def test_gpt_logits_match_official(checkpoints):
    gen = _official(checkpoints)
    labels, tokens, expected = REF["labels"], REF["tokens"], REF["logits"]
    with torch.no_grad():
        parallel = gen.gpt(tokens, labels)
        caches = gen.gpt.new_caches(len(labels))
        stepwise = torch.stack([gen.gpt.prefill(labels, caches)] + [
            gen.gpt.decode(tokens[:, p - 1:p], p, caches) for p in range(1, tokens.shape[1])], dim=1)
    assert parallel.shape == expected.shape == (2, 16, 64)
    torch.testing.assert_close(parallel, expected, atol=LOGIT_ATOL, rtol=0)
    torch.testing.assert_close(stepwise, expected, atol=LOGIT_ATOL, rtol=0)


def test_vq_decoder_matches_official(checkpoints):
    gen = _official(checkpoints)
    with torch.no_grad():
        images = gen.vq.decode_code(REF["vq_codes"], gen.grid)
    torch.testing.assert_close(images, REF["vq_images"], atol=IMAGE_ATOL, rtol=0)


@pytest.mark.parametrize("setting", sorted(MANIFEST["samplings"]))
def test_official_sample_reproduces_sample_c2i(checkpoints, setting: str):
    s = MANIFEST["samplings"][setting]
    gen = _official(checkpoints, guidance=s["cfg_scale"], temperature=s["temperature"], top_k=s["top_k"],
                    top_p=s["top_p"])
    images = gen.official_sample(s["labels"], s["seed"])
    expected = REF[f"{setting}_uint8"]
    assert images.dtype == torch.uint8 and images.shape == expected.shape
    diff = (images.int() - expected.int()).abs()
    assert diff.max() <= 1 and (diff == 0).float().mean() >= 0.999


def _corrupt(path: Path, tmp_path: Path, **changes) -> Path:
    state = torch.load(path, weights_only=True)["model"]
    for key, value in changes.items():
        if value is None:
            del state[key]
        else:
            state[key] = value
    out = tmp_path / "changed.pt"
    torch.save({"model": state}, out)
    return out


@pytest.mark.parametrize("change,message", [
    ({"norm.weight": None}, "missing keys: norm.weight"),
    ({"layers.9.attention.wo.weight": torch.zeros(32, 32)}, "unexpected keys: layers.9.attention.wo.weight"),
    ({"output.weight": torch.zeros(65, 32)}, r"shape mismatches \(file vs model\): output.weight \(65, 32\)"),
], ids=["missing", "unexpected", "shape"])
def test_gpt_loading_is_strict_and_names_keys(checkpoints, tmp_path, change, message):
    with pytest.raises(LinaBenchError, match=message):
        _official(checkpoints).load_checkpoint(_corrupt(checkpoints["gpt"], tmp_path, **change))


def test_vq_loading_is_strict_and_prefers_ema(checkpoints, tmp_path):
    no_usage = _corrupt(checkpoints["vq"], tmp_path, **{"quantize.codebook_used": None})
    with pytest.raises(LinaBenchError, match="VQ checkpoint .* missing keys: quantize.codebook_used"):
        build_generator("llamagen", {**MANIFEST["our_options"], "vq": str(no_usage)})
    state = _state("vq")
    ema = {k: v + 1 for k, v in state.items()}
    both = tmp_path / "train.pt"
    torch.save({"model": state, "ema": ema, "steps": 3}, both)
    gen = build_generator("llamagen", {**MANIFEST["our_options"], "vq": str(both)})
    assert torch.equal(gen.vq.post_quant_conv.weight, ema["post_quant_conv.weight"])


def test_bad_files_raise_clear_errors(checkpoints, tmp_path):
    gen = build_generator("llamagen", TINY_OPTIONS)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(checkpoints["gpt"].read_bytes()[:2000])
    no_state = tmp_path / "no_state.pt"
    torch.save({"args": [1, 2]}, no_state)
    for path, message in ((truncated, "cannot read GPT checkpoint"), (tmp_path / "none.pt", "not found"),
                          (no_state, "holds no state dict")):
        with pytest.raises(LinaBenchError, match=message):
            gen.load_checkpoint(path)


def test_rope_table_in_checkpoint_is_ignored(checkpoints, tmp_path):
    path = _corrupt(checkpoints["gpt"], tmp_path, freqs_cis=torch.zeros(17, 8, 2))
    _official(checkpoints).load_checkpoint(path)


@pytest.mark.parametrize("decay", ["2d", "1d", "none"])
def test_lasad_parallel_and_recurrent_forms_give_the_same_logits(decay: str):
    # 8 x 8 tokens in chunks of 16: the parallel form crosses chunk boundaries and row starts
    gen = build_generator("llamagen", {**TINY_OPTIONS, "attention": "lasad", "image_size": 128,
                                       "attention_options": {"decay": decay, "chunk_size": 16}})
    with torch.no_grad():
        for layer in gen.gpt.layers:  # non-default decays: the recurrent form must apply them per position
            layer.attention.decay_row.normal_()
            layer.attention.decay_col.normal_()
        labels = torch.tensor([1, 4])
        tokens = torch.randint(0, 64, (2, gen.args.block_size), generator=torch.Generator().manual_seed(0))
        parallel = gen.gpt(tokens, labels)
        caches = gen.gpt.new_caches(2)
        recurrent = torch.stack([gen.gpt.prefill(labels, caches)] + [
            gen.gpt.decode(tokens[:, p - 1:p], p, caches) for p in range(1, tokens.shape[1])], dim=1)
    torch.testing.assert_close(recurrent, parallel, atol=1e-5, rtol=1e-5)


def test_lasad_inherits_a_llamagen_checkpoint(checkpoints):
    gen = _official(checkpoints, attention="lasad")
    official = _state("gpt")
    attention_keys = sorted(k for k in official if ".attention." in k)
    assert gen.info().extra["skipped_keys"] == attention_keys
    assert gen.info().extra["new_keys"] == sorted(k for k in gen.gpt.state_dict() if ".attention." in k)
    own = gen.gpt.state_dict()
    assert all(torch.equal(own[k], v) for k, v in official.items() if k not in attention_keys)


def test_decoding_memory_grows_for_softmax_and_is_flat_for_lasad():
    sizes = {}
    for variant in ("softmax", "lasad"):
        gen = build_generator("llamagen", {**TINY_OPTIONS, "attention": variant})
        sizes[variant] = [gen.decode_step(1, p).cache_bytes() for p in (1, 2, 3)]
    layers, dim = TINY_OPTIONS["n_layer"], TINY_OPTIONS["dim"]
    assert sizes["softmax"] == [2 * layers * (p + 1) * dim * 4 for p in (1, 2, 3)]  # k and v, slots 0..p
    head_dim = dim // TINY_OPTIONS["n_head"]
    assert sizes["lasad"] == [layers * TINY_OPTIONS["n_head"] * head_dim**2 * 4] * 3


@pytest.mark.parametrize("variant", ["softmax", "lasad"])
def test_cost_probes_decode_one_token_at_the_middle(variant: str):
    gen = build_generator("llamagen", {**TINY_OPTIONS, "attention": variant})
    transformer, vq = gen.cost_probes(batch_size=2)
    assert (transformer.name, transformer.calls_per_image, transformer.cfg_doubles_batch) == ("transformer", 4, True)
    assert (vq.name, vq.calls_per_image, vq.cfg_doubles_batch) == ("vq_decoder", 1, False)
    assert transformer.module.position == 2
    with torch.no_grad():
        first = transformer.module(*transformer.inputs)
        assert torch.equal(transformer.module(*transformer.inputs), first)  # repeatable: the cache is unchanged
        assert vq.module(*vq.inputs).shape == (2, 3, 32, 32)
    no_cfg = build_generator("llamagen", {**TINY_OPTIONS, "attention": variant, "guidance": 1.0})
    assert not no_cfg.cost_probes(1)[0].cfg_doubles_batch and no_cfg.info().guidance is None


def test_contract_without_guidance_with_top_p():  # the registered test configs run in test_generator_contract.py
    check_generator_contract(build_generator("llamagen", {**TINY_OPTIONS, "guidance": 1.0, "top_p": 0.8}))


def test_registered_test_configs_are_listed():
    configs = registry.generators.class_attribute("llamagen", "test_configs")
    assert configs == LlamaGenGenerator.test_configs and {c.get("attention", "softmax") for c in configs.values()} \
        == {"softmax", "lasad"}


@pytest.mark.parametrize("options,message", [
    ({"model": "GPT-Q"}, "unknown llamagen model 'GPT-Q'"),
    ({"model": None, "n_layer": None}, "n_layer, n_head and dim must all be given"),
    ({"attention": "lina"}, "llamagen attention must be one of softmax, lasad"),
    ({"image_size": 40}, "image_size .40. must be a multiple"),
    ({"block_size": 9}, "block_size .9. must be"),
    ({"class_dropout_prob": 0.0}, "guidance > 1 needs the null class"),
    ({"vq": "/nonexistent/vq.pt"}, "VQ checkpoint not found"),
])
def test_option_errors(options: dict, message: str):
    with pytest.raises(LinaBenchError, match=message):
        build_generator("llamagen", {**TINY_OPTIONS, **options})


def test_named_sizes_are_the_official_ones():
    gen = LlamaGenGenerator(codebook_size=64, vq_ch=32, image_size=32)  # model="GPT-B" by default
    assert (gen.args.n_layer, gen.args.n_head, gen.args.dim) == (12, 12, 768)
    assert gen.info().resolution == (32, 32) and gen.info().steps == 4
    assert gen.gpt.layers[0].feed_forward.w1.weight.shape == (2048, 768)  # 2/3 * 4C rounded up to 256


def test_decode_profile_shows_the_kv_cache_growing_and_the_state_flat():
    from lina_bench.evaluators.decode_profile import DecodeProfile, default_positions

    assert default_positions(256) == [1, 64, 128, 192, 255] and default_positions(4) == [1, 2, 3]
    evaluator = registry.evaluators.get("decode-profile")(positions=[1, 8, 15], repeats=2, warmup=0)
    assert isinstance(evaluator, DecodeProfile)
    values = {}
    for variant in ("softmax", "lasad"):
        gen = build_generator("llamagen", {**TINY_OPTIONS, "attention": variant, "image_size": 64})
        measurement = evaluator.evaluate(gen, EvalContext())
        values[variant] = {m.name: m.value for m in measurement.metrics}
        assert measurement.protocol["rows"] == 2  # guidance doubles the rows, as sampling runs them
        assert all(values[variant][f"ms_per_token@{p}"] > 0 for p in (1, 8, 15))
    kv_slot = 2 * 2 * TINY_OPTIONS["n_layer"] * TINY_OPTIONS["dim"] * 4  # rows x (k, v) x layers x C x float32
    assert [values["softmax"][f"cache_bytes@{p}"] for p in (1, 8, 15)] == [kv_slot * (p + 1) for p in (1, 8, 15)]
    assert len({values["lasad"][f"cache_bytes@{p}"] for p in (1, 8, 15)}) == 1
    with pytest.raises(LinaBenchError, match=r"positions \[8, 15\] are beyond the last decoding position 3"):
        evaluator.evaluate(build_generator("llamagen", TINY_OPTIONS), EvalContext())  # 2 x 2 tokens
    with pytest.raises(LinaBenchError, match="does not decode token by token"):
        evaluator.evaluate(build_generator("toy"), EvalContext())

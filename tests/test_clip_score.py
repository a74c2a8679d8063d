"""CLIP score (open_clip, local weights) and the GenEval / CLIP-score suite evaluators."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from lina_bench.api.errors import LinaBenchError
from lina_bench.api.generator import build_generator, sample_seed, to_pil
from lina_bench.evaluators.clip_model import load_clip
from lina_bench.evaluators.clip_score import clip_scores, read_prompt_file

from cli_helpers import assert_same_rows, run_cli, stored_rows
from geneval_helpers import METADATA, tiny_clip, tiny_mask2former, write_image_folder, write_prompt_files


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return tiny_clip(tmp_path_factory.mktemp("clip") / "clip")


def definition_score(clip, image: Image.Image, text: str) -> float:
    """100 * max(cos(image, text), 0) from separately computed, unnormalised features."""
    with torch.no_grad():
        a = clip.model.encode_image(clip.preprocess(image)[None])[0]
        b = clip.model.encode_text(clip.tokenizer([text]))[0]
    return max(100 * float(a @ b / (a.norm() * b.norm())), 0.0)


def test_clip_scores_match_the_definition(clip_dir):
    clip = load_clip(clip_dir)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)) for _ in range(5)]
    texts = ["a dog", "a cat", "two clocks", "a red apple", "a bench"]
    got = clip_scores(clip, images, texts, batch_size=2)
    for i in range(5):
        assert float(got[i]) == pytest.approx(definition_score(clip, images[i], texts[i]), abs=1e-4)
    with torch.no_grad():  # flip every text feature: all cosines negative, every score clamped to 0
        clip.model.text_projection.neg_()
        a = clip.model.encode_image(clip.preprocess(images[0])[None])[0]
        b = clip.model.encode_text(clip.tokenizer([texts[0]]))[0]
    assert float(a @ b) < 0
    assert clip_scores(clip, images, texts, batch_size=2).tolist() == [0.0] * 5


def test_weights_file_path_and_errors(clip_dir, tmp_path):
    with pytest.raises(LinaBenchError, match="needs a local weights file"):
        load_clip("ViT-B-32")
    with pytest.raises(LinaBenchError, match="unknown open_clip architecture"):
        load_clip("ViT-Q-99", tmp_path / "w.bin")
    with pytest.raises(LinaBenchError, match="cannot load CLIP weights"):  # tiny weights into a real architecture
        load_clip("ViT-B-32", clip_dir / "open_clip_model.safetensors")
    with pytest.raises(LinaBenchError, match="no open_clip_config.json"):
        load_clip(tmp_path)


def test_prompt_files(tmp_path):
    (tmp_path / "p.txt").write_text("a dog\n\na cat\n")
    assert read_prompt_file(tmp_path / "p.txt") == ["a dog", "a cat"]
    assert read_prompt_file(write_prompt_files(tmp_path / "g"))[0] == METADATA[0]["prompt"]
    (tmp_path / "e.txt").write_text("\n")
    with pytest.raises(LinaBenchError, match="no prompts"):
        read_prompt_file(tmp_path / "e.txt")


def test_cli_clip_score_of_a_geneval_folder(clip_dir, tmp_path):
    images = write_image_folder(tmp_path / "images", images_per_prompt=1)
    code, output = run_cli("clip-score", str(images), "--clip-model", str(clip_dir), "--out", str(tmp_path / "out"),
                           "--device", "cpu", "--json")
    assert code == 0, output
    report = json.loads(output[output.index("{"):])
    clip = load_clip(clip_dir)
    pictures = [Image.open(p).convert("RGB") for p in sorted(images.glob("*/samples/*.png"))]
    expected = np.mean([definition_score(clip, p, m["prompt"]) for p, m in zip(pictures, METADATA, strict=True)])
    assert report["metrics"]["clip_score"] == pytest.approx(float(expected), abs=1e-4)
    assert report["metrics"]["clip_score_images"] == 6 and report["protocol"]["evaluator"]["clip_weights_sha256"]


def test_geneval_and_clip_score_as_suite_evaluators(clip_dir, tmp_path, write_suite):
    metadata = write_prompt_files(tmp_path / "prompts", METADATA[:3])
    m2f = tiny_mask2former(tmp_path / "m2f")
    suite = write_suite(f"""
name: t2i
seed: 1
generators:
  - name: toy
    options: {{conditioning: text, dtype: float32}}
evaluators:
  - name: geneval
    options: {{metadata: {metadata}, detector_weights: {m2f}, clip_model: {clip_dir}, images_per_prompt: 2,
              options: {{threshold: 0.05, counting_threshold: 0.1}}}}
  - name: clip-score
    options: {{prompts: {metadata}, clip_model: {clip_dir}, images_per_prompt: 2}}
""")
    out = tmp_path / "out"
    code, output = run_cli("run", str(suite), "--out", str(out), "--device", "cpu")
    assert code == 0, output
    code, output = run_cli("results", "--out", str(out), "--format", "json")
    rows = {row["metric"]: row["value"] for row in json.loads(output)}
    assert {"geneval_overall", "geneval_single_object", "geneval_counting", "clip_score"} <= set(rows)

    # CLIP score: the generator's images for (prompt i, sample_seed(1, i, j)), scored by the definition
    clip = load_clip(clip_dir)
    gen = build_generator("toy", {"conditioning": "text", "dtype": "float32"})
    texts = [m["prompt"] for m in METADATA[:3] for _ in range(2)]
    images = gen.sample(texts, [sample_seed(1, i, j) for i in range(3) for j in range(2)])
    expected = np.mean([definition_score(clip, to_pil(image), text) for image, text in zip(images, texts, strict=True)])
    assert rows["clip_score"] == pytest.approx(float(expected), abs=1e-4) and rows["clip_score_images"] == 6

    # GenEval: the suite's images detected and scored again by the commands, from scratch
    (folder,) = (out / "work" / "geneval" / "images").iterdir()
    assert len(list(folder.glob("*/samples/*.png"))) == 6
    names = metadata.with_name("object_names.txt")
    assert run_cli("geneval", "detect", str(folder), "--object-names", str(names), "--detector-weights", str(m2f),
                   "--clip-model", str(clip_dir), "--out", str(tmp_path / "cmd"), "--device", "cpu")[0] == 0
    code, output = run_cli("geneval", "score", str(folder), "--option", "threshold=0.05", "--option",
                           "counting_threshold=0.1", "--out", str(tmp_path / "cmd"), "--json")
    assert code == 0, output
    code, output = run_cli("results", "--out", str(tmp_path / "cmd"), "--format", "json")
    command_rows = {row["metric"]: row["value"] for row in json.loads(output)}
    assert command_rows == {name: value for name, value in rows.items() if name.startswith("geneval_")}
    assert rows["geneval_correct_images"] > 0  # non-trivial numbers: images pass at these thresholds


def test_clip_score_command_and_suite_store_the_same_rows(clip_dir, tmp_path, write_suite):
    images = write_image_folder(tmp_path / "images", images_per_prompt=1)
    code, output = run_cli("clip-score", str(images), "--clip-model", str(clip_dir), "--out", str(tmp_path / "cmd"),
                           "--device", "cpu", "--batch-size", "4")
    assert code == 0, output
    suite = write_suite(f"""
samples: [{{name: mine, path: {images}}}]
evaluators: [{{name: clip-score, options: {{clip_model: {clip_dir}, batch_size: 4}}}}]
""")
    code, output = run_cli("run", str(suite), "--out", str(tmp_path / "suite"), "--no-progress")
    assert code == 0, output
    assert_same_rows(tmp_path / "cmd", tmp_path / "suite")
    row = stored_rows(tmp_path / "suite")["clip_score"]
    assert row["protocol"]["samples"]["path"] == str(images.resolve())
    assert len(row["protocol"]["samples"]["sha256"]) == 64
    assert row["protocol"]["evaluator"]["images"] == 6


def test_geneval_score_command_and_suite_store_the_same_rows(clip_dir, tmp_path, write_suite):
    metadata = write_prompt_files(tmp_path / "prompts")
    names = metadata.with_name("object_names.txt")
    m2f = tiny_mask2former(tmp_path / "m2f")
    images = write_image_folder(tmp_path / "images")
    assert run_cli("geneval", "detect", str(images), "--object-names", str(names), "--detector-weights", str(m2f),
                   "--clip-model", str(clip_dir), "--out", str(tmp_path / "cmd"), "--device", "cpu")[0] == 0
    code, output = run_cli("geneval", "score", str(images), "--object-names", str(names), "--option",
                           "threshold=0.05", "--out", str(tmp_path / "cmd"))
    assert code == 0, output
    suite = write_suite(f"""
samples: [{{name: elsewhere, path: {images}}}]
evaluators:
  - name: geneval
    options: {{object_names: {names}, detector_weights: {m2f}, clip_model: {clip_dir}, options: {{threshold: 0.05}}}}
""")
    code, output = run_cli("run", str(suite), "--out", str(tmp_path / "suite"), "--no-progress", "--device", "cpu")
    assert code == 0, output
    assert_same_rows(tmp_path / "cmd", tmp_path / "suite")
    protocol = stored_rows(tmp_path / "suite")["geneval_overall"]["protocol"]["evaluator"]
    assert protocol["detector"]["backend"] == "transformers" and protocol["detector"]["weights_sha256"]
    assert protocol["options"]["threshold"] == 0.05 and protocol["images"] == 12

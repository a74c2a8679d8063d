"""CLIP score (open_clip, local weights) and the GenEval / CLIP-score suite evaluators."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from lina_bench.errors import LinaBenchError
from lina_bench.evaluators.clip_model import load_clip
from lina_bench.evaluators.clip_score import clip_scores, read_prompt_file

from cli_helpers import run_cli
from geneval_helpers import METADATA, tiny_clip, tiny_mask2former, write_image_folder, write_prompt_files


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return tiny_clip(tmp_path_factory.mktemp("clip") / "clip")


def test_clip_scores_match_the_definition(clip_dir):
    """100 * max(cos, 0) from separately computed, unnormalised features."""
    clip = load_clip(clip_dir)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)) for _ in range(5)]
    texts = ["a dog", "a cat", "two clocks", "a red apple", "a bench"]
    got = clip_scores(clip, images, texts, batch_size=2)
    with torch.no_grad():
        for i in range(5):
            a = clip.model.encode_image(clip.preprocess(images[i])[None])[0]
            b = clip.model.encode_text(clip.tokenizer([texts[i]]))[0]
            expected = max(100 * float(a @ b / (a.norm() * b.norm())), 0.0)
            assert float(got[i]) == pytest.approx(expected, abs=1e-4)


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
    expected = clip_scores(clip, pictures, [m["prompt"] for m in METADATA]).mean()
    assert report["metrics"]["clip_score"] == pytest.approx(float(expected), abs=1e-5)
    assert report["metrics"]["clip_score_images"] == 6 and report["protocol"]["clip_weights_sha256"]


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
              options: {{threshold: 0.05}}}}
  - name: clip-score
    options: {{prompts: {metadata}, clip_model: {clip_dir}, images_per_prompt: 2}}
""")
    code, output = run_cli("run", str(suite), "--out", str(tmp_path / "out"), "--device", "cpu")
    assert code == 0, output
    code, output = run_cli("results", "--out", str(tmp_path / "out"), "--format", "json")
    names = {row["metric"] for row in json.loads(output)}
    assert {"geneval_overall", "geneval_single_object", "geneval_counting", "clip_score"} <= names

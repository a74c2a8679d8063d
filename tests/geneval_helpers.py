"""Small GenEval inputs the tests make themselves: prompt files, images, and tiny random-init models
saved to local files and loaded through the real loading paths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lina_bench.evaluators.clip_model import tiny_clip  # noqa: F401  (re-exported for the tests)

OBJECT_NAMES = ["dog", "cat", "bench", "clock", "apple"]
METADATA = [
    {"tag": "single_object", "include": [{"class": "bench", "count": 1}], "prompt": "a photo of a bench"},
    {"tag": "two_object", "include": [{"class": "dog", "count": 1}, {"class": "cat", "count": 1}],
     "prompt": "a photo of a dog and a cat"},
    {"tag": "counting", "include": [{"class": "clock", "count": 2}], "exclude": [{"class": "clock", "count": 3}],
     "prompt": "a photo of two clocks"},
    {"tag": "colors", "include": [{"class": "apple", "count": 1, "color": "red"}], "prompt": "a photo of a red apple"},
    {"tag": "position", "include": [{"class": "cat", "count": 1},
                                    {"class": "dog", "count": 1, "position": ["left of", 0]}],
     "prompt": "a photo of a dog left of a cat"},
    {"tag": "color_attr", "include": [{"class": "dog", "count": 1, "color": "black"},
                                      {"class": "bench", "count": 1, "color": "white"}],
     "prompt": "a photo of a black dog and a white bench"},
]


def write_prompt_files(folder: Path, metadata: list[dict] | None = None,
                       names: list[str] | None = None) -> Path:
    """evaluation_metadata.jsonl and object_names.txt side by side, as in a GenEval checkout."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "object_names.txt").write_text("\n".join(names or OBJECT_NAMES) + "\n")
    path = folder / "evaluation_metadata.jsonl"
    path.write_text("".join(json.dumps(m) + "\n" for m in (metadata or METADATA)))
    return path


def write_image_folder(root: Path, metadata: list[dict] | None = None, images_per_prompt: int = 2,
                       size: tuple[int, int] = (48, 40), seed: int = 0) -> Path:
    """A GenEval-layout folder of random images, as if produced elsewhere."""
    rng = np.random.default_rng(seed)
    for i, meta in enumerate(metadata or METADATA):
        samples = root / f"{i:05d}" / "samples"
        samples.mkdir(parents=True)
        (root / f"{i:05d}" / "metadata.jsonl").write_text(json.dumps(meta))
        for j in range(images_per_prompt):
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(samples / f"{j:04d}.png")
    return root


def tiny_mask2former(folder: Path, num_labels: int = len(OBJECT_NAMES), seed: int = 0) -> Path:
    """A random-init transformers Mask2Former (tiny Swin backbone) saved with save_pretrained."""
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, SwinConfig

    backbone = SwinConfig(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=7,
                          out_features=["stage1", "stage2", "stage3", "stage4"])
    config = Mask2FormerConfig(backbone_config=backbone, num_labels=num_labels, hidden_dim=32, num_queries=12,
                               encoder_layers=1, decoder_layers=2, dim_feedforward=64, mask_feature_size=32,
                               feature_size=32, num_attention_heads=2, encoder_feedforward_dim=64,
                               use_pretrained_backbone=False)
    torch.manual_seed(seed)
    model = Mask2FormerForUniversalSegmentation(config).eval()
    with torch.no_grad():  # make the no-object logit small so that random queries give real scores
        model.class_predictor.bias[-1] = -4.0
    model.save_pretrained(folder)
    return folder

"""Assets of the built-in ``quality-smoke`` suite, made where it runs from fixed seeds (nothing is downloaded):

* ``inception-random.pth``: torch-fidelity's Inception-v3 with seeded random weights;
* ``reference.npz``: ADM-format reference statistics of ``REFERENCE_IMAGES`` seeded 32x32 pattern images
  (two-colour gradients under flat ellipses and rectangles), with the images as ``arr_0`` (KID, precision/recall);
* ``tiny-clip/``: a seeded random-init open_clip model, and ``prompts.txt``: ``PROMPTS``, one a line.

Each file is written atomically and only when it is missing. The weights, images and prompts are the same
on every run of one machine; the reference statistics are Inception features computed here, so on another
processor they differ by float rounding, as the suite's metrics do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from lina_bench.api.files import write_text_atomic
from lina_bench.evaluators.clip_model import tiny_clip
from lina_bench.evaluators.fid_metrics import feature_statistics
from lina_bench.evaluators.fid_reference import write_reference
from lina_bench.evaluators.fid_sources import SampleSource
from lina_bench.evaluators.inception import InceptionFeatures, random_inception_weights

SEED = 0
INCEPTION, REFERENCE, CLIP, PROMPT_FILE = "inception-random.pth", "reference.npz", "tiny-clip", "prompts.txt"
REFERENCE_IMAGES, IMAGE_SIZE, BATCH_SIZE = 128, 32, 32
PROMPTS = ["a photo of a red apple", "a photo of a dog", "a photo of a cat on a bench", "a blue clock on a wall",
           "two green bottles", "a yellow car on a road", "a photo of a tree in winter", "a white boat on a lake",
           "a black umbrella", "a bowl of oranges", "a purple flower in a vase", "a brown horse in a field",
           "a red bicycle leaning on a fence", "a photo of a pizza", "a small house with a green door",
           "a cup of coffee on a table"]


class ArraySource(SampleSource):
    """Images held in memory: (N, H, W, 3) uint8."""

    def __init__(self, images: np.ndarray) -> None:
        self.array = images

    def __len__(self) -> int:
        return len(self.array)

    def images(self, indices: Sequence[int]) -> torch.Tensor:
        """uint8 (B, 3, H, W) images at ``indices``."""
        return torch.from_numpy(self.array[list(indices)]).permute(0, 3, 1, 2).contiguous()

    def identity(self) -> dict[str, Any]:
        return {"images": "quality-smoke patterns", "count": len(self.array)}


def pattern_images(count: int, size: int = IMAGE_SIZE, seed: int = SEED) -> np.ndarray:
    """(count, size, size, 3) uint8 images: a two-colour linear gradient under one to three flat ellipses or
    rectangles. Only exactly rounded float operations, so the same on every platform."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / (size - 1)  # (size, size) coordinates in [0, 1]
    return np.stack([_pattern(rng, x, y) for _ in range(count)])


def _pattern(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """One (size, size, 3) uint8 pattern image from (size, size) coordinates."""
    ramp = rng.uniform(-1, 1) * x + rng.uniform(-1, 1) * y
    ramp = (ramp - ramp.min()) / (ramp.max() - ramp.min())
    start, stop = rng.integers(0, 256, (2, 3))
    image = start + ramp[..., None] * (stop - start)
    for _ in range(rng.integers(1, 4)):
        (cx, cy), (rx, ry) = rng.uniform(0.15, 0.85, 2), rng.uniform(0.08, 0.3, 2)
        ellipse = (x - cx) * (x - cx) / (rx * rx) + (y - cy) * (y - cy) / (ry * ry) <= 1
        box = (np.abs(x - cx) <= rx) & (np.abs(y - cy) <= ry)
        image[ellipse if rng.random() < 0.5 else box] = rng.integers(0, 256, 3)
    return image.round().astype(np.uint8)


def write_reference_set(path: Path, weights: Path, images: np.ndarray, batch_size: int = BATCH_SIZE) -> None:
    """ADM-format reference statistics of (N, H, W, 3) uint8 ``images``, with them as ``arr_0``."""
    source, extractor = ArraySource(images), InceptionFeatures(weights)
    features = [extractor(source.images(range(start, min(start + batch_size, len(source)))))
                for start in range(0, len(source), batch_size)]
    mu, sigma = feature_statistics(torch.cat([f["pool"] for f in features]))
    mu_s, sigma_s = feature_statistics(torch.cat([f["spatial"] for f in features]))
    write_reference(path, mu, sigma, mu_s, sigma_s, source, batch_size)


def build_assets(folder: Path) -> None:
    """Make the missing assets in ``folder`` (see the module docstring)."""
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / INCEPTION
    if not weights.is_file():
        random_inception_weights(weights, SEED)
    if not (folder / REFERENCE).is_file():
        write_reference_set(folder / REFERENCE, weights, pattern_images(REFERENCE_IMAGES))
    if not (folder / CLIP / "open_clip_config.json").is_file():  # tiny_clip writes it after the weights
        tiny_clip(folder / CLIP, SEED)
    if not (folder / PROMPT_FILE).is_file():
        write_text_atomic(folder / PROMPT_FILE, "".join(f"{prompt}\n" for prompt in PROMPTS))

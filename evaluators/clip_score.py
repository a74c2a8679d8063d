"""CLIP score of text-to-image outputs: 100 x max(cos(image, text), 0), averaged (Hessel et al. 2021,
with torchmetrics' scaling), from a local open_clip model.

Prompts come from a GenEval metadata file (``.jsonl``, its ``prompt`` fields) or a text file with one
prompt per line. A GenEval image folder is scored against each folder's original prompt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from PIL import Image

from lina_bench.api.errors import LinaBenchError
from lina_bench.api.files import file_sha256
from lina_bench.api.schema import Metric
from lina_bench.evaluators.base import EvalContext, Evaluator, Measurement
from lina_bench.evaluators.clip_model import DEFAULT_ARCH, ClipModel, load_clip
from lina_bench.evaluators.prompt_folders import read_image, read_prompt_file, scan_images

DEFINITION = "100 * max(cos(image, text), 0), mean over images"
FOLDER_PROMPTS = "each GenEval folder's prompt"


def clip_scores(clip: ClipModel, images: Sequence[Image.Image], texts: Sequence[str],
                batch_size: int = 32) -> torch.Tensor:
    """(N,) CLIP scores of N (image, text) pairs."""
    if len(images) != len(texts):
        raise LinaBenchError(f"{len(images)} images but {len(texts)} texts")
    scores = []
    for start in range(0, len(images), batch_size):
        image_features = clip.encode_images(images[start:start + batch_size])
        text_features = clip.encode_texts(texts[start:start + batch_size])
        scores.append(100 * (image_features * text_features).sum(dim=-1).clamp(min=0))
    return torch.cat(scores) if scores else torch.zeros(0)


def clip_score_metrics(scores: torch.Tensor) -> list[Metric]:
    """Mean, population std and count of per-image CLIP scores."""
    return [Metric("clip_score", float(scores.mean()), "1", True),
            Metric("clip_score_std", float(scores.std(unbiased=False)), "1"),
            Metric("clip_score_images", float(len(scores)), "count")]


def folder_clip_scores(images: str | Path, clip: ClipModel, batch_size: int = 32) -> torch.Tensor:
    """CLIP scores of every image of a GenEval image folder against its folder's prompt."""
    pairs = [(path, prompt.metadata["prompt"]) for prompt in scan_images(images) for path in prompt.images]
    scores = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        scores.append(clip_scores(clip, [read_image(p) for p, _ in chunk], [t for _, t in chunk], batch_size))
    return torch.cat(scores)


class ClipScore(Evaluator):
    """Mean CLIP score of a text-to-image generator over a prompt file, or of a GenEval image folder
    against each prompt folder's prompt."""

    targets = ("generator", "samples")

    def __init__(self, prompts: str | None = None, clip_model: str = DEFAULT_ARCH, clip_weights: str | None = None,
                 images_per_prompt: int = 1, batch_size: int = 8) -> None:
        self.prompt_file = Path(prompts) if prompts else None
        self.prompts = read_prompt_file(prompts) if prompts else None
        if images_per_prompt < 1 or batch_size < 1:
            raise LinaBenchError("images_per_prompt and batch_size must be >= 1")
        self.clip_model, self.clip_weights = clip_model, clip_weights
        self.images_per_prompt, self.batch_size = images_per_prompt, batch_size

    def protocol(self) -> dict[str, Any]:
        return {"metric": DEFINITION, "clip_model": self.clip_model, **self._prompt_protocol()}

    def _prompt_protocol(self) -> dict[str, Any]:
        if self.prompt_file is None:
            return {"prompts": FOLDER_PROMPTS}
        return {"prompts": self.prompt_file.name, "prompts_sha256": file_sha256(self.prompt_file),
                "images_per_prompt": self.images_per_prompt}

    def evaluate(self, target, context: EvalContext) -> Measurement:
        from lina_bench.evaluators.targets import GENEVAL_FOLDER, Samples

        clip = load_clip(self.clip_model, self.clip_weights, context.device)
        if isinstance(target, Samples):
            scores = folder_clip_scores(target.require(GENEVAL_FOLDER, what="The CLIP score"), clip, self.batch_size)
            prompts = {"prompts": FOLDER_PROMPTS}
        else:
            scores = self._generator_scores(target, clip, context.seed)
            prompts = self._prompt_protocol()
        return Measurement(clip_score_metrics(scores),
                           {"metric": DEFINITION, **clip.identity, **prompts, "images": len(scores)})

    def _generator_scores(self, generator, clip: ClipModel, seed: int) -> torch.Tensor:
        from lina_bench.evaluators.geneval.generate import check_text_generator, draw

        check_text_generator(generator, "The CLIP score")
        if self.prompts is None:
            raise LinaBenchError("clip-score of a generator needs the option 'prompts' (a prompt file)")
        items = [(i, j) for i in range(len(self.prompts)) for j in range(self.images_per_prompt)]
        return torch.cat([clip_scores(clip, images, [self.prompts[i] for i, _ in batch], self.batch_size)
                          for batch, images in draw(generator, self.prompts, items, seed, self.batch_size)])

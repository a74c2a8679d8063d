"""GenEval's colour classifier: CLIP zero-shot over the 10 GenEval colours, per detected object.

As in the official scorer: the object is pasted by its mask onto a plain ``bgcolor`` (#999) canvas,
cropped to its box (PIL rounds the float box), and classified with open_clip ViT-L/14 against one
text embedding per colour, the normalised mean of three templates' normalised embeddings (the
``clip_benchmark`` zero-shot recipe). Written here rather than taken from clip_benchmark, which
would pull in its dataset stack for a dozen lines; the recipe is checked in tests against a naive
per-template computation.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image

from lina_bench.api.errors import LinaBenchError
from lina_bench.evaluators.clip_model import ClipModel
from lina_bench.evaluators.geneval.scoring import COLORS

TEMPLATES = ("a photo of a {color} {object}", "a photo of a {color}-colored {object}", "a photo of a {color} object")
DEFAULT_BGCOLOR = "#999"


class ColorClassifier:
    """Colours of detected objects of one image; text embeddings are cached per object class."""

    def __init__(self, clip: ClipModel, bgcolor: str = DEFAULT_BGCOLOR, crop: bool = True, batch_size: int = 16):
        if bgcolor != "original":
            try:
                Image.new("RGB", (1, 1), color=bgcolor)
            except ValueError:
                raise LinaBenchError(f"bgcolor must be a PIL colour or 'original', got {bgcolor!r}") from None
        self.clip, self.bgcolor, self.crop, self.batch_size = clip, bgcolor, crop, batch_size
        self._classifiers: dict[str, torch.Tensor] = {}

    @property
    def identity(self) -> dict:
        return {**self.clip.identity, "bgcolor": self.bgcolor, "crop": self.crop, "templates": list(TEMPLATES)}

    def classifier(self, object_name: str) -> torch.Tensor:
        """(D, 10) unit-norm colour embeddings for ``object_name``."""
        if object_name not in self._classifiers:
            columns = []
            for color in COLORS:
                texts = [t.format(color=color, object=object_name) for t in TEMPLATES]
                mean = self.clip.encode_texts(texts).mean(dim=0)
                columns.append(mean / mean.norm())
            self._classifiers[object_name] = torch.stack(columns, dim=1)
        return self._classifiers[object_name]

    def crops(self, image: Image.Image, boxes: np.ndarray, masks: np.ndarray | None) -> list[Image.Image]:
        """The official crops: (n, 4) boxes, optional (n, H, W) bool masks -> n RGB images."""
        image = image.convert("RGB")
        blank = image.copy() if self.bgcolor == "original" else Image.new("RGB", image.size, color=self.bgcolor)
        out = []
        for i, box in enumerate(boxes):
            crop = image
            if masks is not None:
                if masks[i].shape != (image.height, image.width):
                    raise LinaBenchError(f"mask of shape {masks[i].shape} for an image of {image.width}x{image.height}")
                crop = Image.composite(image, blank, Image.fromarray(masks[i]))
            out.append(crop.crop(tuple(float(v) for v in box[:4])) if self.crop else crop)
        return out

    def classify(self, image: Image.Image, boxes: np.ndarray, masks: np.ndarray | None,
                 object_name: str) -> list[str]:
        """One colour name per object."""
        crops = self.crops(image, boxes, masks)
        weights = self.classifier(object_name)
        colors: list[str] = []
        for start in range(0, len(crops), self.batch_size):
            logits = self.clip.encode_images(crops[start:start + self.batch_size]) @ weights
            colors += [COLORS[int(i)] for i in logits.argmax(dim=1)]
        return colors


def classify_all(classifier: ColorClassifier, image: Image.Image, names: Sequence[str], boxes: np.ndarray,
                 masks: np.ndarray | None, wanted: set[str]) -> list[str | None]:
    """Colours for the detections whose class is in ``wanted`` (None for the rest), one class at a time."""
    colors: list[str | None] = [None] * len(names)
    for name in sorted(wanted):
        idx = [i for i, n in enumerate(names) if n == name]
        if idx:
            found = classifier.classify(image, boxes[idx], None if masks is None else masks[idx], name)
            for i, color in zip(idx, found, strict=True):
                colors[i] = color
    return colors

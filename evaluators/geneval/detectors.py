"""Object detectors for GenEval, by backend name, all giving mmdet 2.x instance semantics.

GenEval's official detector is mmdet's Mask2Former Swin-S (COCO instance segmentation,
``mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco``). Its scorer reads, per image, at most 100
instances, each a class index, a score, a box and a boolean mask, where (mmdet's
``MaskFormerFusionHead.instance_postprocess``):

* the 100 (query, class) pairs with the highest softmax class probability (no-object excluded),
* score = class probability x mean sigmoid mask probability over the mask's pixels,
* mask = mask logits > 0 at the original image size, box = the mask's tight box (x2, y2 exclusive).

Backends:

* ``mmdet`` -- the official model through mmdet 3.x's inference API (optional extra; see
  ``scripts/install_mmdet.sh``). mmdet 3.x needs the 3.x conversion of the official weights,
  ``mask2former_swin-s-p4-w7-224_8xb2-lsj-50e_coco_20220504_001756-c9d0c4f2.pth``.
* ``transformers`` -- ``Mask2FormerForUniversalSegmentation`` from a local folder, preprocessed
  like mmdet's test pipeline (short side 800, long side at most 1333, ImageNet mean/std) and
  post-processed by :func:`instances_from_queries` into the semantics above. Its public COCO
  weights are another training run than the official ones, so its numbers are its own.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from lina_bench.api.errors import LinaBenchError
from lina_bench.api.files import file_sha256

MAX_PER_IMAGE = 100
MMDET_CONFIG = "mask2former/mask2former_swin-s-p4-w7-224_8xb2-lsj-50e_coco.py"
MMDET_WEIGHTS = "mask2former_swin-s-p4-w7-224_8xb2-lsj-50e_coco_20220504_001756-c9d0c4f2.pth"


@dataclass
class Instances:
    """Detections of one image: (n,) class indices, (n,) float32 scores, (n, 4) float32 boxes,
    (n, H, W) bool masks."""

    labels: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    masks: np.ndarray


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """(n, H, W) bool -> (n, 4) float32 tight boxes [x1, y1, x2 + 1, y2 + 1]; all zeros for an empty mask."""
    boxes = torch.zeros(len(masks), 4, dtype=torch.float32)
    cols, rows = masks.any(dim=1), masks.any(dim=2)
    for i in range(len(masks)):
        x, y = torch.nonzero(cols[i])[:, 0], torch.nonzero(rows[i])[:, 0]
        if len(x) and len(y):
            boxes[i] = torch.tensor([x[0], y[0], x[-1] + 1, y[-1] + 1], dtype=torch.float32)
    return boxes


def instances_from_queries(class_logits: torch.Tensor, mask_logits: torch.Tensor,
                           max_per_image: int = MAX_PER_IMAGE) -> Instances:
    """Mask2Former queries -> mmdet instances. (Q, C + 1) class logits (last = no object) and
    (Q, H, W) mask logits at the original image size."""
    num_classes = class_logits.shape[1] - 1
    probs = class_logits.float().softmax(dim=-1)[:, :-1].flatten()
    top, index = probs.topk(min(max_per_image, len(probs)), sorted=False)
    labels, queries = index % num_classes, index // num_classes
    logits = mask_logits.float()[queries]
    binary = logits > 0
    mask_score = (logits.sigmoid() * binary).flatten(1).sum(1) / (binary.flatten(1).sum(1) + 1e-6)
    return Instances(labels.numpy(), (top * mask_score).numpy().astype(np.float32), mask_boxes(binary).numpy(),
                     binary.numpy())


class Detector(ABC):
    """Images -> :class:`Instances` whose labels index ``object_names``."""

    backend: str

    @abstractmethod
    def detect(self, image: Image.Image) -> Instances:
        """Detections of one RGB image, boxes and masks in its pixel coordinates."""

    @property
    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """What produced the detections: backend, model, weights sha256, post-processing."""


def _check_classes(found: int, object_names: list[str], where: str) -> None:
    if found != len(object_names):
        raise LinaBenchError(f"{where} predicts {found} classes but the object names file lists "
                             f"{len(object_names)}; labels are read by index, so they must match")


class TransformersDetector(Detector):
    """``Mask2FormerForUniversalSegmentation`` from a local folder (config.json + weights)."""

    backend = "transformers"

    def __init__(self, weights: str | Path, object_names: list[str], device: str = "cpu") -> None:
        from transformers import Mask2FormerForUniversalSegmentation, Mask2FormerImageProcessor
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # our stages show their own progress

        folder = Path(weights)
        if not (folder / "config.json").is_file():
            raise LinaBenchError(f"Mask2Former folder not found or without config.json: {folder} (a local copy of "
                                 "e.g. facebook/mask2former-swin-small-coco-instance)")
        files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
        if not files:
            raise LinaBenchError(f"{folder}: no model weights (model.safetensors)")
        try:
            self.model = Mask2FormerForUniversalSegmentation.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError, RuntimeError) as exc:
            raise LinaBenchError(f"cannot load Mask2Former from {folder}: {str(exc)[:300]}") from exc
        self.model.to(device).eval()
        _check_classes(self.model.config.num_labels, object_names, f"the Mask2Former in {folder}")
        self.processor = Mask2FormerImageProcessor(size={"shortest_edge": 800, "longest_edge": 1333},
                                                   size_divisor=32, do_reduce_labels=False)
        self.device = torch.device(device)
        self._identity = {"backend": self.backend, "model": folder.name,
                          "weights_sha256": {f.name: file_sha256(f) for f in files},
                          "preprocess": "short side 800, long side <= 1333, /32, ImageNet mean/std",
                          "postprocess": "mmdet MaskFormerFusionHead.instance_postprocess, max_per_image=100"}

    @property
    def identity(self) -> dict[str, Any]:
        return self._identity

    @torch.no_grad()
    def detect(self, image: Image.Image) -> Instances:
        inputs = self.processor(images=[image.convert("RGB")], return_tensors="pt")
        pixels = inputs["pixel_values"].to(self.device)
        out = self.model(pixel_values=pixels, pixel_mask=inputs["pixel_mask"].to(self.device))
        masks = F.interpolate(out.masks_queries_logits, size=pixels.shape[-2:], mode="bilinear", align_corners=False)
        rows, cols = inputs["pixel_mask"][0].nonzero().max(dim=0).values + 1  # the unpadded, resized image
        masks = F.interpolate(masks[:, :, :rows, :cols], size=(image.height, image.width), mode="bilinear",
                              align_corners=False)
        return instances_from_queries(out.class_queries_logits[0].cpu(), masks[0].cpu())


class MmdetDetector(Detector):
    """The official Mask2Former through mmdet 3.x (``pip install -e .[mmdet]`` after
    ``scripts/install_mmdet.sh``). ``weights=None`` builds a random-init model (tests only)."""

    backend = "mmdet"

    def __init__(self, weights: str | Path | None, object_names: list[str], device: str = "cpu",
                 config: str | Path | None = None) -> None:
        try:
            import mmdet
            from mmdet.apis import init_detector
        except ImportError as exc:
            raise LinaBenchError(f"the mmdet backend needs mmdet 3.x with mmcv's compiled ops ({exc}); install them "
                                 "with scripts/install_mmdet.sh, or use --detector transformers") from None
        if weights is not None and not Path(weights).is_file():
            raise LinaBenchError(f"mmdet Mask2Former weights not found: {weights} (expected {MMDET_WEIGHTS} from "
                                 "mmdetection's model zoo)")
        config = Path(config) if config else Path(mmdet.__file__).parent / ".mim" / "configs" / MMDET_CONFIG
        if not config.is_file():
            raise LinaBenchError(f"mmdet config not found: {config}")
        self.model = init_detector(str(config), None if weights is None else str(weights), device=device)
        _check_classes(len(self.model.dataset_meta["classes"]), object_names, f"mmdet config {config.name}")
        self._identity = {"backend": self.backend, "mmdet": mmdet.__version__, "config": config.name,
                          "weights": None if weights is None else Path(weights).name,
                          "weights_sha256": None if weights is None else file_sha256(Path(weights))}

    @property
    def identity(self) -> dict[str, Any]:
        return self._identity

    @torch.no_grad()
    def detect(self, image: Image.Image) -> Instances:
        from mmdet.apis import inference_detector

        bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])  # mmdet reads images as BGR
        pred = inference_detector(self.model, bgr).pred_instances
        return Instances(pred.labels.cpu().numpy(), pred.scores.cpu().numpy().astype(np.float32),
                         pred.bboxes.cpu().numpy().astype(np.float32), pred.masks.cpu().numpy().astype(bool))


BACKENDS = {"transformers": TransformersDetector, "mmdet": MmdetDetector}


def build_detector(backend: str, weights: str | Path | None, object_names: list[str], device: str = "cpu",
                   mmdet_config: str | Path | None = None) -> Detector:
    """The detector of ``backend`` with local ``weights``; a missing file is a clear error."""
    if backend not in BACKENDS:
        raise LinaBenchError(f"unknown detector backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if weights is None:
        raise LinaBenchError(f"the {backend} detector needs local weights (--detector-weights)")
    if backend == "mmdet":
        return MmdetDetector(weights, object_names, device, mmdet_config)
    if mmdet_config is not None:
        raise LinaBenchError("--mmdet-config applies only to --detector mmdet")
    return BACKENDS[backend](weights, object_names, device)

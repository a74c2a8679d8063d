"""GenEval stage 2: images -> detections with colours, cached per image.

Each image's detections go to ``<cache>/<00000>/<0000>.json`` as soon as they are made (through
a temporary name and a rename), with the sha256 of the image they came from; a rerun detects only
images without a current entry, so an interrupted run loses nothing finished and a regenerated
image is detected again. The cache folder is keyed by the detector and colour model, so entries
of different models never mix. Colours are computed for every detection of a class that the
image's prompt asks a colour of, so re-scoring with other thresholds needs no model.
Under ``torchrun`` rank r takes the prompt folders i with i % world == r.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from lina_bench.api.distributed import barrier, rank_and_world
from lina_bench.api.errors import LinaBenchError
from lina_bench.api.files import file_sha256, write_text_atomic
from lina_bench.api.schema import canonical_json
from lina_bench.evaluators.geneval.colors import ColorClassifier, classify_all
from lina_bench.evaluators.geneval.detectors import Detector
from lina_bench.evaluators.prompt_folders import PromptImages, read_image


@dataclass
class DetectionCache:
    """Where one (detector, colour model) pair keeps its per-image detections."""

    folder: Path
    identity: dict[str, Any]

    @classmethod
    def under(cls, root: str | Path, identity: dict[str, Any]) -> DetectionCache:
        key = hashlib.sha256(canonical_json(identity).encode()).hexdigest()[:16]
        return cls(Path(root) / key, identity)

    def path(self, prompt: PromptImages, image: Path) -> Path:
        return self.folder / prompt.folder.name / f"{image.stem}.json"

    def load(self, prompt: PromptImages, image: Path) -> dict[str, Any] | None:
        """The cached entry of ``image`` if there is a readable one for the same image bytes.

        The image's size and mtime are compared first; only when they changed is its sha256 read."""
        path = self.path(prompt, image)
        if not path.is_file():
            return None
        try:
            entry = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
        if entry.get("image_stat") == image_stat(image):
            return entry
        return entry if entry.get("image_sha256") == file_sha256(image) else None

    def write_identity(self) -> None:
        """``identity.json``: which detector and colour model made the entries (read by ``find_cache``)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.folder / "identity.json", json.dumps(self.identity, indent=2, sort_keys=True))

    def save(self, prompt: PromptImages, image: Path, entry: dict[str, Any]) -> None:
        path = self.path(prompt, image)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(entry))


def image_stat(path: Path) -> list[int]:
    """[size, mtime_ns]: a cheap check that an image file is unchanged."""
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def colour_classes(metadata: dict[str, Any]) -> set[str]:
    return {req["class"] for req in metadata.get("include", []) if "color" in req}


def detect_image(image: Image.Image, metadata: dict[str, Any], detector: Detector, classifier: ColorClassifier | None,
                 object_names: list[str]) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Detections of one image as scorer records, and their (n, H, W) masks."""
    found = detector.detect(image)
    if len(found.labels) and (found.labels.min() < 0 or found.labels.max() >= len(object_names)):
        raise LinaBenchError(f"the detector returned class index {int(found.labels.max())}, outside the "
                             f"{len(object_names)} object names")
    names = [object_names[int(i)] for i in found.labels]
    wanted = colour_classes(metadata)
    if wanted and classifier is None:
        raise LinaBenchError(f"prompt {metadata['prompt']!r} asks for colours; a colour model (--clip-model) is needed")
    colors = classify_all(classifier, image, names, found.boxes, found.masks, wanted) if wanted else [None] * len(names)
    records = [{"class": name, "score": float(score), "box": [float(v) for v in box], "color": color}
               for name, score, box, color in zip(names, found.scores, found.boxes, colors, strict=True)]
    return records, found.masks


def detect_folder(prompts: list[PromptImages], detector: Detector, classifier: ColorClassifier | None,
                  cache: DetectionCache, object_names: list[str], save_masks: bool = False,
                  progress: bool = True) -> int:
    """Detect every image of this rank's prompts that has no current cache entry; returns how many.

    Unreadable images are skipped and reported together at the end (LinaBenchError), after every
    readable image's detections are saved."""
    rank, world = rank_and_world()
    if rank == 0:
        cache.write_identity()
    mine = [p for p in prompts if p.index % world == rank]
    todo = [(prompt, image) for prompt in mine for image in prompt.images if cache.load(prompt, image) is None]
    total = sum(len(p.images) for p in mine)
    failures = []
    with tqdm(total=total, initial=total - len(todo), unit="image", desc="geneval detect",
              disable=not progress or rank != 0) as bar:
        for prompt, image_path in todo:
            stat, digest = image_stat(image_path), file_sha256(image_path)
            try:
                image = read_image(image_path)
            except LinaBenchError as exc:
                failures.append(str(exc))
                bar.update(1)
                continue
            records, masks = detect_image(image, prompt.metadata, detector, classifier, object_names)
            entry = {"image": prompt.image_id(image_path), "image_sha256": digest, "image_stat": stat,
                     "size": [image.width, image.height], "detections": records}
            if save_masks:
                mask_file = cache.path(prompt, image_path).with_suffix(".masks.npz")
                mask_file.parent.mkdir(parents=True, exist_ok=True)
                np.savez_compressed(mask_file, shape=np.array(masks.shape), bits=np.packbits(masks.reshape(-1)))
                entry["masks"] = mask_file.name
            cache.save(prompt, image_path, entry)
            bar.update(1)
    barrier()
    if failures:
        raise LinaBenchError(f"{len(failures)} image(s) could not be read (the others' detections are saved):\n  "
                             + "\n  ".join(failures[:20]))
    return len(todo) - len(failures)

"""GenEval end to end: models from local files, the detection cache, scoring with its protocol,
and the ``geneval`` suite evaluator.

Everything a number depends on is recorded beside it (``summary.json`` and the results store):
the detector and colour model with their weights' sha256, the scoring options, the prompt files
and whether they were rewritten (from the image folder's ``generation.json``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lina_bench.api.distributed import rank_and_world
from lina_bench.api.errors import LinaBenchError
from lina_bench.api.files import write_text_atomic
from lina_bench.api.schema import canonical_json
from lina_bench.evaluators.base import EvalContext, Evaluator, Measurement
from lina_bench.evaluators.clip_model import DEFAULT_ARCH, load_clip
from lina_bench.evaluators.geneval.colors import DEFAULT_BGCOLOR, ColorClassifier
from lina_bench.evaluators.geneval.detect import DetectionCache, colour_classes, detect_folder
from lina_bench.evaluators.geneval.detectors import build_detector
from lina_bench.evaluators.geneval.generate import GENERATION_FILE, generate_images
from lina_bench.evaluators.geneval.prompts import load_object_names, load_prompts, object_names_path
from lina_bench.evaluators.geneval.results import Summary, score_folder, summarize, write_results
from lina_bench.evaluators.geneval.scoring import ScoringOptions
from lina_bench.evaluators.prompt_folders import scan_images

CACHE_DIR = "geneval-detections"


@dataclass
class DetectSettings:
    """The detector and colour model, all from local files."""

    detector: str = "transformers"
    detector_weights: str | None = None
    mmdet_config: str | None = None
    clip_model: str = DEFAULT_ARCH  # an open_clip architecture, or an open_clip model folder
    clip_weights: str | None = None
    bgcolor: str = DEFAULT_BGCOLOR
    crop: bool = True
    save_masks: bool = False


def open_cache(out: str | Path, settings: DetectSettings, object_names: list[str], device: str = "cpu",
               need_colors: bool = True) -> tuple[DetectionCache, Any, ColorClassifier | None]:
    """Build the detector, the colour classifier (only when ``need_colors``) and the cache folder keyed
    by both."""
    classifier = None
    if need_colors:  # before the detector: a missing CLIP file fails fast
        classifier = ColorClassifier(load_clip(settings.clip_model, settings.clip_weights, device), settings.bgcolor,
                                     settings.crop)
    detector = build_detector(settings.detector, settings.detector_weights, object_names, device,
                              settings.mmdet_config)
    identity = {"detector": detector.identity, "colors": None if classifier is None else classifier.identity}
    return DetectionCache.under(Path(out) / CACHE_DIR, identity), detector, classifier


def detect(images: str | Path, out: str | Path, settings: DetectSettings, object_names: str | Path,
           device: str = "cpu", progress: bool = True) -> DetectionCache:
    """Stage 2 over a GenEval image folder; returns the cache the detections are in. The colour model
    is loaded only when some prompt of the folder asks for a colour."""
    names = load_object_names(object_names)
    prompts = scan_images(images)
    need_colors = any(colour_classes(p.metadata) for p in prompts)
    cache, detector, classifier = open_cache(out, settings, names, device, need_colors)
    detect_folder(prompts, detector, classifier, cache, names, settings.save_masks, progress)
    return cache


def find_cache(out: str | Path, detections: str | Path | None = None) -> DetectionCache:
    """The detection cache to score from: ``detections`` if given, else the only one under ``out``."""
    if detections is not None:
        folder = Path(detections)
    else:
        found = sorted(p for p in (Path(out) / CACHE_DIR).glob("*") if (p / "identity.json").is_file())
        if len(found) != 1:
            raise LinaBenchError(f"{len(found)} detection caches under {Path(out) / CACHE_DIR}; "
                                 + ("run the detect stage first" if not found else
                                    "choose one with --detections (" + ", ".join(p.name for p in found) + ")"))
        folder = found[0]
    if not (folder / "identity.json").is_file():
        raise LinaBenchError(f"{folder} is not a GenEval detection cache (no identity.json)")
    return DetectionCache(folder, json.loads((folder / "identity.json").read_text()))


@dataclass
class ScoreResult:
    summary: Summary
    protocol: dict[str, Any]
    results_path: Path


def score(images: str | Path, out: str | Path, cache: DetectionCache, options: dict[str, Any] | None = None,
          object_names: str | Path | None = None) -> ScoreResult:
    """Stage 3: verdicts from cached detections, ``results.jsonl`` and ``summary.json`` in ``out``."""
    parsed = ScoringOptions.parse(options)
    names = load_object_names(object_names) if object_names else None
    prompts = scan_images(images)
    frame = score_folder(prompts, cache, parsed, names)
    out = Path(out)
    results_path = write_results(out / "results.jsonl", frame)
    summary = summarize(frame)
    generation_file = Path(images) / GENERATION_FILE
    generation = json.loads(generation_file.read_text()) if generation_file.is_file() else None
    protocol = {"benchmark": "geneval", "scorer": "djghosh13/geneval evaluate_images.py (af4902f) semantics",
                "options": parsed.as_dict(), **cache.identity, "images": summary.images, "prompts": summary.prompts,
                "generation": generation,
                "prompt_rewrites": None if generation is None else generation["prompts"].get("rewrites")}
    write_text_atomic(out / "summary.json", json.dumps({"summary": summary.as_dict(), "protocol": protocol},
                                                       indent=2, sort_keys=True) + "\n")
    return ScoreResult(summary, protocol, results_path)


class GenEval(Evaluator):
    """GenEval of a text-to-image generator (generate, detect with local models, score) or of a GenEval
    image folder made elsewhere (detect, score; or score only, from a detection cache)."""

    targets = ("generator", "samples")

    def __init__(self, metadata: str | None = None, detector_weights: str | None = None,
                 clip_model: str = DEFAULT_ARCH, clip_weights: str | None = None, detector: str = "transformers",
                 object_names: str | None = None, rewrites: str | None = None, images_per_prompt: int = 4,
                 batch_size: int = 4, options: dict | None = None, detections: str | None = None,
                 out: str | None = None) -> None:
        if detector_weights is None and detections is None:
            raise LinaBenchError("geneval needs detector_weights (a local detector), or detections (a detection "
                                 "cache folder made by `lina-bench geneval detect`) to score from")
        self.prompts = load_prompts(metadata, object_names, rewrites) if metadata else None
        self.object_names_path = object_names_path(metadata, object_names) if metadata or object_names else None
        self.settings = DetectSettings(detector, detector_weights, clip_model=clip_model, clip_weights=clip_weights)
        self.options = ScoringOptions.parse(options)
        self.images_per_prompt, self.batch_size = images_per_prompt, batch_size
        self.detections, self.out = detections, out

    def protocol(self) -> dict[str, Any]:
        prompts = None if self.prompts is None else self.prompts.source
        return {"benchmark": "geneval", "prompts": prompts, "images_per_prompt": self.images_per_prompt,
                "detector": self.settings.detector, "clip_model": self.settings.clip_model,
                "options": self.options.as_dict()}

    def evaluate(self, target, context: EvalContext) -> Measurement:
        from lina_bench.evaluators.targets import GENEVAL_FOLDER, Samples

        work = Path(context.work_dir or ".") / "geneval"
        if isinstance(target, Samples):
            images = target.require(GENEVAL_FOLDER, what="GenEval")
        else:
            images = self._generate(target, work, context)
        if self.detections is not None:
            cache = find_cache(work, self.detections)
        else:
            if self.object_names_path is None:
                raise LinaBenchError("geneval needs object_names (GenEval's object_names.txt) or metadata beside it "
                                     "to detect")
            cache = detect(images, work, self.settings, self.object_names_path, context.device, context.progress)
        if rank_and_world()[0] != 0:
            return Measurement([], {})
        result = score(images, self.out or work, cache, self.options.as_dict(), self.object_names_path)
        return Measurement(result.summary.metrics(), result.protocol)

    def _generate(self, generator, work: Path, context: EvalContext) -> Path:
        """The generator's images for the prompts, in a folder of their own (by generator and seed)."""
        if self.prompts is None:
            raise LinaBenchError("geneval of a generator needs the option 'metadata' (evaluation_metadata.jsonl)")
        spec = generator.build_spec
        key = canonical_json(None if spec is None else [spec.name, spec.options, spec.checkpoint, context.seed])
        images = work / "images" / hashlib.sha256(key.encode()).hexdigest()[:16]
        generate_images(generator, self.prompts, images, self.images_per_prompt, context.seed, self.batch_size,
                        context.progress)
        return images

"""Benchmark GenEval: scoring throughput (detection excluded) and CPU detection throughput.

    python benchmarks/bench_geneval.py [--score-images 20000] [--detect-images 4] [--crops 16]

1. Scoring: ``score_image`` (inputs validated) and the full ``results.jsonl`` record (``result_row``,
   every class's kept boxes) over the 707 (metadata, detections) cases of the official-scorer
   fixture, cycled; and the whole score stage over a 553-prompt x 4-image folder with cached
   detections. Goal >= 10,000 images/s.
2. Detection with the transformers backend at the official model's size: Mask2Former with a Swin-S
   backbone (embed 96, depths 2-2-18-2, 100 queries, 80 classes), random init (compute does not
   depend on the weights), on 512x512 images (resized to 800x800 as mmdet's test pipeline does).
3. Colour classification: open_clip ViT-L-14 (random init), crops per second.
Writes CSV + markdown under benchmarks/results/<device>/.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lina_bench.engine.provenance import cpu_model
from lina_bench.evaluators.geneval import score_image
from lina_bench.evaluators.geneval.results import result_row
from lina_bench.evaluators.geneval.scoring import ScoringOptions

from bench_output import results_dir, write_csv

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "geneval" / "official_scores.json"


def bench_scoring(count: int) -> list[dict]:
    cases = json.loads(FIXTURE.read_text())["cases"]
    work = [(c["metadata"], c["detections"], c["options"]) for c in cases]
    rows = []
    for name, fn in (("score_image", lambda m, d, o: score_image(m, d, o)),
                     ("result_row", lambda m, d, o: result_row("x.png", m, d, ScoringOptions.parse(o)))):
        start = time.perf_counter()
        for i in range(count):
            fn(*work[i % len(work)])
        seconds = time.perf_counter() - start
        detections = sum(len(work[i % len(work)][1]) for i in range(count)) / count
        rows.append({"stage": f"score ({name})", "items": count, "seconds": round(seconds, 3),
                     "per_second": round(count / seconds, 1), "note": f"{detections:.1f} detections/image"})
    return rows


def bench_folder_scoring(images_per_prompt: int = 4) -> dict:
    """The whole score stage on a GenEval-sized folder (553 prompts x 4 images, tiny PNGs): folder scan,
    cache reads, verdicts, results.jsonl and summary."""
    from lina_bench.evaluators.geneval.detect import DetectionCache, image_stat
    from lina_bench.evaluators.geneval.pipeline import score
    from lina_bench.evaluators.prompt_folders import scan_images

    cases = [c for c in json.loads(FIXTURE.read_text())["cases"] if c["name"].startswith("random/")
             and c["options"] is None]
    with tempfile.TemporaryDirectory() as tmp:
        images, cache = Path(tmp) / "images", DetectionCache(Path(tmp) / "cache", {"bench": True})
        for i, case in enumerate(cases):
            samples = images / f"{i:05d}" / "samples"
            samples.mkdir(parents=True)
            (samples.parent / "metadata.jsonl").write_text(json.dumps(case["metadata"]))
            for j in range(images_per_prompt):
                Image.new("RGB", (8, 8), (i % 256, j, 0)).save(samples / f"{j:04d}.png")
        for prompt in scan_images(images):
            for image in prompt.images:
                cache.save(prompt, image, {"image_stat": image_stat(image),
                                           "detections": cases[prompt.index]["detections"]})
        start = time.perf_counter()
        result = score(images, Path(tmp) / "out", cache)
        seconds = time.perf_counter() - start
    return {"stage": "score stage (scan + cache + results.jsonl + summary)", "items": result.summary.images,
            "seconds": round(seconds, 3), "per_second": round(result.summary.images / seconds, 1),
            "note": f"{len(cases)} prompts"}


def bench_detection(images: int) -> dict:
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, SwinConfig

    from lina_bench.evaluators.geneval.detectors import TransformersDetector

    backbone = SwinConfig(embed_dim=96, depths=[2, 2, 18, 2], num_heads=[3, 6, 12, 24], window_size=7,
                          out_features=["stage1", "stage2", "stage3", "stage4"])
    config = Mask2FormerConfig(backbone_config=backbone, num_labels=80, use_pretrained_backbone=False)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        Mask2FormerForUniversalSegmentation(config).save_pretrained(tmp)
        detector = TransformersDetector(tmp, [f"class{i}" for i in range(80)])
        rng = np.random.default_rng(0)
        pictures = [Image.fromarray(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)) for _ in range(images + 1)]
        detector.detect(pictures[0])  # warm-up
        start = time.perf_counter()
        for picture in pictures[1:]:
            detector.detect(picture)
        seconds = time.perf_counter() - start
    params = sum(p.numel() for p in detector.model.parameters()) / 1e6
    return {"stage": "detect (transformers Mask2Former Swin-S, 512px -> 800px)", "items": images,
            "seconds": round(seconds, 3), "per_second": round(images / seconds, 3), "note": f"{params:.1f}M params"}


def bench_colors(crops: int) -> dict:
    import open_clip

    from lina_bench.evaluators.clip_model import ClipModel
    from lina_bench.evaluators.geneval.colors import ColorClassifier

    model, _, preprocess = open_clip.create_model_and_transforms("ViT-L-14-quickgelu")
    clip = ClipModel(model.eval(), preprocess, open_clip.get_tokenizer("ViT-L-14-quickgelu"), torch.device("cpu"), {})
    classifier = ColorClassifier(clip)
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8))
    boxes = np.tile(np.array([[64, 64, 320, 400]], dtype=np.float32), (crops, 1))
    masks = rng.random((crops, 512, 512)) > 0.5
    classifier.classifier("dog")  # text side, cached per class
    start = time.perf_counter()
    classifier.classify(image, boxes, masks, "dog")
    seconds = time.perf_counter() - start
    return {"stage": "colour (open_clip ViT-L-14, masked crops)", "items": crops, "seconds": round(seconds, 3),
            "per_second": round(crops / seconds, 2), "note": "batch 16"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--score-images", type=int, default=20000)
    parser.add_argument("--detect-images", type=int, default=4)
    parser.add_argument("--crops", type=int, default=16)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = bench_scoring(args.score_images) + [bench_folder_scoring()]
    for row in rows:
        print(row)
    for fn, n in ((bench_detection, args.detect_images), (bench_colors, args.crops)):
        if n > 0:
            rows.append(fn(n))
            print(rows[-1])
    device = cpu_model()
    out_dir = results_dir(device, out=args.out)
    write_csv(out_dir / "geneval.csv", rows)
    lines = [f"# GenEval throughput on {device}, {torch.get_num_threads()} threads", "",
             "| stage | items | seconds | per second | note |", "|---|---|---|---|---|"]
    lines += [f"| {r['stage']} | {r['items']} | {r['seconds']} | {r['per_second']} | {r['note']} |" for r in rows]
    (out_dir / "geneval.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out_dir / 'geneval.md'}")


if __name__ == "__main__":
    main()

"""GenEval stages end to end on CPU: the toy text-to-image generator, a tiny random-init transformers
Mask2Former and a tiny random-init open_clip model, both saved to local files and loaded through the
real loading paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from lina_bench.api.errors import LinaBenchError
from lina_bench.api.generator import build_generator, sample_seed
from lina_bench.evaluators.clip_model import load_clip
from lina_bench.evaluators.geneval import detect as detect_module
from lina_bench.evaluators.geneval import score_image
from lina_bench.evaluators.geneval.colors import TEMPLATES, ColorClassifier
from lina_bench.evaluators.geneval.detectors import TransformersDetector, instances_from_queries, mask_boxes
from lina_bench.evaluators.geneval.generate import generate_images
from lina_bench.evaluators.geneval.pipeline import DetectSettings, detect, find_cache
from lina_bench.evaluators.geneval.prompts import load_prompts
from lina_bench.evaluators.geneval.scoring import COLORS

from cli_helpers import run_cli, run_console
from geneval_helpers import (
    METADATA,
    OBJECT_NAMES,
    tiny_clip,
    tiny_mask2former,
    write_image_folder,
    write_prompt_files,
)

SHARED_METADATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "geneval" / "evaluation_metadata.jsonl"
LOW = ("--option", "threshold=0.05", "--option", "counting_threshold=0.1")  # random models score ~0.1


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("geneval")
    return {"metadata": write_prompt_files(root / "prompts"), "m2f": tiny_mask2former(root / "m2f"),
            "clip": tiny_clip(root / "clip")}


def _run_args(assets, out: Path, *extra: str) -> list[str]:
    return ["geneval", "run", "--metadata", str(assets["metadata"]), "--generator", "toy", "--set",
            "conditioning=text", "--set", "dtype=float32", "--images-per-prompt", "2", "--batch-size", "3",
            "--detector-weights", str(assets["m2f"]), "--clip-model", str(assets["clip"]), "--out", str(out),
            "--device", "cpu", *LOW, *extra]


def test_instances_from_queries_matches_a_naive_loop():
    gen = torch.Generator().manual_seed(0)
    class_logits, mask_logits = torch.randn(5, 4, generator=gen), 3 * torch.randn(5, 7, 9, generator=gen)
    got = instances_from_queries(class_logits, mask_logits, max_per_image=6)
    probs = class_logits.softmax(-1)[:, :-1].numpy()
    pairs = sorted(((probs[q, c], q, c) for q in range(5) for c in range(3)), reverse=True)[:6]
    expected = []
    for prob, q, c in pairs:
        logits = mask_logits[q].numpy().astype(np.float64)
        binary = logits > 0
        sig = 1 / (1 + np.exp(-logits))
        mask_score = (sig * binary).sum() / (binary.sum() + 1e-6)
        ys, xs = np.nonzero(binary)
        box = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] if len(xs) else [0, 0, 0, 0]
        expected.append((c, prob * mask_score, box, binary))
    order = np.argsort(-got.scores)
    for (c, score, box, binary), i in zip(sorted(expected, key=lambda e: -e[1]), order, strict=True):
        assert got.labels[i] == c
        assert got.scores[i] == pytest.approx(score, rel=1e-5)
        assert got.boxes[i].tolist() == box
        assert np.array_equal(got.masks[i], binary)


def test_mask_boxes_are_tight_with_exclusive_ends():
    masks = torch.zeros(2, 6, 8, dtype=torch.bool)
    masks[0, 1:4, 2:7] = True
    assert mask_boxes(masks).tolist() == [[2, 1, 7, 4], [0, 0, 0, 0]]


def test_transformers_detector_output_is_in_image_coordinates(assets):
    detector = TransformersDetector(assets["m2f"], OBJECT_NAMES)
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (37, 53, 3), dtype=np.uint8))
    found = detector.detect(image)
    assert found.masks.shape[1:] == (37, 53) and len(found.labels) == 12 * 5 <= 100
    assert found.labels.max() < len(OBJECT_NAMES) and 0 <= found.scores.min() and found.scores.max() <= 1
    assert (found.boxes[:, 2] <= 53).all() and (found.boxes[:, 3] <= 37).all()
    assert detector.identity["weights_sha256"]
    with pytest.raises(LinaBenchError, match="predicts 5 classes but the object names file lists 3"):
        TransformersDetector(assets["m2f"], OBJECT_NAMES[:3])


def test_colour_classifier_matches_a_naive_computation(assets):
    clip = load_clip(assets["clip"])
    classifier = ColorClassifier(clip)
    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    masks = rng.random((2, 30, 40)) > 0.5
    boxes = np.array([[2.4, 3.6, 30.5, 25.2], [0, 0, 40, 30]], dtype=np.float32)
    got = classifier.classify(Image.fromarray(pixels), boxes, masks, "dog")
    for i in range(2):
        composite = np.where(masks[i][..., None], pixels, 153).astype(np.uint8)  # #999 background
        x1, y1, x2, y2 = (int(round(float(v))) for v in boxes[i])
        crop = Image.fromarray(composite[y1:y2, x1:x2])
        image_feature = clip.encode_images([crop])[0]
        logits = []
        for color in COLORS:
            per_template = [clip.encode_texts([t.format(color=color, object="dog")])[0] for t in TEMPLATES]
            mean = torch.stack(per_template).mean(0)
            logits.append(float(image_feature @ (mean / mean.norm())))
        assert got[i] == COLORS[int(np.argmax(logits))]


def test_run_end_to_end_matches_score_image_and_official_summary(assets, tmp_path):
    out = tmp_path / "out"
    code, output = run_cli(*_run_args(assets, out), "--json")
    assert code == 0, output
    report = json.loads(output[output.index("{"):])
    images = out / "geneval-images"
    for i, meta in enumerate(METADATA):  # official layout
        assert json.loads((images / f"{i:05d}" / "metadata.jsonl").read_text()) == meta
        assert sorted(p.name for p in (images / f"{i:05d}" / "samples").iterdir()) == ["0000.png", "0001.png"]
    cache = find_cache(out)
    df = pd.read_json(out / "results.jsonl", orient="records", lines=True)  # as summary_scores.py reads it
    assert list(df.columns) == ["filename", "tag", "prompt", "correct", "reason", "metadata", "details"]
    assert len(df) == 12
    for row in df.itertuples():
        folder, name = Path(row.filename).parent.parent.name, Path(row.filename).stem
        entry = json.loads((cache.folder / folder / f"{name}.json").read_text())
        verdict = score_image(json.loads(row.metadata), entry["detections"],
                              {"threshold": 0.05, "counting_threshold": 0.1})
        assert (bool(row.correct), row.reason) == verdict
        asked = {r["class"] for r in json.loads(row.metadata)["include"] if "color" in r}
        assert all((d["color"] is not None) == (d["class"] in asked) for d in entry["detections"])
    # summary_scores.py's own expressions
    tags = [g["correct"].mean() for _, g in df.groupby("tag", sort=False)]
    summary = report["summary"]
    assert summary["overall"] == pytest.approx(np.mean(tags))
    assert summary["correct_images"] == pytest.approx(df["correct"].mean())
    assert summary["correct_prompts"] == pytest.approx(df.groupby("metadata")["correct"].any().mean())
    assert list(summary["tags"]) == list(dict.fromkeys(m["tag"] for m in METADATA))
    protocol = report["protocol"]["evaluator"]
    assert protocol["detector"]["backend"] == "transformers" and protocol["colors"]["clip_model"] == "clip"
    assert protocol["options"]["threshold"] == 0.05 and protocol["prompt_rewrites"] is None
    assert json.loads((out / "summary.json").read_text())["summary"] == summary
    code, output = run_cli("results", "--out", str(out), "--format", "json")
    assert code == 0 and "geneval_overall" in output


def test_rescoring_with_other_thresholds_needs_no_model(assets, tmp_path):
    out = tmp_path / "out"
    assert run_cli(*_run_args(assets, out))[0] == 0
    code, output = run_cli("geneval", "score", str(out / "geneval-images"), "--out", str(out), "--option",
                           "threshold=0.9", "--json")
    assert code == 0, output
    summary = json.loads(output[output.index("{"):])["summary"]
    assert summary["tags"]["single_object"]["correct"] == 0  # nothing of a random model scores above 0.9


def test_rewrites_drive_generation_but_not_scoring(assets, tmp_path):
    rewrites = tmp_path / "rewrites.json"
    rewrites.write_text(json.dumps({m["prompt"]: f"{m['prompt']}, highly detailed, version {i}"
                                    for i, m in enumerate(METADATA)}))
    plain, rewritten = tmp_path / "plain", tmp_path / "rewritten"
    assert run_cli(*_run_args(assets, plain))[0] == 0
    code, output = run_cli(*_run_args(assets, rewritten, "--rewrites", str(rewrites)), "--json")
    assert code == 0, output
    report = json.loads(output[output.index("{"):])
    assert report["protocol"]["evaluator"]["prompt_rewrites"] == "rewrites.json"
    a = sorted((plain / "geneval-images").glob("*/samples/*.png"))
    b = sorted((rewritten / "geneval-images").glob("*/samples/*.png"))
    assert any(x.read_bytes() != y.read_bytes() for x, y in zip(a, b, strict=True))
    df = pd.read_json(rewritten / "results.jsonl", orient="records", lines=True)
    assert set(df["prompt"]) == {m["prompt"] for m in METADATA}


class Crash(Exception):
    pass


def test_interrupted_detection_resumes_without_redoing_finished_images(assets, tmp_path, monkeypatch):
    images = write_image_folder(tmp_path / "images")
    settings = DetectSettings(detector_weights=str(assets["m2f"]), clip_model=str(assets["clip"]))
    names = assets["metadata"].with_name("object_names.txt")
    real, calls, crash_at = detect_module.detect_image, [], [5]

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == crash_at[0]:
            raise Crash("killed mid-run")
        return real(*args, **kwargs)

    monkeypatch.setattr(detect_module, "detect_image", flaky)
    with pytest.raises(Crash):
        detect(images, tmp_path / "out", settings, names, progress=False)
    cache = find_cache(tmp_path / "out")
    assert len(list(cache.folder.glob("*/*.json"))) == 4
    calls.clear()
    crash_at[0] = 0
    detect(images, tmp_path / "out", settings, names, progress=False)
    assert len(calls) == 8 and len(list(cache.folder.glob("*/*.json"))) == 12
    # a regenerated image is detected again
    Image.new("RGB", (48, 40), "red").save(images / "00000" / "samples" / "0000.png")
    calls.clear()
    detect(images, tmp_path / "out", settings, names, progress=False)
    assert len(calls) == 1


def test_generation_resumes_without_redrawing(tmp_path):
    """A rerun draws only the missing image; the finished PNGs are the same files, untouched."""
    prompts = load_prompts(write_prompt_files(tmp_path / "prompts", METADATA[:3]))
    gen = build_generator("toy", {"conditioning": "text", "steps": 1})
    drawn, real = [], gen.sample
    gen.sample = lambda conditions, seeds: drawn.extend(seeds) or real(conditions, seeds)
    out = tmp_path / "images"
    assert generate_images(gen, prompts, out, images_per_prompt=2, batch_size=4, progress=False) == 6
    assert len(drawn) == 6
    files = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("*/samples/*.png")}
    missing = out / "00001" / "samples" / "0001.png"
    missing.unlink()
    drawn.clear()
    assert generate_images(gen, prompts, out, images_per_prompt=2, batch_size=4, progress=False) == 1
    assert drawn == [sample_seed(0, 1, 1)]
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in files if p != missing} == \
        {p: v for p, v in files.items() if p != missing}
    assert missing.is_file()


def test_unreadable_image_is_reported_after_the_rest_are_saved(assets, tmp_path):
    images = write_image_folder(tmp_path / "images")
    (images / "00002" / "samples" / "0001.png").write_bytes(b"not a png")
    code, output = run_cli("geneval", "detect", str(images), "--object-names",
                           str(assets["metadata"].with_name("object_names.txt")), "--detector-weights",
                           str(assets["m2f"]), "--clip-model", str(assets["clip"]), "--out", str(tmp_path / "out"),
                           "--device", "cpu")
    assert code == 2 and "1 image(s) could not be read" in output and "00002/samples/0001.png" in output
    assert len(list(find_cache(tmp_path / "out").folder.glob("*/*.json"))) == 11
    code, output = run_cli("geneval", "score", str(images), "--out", str(tmp_path / "out"))
    assert code == 2 and "no current detections for 1 image(s) (e.g. 00002/0001)" in output


@pytest.mark.parametrize("break_it, message", [
    (lambda root, m: (root / "00001" / "metadata.jsonl").unlink(), "metadata.jsonl: missing"),
    (lambda root, m: (root / "00001" / "metadata.jsonl").write_text('{"tag": "single_object"}'), "missing field"),
    (lambda root, m: [p.unlink() for p in (root / "00003" / "samples").iterdir()], "no sample images"),
])
def test_bad_image_folders_are_refused(assets, tmp_path, break_it, message):
    images = write_image_folder(tmp_path / "images")
    break_it(images, assets)
    proc = run_console("geneval", "detect", str(images), "--object-names",
                       str(assets["metadata"].with_name("object_names.txt")), "--detector-weights",
                       str(assets["m2f"]), "--clip-model", str(assets["clip"]), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def test_missing_weights_and_bad_prompt_files_are_clear_errors(assets, tmp_path):
    images = write_image_folder(tmp_path / "images")
    names = str(assets["metadata"].with_name("object_names.txt"))
    base = ["geneval", "detect", str(images), "--object-names", names, "--out", str(tmp_path / "out")]
    proc = run_console(*base, "--detector-weights", str(tmp_path / "nope"), "--clip-model", str(assets["clip"]))
    assert proc.returncode == 2 and "Mask2Former folder not found" in proc.stderr
    proc = run_console(*base, "--detector-weights", str(assets["m2f"]), "--clip-weights", str(tmp_path / "c.bin"))
    assert proc.returncode == 2 and "CLIP weights not found" in proc.stderr and "ViT-L/14" in proc.stderr
    code, output = run_cli(*base, "--detector-weights", str(assets["m2f"]), "--clip-model", str(assets["clip"]),
                           "--mmdet-config", str(names))
    assert code == 2 and "--mmdet-config applies only to --detector mmdet" in output
    bad = write_prompt_files(tmp_path / "bad", [{"tag": "single_object", "include": [{"class": "unicorn",
                                                                                        "count": 1}], "prompt": "u"}])
    with pytest.raises(LinaBenchError, match="unknown class name.*'unicorn'"):
        load_prompts(bad)
    with pytest.raises(LinaBenchError, match="object names file not found"):
        load_prompts(bad, tmp_path / "missing.txt")
    (tmp_path / "bad" / "evaluation_metadata.jsonl").write_text('{"tag": "single_object"\n')
    with pytest.raises(LinaBenchError, match="evaluation_metadata.jsonl:1: not valid JSON"):
        load_prompts(bad)
    rewrites = tmp_path / "r.json"
    rewrites.write_text(json.dumps({"a photo of a bench": "x"}))
    with pytest.raises(LinaBenchError, match="no rewrite for 5 prompt"):
        load_prompts(assets["metadata"], rewrites=rewrites)


def test_colour_model_is_needed_only_for_colour_prompts(assets, tmp_path):
    names = assets["metadata"].with_name("object_names.txt")
    no_colour = write_image_folder(tmp_path / "plain", METADATA[:3], images_per_prompt=1)
    settings = DetectSettings(detector_weights=str(assets["m2f"]))  # no CLIP weights at all
    cache = detect(no_colour, tmp_path / "out", settings, names, progress=False)
    assert cache.identity["colors"] is None and len(list(cache.folder.glob("*/*.json"))) == 3
    coloured = write_image_folder(tmp_path / "coloured", METADATA[3:4], images_per_prompt=1)
    with pytest.raises(LinaBenchError, match="needs a local weights file"):
        detect(coloured, tmp_path / "out2", settings, names, progress=False)
    assert not (tmp_path / "out2").exists()  # failed before detecting anything


def test_generation_folder_refuses_other_settings(assets, tmp_path):
    out = tmp_path / "out"
    assert run_cli(*_run_args(assets, out))[0] == 0
    code, output = run_cli(*_run_args(assets, out, "--seed", "3"))
    assert code == 2 and "other settings (differs in: seed)" in output
    code, output = run_cli("geneval", "generate", "--metadata", str(assets["metadata"]), "--generator", "toy",
                           "--images", str(tmp_path / "img"))
    assert code == 2 and "needs a text-to-image generator" in output


def test_two_gloo_processes_generate_the_same_images_as_one(assets, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["geneval", "generate", "--metadata", str(assets["metadata"]), "--generator", "toy", "--set",
            "conditioning=text", "--images-per-prompt", "2", "--device", "cpu"]
    one = subprocess.run([sys.executable, "-m", "lina_bench.cli", *args, "--images", str(tmp_path / "one"),
                          "--batch-size", "5"], capture_output=True, text=True, timeout=300, env=env)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "lina_bench.cli", *args, "--images", str(tmp_path / "two"), "--batch-size", "2"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = sorted((tmp_path / "one").rglob("*.png")), sorted((tmp_path / "two").rglob("*.png"))
    assert len(a) == 12 and [p.relative_to(tmp_path / "one") for p in a] == [p.relative_to(tmp_path / "two")
                                                                             for p in b]
    assert all(np.array_equal(np.asarray(Image.open(x)), np.asarray(Image.open(y))) for x, y in zip(a, b, strict=True))


def test_two_gloo_processes_detect_the_same_as_one(assets, tmp_path):
    images = write_image_folder(tmp_path / "images", images_per_prompt=1)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["geneval", "detect", str(images), "--object-names", str(assets["metadata"].with_name("object_names.txt")),
            "--detector-weights", str(assets["m2f"]), "--clip-model", str(assets["clip"]), "--device", "cpu"]
    one = subprocess.run([sys.executable, "-m", "lina_bench.cli", *args, "--out", str(tmp_path / "one")],
                         capture_output=True, text=True, timeout=300, env=env)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "lina_bench.cli", *args, "--out", str(tmp_path / "two")],
                         capture_output=True, text=True, timeout=300, env=env)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = find_cache(tmp_path / "one"), find_cache(tmp_path / "two")
    entries = sorted(p.relative_to(a.folder) for p in a.folder.glob("*/*.json"))
    assert len(entries) == 6 and entries == sorted(p.relative_to(b.folder) for p in b.folder.glob("*/*.json"))
    for entry in entries:
        x, y = json.loads((a.folder / entry).read_text()), json.loads((b.folder / entry).read_text())
        assert x["detections"] == y["detections"]


@pytest.mark.skipif(not SHARED_METADATA.is_file(), reason="the official metadata copy in ../shared is absent")
def test_all_553_official_prompts_load():
    prompts = load_prompts(SHARED_METADATA)
    assert len(prompts.metadata) == 553 and len(prompts.object_names) == 80
    assert {m["tag"] for m in prompts.metadata} == {"single_object", "two_object", "counting", "colors", "position",
                                                    "color_attr"}

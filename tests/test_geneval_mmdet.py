"""The mmdet detector backend with a random-init Mask2Former Swin-S built from mmdet's own config.

Needs mmdet 3.x on mmcv with compiled ops (scripts/install_mmdet.sh, about 15 minutes to build
once), so these tests carry the ``mmdet`` marker and stay out of the default run:
``pytest -m mmdet`` runs them; without mmdet they skip.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from lina_bench.evaluators.geneval import score_image
from lina_bench.evaluators.geneval.detectors import MmdetDetector, instances_from_queries, mask_boxes

from cli_helpers import run_cli
from geneval_helpers import METADATA, tiny_clip, write_image_folder

pytestmark = pytest.mark.mmdet
pytest.importorskip("mmcv.ops", reason="mmdet backend not installed (scripts/install_mmdet.sh)")
pytest.importorskip("mmdet")


@pytest.fixture(scope="module")
def coco_names():
    from mmdet.datasets import CocoDataset

    return list(CocoDataset.METAINFO["classes"])


@pytest.fixture(scope="module")
def detector(coco_names):
    torch.manual_seed(0)
    return MmdetDetector(None, coco_names, "cpu")


def test_instance_postprocess_equals_mmdet(detector):
    """Our Mask2Former -> instances conversion (transformers backend) is mmdet's own, on random queries."""
    head = detector.model.panoptic_fusion_head
    gen = torch.Generator().manual_seed(1)
    class_logits, mask_logits = torch.randn(100, 81, generator=gen), 2 * torch.randn(100, 24, 32, generator=gen)
    theirs = head.instance_postprocess(class_logits, mask_logits)
    ours = instances_from_queries(class_logits, mask_logits)
    a, b = np.argsort(-theirs.scores.numpy(), kind="stable"), np.argsort(-ours.scores, kind="stable")
    assert np.array_equal(theirs.labels.numpy()[a], ours.labels[b])
    np.testing.assert_allclose(theirs.scores.numpy()[a], ours.scores[b], rtol=1e-6)
    np.testing.assert_array_equal(theirs.bboxes.numpy()[a], ours.boxes[b])
    np.testing.assert_array_equal(theirs.masks.numpy()[a], ours.masks[b])


def test_random_init_swin_s_detects_in_image_coordinates(detector):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8))
    found = detector.detect(image)
    assert 0 < len(found.labels) <= 100 and found.masks.shape[1:] == (60, 80)
    assert found.labels.max() < 80 and found.scores.dtype == np.float32
    np.testing.assert_array_equal(found.boxes, mask_boxes(torch.from_numpy(found.masks)).numpy())
    assert detector.identity["config"] == "mask2former_swin-s-p4-w7-224_8xb2-lsj-50e_coco.py"


def test_cli_detect_and_score_with_mmdet_weights_file(detector, coco_names, tmp_path):
    """The real loading path: a checkpoint file read by mmdet's init_detector, through the CLI."""
    weights = tmp_path / "mask2former_random.pth"
    torch.save({"state_dict": detector.model.state_dict(), "meta": {"dataset_meta": {"classes": coco_names}}},
               weights)
    metadata = METADATA[:2]  # bench; dog and cat: COCO classes
    images = write_image_folder(tmp_path / "images", metadata, images_per_prompt=1, size=(64, 48))
    names = tmp_path / "object_names.txt"
    names.write_text("\n".join(coco_names) + "\n")
    out = tmp_path / "out"
    code, output = run_cli("geneval", "detect", str(images), "--object-names", str(names), "--detector", "mmdet",
                           "--detector-weights", str(weights), "--clip-model", str(tiny_clip(tmp_path / "clip")),
                           "--out", str(out), "--device", "cpu")
    assert code == 0, output
    code, output = run_cli("geneval", "score", str(images), "--out", str(out), "--option", "threshold=0.01",
                           "--json")
    assert code == 0, output
    report = json.loads(output[output.index("{"):])
    assert report["protocol"]["detector"]["backend"] == "mmdet" and report["summary"]["images"] == 2
    cache = next((out / "geneval-detections").iterdir())
    entry = json.loads((cache / "00000" / "0000.json").read_text())
    assert entry["detections"] and all(d["class"] in coco_names for d in entry["detections"])
    assert isinstance(score_image(metadata[0], entry["detections"], {"threshold": 0.01})[0], bool)

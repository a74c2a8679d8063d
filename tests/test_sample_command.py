"""``lina-bench sample``: PNGs per condition that equal the generator's per-sample-seed images, and a grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from lina_bench.api.generator import build_generator, sample_seed

from cli_helpers import run_cli


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_images_follow_per_sample_seeds_whatever_the_batch(tmp_path: Path):
    for batch in ("1", "4"):
        code, text = run_cli("sample", "--generator", "toy", "--classes", "3,7", "--n", "3", "--seed", "5",
                             "--batch-size", batch, "--out", str(tmp_path / batch))
        assert code == 0 and "wrote 6 images" in text, text
    expected = build_generator("toy", {}).sample([3, 3, 3, 7, 7, 7], [sample_seed(5, i) for i in range(6)])
    for i in range(6):
        name = f"{i // 3:04d}_{i % 3:02d}.png"
        assert np.array_equal(_png(tmp_path / "1" / name), expected[i].permute(1, 2, 0).numpy())
        assert np.array_equal(_png(tmp_path / "1" / name), _png(tmp_path / "4" / name))
    grid = _png(tmp_path / "1" / "grid.png")
    size = expected.shape[-1]
    assert grid.shape == (2 * (size + 2) + 2, 3 * (size + 2) + 2, 3)  # a row per class, 2 px gaps
    assert np.array_equal(grid[2:2 + size, 2 + size + 2:2 + 2 * size + 2], expected[1].permute(1, 2, 0).numpy())


def test_prompts_and_errors(tmp_path: Path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red cube\n\na blue ball\n")
    code, text = run_cli("sample", "--generator", "toy", "--set", "conditioning=text", "--prompts", str(prompts),
                         "--n", "1", "--out", str(tmp_path / "t"))
    assert code == 0 and sorted(p.name for p in (tmp_path / "t").iterdir()) == ["0000_00.png", "0001_00.png",
                                                                                 "grid.png"]
    for args, message in (((), "exactly one of --classes or --prompts"),
                          (("--classes", "1", "--prompts", str(prompts)), "exactly one of"),
                          (("--classes", "1,x"), "not a comma-separated list"),
                          (("--classes", "10"), "class labels must be ints in [0, 10)"),
                          (("--classes", "1", "--official-rng"), "no official sampler to reproduce")):
        code, text = run_cli("sample", "--generator", "toy", *args, "--out", str(tmp_path / "bad"))
        assert code == 2 and message in text, (args, text)

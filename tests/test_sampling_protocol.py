"""The sampling protocol pinned to recorded values: the seed of every sample, the label of every
index, GenEval's (prompt, image) seeds and the order generated samples are scored and saved in.

These numbers decide every FID, IS and GenEval number lina-bench publishes. The expected values are
written out here (recorded once, or computed with the official code's own calls), never produced by
the code under test, so any change fails loudly and has to be made on purpose.
"""

from __future__ import annotations

import numpy as np
import pytest

from lina_bench.api.generator import build_generator, sample_seed
from lina_bench.evaluators.fid_sources import GeneratorSource, lina_npz_order
from lina_bench.evaluators.geneval.generate import generate_images
from lina_bench.evaluators.geneval.prompts import load_prompts

from geneval_helpers import METADATA, write_prompt_files

# sample_seed(seed, *index): sha256 of "lina-bench:<seed>:<index...>", first 8 bytes little-endian, >> 1
PINNED_SEEDS = {
    (0, 0): 8265109244349062036,
    (0, 1): 1977178318319507135,
    (0, 2): 6301910428966161097,
    (0, 19): 506137544970395159,
    (5, 7): 4154667878167382294,
    (0, 0, 0): 5938094773759821553,
    (0, 0, 1): 3405579914555352947,
    (0, 1, 0): 5741752501289093426,
    (0, 3, 2): 6632500390086474094,
}


@pytest.mark.parametrize("key", list(PINNED_SEEDS), ids=lambda k: ":".join(map(str, k)))
def test_sample_seed_values_are_pinned(key):
    assert sample_seed(*key) == PINNED_SEEDS[key]


class Recorder:
    """Wraps a generator's ``sample`` and records every (condition, seed) it is asked for."""

    def __init__(self, generator) -> None:
        self.calls: list[tuple[object, int]] = []
        real = generator.sample

        def sample(conditions, seeds):
            self.calls += list(zip(conditions, seeds, strict=True))
            return real(conditions, seeds)

        generator.sample = sample


def test_fid_samples_get_pinned_labels_and_seeds():
    gen = build_generator("toy", {"steps": 1})
    recorder = Recorder(gen)
    source = GeneratorSource(gen, 20, seed=0)  # 10 classes, 2 per class
    source.images([0, 1, 2, 19])
    assert recorder.calls == [(0, PINNED_SEEDS[0, 0]), (0, PINNED_SEEDS[0, 1]), (1, PINNED_SEEDS[0, 2]),
                              (9, PINNED_SEEDS[0, 19])]
    assert [source.label(i) for i in range(20)] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9]


def test_geneval_images_get_pinned_seeds(tmp_path):
    prompts = load_prompts(write_prompt_files(tmp_path / "prompts", METADATA[:4]))
    gen = build_generator("toy", {"conditioning": "text", "steps": 1})
    recorder = Recorder(gen)
    assert generate_images(gen, prompts, tmp_path / "images", images_per_prompt=3, seed=0, batch_size=5,
                           progress=False) == 12
    seeds = {(prompt, seed) for prompt, seed in recorder.calls}
    assert (METADATA[0]["prompt"], PINNED_SEEDS[0, 0, 0]) in seeds
    assert (METADATA[0]["prompt"], PINNED_SEEDS[0, 0, 1]) in seeds
    assert (METADATA[1]["prompt"], PINNED_SEEDS[0, 1, 0]) in seeds
    assert (METADATA[3]["prompt"], PINNED_SEEDS[0, 3, 2]) in seeds
    assert len(seeds) == 12


def test_npz_order_is_lina_official_permutation():
    """LINA's create_npz_from_sample_folder: np.random.seed(1337); order = np.random.permutation(num)."""
    assert lina_npz_order(10).tolist() == [6, 3, 0, 4, 5, 2, 1, 9, 8, 7]
    order = lina_npz_order(50000)
    assert order[:8].tolist() == [12290, 31474, 5509, 38764, 24521, 24874, 16050, 29105]
    assert order[-3:].tolist() == [9448, 33628, 3223]
    state = np.random.get_state()
    try:  # the official calls, on numpy's global generator
        np.random.seed(1337)
        assert np.array_equal(order, np.random.permutation(50000))
    finally:
        np.random.set_state(state)


def test_generated_samples_are_scored_in_npz_order():
    gen = build_generator("toy", {"steps": 1})
    source = GeneratorSource(gen, 20, seed=0)
    assert source.order().tolist() == lina_npz_order(20).tolist()
    assert source.labels().tolist() == [i // 2 for i in lina_npz_order(20)]
    assert "1337" in source.order_name


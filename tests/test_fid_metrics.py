"""FID-family numbers against closed forms, torch-fidelity and independent computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_fidelity.metric_fid import fid_statistics_to_metric
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.metric_prc import prc_features_to_metric

from lina_bench.api.errors import LinaBenchError
from lina_bench.evaluators import fid as fid_module
from lina_bench.evaluators.fid import frechet_distance
from lina_bench.evaluators.fid_metrics import (
    feature_statistics,
    inception_score,
    kernel_inception_distance,
    precision_recall,
)
from lina_bench.evaluators.fid_sources import lina_npz_order


def test_unit_shift_in_2048_dimensions_is_2048():
    mu, sigma = np.zeros(2048), np.eye(2048)
    assert frechet_distance(mu, sigma, mu + 1, sigma) == pytest.approx(2048, rel=1e-12)


def test_diagonal_covariances_closed_form():
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.1, 3, 64), rng.uniform(0.1, 3, 64)
    m1, m2 = rng.normal(size=64), rng.normal(size=64)
    expected = ((m1 - m2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(m1, np.diag(a), m2, np.diag(b)) == pytest.approx(expected, rel=1e-10)


def test_agrees_with_torch_fidelity_on_full_rank_features():
    gen = torch.Generator().manual_seed(1)
    f1, f2 = torch.randn(600, 64, generator=gen), torch.randn(500, 64, generator=gen) * 1.1 + 0.05
    (m1, s1), (m2, s2) = feature_statistics(f1), feature_statistics(f2)
    ours = frechet_distance(m1, s1, m2, s2)
    theirs = fid_statistics_to_metric({"mu": m1, "sigma": s1}, {"mu": m2, "sigma": s2}, False)
    assert ours == pytest.approx(theirs["frechet_inception_distance"], rel=1e-9)


@pytest.mark.parametrize("n1,n2,dim", [(50, 40, 256), (10, 300, 128), (2048, 30, 2048)])
def test_rank_deficient_covariances_against_nuclear_norm(n1: int, n2: int, dim: int):
    """With fewer samples than dimensions, tr((S1 S2)^1/2) = ||X1c X2c^T||_* / sqrt((n1-1)(n2-1))."""
    rng = np.random.default_rng(n1)
    x1, x2 = rng.normal(size=(n1, dim)), rng.normal(size=(n2, dim)) + 0.1
    (m1, s1), (m2, s2) = feature_statistics(torch.from_numpy(x1)), feature_statistics(torch.from_numpy(x2))
    c1, c2 = x1 - x1.mean(0), x2 - x2.mean(0)
    nuclear = np.linalg.svd(c1 @ c2.T, compute_uv=False).sum() / np.sqrt((n1 - 1) * (n2 - 1))
    expected = ((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * nuclear
    value = frechet_distance(m1, s1, m2, s2)
    assert np.isfinite(value) and value == pytest.approx(expected, rel=1e-8)


def test_frechet_distance_rejects_bad_statistics():
    with pytest.raises(LinaBenchError, match="statistics do not match"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(LinaBenchError, match="NaN or inf"):
        frechet_distance(np.zeros(2), np.eye(2), np.array([np.nan, 0]), np.eye(2))


def peaked_logits(labels: list[int], classes: int = 1008, margin: float = 60.0) -> torch.Tensor:
    logits = torch.zeros(len(labels), classes)
    logits[torch.arange(len(labels)), torch.tensor(labels)] = margin
    return logits


def test_inception_score_adm_sequential_splits_closed_form():
    """Splits of 5000, 5000 and a partial 2000: one class, 5 balanced classes, 2 balanced classes ->
    IS per split 1, 5, 2 (to within e^-60), mean 8/3."""
    labels = [0] * 5000 + [i % 5 for i in range(5000)] + [i % 2 for i in range(2000)]
    mean, std = inception_score(peaked_logits(labels), "adm")
    assert mean == pytest.approx(8 / 3, rel=1e-9) and std == pytest.approx(np.std([1, 5, 2]), rel=1e-9)
    assert inception_score(torch.zeros(100, 1008), "adm")[0] == pytest.approx(1.0)


def test_inception_score_torch_fidelity_convention_is_theirs():
    logits = torch.randn(3000, 1008, generator=torch.Generator().manual_seed(2)) * 4
    theirs = isc_features_to_metric(logits, splits=10, shuffle=True, rng_seed=2020)
    assert inception_score(logits, "torch-fidelity") == (theirs["inception_score_mean"],
                                                          theirs["inception_score_std"])
    with pytest.raises(LinaBenchError, match="convention"):
        inception_score(logits, "tf")


def test_precision_recall_constructed_sets():
    grid = torch.tensor([[x, y] for x in range(5) for y in range(5)], dtype=torch.float32)
    assert precision_recall(grid, grid) == (1.0, 1.0)
    assert precision_recall(grid + 100, grid) == (0.0, 0.0)
    # Samples: the grid plus 5 far outliers -> 25/30 inside the reference manifold; the outliers'
    # k-NN balls are huge, but the reference points are all covered by the grid points anyway.
    samples = torch.cat([grid, torch.full((5, 2), 50.0) + torch.arange(5.0)[:, None]])
    precision, recall = precision_recall(samples, grid)
    assert precision == pytest.approx(25 / 30) and recall == 1.0


def test_precision_recall_matches_torch_fidelity():
    gen = torch.Generator().manual_seed(3)
    a, b = torch.randn(400, 32, generator=gen), torch.randn(300, 32, generator=gen) * 1.3
    theirs = prc_features_to_metric(a, b, prc_neighborhood=3, prc_batch_size=10000, save_cpu_ram=False,
                                    verbose=False)
    assert precision_recall(a, b, rows=64) == pytest.approx((theirs["precision"], theirs["recall"]), abs=1e-6)


def confident_is_closed_form(labels: np.ndarray, split: int = 5000) -> float:
    """IS of perfectly confident logits: per split exp(entropy of its class frequencies), averaged."""
    scores = []
    for start in range(0, len(labels), split):
        counts = np.unique(labels[start:start + split], return_counts=True)[1]
        p = counts / counts.sum()
        scores.append(np.exp(-(p * np.log(p)).sum()))
    return float(np.mean(scores))


def test_inception_score_of_1000_classes_depends_on_sample_order():
    """1000 classes x 50 confident samples. In label order each 5000-sample ADM split sees 100
    classes (IS 100); in LINA's npz order (seed-1337 permutation) IS is 910.0016 (recorded)."""
    labels = np.arange(50000) // 50
    logits = torch.full((50000, 1000), -60.0)
    logits[torch.arange(50000), torch.from_numpy(labels)] = 60.0
    blocked, _ = inception_score(logits, "adm")
    assert blocked == pytest.approx(100.0, rel=1e-9) == confident_is_closed_form(labels)
    order = lina_npz_order(50000)
    shuffled, _ = inception_score(logits[torch.from_numpy(order)], "adm")
    assert shuffled == pytest.approx(confident_is_closed_form(labels[order]), rel=1e-9)
    assert shuffled == pytest.approx(910.0016, abs=1e-4)
    assert inception_score(logits, "torch-fidelity")[0] == pytest.approx(910.2911, abs=1e-4)


def test_blocked_labels_warn_under_the_adm_convention(caplog):
    with caplog.at_level("WARNING", logger=fid_module.__name__):
        fid_module._warn_blocked_labels(np.arange(20000) // 20)  # 1000 classes sorted
    assert "each 5000-sample Inception Score split (ADM convention) sees only 250 of 1000 classes" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger=fid_module.__name__):
        fid_module._warn_blocked_labels((np.arange(20000) // 20)[lina_npz_order(20000)])  # shuffled
        fid_module._warn_blocked_labels(np.arange(4000) // 4)  # sorted, but one split holds every class
    assert caplog.text == ""


def test_kid_against_the_unbiased_polynomial_mmd_closed_form():
    """With the subset size equal to both set sizes every subset is the whole set, so KID is the
    unbiased MMD^2 with k(x, y) = (x.y / D + 1)^3 (and its spread 0)."""
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(40, 16)), rng.normal(size=(40, 16)) * 1.2 + 0.3
    kernel = lambda a, b: (a @ b.T / 16 + 1) ** 3  # noqa: E731
    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    m = len(x)
    expected = ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (m * (m - 1)) - 2 * kxy.mean()
    mean, std = kernel_inception_distance(torch.from_numpy(x), torch.from_numpy(y), subsets=5)
    assert mean == pytest.approx(expected, rel=1e-9) and std == pytest.approx(0, abs=1e-9)


def test_precision_counts_a_point_exactly_on_the_radius_as_inside():
    """Reference points 0..4 on a line (k = 3): point 0's ball reaches 3, so a sample at -3 lies
    exactly on its radius (squared distances are exact integers in float32) and is inside; -3.5 is not."""
    reference = torch.zeros(5, 4)
    reference[:, 0] = torch.arange(5.0)
    on, off = torch.zeros(1, 4), torch.zeros(1, 4)
    on[0, 0], off[0, 0] = -3.0, -3.5
    filler = reference.clone()  # keeps the sample set larger than k
    assert precision_recall(torch.cat([on, filler]), reference)[0] == 1.0
    assert precision_recall(torch.cat([off, filler]), reference)[0] == pytest.approx(5 / 6)

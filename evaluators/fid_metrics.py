"""The numbers of the FID family from Inception features: FID/sFID, Inception Score (both
conventions), KID, precision/recall. Pure functions of features; no network here.
"""

from __future__ import annotations

import numpy as np
import torch
from torch_fidelity.metric_fid import fid_features_to_statistics
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric

from lina_bench.api.errors import LinaBenchError

IS_CONVENTIONS = ("adm", "torch-fidelity")
ADM_IS_SPLIT = 5000  # ADM's evaluator scores IS over consecutive splits of this many samples


def _clip_to_rank(values: np.ndarray) -> np.ndarray:
    """Eigenvalues of a PSD matrix with rounding noise (below n * eps * max) set to 0: their square
    roots would otherwise add ~sqrt(eps) each and bias rank-deficient results."""
    tol = max(values.max(), 0.0) * len(values) * np.finfo(np.float64).eps
    return np.where(values > tol, values, 0.0)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1^1/2 S2 S1^1/2)^1/2), in float64.

    torch-fidelity's (and ADM's) ``sqrtm``/``eigvals`` of the non-symmetric S1 S2 go complex or
    NaN when a covariance is rank-deficient (fewer samples than dimensions); here both square roots
    are of symmetric PSD matrices (``eigh``, eigenvalues below rounding noise set to 0), which stays
    finite and is exact: tr((S1 S2)^1/2) = tr((S1^1/2 S2 S1^1/2)^1/2).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.ndim != 1 or mu1.shape != mu2.shape or sigma1.shape != (mu1.size, mu1.size) \
            or sigma2.shape != sigma1.shape:
        raise LinaBenchError(f"statistics do not match: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} "
                             f"vs {sigma2.shape}")
    for name, value in (("mu1", mu1), ("sigma1", sigma1), ("mu2", mu2), ("sigma2", sigma2)):
        if not np.isfinite(value).all():
            raise LinaBenchError(f"{name} contains NaN or inf")
    sigma1, sigma2 = (sigma1 + sigma1.T) / 2, (sigma2 + sigma2.T) / 2
    values, vectors = np.linalg.eigh(sigma1)
    root1 = (vectors * np.sqrt(_clip_to_rank(values))) @ vectors.T
    middle = root1 @ sigma2 @ root1
    tr_covmean = np.sqrt(_clip_to_rank(np.linalg.eigvalsh((middle + middle.T) / 2))).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def feature_statistics(features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) of (N, D) features, float64 (torch-fidelity's estimator: np.cov, N - 1)."""
    stats = fid_features_to_statistics(features.double().cpu())
    return stats["mu"], stats["sigma"]


def inception_score(logits: torch.Tensor, convention: str) -> tuple[float, float]:
    """(mean, std) Inception Score from (N, 1008) unbiased logits.

    ``adm``: sequential splits of ADM_IS_SPLIT (5000) samples in the given order, the last one partial, mean of
    exp(E KL) over splits (ADM's evaluator). ``torch-fidelity``: 10 equal splits after a shuffle
    with seed 2020 (torch-fidelity's default, computed by torch-fidelity).
    """
    if convention == "torch-fidelity":
        out = isc_features_to_metric(logits.cpu(), splits=10, shuffle=True, rng_seed=2020)
        return out["inception_score_mean"], out["inception_score_std"]
    if convention != "adm":
        raise LinaBenchError(f"Inception Score convention must be one of {', '.join(IS_CONVENTIONS)}")
    # Own loop: torch-fidelity splits into equal parts, ADM into fixed 5000-sample parts.
    log_p = logits.double().cpu().log_softmax(dim=1)
    scores = []
    for start in range(0, len(log_p), ADM_IS_SPLIT):
        part = log_p[start:start + ADM_IS_SPLIT]
        log_q = part.exp().mean(dim=0, keepdim=True).log()
        scores.append(float((part.exp() * (part - log_q)).sum(dim=1).mean().exp()))
    return float(np.mean(scores)), float(np.std(scores))


def kernel_inception_distance(features_1: torch.Tensor, features_2: torch.Tensor, subsets: int = 100,
                              subset_size: int = 1000, seed: int = 2020) -> tuple[float, float]:
    """(mean, std) KID: torch-fidelity's unbiased polynomial-kernel MMD^2 over random subsets
    (degree 3, gamma 1/D, coef0 1)."""
    subset_size = min(subset_size, len(features_1), len(features_2))
    out = kid_features_to_metric(features_1.double().cpu(), features_2.double().cpu(), kid_subsets=subsets,
                                 kid_subset_size=subset_size, kid_kernel="poly",
                                 kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1,
                                 rng_seed=seed, verbose=False)
    return out["kernel_inception_distance_mean"], out["kernel_inception_distance_std"]


def _squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(n, m) squared Euclidean distances via one matmul, as ADM computes them (clamped at 0)."""
    return (a.pow(2).sum(1, keepdim=True) - 2 * a @ b.T + b.pow(2).sum(1)[None, :]).clamp_min_(0)


def _radii(points: torch.Tensor, k: int, rows: int) -> torch.Tensor:
    """Squared distance to each point's k-th nearest neighbour (the (k+1)-th smallest, self included)."""
    return torch.cat([_squared_distances(points[i:i + rows], points).kthvalue(k + 1, dim=1).values
                      for i in range(0, len(points), rows)])


def _covered(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, rows: int) -> torch.Tensor:
    """For each point: inside some centre's ball (distance <= radius, ties inside)?"""
    return torch.cat([(_squared_distances(points[i:i + rows], centres) <= radii[None, :]).any(dim=1)
                      for i in range(0, len(points), rows)])


def precision_recall(samples: torch.Tensor, reference: torch.Tensor, k: int = 3, rows: int = 1024
                     ) -> tuple[float, float]:
    """ADM's improved precision/recall (Kynkäänniemi et al.) on pool features, k = 3.

    precision: fraction of samples inside the reference manifold (the union of balls reaching each
    reference point's k-th neighbour); recall: fraction of reference points inside the sample
    manifold. Distances in float32 (ADM computes them in float16 when finite, for speed; results
    differ only for points within float16 rounding of a radius).
    """
    if min(len(samples), len(reference)) <= k:
        raise LinaBenchError(f"precision/recall needs more than k={k} samples and reference images")
    samples, reference = samples.float(), reference.float()
    precision = _covered(samples, reference, _radii(reference, k, rows), rows).float().mean()
    recall = _covered(reference, samples, _radii(samples, k, rows), rows).float().mean()
    return float(precision), float(recall)

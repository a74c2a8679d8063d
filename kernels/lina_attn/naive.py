"""PyTorch reference of LINA's division-normalised linear attention."""

from __future__ import annotations

import torch

FEATURE_EPS = 1e-6  # added after relu, so phi(x) > 0
NORM_EPS = 1e-6  # added to the normaliser q . mean(k)


def feature_map(x: torch.Tensor) -> torch.Tensor:
    """phi(x) = relu(x) + 1e-6, the positive feature map of the official code."""
    return torch.relu(x) + FEATURE_EPS


def lina_attention_naive(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_scale: torch.Tensor | None = None,
    value_scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """o_i = phi(q_i) S / (phi(q_i) . mean_j phi(k_j) + 1e-6), with S = (1/N) sum_j phi(k_j)^T v_j.

    q, k, v: (B, H, N, d), before the feature map. key_scale, value_scale: optional (1, H, N, 1)
    gates multiplying phi(k) and v (LINA's KV gate). Returns (B, H, N, d) in the inputs' dtype.
    The 1/N scaling of the state and the mean in the normaliser cancel in exact arithmetic; they
    are kept because the +1e-6 terms make them matter numerically, as in the official code.
    """
    n = k.shape[-2]
    q, k = feature_map(q), feature_map(k)
    if key_scale is not None:
        k = k * key_scale
    if value_scale is not None:
        v = v * value_scale
    z = 1.0 / (q @ k.mean(dim=-2, keepdim=True).transpose(-2, -1) + NORM_EPS)  # (B, H, N, 1)
    state = (k.transpose(-2, -1) * n**-0.5) @ (v * n**-0.5)  # (B, H, d, d)
    return q @ state * z

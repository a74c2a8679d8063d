"""PyTorch references of the kernels against independent forms (explicit matrices, token loops).

Tolerance: float64 throughout, 1e-10.
"""

from __future__ import annotations

import pytest
import torch
from references import decayed_loop_reference

from lina_bench.kernels import (
    decayed_linear_attention_chunked,
    lina_attention_naive,
)


@pytest.mark.parametrize("gated", [False, True], ids=["ungated", "gated"])
@pytest.mark.parametrize("n,d", [(1, 4), (33, 16), (100, 24)])
def test_lina_attention_matches_explicit_matrix(n: int, d: int, gated: bool):
    torch.manual_seed(n)
    q, k, v = (torch.randn(2, 3, n, d, dtype=torch.float64) for _ in range(3))
    ks = torch.rand(1, 3, n, 1, dtype=torch.float64) + 0.5 if gated else None
    vs = torch.rand(1, 3, n, 1, dtype=torch.float64) + 0.5 if gated else None
    fq, fk = torch.relu(q) + 1e-6, torch.relu(k) + 1e-6
    fk = fk * ks if gated else fk
    gv = v * vs if gated else v
    out = torch.empty_like(v)
    for i in range(n):  # o_i = sum_j (q_i . k_j) v_j / N  /  (sum_j (q_i . k_j) / N + eps)
        w = (fk @ fq[:, :, i, :, None]).squeeze(-1) / n  # (B, H, N)
        out[:, :, i] = (w[..., None] * gv).sum(2) / (w.sum(-1, keepdim=True) + 1e-6)
    torch.testing.assert_close(lina_attention_naive(q, k, v, ks, vs), out, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("chunk_size", [16, 64])
@pytest.mark.parametrize("n", [1, 33, 100, 130])
def test_decayed_chunked_matches_recurrent_loop(n: int, chunk_size: int):
    torch.manual_seed(n)
    q, k = (torch.randn(2, 2, n, 24, dtype=torch.float64) for _ in range(2))
    v = torch.randn(2, 2, n, 16, dtype=torch.float64)
    g = -torch.rand(2, 2, n, dtype=torch.float64)
    s0 = torch.randn(2, 2, 24, 16, dtype=torch.float64)
    o, final = decayed_linear_attention_chunked(q, k, v, g, scale=0.3, initial_state=s0,
                                                output_final_state=True, chunk_size=chunk_size)
    o_ref, final_ref = decayed_loop_reference(q, k, v, g, 0.3, s0)
    torch.testing.assert_close(o, o_ref, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(final, final_ref, atol=1e-10, rtol=1e-10)


def test_decayed_closed_form_and_default_scale():
    """Against sum_{s<=t} exp(G_t - G_s) scale (q_t . k_s) v_s written with an explicit matrix."""
    torch.manual_seed(3)
    q, k, v = (torch.randn(1, 2, 20, 8, dtype=torch.float64) for _ in range(3))
    g = -torch.rand(1, 2, 20, dtype=torch.float64) * 2
    G = g.cumsum(-1)
    D = (G[..., :, None] - G[..., None, :]).exp().tril()
    expected = ((q @ k.transpose(-2, -1)) * D * 8**-0.5) @ v
    o, final = decayed_linear_attention_chunked(q, k, v, g, chunk_size=7)
    assert final is None
    torch.testing.assert_close(o, expected, atol=1e-10, rtol=1e-10)

"""Triton kernels of LINA attention (forward and backward). See ``naive.py`` for the formula.

Inputs are contiguous (BH, N, D) / (BH, N, DV) tensors; gates are (H, N). Head dimensions are cut
into BLOCK_D x BLOCK_DV tiles whose size divides the head dimension when it can (LINA's d = 96 runs
as 3 tiles of 32, not one 128-wide tile of which a quarter is padding), so every program holds at
most a 64 x 64 float32 tile and nothing is computed on padding. All accumulation is float32;
float32 inputs use IEEE (not TF32) dots so the kernels match the reference to ~1e-6; half-precision
inputs use bfloat16 tensor-core dots with float32 accumulation.

Launch parameters come from autotune configs keyed on (BH, N, D, DV) and the input dtype: the
number of token slices of the reductions (``SPLITS``: partial sums the caller adds, so a small batch
still fills the GPU) and the token block of the per-token kernels (``BLOCK_N``).

Forward: ``lina_reduce_kernel`` gives S = sum_n phi(k_n)^T v_n (gated) and ksum = sum_n phi(k_n);
``lina_output_kernel`` gives o_n = phi(q_n) S / (phi(q_n) . kmean + eps). Backward: with
a_n = phi(q_n) . kmean + eps, u_n = phi(q_n) S and c_n = -(dO_n . u_n) / a_n^2,
``lina_row_stats_kernel`` gives 1/a_n and c_n, ``lina_reduce_kernel`` again gives
dS = sum phi(q)^T (dO / a) and dkmean = sum c phi(q), ``lina_backward_q_kernel`` dq and
``lina_backward_kv_kernel`` dk, dv and the gates' gradients.
"""

from __future__ import annotations

import triton
import triton.language as tl

from lina_bench.kernels.lina_attn import naive
from lina_bench.kernels.triton_utils import autotune, dot

# The reference's constants, as constexpr: a compiled (not interpreted) kernel may read no other globals.
FEATURE_EPS = tl.constexpr(naive.FEATURE_EPS)
NORM_EPS = tl.constexpr(naive.NORM_EPS)
TUNING_KEY = ["BH", "N", "D", "DV"]  # the autotuner adds the tensors' dtypes
# Token slices of the reductions, token blocks of the per-token kernels.
reduce_autotune = autotune([{"SPLITS": s} for s in (1, 2, 4, 8, 16)], TUNING_KEY, BLOCK_N=64)
row_autotune = autotune([{"BLOCK_N": b} for b in (64, 32, 128)], TUNING_KEY)


@triton.jit
def _load_rows(ptr, offs_n, offs_c, N, C):
    """(BLOCK_N, BLOCK_C) float32 tile of a row-major (N, C) matrix, zero outside."""
    mask = (offs_n[:, None] < N) & (offs_c[None, :] < C)
    return tl.load(ptr + offs_n[:, None] * C + offs_c[None, :], mask=mask, other=0.0).to(tl.float32), mask


@triton.jit
def _features(ptr, offs_n, offs_d, N, D):
    """phi(x) = relu(x) + eps of a (BLOCK_N, BLOCK_D) tile (zero outside), and the raw tile."""
    x, mask = _load_rows(ptr, offs_n, offs_d, N, D)
    return tl.where(mask, tl.maximum(x, 0.0) + FEATURE_EPS, 0.0), x, mask


@triton.jit
def _row_weight(ptr, row, offs_n, N):
    return tl.load(ptr + row * N + offs_n, mask=offs_n < N, other=0.0).to(tl.float32)


@reduce_autotune
@triton.jit
def lina_reduce_kernel(x_ptr, y_ptr, wx_ptr, wy_ptr, wv_ptr, s_ptr, vec_ptr, BH, H, N, D, DV, SPLIT_STRIDE,
                       HAS_WX: tl.constexpr, HAS_WY: tl.constexpr, HAS_WV: tl.constexpr, PER_HEAD: tl.constexpr,
                       IEEE: tl.constexpr, SPLITS: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
                       BLOCK_DV: tl.constexpr):
    """Partial sums over one token slice of one (D, DV) tile: S = sum_n (wx phi(x_n))^T (wy y_n) and,
    for the first DV tile, vec = sum_n wv phi(x_n) (wv = wx when absent). Row weights are (H, N)
    with PER_HEAD, else (BH, N). The partial sums go to (BH, SPLIT_STRIDE, D, DV) and
    (BH, SPLIT_STRIDE, D) buffers: the caller allocates room for the most slices any config uses."""
    bh = tl.program_id(0)
    split = tl.program_id(1)
    tiles_dv = tl.cdiv(DV, BLOCK_DV)
    tile_d = tl.program_id(2) // tiles_dv
    tile_dv = tl.program_id(2) % tiles_dv
    row = bh % H if PER_HEAD else bh
    offs_d = tile_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_dv = tile_dv * BLOCK_DV + tl.arange(0, BLOCK_DV)
    state = tl.zeros((BLOCK_D, BLOCK_DV), dtype=tl.float32)
    vec = tl.zeros((BLOCK_D,), dtype=tl.float32)
    per_split = tl.cdiv(tl.cdiv(N, BLOCK_N), SPLITS) * BLOCK_N
    for n0 in range(split * per_split, (split + 1) * per_split, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        fx, _, _ = _features(x_ptr + bh * N * D, offs_n, offs_d, N, D)
        y, _ = _load_rows(y_ptr + bh * N * DV, offs_n, offs_dv, N, DV)
        if HAS_WX:
            fx = fx * _row_weight(wx_ptr, row, offs_n, N)[:, None]
        if HAS_WY:
            y = y * _row_weight(wy_ptr, row, offs_n, N)[:, None]
        state += dot(tl.trans(fx), y, IEEE)
        if HAS_WV:
            vec += tl.sum(fx * _row_weight(wv_ptr, row, offs_n, N)[:, None], axis=0)
        else:
            vec += tl.sum(fx, axis=0)
    out = bh * SPLIT_STRIDE + split
    mask = (offs_d[:, None] < D) & (offs_dv[None, :] < DV)
    tl.store(s_ptr + (out * D + offs_d[:, None]) * DV + offs_dv[None, :], state, mask=mask)
    if tile_dv == 0:
        tl.store(vec_ptr + out * D + offs_d, vec, mask=offs_d < D)


@row_autotune
@triton.jit
def lina_output_kernel(q_ptr, s_ptr, kmean_ptr, o_ptr, BH, N, D, DV, IEEE: tl.constexpr, BLOCK_N: tl.constexpr,
                       BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr):
    """o_n = phi(q_n) S / (phi(q_n) . kmean + eps) for one block of tokens and one DV tile
    (S: (BH, D, DV) and kmean: (BH, D), both already / N)."""
    bh = tl.program_id(0)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_dv = tl.program_id(2) * BLOCK_DV + tl.arange(0, BLOCK_DV)
    num = tl.zeros((BLOCK_N, BLOCK_DV), dtype=tl.float32)
    den = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for d0 in range(0, D, BLOCK_D):
        offs_d = d0 + tl.arange(0, BLOCK_D)
        fq, _, _ = _features(q_ptr + bh * N * D, offs_n, offs_d, N, D)
        state, _ = _load_rows(s_ptr + bh * D * DV, offs_d, offs_dv, D, DV)
        kmean = tl.load(kmean_ptr + bh * D + offs_d, mask=offs_d < D, other=0.0)
        num += dot(fq, state, IEEE)
        den += tl.sum(fq * kmean[None, :], axis=1)
    out = num / (den + NORM_EPS)[:, None]
    mask = (offs_n[:, None] < N) & (offs_dv[None, :] < DV)
    tl.store(o_ptr + bh * N * DV + offs_n[:, None] * DV + offs_dv[None, :], out.to(o_ptr.dtype.element_ty),
             mask=mask)


@row_autotune
@triton.jit
def lina_row_stats_kernel(q_ptr, do_ptr, s_ptr, kmean_ptr, inv_a_ptr, c_ptr, BH, N, D, DV, IEEE: tl.constexpr,
                          BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr):
    """Per token: 1/a_n and c_n = -(dO_n . phi(q_n) S) / a_n^2, with a_n = phi(q_n) . kmean + eps."""
    bh = tl.program_id(0)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    a = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for d0 in range(0, D, BLOCK_D):
        offs_d = d0 + tl.arange(0, BLOCK_D)
        fq, _, _ = _features(q_ptr + bh * N * D, offs_n, offs_d, N, D)
        kmean = tl.load(kmean_ptr + bh * D + offs_d, mask=offs_d < D, other=0.0)
        a += tl.sum(fq * kmean[None, :], axis=1)
    a += NORM_EPS
    do_u = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for v0 in range(0, DV, BLOCK_DV):
        offs_dv = v0 + tl.arange(0, BLOCK_DV)
        u = tl.zeros((BLOCK_N, BLOCK_DV), dtype=tl.float32)
        for d0 in range(0, D, BLOCK_D):
            offs_d = d0 + tl.arange(0, BLOCK_D)
            fq, _, _ = _features(q_ptr + bh * N * D, offs_n, offs_d, N, D)
            state, _ = _load_rows(s_ptr + bh * D * DV, offs_d, offs_dv, D, DV)
            u += dot(fq, state, IEEE)
        do, _ = _load_rows(do_ptr + bh * N * DV, offs_n, offs_dv, N, DV)
        do_u += tl.sum(do * u, axis=1)
    tl.store(inv_a_ptr + bh * N + offs_n, 1.0 / a, mask=offs_n < N)
    tl.store(c_ptr + bh * N + offs_n, -do_u / (a * a), mask=offs_n < N)


@row_autotune
@triton.jit
def lina_backward_q_kernel(q_ptr, do_ptr, s_ptr, kmean_ptr, inv_a_ptr, c_ptr, dq_ptr, BH, N, D, DV,
                           IEEE: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr):
    """dq of one block of tokens and one D tile: (dO / a) S^T + c kmean where q > 0, else 0."""
    bh = tl.program_id(0)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_d = tl.program_id(2) * BLOCK_D + tl.arange(0, BLOCK_D)
    inv_a = _row_weight(inv_a_ptr, bh, offs_n, N)
    d_fq = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
    for v0 in range(0, DV, BLOCK_DV):
        offs_dv = v0 + tl.arange(0, BLOCK_DV)
        do, _ = _load_rows(do_ptr + bh * N * DV, offs_n, offs_dv, N, DV)
        state, _ = _load_rows(s_ptr + bh * D * DV, offs_d, offs_dv, D, DV)
        d_fq += dot(do * inv_a[:, None], tl.trans(state), IEEE)
    kmean = tl.load(kmean_ptr + bh * D + offs_d, mask=offs_d < D, other=0.0)
    d_fq += _row_weight(c_ptr, bh, offs_n, N)[:, None] * kmean[None, :]
    q, mask = _load_rows(q_ptr + bh * N * D, offs_n, offs_d, N, D)
    tl.store(dq_ptr + bh * N * D + offs_n[:, None] * D + offs_d[None, :],
             tl.where(q > 0.0, d_fq, 0.0).to(dq_ptr.dtype.element_ty), mask=mask)


@row_autotune
@triton.jit
def lina_backward_kv_kernel(k_ptr, v_ptr, ks_ptr, vs_ptr, ds_ptr, dkm_ptr, dk_ptr, dv_ptr, dks_ptr, dvs_ptr,
                            BH, H, N, D, DV, HAS_GATE: tl.constexpr, IEEE: tl.constexpr, BLOCK_N: tl.constexpr,
                            BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr):
    """dk, dv and per-(bh, n) gate gradients of one block of tokens, from dS (BH, D, DV) and dkmean
    (BH, D), both w.r.t. S / N and kmean."""
    bh = tl.program_id(0)
    h = bh % H
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    key_gate = tl.full((BLOCK_N,), 1.0, tl.float32)
    value_gate = tl.full((BLOCK_N,), 1.0, tl.float32)
    if HAS_GATE:
        key_gate = _row_weight(ks_ptr, h, offs_n, N)
        value_gate = _row_weight(vs_ptr, h, offs_n, N)
    inv_n = 1.0 / N
    d_key_gate = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for d0 in range(0, D, BLOCK_D):  # dk: (gated v) dS^T + dkmean, then the feature map's and gate's chain
        offs_d = d0 + tl.arange(0, BLOCK_D)
        d_fk = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
        for v0 in range(0, DV, BLOCK_DV):
            offs_dv = v0 + tl.arange(0, BLOCK_DV)
            v, _ = _load_rows(v_ptr + bh * N * DV, offs_n, offs_dv, N, DV)
            d_state, _ = _load_rows(ds_ptr + bh * D * DV, offs_d, offs_dv, D, DV)
            d_fk += dot(v * value_gate[:, None], tl.trans(d_state), IEEE)
        d_fk = (d_fk + tl.load(dkm_ptr + bh * D + offs_d, mask=offs_d < D, other=0.0)[None, :]) * inv_n
        fk0, k, mask = _features(k_ptr + bh * N * D, offs_n, offs_d, N, D)
        tl.store(dk_ptr + bh * N * D + offs_n[:, None] * D + offs_d[None, :],
                 tl.where(k > 0.0, d_fk * key_gate[:, None], 0.0).to(dk_ptr.dtype.element_ty), mask=mask)
        d_key_gate += tl.sum(d_fk * fk0, axis=1)
    d_value_gate = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for v0 in range(0, DV, BLOCK_DV):  # dv: (gated phi(k)) dS, then the gate's chain
        offs_dv = v0 + tl.arange(0, BLOCK_DV)
        d_gated_v = tl.zeros((BLOCK_N, BLOCK_DV), dtype=tl.float32)
        for d0 in range(0, D, BLOCK_D):
            offs_d = d0 + tl.arange(0, BLOCK_D)
            fk0, _, _ = _features(k_ptr + bh * N * D, offs_n, offs_d, N, D)
            d_state, _ = _load_rows(ds_ptr + bh * D * DV, offs_d, offs_dv, D, DV)
            d_gated_v += dot(fk0 * key_gate[:, None], d_state, IEEE)
        d_gated_v = d_gated_v * inv_n
        v, mask = _load_rows(v_ptr + bh * N * DV, offs_n, offs_dv, N, DV)
        tl.store(dv_ptr + bh * N * DV + offs_n[:, None] * DV + offs_dv[None, :],
                 (d_gated_v * value_gate[:, None]).to(dv_ptr.dtype.element_ty), mask=mask)
        d_value_gate += tl.sum(d_gated_v * v, axis=1)
    if HAS_GATE:
        tl.store(dks_ptr + bh * N + offs_n, d_key_gate, mask=offs_n < N)
        tl.store(dvs_ptr + bh * N + offs_n, d_value_gate, mask=offs_n < N)

"""Triton kernels of LINA attention (forward and backward). See ``naive.py`` for the formula.

Inputs are contiguous (B, H, N, d) tensors; gates are (H, N). The state pass reduces over tokens
in ``SPLITS`` independent slices per (batch, head) and the caller sums the partial states, so the
reduction uses the whole GPU even for a small batch. All accumulation is float32; float32 inputs
use IEEE (not TF32) dots so the kernels match the reference to ~1e-6; half-precision inputs use
bfloat16 tensor-core dots with float32 accumulation.
"""

from __future__ import annotations

import triton
import triton.language as tl

from lina_bench.kernels.lina_attn import naive
from lina_bench.kernels.triton_utils import dot

# The reference's constants, as constexpr: a compiled (not interpreted) kernel may read no other globals.
FEATURE_EPS = tl.constexpr(naive.FEATURE_EPS)
NORM_EPS = tl.constexpr(naive.NORM_EPS)


@triton.jit
def _load_rows(ptr, offs_n, offs_c, N, C):
    """(BLOCK_N, BLOCK_C) float32 tile of a row-major (N, C) matrix, zero outside."""
    mask = (offs_n[:, None] < N) & (offs_c[None, :] < C)
    return tl.load(ptr + offs_n[:, None] * C + offs_c[None, :], mask=mask, other=0.0).to(tl.float32), mask


@triton.jit
def lina_state_kernel(k_ptr, v_ptr, ks_ptr, vs_ptr, s_ptr, ksum_ptr, H, N, D, DV, TOKENS_PER_SPLIT,
                      HAS_GATE: tl.constexpr, IEEE: tl.constexpr, BLOCK_N: tl.constexpr,
                      BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr):
    """Partial sums over one token slice: S = sum_n phi(k_n)^T v_n (gated), ksum = sum_n phi(k_n)."""
    bh = tl.program_id(0)
    split = tl.program_id(1)
    splits = tl.num_programs(1)
    h = bh % H
    offs_d = tl.arange(0, BLOCK_D)
    offs_dv = tl.arange(0, BLOCK_DV)
    state = tl.zeros((BLOCK_D, BLOCK_DV), dtype=tl.float32)
    ksum = tl.zeros((BLOCK_D,), dtype=tl.float32)
    start = split * TOKENS_PER_SPLIT
    for n0 in range(start, start + TOKENS_PER_SPLIT, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        k, k_mask = _load_rows(k_ptr + bh * N * D, offs_n, offs_d, N, D)
        v, _ = _load_rows(v_ptr + bh * N * DV, offs_n, offs_dv, N, DV)
        fk = tl.where(k_mask, tl.maximum(k, 0.0) + FEATURE_EPS, 0.0)
        if HAS_GATE:
            fk = fk * tl.load(ks_ptr + h * N + offs_n, mask=offs_n < N, other=0.0).to(tl.float32)[:, None]
            v = v * tl.load(vs_ptr + h * N + offs_n, mask=offs_n < N, other=0.0).to(tl.float32)[:, None]
        state += dot(tl.trans(fk), v, IEEE)
        ksum += tl.sum(fk, axis=0)
    out = (bh * splits + split) * BLOCK_D
    tl.store(s_ptr + (out + offs_d[:, None]) * BLOCK_DV + offs_dv[None, :], state)
    tl.store(ksum_ptr + out + offs_d, ksum)


@triton.jit
def lina_output_kernel(q_ptr, s_ptr, kmean_ptr, o_ptr, N, D, DV, IEEE: tl.constexpr, BLOCK_N: tl.constexpr,
                       BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr):
    """o_n = phi(q_n) S / (phi(q_n) . kmean + eps) for one block of tokens (S, kmean already / N)."""
    bh = tl.program_id(0)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    offs_dv = tl.arange(0, BLOCK_DV)
    q, q_mask = _load_rows(q_ptr + bh * N * D, offs_n, offs_d, N, D)
    fq = tl.where(q_mask, tl.maximum(q, 0.0) + FEATURE_EPS, 0.0)
    state = tl.load(s_ptr + bh * BLOCK_D * BLOCK_DV + offs_d[:, None] * BLOCK_DV + offs_dv[None, :])
    kmean = tl.load(kmean_ptr + bh * BLOCK_D + offs_d)
    num = dot(fq, state, IEEE)
    den = tl.sum(fq * kmean[None, :], axis=1) + NORM_EPS
    out = num / den[:, None]
    mask = (offs_n[:, None] < N) & (offs_dv[None, :] < DV)
    tl.store(o_ptr + bh * N * DV + offs_n[:, None] * DV + offs_dv[None, :], out.to(o_ptr.dtype.element_ty),
             mask=mask)


@triton.jit
def lina_backward_query_kernel(q_ptr, do_ptr, s_ptr, kmean_ptr, dq_ptr, ds_ptr, dkm_ptr, N, D, DV,
                               TOKENS_PER_SPLIT, IEEE: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
                               BLOCK_DV: tl.constexpr):
    """dq, and partial sums of dS = sum phi(q)^T (dO / a) and dkmean = sum (dL/da) phi(q).

    a_n = phi(q_n) . kmean + eps, o_n = phi(q_n) S / a_n, dL/da_n = -(dO_n . o_n) / a_n.
    """
    bh = tl.program_id(0)
    split = tl.program_id(1)
    splits = tl.num_programs(1)
    offs_d = tl.arange(0, BLOCK_D)
    offs_dv = tl.arange(0, BLOCK_DV)
    state = tl.load(s_ptr + bh * BLOCK_D * BLOCK_DV + offs_d[:, None] * BLOCK_DV + offs_dv[None, :])
    kmean = tl.load(kmean_ptr + bh * BLOCK_D + offs_d)
    d_state = tl.zeros((BLOCK_D, BLOCK_DV), dtype=tl.float32)
    d_kmean = tl.zeros((BLOCK_D,), dtype=tl.float32)
    start = split * TOKENS_PER_SPLIT
    for n0 in range(start, start + TOKENS_PER_SPLIT, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        q, q_mask = _load_rows(q_ptr + bh * N * D, offs_n, offs_d, N, D)
        do, _ = _load_rows(do_ptr + bh * N * DV, offs_n, offs_dv, N, DV)
        fq = tl.where(q_mask, tl.maximum(q, 0.0) + FEATURE_EPS, 0.0)
        a = tl.sum(fq * kmean[None, :], axis=1) + NORM_EPS
        u = dot(fq, state, IEEE)
        g = do / a[:, None]
        c = -tl.sum(do * u, axis=1) / (a * a)
        d_state += dot(tl.trans(fq), g, IEEE)
        d_kmean += tl.sum(c[:, None] * fq, axis=0)
        d_fq = dot(g, tl.trans(state), IEEE) + c[:, None] * kmean[None, :]
        dq = tl.where(q > 0.0, d_fq, 0.0)
        tl.store(dq_ptr + bh * N * D + offs_n[:, None] * D + offs_d[None, :], dq.to(dq_ptr.dtype.element_ty),
                 mask=q_mask)
    out = (bh * splits + split) * BLOCK_D
    tl.store(ds_ptr + (out + offs_d[:, None]) * BLOCK_DV + offs_dv[None, :], d_state)
    tl.store(dkm_ptr + out + offs_d, d_kmean)


@triton.jit
def lina_backward_kv_kernel(k_ptr, v_ptr, ks_ptr, vs_ptr, ds_ptr, dkm_ptr, dk_ptr, dv_ptr, dks_ptr, dvs_ptr,
                            H, N, D, DV, HAS_GATE: tl.constexpr, IEEE: tl.constexpr, BLOCK_N: tl.constexpr,
                            BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr):
    """dk, dv and per-(b, h, n) gate gradients from dS and dkmean (both w.r.t. S / N and kmean)."""
    bh = tl.program_id(0)
    h = bh % H
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    offs_dv = tl.arange(0, BLOCK_DV)
    k, k_mask = _load_rows(k_ptr + bh * N * D, offs_n, offs_d, N, D)
    v, v_mask = _load_rows(v_ptr + bh * N * DV, offs_n, offs_dv, N, DV)
    d_state = tl.load(ds_ptr + bh * BLOCK_D * BLOCK_DV + offs_d[:, None] * BLOCK_DV + offs_dv[None, :])
    d_kmean = tl.load(dkm_ptr + bh * BLOCK_D + offs_d)
    fk0 = tl.where(k_mask, tl.maximum(k, 0.0) + FEATURE_EPS, 0.0)
    key_gate = tl.full((BLOCK_N,), 1.0, tl.float32)
    value_gate = tl.full((BLOCK_N,), 1.0, tl.float32)
    if HAS_GATE:
        key_gate = tl.load(ks_ptr + h * N + offs_n, mask=offs_n < N, other=0.0).to(tl.float32)
        value_gate = tl.load(vs_ptr + h * N + offs_n, mask=offs_n < N, other=0.0).to(tl.float32)
    fk = fk0 * key_gate[:, None]
    gated_v = v * value_gate[:, None]
    inv_n = 1.0 / N
    d_fk = (dot(gated_v, tl.trans(d_state), IEEE) + d_kmean[None, :]) * inv_n
    d_gated_v = dot(fk, d_state, IEEE) * inv_n
    dk = tl.where(k > 0.0, d_fk * key_gate[:, None], 0.0)
    dv = d_gated_v * value_gate[:, None]
    tl.store(dk_ptr + bh * N * D + offs_n[:, None] * D + offs_d[None, :], dk.to(dk_ptr.dtype.element_ty),
             mask=k_mask)
    tl.store(dv_ptr + bh * N * DV + offs_n[:, None] * DV + offs_dv[None, :], dv.to(dv_ptr.dtype.element_ty),
             mask=v_mask)
    if HAS_GATE:
        tl.store(dks_ptr + bh * N + offs_n, tl.sum(d_fk * fk0, axis=1), mask=offs_n < N)
        tl.store(dvs_ptr + bh * N + offs_n, tl.sum(d_gated_v * v, axis=1), mask=offs_n < N)

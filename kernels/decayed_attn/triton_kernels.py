"""Triton kernel of causal linear attention with a per-token log-decay (chunked forward).

One program per (batch, head, BLOCK_DV-wide slice of the value dimension) walks the sequence in
chunks of ``CHUNK`` tokens, keeping its (d x BLOCK_DV) slice of the state in registers: inside a
chunk the decayed causal scores are formed explicitly, across chunks the state carries the past
(see ``naive.py`` for the same algorithm in PyTorch). The value slices are independent; each
program recomputes the chunk's (CHUNK x CHUNK) scores, which keeps a program's tiles small at the
head dimensions 96 and 128 (the key dimension is still one power-of-two block, padded when needed).
The launch is an autotune config keyed on (N, D, DV) and the dtype; there is one so far, a two-stage
software pipeline (three stages of float32 chunks at d = 96 exceed an sm_80 block's shared memory,
two do not): it passed the kernel tests on an H200, while the benchmark's autotuning over 3-stage
and 8-warp configs there ended in an illegal memory access not yet traced to one config.
"""

from __future__ import annotations

import triton
import triton.language as tl

from lina_bench.kernels.triton_utils import autotune, dot


@autotune([{"num_stages": 2}], key=["N", "D", "DV"])
@triton.jit
def decayed_forward_kernel(q_ptr, k_ptr, v_ptr, g_ptr, s0_ptr, o_ptr, sn_ptr, N, D, DV, scale,
                           HAS_INITIAL: tl.constexpr, STORE_FINAL: tl.constexpr, IEEE: tl.constexpr,
                           CHUNK: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr):
    bh = tl.program_id(0)
    offs_c = tl.arange(0, CHUNK)
    offs_d = tl.arange(0, BLOCK_D)
    offs_dv = tl.program_id(1) * BLOCK_DV + tl.arange(0, BLOCK_DV)
    state_offs = bh * D * DV + offs_d[:, None] * DV + offs_dv[None, :]
    state_mask = (offs_d[:, None] < D) & (offs_dv[None, :] < DV)
    if HAS_INITIAL:
        state = tl.load(s0_ptr + state_offs, mask=state_mask, other=0.0).to(tl.float32)
    else:
        state = tl.zeros((BLOCK_D, BLOCK_DV), dtype=tl.float32)
    causal = offs_c[:, None] >= offs_c[None, :]
    for c0 in range(0, N, CHUNK):
        offs_n = c0 + offs_c
        row = offs_n < N
        qk_mask = row[:, None] & (offs_d[None, :] < D)
        v_mask = row[:, None] & (offs_dv[None, :] < DV)
        q = tl.load(q_ptr + bh * N * D + offs_n[:, None] * D + offs_d[None, :], mask=qk_mask, other=0.0)
        k = tl.load(k_ptr + bh * N * D + offs_n[:, None] * D + offs_d[None, :], mask=qk_mask, other=0.0)
        v = tl.load(v_ptr + bh * N * DV + offs_n[:, None] * DV + offs_dv[None, :], mask=v_mask, other=0.0)
        q, k, v = q.to(tl.float32), k.to(tl.float32), v.to(tl.float32)
        g = tl.load(g_ptr + bh * N + offs_n, mask=row, other=0.0).to(tl.float32)
        cum = tl.cumsum(g, axis=0)  # padding adds 0, so the last entry is the chunk's total
        decay = tl.exp(tl.where(causal, cum[:, None] - cum[None, :], float("-inf")))
        scores = dot(q, tl.trans(k), IEEE) * decay
        out = dot(scores, v, IEEE) + dot(q * tl.exp(cum)[:, None], state, IEEE)
        tl.store(o_ptr + bh * N * DV + offs_n[:, None] * DV + offs_dv[None, :],
                 (scale * out).to(o_ptr.dtype.element_ty), mask=v_mask)
        last = tl.sum(tl.where(offs_c == CHUNK - 1, cum, 0.0), axis=0)
        state = state * tl.exp(last) + dot(tl.trans(k * tl.exp(last - cum)[:, None]), v, IEEE)
    if STORE_FINAL:
        tl.store(sn_ptr + state_offs, state, mask=state_mask)

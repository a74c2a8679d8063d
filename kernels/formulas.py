"""Multiply-add counts of the kernels (fvcore convention), shared by the FLOP formulas registered
for the custom ops, the fvcore handles and the closed forms of ``evaluators/flops.py``."""

from __future__ import annotations

from typing import Sequence


def lina_forward_macs(q_shape: Sequence[int], v_shape: Sequence[int]) -> int:
    """State (N d dv), query x state (N d dv) and normaliser (N d), per batch and head."""
    b, h, n, d = q_shape
    return b * h * n * (2 * d * v_shape[-1] + d)


def lina_backward_macs(q_shape: Sequence[int], v_shape: Sequence[int]) -> int:
    """The Triton backward's six (N x d x dv) products, the state recompute included."""
    b, h, n, d = q_shape
    return 6 * b * h * n * d * v_shape[-1]


def chunked_decay_macs(q_shape: Sequence[int], v_shape: Sequence[int], chunk: int, final_state: bool) -> int:
    """Chunked causal decayed attention: per chunk of L tokens and head, L^2 (d + dv) for the scores
    and their product with v, L d dv for query x state, and L d dv for the state update (skipped
    after the last chunk unless the final state is returned)."""
    b, h, n, d = q_shape
    dv = v_shape[-1]
    lengths = [min(chunk, n - start) for start in range(0, n, chunk)]
    macs = sum(length * length * (d + dv) + length * d * dv for length in lengths)
    macs += sum(length * d * dv for length in (lengths if final_state else lengths[:-1]))
    return b * h * macs

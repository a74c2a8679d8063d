"""``lina_bench::lina_attention`` as a torch custom op on the Triton kernels, with autograd and a
FLOP formula (so FlopCounterMode and our fvcore handle count it like the reference's matmuls).

The backward recomputes the (d x d) state instead of saving it: one extra pass over K and V.
"""

from __future__ import annotations

import torch
import triton
from torch.utils import flop_counter

from lina_bench.kernels.formulas import lina_backward_macs, lina_forward_macs
from lina_bench.kernels.lina_attn import triton_kernels as tk


def head_block(size: int, dtype: torch.dtype) -> int:
    """The tile of a head dimension: the largest power of two that divides it, at most 64 for
    half-precision inputs (tensor-core dots) and 32 for float32 (IEEE dots run on the FMA units and
    hold their operands in registers: a 64-wide float32 tile spilled in every configuration), so
    96 -> 32, 128 -> 64 / 32, and no lane computes padding; sizes that are no multiple of 16
    (``tl.dot``'s least tile) get masked power-of-two tiles (24 -> one of 32)."""
    cap = 32 if dtype == torch.float32 else 64
    if size % 16 == 0:
        return min(cap, size & -size)
    return min(cap, max(16, triton.next_power_of_2(size)))


def _gates(key_scale: torch.Tensor | None, value_scale: torch.Tensor | None, h: int, n: int):
    if key_scale is None and value_scale is None:
        return None, None
    ones = None
    ks = key_scale.reshape(h, n).float().contiguous() if key_scale is not None else None
    vs = value_scale.reshape(h, n).float().contiguous() if value_scale is not None else None
    if ks is None or vs is None:
        ones = torch.ones(h, n, device=(ks if ks is not None else vs).device)
    return (ks if ks is not None else ones), (vs if vs is not None else ones)


def max_splits() -> int:
    """The most token slices any config of the reduction uses: the partial-sum buffers' room."""
    return max(config.kwargs["SPLITS"] for config in tk.lina_reduce_kernel.configs)


def _reduce(x: torch.Tensor, y: torch.Tensor, wx, wy, wv, per_head: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """sum_n (wx phi(x_n))^T (wy y_n): (BH, D, DV), and sum_n wv phi(x_n): (BH, D), float32.

    x: (B, H, N, D), y: (B, H, N, DV); row weights (H, N) if ``per_head`` else (BH, N), or None."""
    b, h, n, d = x.shape
    dv = y.shape[-1]
    block_d, block_dv = head_block(d, x.dtype), head_block(dv, x.dtype)
    kernel = tk.lina_reduce_kernel
    most = max_splits()
    partial = torch.empty(b * h, most, d, dv, device=x.device, dtype=torch.float32)
    partial_vec = torch.empty(b * h, most, d, device=x.device, dtype=torch.float32)
    dummy = partial_vec
    tiles = triton.cdiv(d, block_d) * triton.cdiv(dv, block_dv)
    kernel[lambda meta: (b * h, meta["SPLITS"], tiles)](
        x, y, dummy if wx is None else wx, dummy if wy is None else wy, dummy if wv is None else wv, partial,
        partial_vec, b * h, h, n, d, dv, most, HAS_WX=wx is not None, HAS_WY=wy is not None, HAS_WV=wv is not None,
        PER_HEAD=per_head, IEEE=x.dtype == torch.float32, BLOCK_D=block_d, BLOCK_DV=block_dv)
    splits = kernel.best_config.kwargs["SPLITS"]
    return partial[:, :splits].sum(1), partial_vec[:, :splits].sum(1)


def _state(k: torch.Tensor, v: torch.Tensor, ks, vs) -> tuple[torch.Tensor, torch.Tensor]:
    """(S / N, kmean): (BH, D, DV) and (BH, D), float32, the gates applied."""
    state, ksum = _reduce(k, v, ks, vs, None, per_head=True)
    n = k.shape[-2]
    return state / n, ksum / n


def _rows(kernel, b: int, h: int, n: int, tiles: int = 1):
    """The launch grid of a per-token kernel: (BH, token blocks of the tuned BLOCK_N, tiles)."""
    return kernel[lambda meta: (b * h, triton.cdiv(n, meta["BLOCK_N"]), tiles)]


@torch.library.custom_op("lina_bench::lina_attention", mutates_args=())
def lina_attention_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_scale: torch.Tensor | None,
                      value_scale: torch.Tensor | None) -> torch.Tensor:
    """Triton forward. q, k: (B, H, N, d); v: (B, H, N, dv); gates (1, H, N, 1) or None."""
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    b, h, n, d = q.shape
    dv = v.shape[-1]
    ks, vs = _gates(key_scale, value_scale, h, n)
    state, kmean = _state(k, v, ks, vs)
    out = torch.empty(b, h, n, dv, device=q.device, dtype=q.dtype)
    block_d, block_dv = head_block(d, q.dtype), head_block(dv, q.dtype)
    _rows(tk.lina_output_kernel, b, h, n, triton.cdiv(dv, block_dv))(
        q, state, kmean, out, b * h, n, d, dv, IEEE=q.dtype == torch.float32, BLOCK_D=block_d, BLOCK_DV=block_dv)
    return out


@lina_attention_op.register_fake
def _(q, k, v, key_scale, value_scale):
    return q.new_empty(*q.shape[:-1], v.shape[-1])


@torch.library.custom_op("lina_bench::lina_attention_backward", mutates_args=())
def lina_attention_backward_op(grad_out: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                               key_scale: torch.Tensor | None, value_scale: torch.Tensor | None
                               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Triton backward: (dq, dk, dv, d key_scale, d value_scale); gate grads are (1, H, N, 1), or
    empty when that gate is None."""
    grad_out, q, k, v = grad_out.contiguous(), q.contiguous(), k.contiguous(), v.contiguous()
    b, h, n, d = q.shape
    dv_size = v.shape[-1]
    ks, vs = _gates(key_scale, value_scale, h, n)
    state, kmean = _state(k, v, ks, vs)
    block_d, block_dv = head_block(d, q.dtype), head_block(dv_size, q.dtype)
    blocks = {"IEEE": q.dtype == torch.float32, "BLOCK_D": block_d, "BLOCK_DV": block_dv}
    inv_a = torch.empty(b * h, n, device=q.device, dtype=torch.float32)
    c = torch.empty_like(inv_a)
    _rows(tk.lina_row_stats_kernel, b, h, n)(q, grad_out, state, kmean, inv_a, c, b * h, n, d, dv_size, **blocks)
    dq = torch.empty_like(q)
    _rows(tk.lina_backward_q_kernel, b, h, n, triton.cdiv(d, block_d))(
        q, grad_out, state, kmean, inv_a, c, dq, b * h, n, d, dv_size, **blocks)
    d_state, d_kmean = _reduce(q, grad_out, None, inv_a, c, per_head=False)
    dk, dv = torch.empty_like(k), torch.empty_like(v)
    gated = ks is not None
    dks = torch.empty(b, h, n, device=q.device, dtype=torch.float32) if gated else d_kmean
    dvs = torch.empty(b, h, n, device=q.device, dtype=torch.float32) if gated else d_kmean
    _rows(tk.lina_backward_kv_kernel, b, h, n)(
        k, v, ks if gated else d_kmean, vs if gated else d_kmean, d_state, d_kmean, dk, dv, dks, dvs, b * h, h, n, d,
        dv_size, HAS_GATE=gated, **blocks)
    d_key_scale = dks.sum(0).view(1, h, n, 1).to(key_scale.dtype) if key_scale is not None else q.new_empty(0)
    d_value_scale = (dvs.sum(0).view(1, h, n, 1).to(value_scale.dtype) if value_scale is not None
                     else q.new_empty(0))
    return dq, dk, dv, d_key_scale, d_value_scale


@lina_attention_backward_op.register_fake
def _(grad_out, q, k, v, key_scale, value_scale):
    return (torch.empty_like(q), torch.empty_like(k), torch.empty_like(v),
            torch.empty_like(key_scale) if key_scale is not None else q.new_empty(0),
            torch.empty_like(value_scale) if value_scale is not None else q.new_empty(0))


def _setup_context(ctx, inputs, output) -> None:
    q, k, v, key_scale, value_scale = inputs
    ctx.save_for_backward(q, k, v, key_scale, value_scale)


def _backward(ctx, grad_out):
    q, k, v, key_scale, value_scale = ctx.saved_tensors
    dq, dk, dv, dks, dvs = lina_attention_backward_op(grad_out, q, k, v, key_scale, value_scale)
    return dq, dk, dv, (dks if key_scale is not None else None), (dvs if value_scale is not None else None)


lina_attention_op.register_autograd(_backward, setup_context=_setup_context)


@flop_counter.register_flop_formula(torch.ops.lina_bench.lina_attention)
def _forward_flops(q, k, v, *args, out_shape=None, **kwargs) -> int:
    return 2 * lina_forward_macs(q, v)


@flop_counter.register_flop_formula(torch.ops.lina_bench.lina_attention_backward)
def _backward_flops(grad_out, q, k, v, *args, out_shape=None, **kwargs) -> int:
    return 2 * lina_backward_macs(q, v)

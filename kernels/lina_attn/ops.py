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

BLOCK_N = 64


def _blocks(d: int, dv: int) -> tuple[int, int]:
    return max(16, triton.next_power_of_2(d)), max(16, triton.next_power_of_2(dv))


def split_target(bh: int, device: torch.device) -> int:
    """How many token slices per (batch, head) the reductions aim for: about four programs per SM in
    all on a GPU, one in the CPU interpreter (tests raise it to exercise the GPU path)."""
    if device.type != "cuda":
        return 1
    return max(1, 4 * torch.cuda.get_device_properties(device).multi_processor_count // bh)


def _splits(bh: int, n: int, device: torch.device) -> tuple[int, int]:
    """Token slices per (batch, head) for the reductions, and tokens per slice (a multiple of BLOCK_N)."""
    blocks = triton.cdiv(n, BLOCK_N)
    splits = min(blocks, split_target(bh, device))
    per_split = triton.cdiv(blocks, splits) * BLOCK_N
    return triton.cdiv(n, per_split), per_split


def _gates(key_scale: torch.Tensor | None, value_scale: torch.Tensor | None, h: int, n: int):
    if key_scale is None and value_scale is None:
        return None, None
    ones = None
    ks = key_scale.reshape(h, n).float().contiguous() if key_scale is not None else None
    vs = value_scale.reshape(h, n).float().contiguous() if value_scale is not None else None
    if ks is None or vs is None:
        ones = torch.ones(h, n, device=(ks if ks is not None else vs).device)
    return (ks if ks is not None else ones), (vs if vs is not None else ones)


def _state(k: torch.Tensor, v: torch.Tensor, ks, vs) -> tuple[torch.Tensor, torch.Tensor]:
    """(S / N, kmean) padded to the block sizes: (B*H, BD, BDV) and (B*H, BD), float32."""
    b, h, n, d = k.shape
    dv = v.shape[-1]
    block_d, block_dv = _blocks(d, dv)
    splits, per_split = _splits(b * h, n, k.device)
    partial = torch.empty(b * h, splits, block_d, block_dv, device=k.device, dtype=torch.float32)
    partial_ksum = torch.empty(b * h, splits, block_d, device=k.device, dtype=torch.float32)
    dummy = partial_ksum if ks is None else None
    tk.lina_state_kernel[(b * h, splits)](
        k, v, ks if ks is not None else dummy, vs if vs is not None else dummy, partial, partial_ksum, h, n, d, dv,
        per_split, HAS_GATE=ks is not None, IEEE=k.dtype == torch.float32, BLOCK_N=BLOCK_N, BLOCK_D=block_d,
        BLOCK_DV=block_dv)
    return partial.sum(1) / n, partial_ksum.sum(1) / n


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
    block_d, block_dv = _blocks(d, dv)
    tk.lina_output_kernel[(b * h, triton.cdiv(n, BLOCK_N))](
        q, state, kmean, out, n, d, dv, IEEE=q.dtype == torch.float32, BLOCK_N=BLOCK_N, BLOCK_D=block_d,
        BLOCK_DV=block_dv)
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
    block_d, block_dv = _blocks(d, dv_size)
    ieee = q.dtype == torch.float32
    splits, per_split = _splits(b * h, n, q.device)
    dq = torch.empty_like(q)
    partial_ds = torch.empty(b * h, splits, block_d, block_dv, device=q.device, dtype=torch.float32)
    partial_dkm = torch.empty(b * h, splits, block_d, device=q.device, dtype=torch.float32)
    tk.lina_backward_query_kernel[(b * h, splits)](
        q, grad_out, state, kmean, dq, partial_ds, partial_dkm, n, d, dv_size, per_split, IEEE=ieee,
        BLOCK_N=BLOCK_N, BLOCK_D=block_d, BLOCK_DV=block_dv)
    d_state, d_kmean = partial_ds.sum(1).contiguous(), partial_dkm.sum(1).contiguous()
    dk, dv = torch.empty_like(k), torch.empty_like(v)
    gated = ks is not None
    dks = torch.empty(b, h, n, device=q.device, dtype=torch.float32) if gated else d_kmean
    dvs = torch.empty(b, h, n, device=q.device, dtype=torch.float32) if gated else d_kmean
    tk.lina_backward_kv_kernel[(b * h, triton.cdiv(n, BLOCK_N))](
        k, v, ks if gated else d_kmean, vs if gated else d_kmean, d_state, d_kmean, dk, dv, dks, dvs, h, n, d,
        dv_size, HAS_GATE=gated, IEEE=ieee, BLOCK_N=BLOCK_N, BLOCK_D=block_d, BLOCK_DV=block_dv)
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

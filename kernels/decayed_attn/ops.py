"""``lina_bench::decayed_linear_attention`` as a torch custom op on the Triton forward kernel.

Autograd: the backward recomputes the output through the PyTorch reference (chunked, same chunk
size) and differentiates that; a fused Triton backward is future work. FLOP formula: the chunked
algorithm's multiply-adds (``kernels/formulas.py``, the same as the reference's matmuls).
"""

from __future__ import annotations

import torch
import triton
from torch.utils import flop_counter

from lina_bench.kernels.decayed_attn import triton_kernels as tk
from lina_bench.kernels.decayed_attn.naive import decayed_linear_attention_chunked
from lina_bench.kernels.formulas import chunked_decay_macs
from lina_bench.kernels.lina_attn.ops import head_block


def key_block(size: int) -> int:
    """The key-dimension block: one power of two >= 16 (``tl.arange`` and ``tl.dot`` need one)."""
    return max(16, triton.next_power_of_2(size))


@torch.library.custom_op("lina_bench::decayed_linear_attention", mutates_args=())
def decayed_linear_attention_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, log_decay: torch.Tensor,
                                scale: float, initial_state: torch.Tensor | None, output_final_state: bool,
                                chunk_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (o (B, H, N, dv), final state (B, H, d, dv) float32, or an empty tensor).
    ``chunk_size``: a power of two >= 16 (Triton's dot needs it)."""
    q, k, v, log_decay = q.contiguous(), k.contiguous(), v.contiguous(), log_decay.contiguous()
    b, h, n, d = q.shape
    dv = v.shape[-1]
    out = torch.empty(b, h, n, dv, device=q.device, dtype=q.dtype)
    final = (torch.empty(b, h, d, dv, device=q.device, dtype=torch.float32) if output_final_state
             else q.new_empty(0))
    s0 = initial_state.contiguous() if initial_state is not None else final
    block_dv = head_block(dv, q.dtype)
    tk.decayed_forward_kernel[(b * h, triton.cdiv(dv, block_dv))](
        q, k, v, log_decay, s0, out, final, n, d, dv, scale, HAS_INITIAL=initial_state is not None,
        STORE_FINAL=output_final_state, IEEE=q.dtype == torch.float32, CHUNK=chunk_size,
        BLOCK_D=key_block(d), BLOCK_DV=block_dv)
    return out, final


@decayed_linear_attention_op.register_fake
def _(q, k, v, log_decay, scale, initial_state, output_final_state, chunk_size):
    b, h, n, d = q.shape
    final = q.new_empty(b, h, d, v.shape[-1], dtype=torch.float32) if output_final_state else q.new_empty(0)
    return q.new_empty(b, h, n, v.shape[-1]), final


def _setup_context(ctx, inputs, output) -> None:
    q, k, v, log_decay, scale, initial_state, output_final_state, chunk_size = inputs
    ctx.save_for_backward(q, k, v, log_decay, initial_state)
    ctx.scale, ctx.output_final_state, ctx.chunk_size = scale, output_final_state, chunk_size


def _backward(ctx, grad_out, grad_final):
    q, k, v, log_decay, initial_state = ctx.saved_tensors
    inputs = [t.detach().requires_grad_(t.requires_grad) if t is not None else None
              for t in (q, k, v, log_decay, initial_state)]
    with torch.enable_grad():
        out, final = decayed_linear_attention_chunked(*inputs[:4], ctx.scale, inputs[4], ctx.output_final_state,
                                                      chunk_size=ctx.chunk_size)
        outputs, grads = [out], [grad_out]
        if ctx.output_final_state:
            outputs.append(final)
            grads.append(grad_final)
        wanted = [t for t in inputs if t is not None and t.requires_grad]
        computed = iter(torch.autograd.grad(outputs, wanted, grads, allow_unused=True) if wanted else [])
    result = [next(computed) if t is not None and t.requires_grad else None for t in inputs]
    return (*result[:4], None, result[4], None, None)


decayed_linear_attention_op.register_autograd(_backward, setup_context=_setup_context)


@flop_counter.register_flop_formula(torch.ops.lina_bench.decayed_linear_attention)
def _flops(q, k, v, log_decay, scale, initial_state, output_final_state, chunk_size, *args, out_shape=None,
           **kwargs) -> int:
    return 2 * chunked_decay_macs(q, v, chunk_size, bool(output_final_state))

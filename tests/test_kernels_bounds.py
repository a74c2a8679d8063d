"""Every Triton kernel in every autotune config stays inside its tensors, and gives the reference's
numbers (interpreter on CPU; the bounds check patches the interpreter, so it is skipped on GPU).

The GPU autotuner may launch any config of a kernel's ``configs``; the CPU tests otherwise launch
the first only. Here each config is forced in turn, at token counts that leave a partial last block
and head dimensions that take several tiles (d = 96: three 32-wide tiles; dv = 48: three 16-wide).
"""

from __future__ import annotations

import pytest
import torch
import triton
import triton.language as tl
from references import decayed_loop_reference
from test_kernels_triton import assert_rel, make_inputs
from triton_bounds import OutOfBounds, bounds_checked

from lina_bench.kernels import decayed_linear_attention, lina_attention, lina_attention_naive
from lina_bench.kernels.aot import kernel_functions

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="checks Triton's CPU interpreter")


@triton.jit
def _copy_kernel(src_ptr, dst_ptr, N, BLOCK: tl.constexpr, MASKED: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    if MASKED:
        tl.store(dst_ptr + offs, tl.load(src_ptr + offs, mask=offs < N), mask=offs < N)
    else:
        tl.store(dst_ptr + offs, tl.load(src_ptr + offs))


def test_the_check_catches_an_unmasked_tail_and_passes_a_masked_one():
    src, dst = torch.arange(10.0), torch.zeros(10)
    with bounds_checked() as record:
        _copy_kernel[(1,)](src, dst, 10, BLOCK=16, MASKED=True)
    assert torch.equal(dst, src) and record.accesses == 2
    with pytest.raises(OutOfBounds, match=r"_copy_kernel: load of 6 lane\(s\) .* 0 bytes past the end of src_ptr"):
        with bounds_checked():
            _copy_kernel[(1,)](src, dst, 10, BLOCK=16, MASKED=False)
    _copy_kernel[(1,)](src, dst, 10, BLOCK=16, MASKED=True)  # the interpreter is restored afterwards


def _each_config(monkeypatch, index: int) -> dict[str, dict]:
    """Force config ``index`` (modulo each kernel's count) on every kernel; returns what was forced."""
    forced = {}
    for name, kernel in kernel_functions().items():
        config = kernel.configs[index % len(kernel.configs)]
        monkeypatch.setattr(kernel, "configs", [config])
        forced[name] = config.all_kwargs()
    return forced


LINA_SHAPES = [(100, 96, 48, True), (257, 24, 24, False), (33, 16, 16, True)]


@pytest.mark.parametrize("index", range(5), ids=lambda i: f"config{i}")
@pytest.mark.parametrize(("n", "d", "dv", "gated"), LINA_SHAPES, ids=lambda v: str(v))
def test_lina_kernels_in_every_config(monkeypatch, index: int, n: int, d: int, dv: int, gated: bool):
    forced = _each_config(monkeypatch, index)
    inputs = make_inputs(n, d, dv, gated, b=2, h=2 if d == 96 else 1)  # gates: (1, H, N, 1)
    wanted = [t for t in inputs if t is not None]
    with bounds_checked() as record:
        out = lina_attention(*inputs, backend="triton")
        grad = torch.randn_like(out)
        grads = torch.autograd.grad(out, wanted, grad)
    assert record.accesses > 0, forced
    ref = lina_attention_naive(*inputs)
    assert_rel(out, ref)
    for got, expected in zip(grads, torch.autograd.grad(ref, wanted, grad), strict=True):
        assert_rel(got, expected)


def test_the_sweep_reaches_every_config():
    counts = {name: len(kernel.configs) for name, kernel in kernel_functions().items()}
    assert max(counts.values()) <= 5, counts  # raise test_lina_kernels_in_every_config's range with it


@pytest.mark.parametrize("initial", [False, True], ids=["zero-state", "initial-state"])
@pytest.mark.parametrize(("n", "d", "dv"), [(1, 16, 16), (100, 96, 48), (70, 24, 40)])
def test_decayed_kernel_in_every_config(monkeypatch, n: int, d: int, dv: int, initial: bool):
    from lina_bench.kernels.decayed_attn import triton_kernels as tk

    gen = torch.Generator().manual_seed(n)
    q, k = (torch.randn(1, 2, n, d, generator=gen) for _ in range(2))
    v = torch.randn(1, 2, n, dv, generator=gen)
    g = -torch.rand(1, 2, n, generator=gen)
    s0 = torch.randn(1, 2, d, dv, generator=gen) if initial else None
    ref, ref_final = decayed_loop_reference(q, k, v, g, d**-0.5, s0)
    for config in list(tk.decayed_forward_kernel.configs):
        monkeypatch.setattr(tk.decayed_forward_kernel, "configs", [config])
        for final_state in (False, True):
            with bounds_checked() as record:
                out, final = decayed_linear_attention(q, k, v, g, initial_state=s0, output_final_state=final_state,
                                                      backend="triton", chunk_size=32)
            assert record.accesses > 0
            assert_rel(out, ref)
            if final_state:
                assert_rel(final, ref_final)

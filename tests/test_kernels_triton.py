"""Triton kernels against independent references (run in Triton's interpreter on CPU).

Tolerance: float32, max error <= 1e-4 relative to the reference's largest magnitude (observed
~1e-6). On GPU, bfloat16/float16 inputs are checked against the float32 reference at 2e-2.
"""

from __future__ import annotations

import pytest
import torch
from references import decayed_loop_reference
from safetensors import safe_open

from lina_bench.api.errors import LinaBenchError
from lina_bench.evaluators.base import AttentionTarget, ModuleSetting
from lina_bench.evaluators.flops import count_attention, count_fvcore, count_torch
from lina_bench.kernels import (
    decayed_linear_attention,
    lina_attention,
    lina_attention_naive,
)
from lina_bench.models import attention

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
RTOL = 1e-4


def assert_rel(actual: torch.Tensor, expected: torch.Tensor, tol: float = RTOL) -> None:
    scale = expected.abs().max().clamp_min(1e-12)
    error = ((actual.float() - expected.float()).abs().max() / scale).item()
    assert error <= tol, f"relative error {error:.3g} > {tol}"


def make_inputs(n: int, d: int, dv: int, gated: bool, dtype=torch.float32, seed: int = 0, b: int = 2, h: int = 3):
    gen = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(b, h, n, d, generator=gen) for _ in range(2))
    v = torch.randn(b, h, n, dv, generator=gen)
    gates = [torch.rand(1, h, n, 1, generator=gen) + 0.5 for _ in range(2)] if gated else [None, None]
    tensors = [t.to(DEVICE, dtype).requires_grad_() if t is not None else None for t in (q, k, v, *gates)]
    return tensors


@pytest.mark.parametrize("gated", [False, True], ids=["ungated", "gated"])
@pytest.mark.parametrize("d", [16, 24, 64])
@pytest.mark.parametrize("n", [33, 100, 257, 320])
def test_lina_attention_forward_and_gradients(n: int, d: int, gated: bool):
    inputs = make_inputs(n, d, d, gated)
    out = lina_attention(*inputs, backend="triton")
    ref = lina_attention_naive(*inputs)
    assert_rel(out, ref)
    grad = torch.randn_like(ref)
    wanted = [t for t in inputs if t is not None]
    for got, expected in zip(torch.autograd.grad(out, wanted, grad), torch.autograd.grad(ref, wanted, grad),
                             strict=True):
        assert_rel(got, expected)


def test_head_blocks_divide_the_head_dimension():
    from lina_bench.kernels.lina_attn.ops import head_block

    sizes = (16, 24, 32, 40, 48, 64, 96, 128, 192)
    assert {d: head_block(d, torch.bfloat16) for d in sizes} == {
        16: 16, 24: 32, 32: 32, 40: 64, 48: 16, 64: 64, 96: 32, 128: 64, 192: 64}
    assert {d: head_block(d, torch.float32) for d in sizes} == {  # float32 tiles: at most 32 wide
        16: 16, 24: 32, 32: 32, 40: 32, 48: 16, 64: 32, 96: 32, 128: 32, 192: 32}


@pytest.mark.parametrize("gated", [False, True], ids=["ungated", "gated"])
def test_lina_attention_tiles_splits_and_token_blocks(monkeypatch, gated: bool):
    """Launches the GPU autotuner may pick, forced here (the interpreter runs each kernel's first config
    only): the reductions over 3 token slices of 64-token blocks (the last one uneven) written into
    buffers with room for 8, the per-token
    kernels on 32-token blocks, and d = 96 as three 32-wide tiles beside dv = 48 as three 16-wide ones."""
    import triton

    from lina_bench.kernels.lina_attn import ops
    from lina_bench.kernels.lina_attn import triton_kernels as tk

    monkeypatch.setattr(tk.lina_reduce_kernel, "configs", [triton.Config({"SPLITS": 3, "BLOCK_N": 64})])
    monkeypatch.setattr(ops, "max_splits", lambda: 8)  # buffers sized for another config's 8 slices
    for kernel in (tk.lina_output_kernel, tk.lina_row_stats_kernel, tk.lina_backward_q_kernel,
                   tk.lina_backward_kv_kernel):
        monkeypatch.setattr(kernel, "configs", [triton.Config({"BLOCK_N": 32})])
    inputs = make_inputs(300, 96, 48, gated)
    out = lina_attention(*inputs, backend="triton")
    assert tk.lina_reduce_kernel.best_config.kwargs["SPLITS"] == 3
    ref = lina_attention_naive(*inputs)
    assert_rel(out, ref)
    wanted = [t for t in inputs if t is not None]
    grad = torch.randn_like(ref)
    for got, expected in zip(torch.autograd.grad(out, wanted, grad), torch.autograd.grad(ref, wanted, grad),
                             strict=True):
        assert_rel(got, expected)


def test_lina_attention_value_width_and_single_gate():
    q, k, v, ks, _ = make_inputs(70, 24, 40, gated=True)
    out = lina_attention(q, k, v, ks, None, backend="triton")
    ref = lina_attention_naive(q, k, v, ks, None)
    assert out.shape == (2, 3, 70, 40)
    assert_rel(out, ref)
    for got, expected in zip(torch.autograd.grad(out.sum(), [q, k, v, ks]),
                             torch.autograd.grad(ref.sum(), [q, k, v, ks]), strict=True):
        assert_rel(got, expected)


@pytest.mark.parametrize("initial", [False, True], ids=["zero-state", "initial-state"])
@pytest.mark.parametrize(("d", "dv"), [(16, 16), (24, 48), (64, 16)])  # dv = 48: three 16-wide value slices
@pytest.mark.parametrize("n", [1, 33, 100, 257])
def test_decayed_attention_matches_recurrence(n: int, d: int, dv: int, initial: bool):
    gen = torch.Generator().manual_seed(n + d)
    q, k = (torch.randn(1, 2, n, d, generator=gen).to(DEVICE).requires_grad_() for _ in range(2))
    v = torch.randn(1, 2, n, dv, generator=gen).to(DEVICE).requires_grad_()
    g = (-torch.rand(1, 2, n, generator=gen)).to(DEVICE).requires_grad_()
    s0 = torch.randn(1, 2, d, dv, generator=gen).to(DEVICE).requires_grad_() if initial else None
    out, final = decayed_linear_attention(q, k, v, g, initial_state=s0, output_final_state=True, backend="triton")
    ref, ref_final = decayed_loop_reference(q, k, v, g, d**-0.5, s0)
    assert_rel(out, ref)
    assert_rel(final, ref_final)
    wanted = [t for t in (q, k, v, g, s0) if t is not None]
    grads = torch.autograd.grad((out, final), wanted, (torch.ones_like(out), torch.ones_like(final)))
    ref_grads = torch.autograd.grad((ref, ref_final), wanted, (torch.ones_like(ref), torch.ones_like(ref_final)),
                                    allow_unused=True)  # g_0 never acts on a zero state
    for got, expected, t in zip(grads, ref_grads, wanted, strict=True):
        assert_rel(got, torch.zeros_like(t) if expected is None else expected)


@pytest.mark.parametrize("name", ["linear", "linear-dwc", "lina", "lit"])
def test_variants_on_triton_match_the_official_fixtures(name: str):
    setting = "p0_16x16" if name == "lit" else "p64_16x16"
    from pathlib import Path
    path = Path(__file__).parent / "fixtures" / "official" / f"{name}__{setting}.safetensors"
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
        tensors = {key: f.get_tensor(key) for key in f.keys()}
    module = attention.build(name, dim=64, num_heads=4, grid=(16, 16), prefix=int(meta["prefix"]), backend="triton")
    module.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("state.")}, strict=True)
    with torch.no_grad():
        out = module.to(DEVICE)(tensors["input"].to(DEVICE))
    torch.testing.assert_close(out.cpu(), tensors["output"], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("decay", ["2d", "none"])
def test_lasad_on_triton_matches_reference(decay: str):
    torch.manual_seed(0)
    ref = attention.build("lasad", dim=32, num_heads=2, grid=(9, 11), prefix=5, decay=decay, backend="torch")
    tri = attention.build("lasad", dim=32, num_heads=2, grid=(9, 11), prefix=5, decay=decay, backend="triton")
    tri.load_state_dict(ref.state_dict())
    x = torch.randn(2, 104, 32)
    assert_rel(tri(x), ref(x))


@pytest.mark.parametrize("variant", ["lina", "lasad"])
def test_custom_ops_are_counted_like_the_reference(variant: str):
    setting = ModuleSetting(32, 2, (8, 8), 4, 2)
    ref, _ = count_attention(AttentionTarget(variant, {"backend": "torch"}), setting)
    module = AttentionTarget(variant, {"backend": "triton"}).build(setting)
    (x,) = setting.inputs()
    with torch.no_grad():
        fv, fc = count_fvcore(module, (x,)), count_torch(module, (x,))
    op = "lina_attention" if variant == "lina" else "decayed_linear_attention"
    assert fv.total == fc.total == ref.total
    assert op in fv.by_operator and "unknown" not in fv.uncounted_ops


def test_backward_flops_formula():
    q, k, v, ks, vs = make_inputs(40, 16, 16, gated=True)
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as mode:
        lina_attention(q, k, v, ks, vs, backend="triton").sum().backward()
    counts = {str(op): c for op, c in mode.get_flop_counts()["Global"].items()}
    assert counts["lina_bench.lina_attention"] == 2 * 2 * 3 * 40 * (2 * 16 * 16 + 16)
    assert counts["lina_bench.lina_attention_backward"] == 2 * 6 * 2 * 3 * 40 * 16 * 16


def test_errors():
    q, k, v, _, _ = make_inputs(10, 16, 16, gated=False)
    with pytest.raises(LinaBenchError, match="backend must be one of"):
        lina_attention(q, k, v, backend="cuda")
    with pytest.raises(LinaBenchError, match="key_scale must be"):
        lina_attention(q, k, v, torch.ones(1, 3, 9, 1))
    with pytest.raises(LinaBenchError, match="q and k must match"):
        lina_attention(q, k[:, :, :5], v)
    with pytest.raises(LinaBenchError, match="power of two >= 16"):
        decayed_linear_attention(q, k, v, torch.zeros(2, 3, 10), chunk_size=24, backend="triton")
    with pytest.raises(LinaBenchError, match=r"log_decay must be \(B, H, N\)"):
        decayed_linear_attention(q, k, v, torch.zeros(2, 3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="half precision is tested on GPU")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_half_precision_on_gpu(dtype):
    inputs = make_inputs(1024, 64, 64, gated=True, dtype=dtype)
    ref = lina_attention_naive(*[t.float() if t is not None else None for t in inputs])
    assert_rel(lina_attention(*inputs, backend="triton"), ref, tol=2e-2)
    q, k, v = inputs[:3]
    g = -torch.rand(2, 3, 1024, device=DEVICE)
    out, _ = decayed_linear_attention(q, k, v, g, backend="triton")
    ref_out, _ = decayed_linear_attention(q.float(), k.float(), v.float(), g, backend="torch")
    assert_rel(out, ref_out, tol=2e-2)


def test_lina_generator_on_triton_gives_the_reference_latents():
    """The whole LINA sampler with its linear attention on the Triton kernels (the GPU default) against the
    same weights on the PyTorch reference: the 64-token fixture layout (256 px), float32, every attention
    call through the kernels' autotuned launches (split reductions, token blocks)."""
    from pathlib import Path

    from lina_bench.api.generator import build_generator
    from lina_bench.models.lina.generator import Draws

    folder = Path(__file__).parent / "fixtures" / "lina" / "lina"
    options = {"config": str(folder), "archs": str(folder / "archs.json"), "ar_steps": 4, "diffusion_steps": 2,
               "guidance": 3.0, "dtype": "float32"}
    latents = {}
    for backend in ("torch", "triton"):
        gen = build_generator("lina", {**options, "backend": backend}).to(DEVICE)
        with torch.no_grad():
            latents[backend] = gen._latents(gen._condition([3, 7]), Draws(batch_seed=0))
    assert_rel(latents["triton"], latents["torch"], tol=1e-4)

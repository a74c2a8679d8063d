"""The attention contract at any geometry, and variants without official code against closed forms.

Tolerances: float32 results against float64 closed forms, 1e-5 (abs and rel) unless stated.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lina_bench.api.errors import LinaBenchError
from lina_bench.models import attention

VARIANTS = attention.names()
GEOMETRIES = [((5, 7), 3), ((4, 4), 0), ((1, 1), 2), ((16, 16), 64)]


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: f"{g[0][0]}x{g[0][1]}+p{g[1]}")
@pytest.mark.parametrize("name", VARIANTS)
def test_contract_any_grid_and_prefix(name: str, geometry):
    grid, prefix = geometry
    module = attention.build(name, dim=24, num_heads=3, grid=grid, prefix=prefix)
    n = prefix + grid[0] * grid[1]
    x = torch.randn(2, n, 24, requires_grad=True)
    out = module(x)
    assert out.shape == (2, n, 24) and torch.isfinite(out).all()
    out.square().mean().backward()
    missing = [k for k, p in module.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", VARIANTS)
def test_wrong_input_shape_is_a_clear_error(name: str):
    module = attention.build(name, dim=16, num_heads=2, grid=(4, 4), prefix=2)
    with pytest.raises(LinaBenchError, match=r"expects input \(B, 18, 16\), got \(1, 16, 16\)"):
        module(torch.randn(1, 16, 16))


def test_build_errors():
    with pytest.raises(LinaBenchError, match="multiple of num_heads"):
        attention.build("linear", dim=10, num_heads=3, grid=(2, 2))
    with pytest.raises(LinaBenchError, match="unknown option 'decya'.*did you mean 'decay'"):
        attention.build("lasad", dim=8, num_heads=2, grid=(2, 2), decya="1d")
    with pytest.raises(LinaBenchError, match="unknown lasad decay '3d'"):
        attention.build("lasad", dim=8, num_heads=2, grid=(2, 2), decay="3d")


def _heads(t: torch.Tensor, h: int) -> torch.Tensor:
    b, n, c = t.shape
    return t.view(b, n, h, c // h).transpose(1, 2)


def quadratic_division(q, k, v):
    """Division-normalised attention through the explicit N x N matrix (float64)."""
    q, k = F.relu(q) + 1e-6, F.relu(k) + 1e-6
    n = k.shape[-2]
    scores = q @ k.transpose(-2, -1) / n
    return (scores @ v) / (scores.sum(-1, keepdim=True) + 1e-6)


def test_lit_matches_quadratic_closed_form():
    torch.manual_seed(0)
    grid, prefix, heads = (5, 6), 4, 2
    module = attention.build("lit", dim=16, num_heads=heads, grid=grid, prefix=prefix).double()
    for p in module.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(2, prefix + 30, 16, dtype=torch.float64)
    q = _heads(module.q(x), heads)
    k, v = (_heads(t, heads) for t in module.kv(x).chunk(2, -1))
    attn = quadratic_division(q, k, v)
    conv = torch.zeros_like(v)
    for h in range(heads):  # the same head_dim-channel filter bank for every head
        image = v[:, h, prefix:].transpose(1, 2).reshape(2, 8, *grid)
        conv[:, h, prefix:] = F.conv2d(image, module.dwc.weight, module.dwc.bias, padding=2, groups=8) \
            .flatten(2).transpose(1, 2)
    expected = module.proj((attn + conv).transpose(1, 2).flatten(2))
    torch.testing.assert_close(module(x), expected, atol=1e-10, rtol=1e-10)


def reference_log_decay(module, n: int) -> torch.Tensor:
    """(H, N) per-token log-decay written out position by position."""
    log_row = F.logsigmoid(module.decay_row.double())
    log_col = F.logsigmoid(module.decay_col.double())
    g = torch.zeros(module.num_heads, n, dtype=torch.float64)
    for t in range(module.prefix, n):
        column = (t - module.prefix) % module.grid[1]
        g[:, t] = log_row if (column == 0 and module.decay == "2d") else log_col
        if module.decay == "none":
            g[:, t] = 0
    return g


@pytest.mark.parametrize("decay", ["2d", "1d", "none"])
@pytest.mark.parametrize("chunk_size", [4, 64])
def test_lasad_matches_quadratic_closed_form(decay: str, chunk_size: int):
    torch.manual_seed(1)
    grid, prefix, heads = (5, 7), 3, 2
    module = attention.build("lasad", dim=16, num_heads=heads, grid=grid, prefix=prefix, decay=decay,
                             chunk_size=chunk_size).double()
    with torch.no_grad():
        module.decay_row.uniform_(-1, 2)
        module.decay_col.uniform_(1, 4)
    n = prefix + 35
    x = torch.randn(2, n, 16, dtype=torch.float64)
    q, k, v = (_heads(t, heads) for t in module.qkv(x).chunk(3, -1))
    G = reference_log_decay(module, n).cumsum(-1)
    mask = torch.ones(n, n, dtype=torch.bool).tril()
    D = torch.where(mask, (G[:, :, None] - G[:, None, :]).clamp(max=0).exp(), torch.zeros(()))
    o = ((q @ k.transpose(-2, -1)) * D * (8**-0.5)) @ v
    o = module.norm(o.transpose(1, 2).reshape(2 * n, 16)).view(2, n, 16)
    torch.testing.assert_close(module(x), module.proj(o), atol=1e-10, rtol=1e-10)


def test_lasad_2d_decay_fades_with_rows_not_raster_distance():
    decays = {}
    for mode in ("2d", "1d"):
        module = attention.build("lasad", dim=8, num_heads=1, grid=(8, 8), prefix=0, decay=mode)
        G = module.log_decay()[0].detach().double().cumsum(0)
        decays[mode] = {"up": (G[3 * 8 + 4] - G[2 * 8 + 4]).exp().item(),  # 8 raster steps apart
                        "left": (G[3 * 8 + 4] - G[3 * 8 + 3]).exp().item()}
    gamma_row = torch.sigmoid(module.decay_row).item()
    gamma_col = torch.sigmoid(module.decay_col).item()
    assert math.isclose(decays["2d"]["up"], gamma_row * gamma_col**7, rel_tol=1e-6)
    assert math.isclose(decays["1d"]["up"], gamma_col**8, rel_tol=1e-6)  # raster distance only
    assert math.isclose(decays["2d"]["left"], gamma_col, rel_tol=1e-6)
    assert decays["2d"]["left"] > 0.99 > decays["2d"]["up"]  # rows fade, columns barely


def test_causal_softmax_matches_masked_matrix():
    torch.manual_seed(2)
    module = attention.build("softmax", dim=16, num_heads=2, grid=(3, 4), prefix=2, causal=True).double()
    x = torch.randn(2, 14, 16, dtype=torch.float64)
    q, k, v = (_heads(t, 2) for t in module.qkv(x).chunk(3, -1))
    scores = (q @ k.transpose(-2, -1)) / 8**0.5
    scores = scores.masked_fill(~torch.ones(14, 14, dtype=torch.bool).tril(), float("-inf"))
    expected = module.proj((scores.softmax(-1) @ v).transpose(1, 2).flatten(2))
    torch.testing.assert_close(module(x), expected, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("name", VARIANTS)
def test_bfloat16_modules_track_float32(name: str):
    """Half-precision modules run (attention math upcast to float32) and stay within bf16 error."""
    torch.manual_seed(0)
    module = attention.build(name, dim=32, num_heads=2, grid=(6, 6), prefix=4)
    x = torch.randn(2, 40, 32)
    expected = module(x)
    out = module.to(torch.bfloat16)(x.bfloat16())
    assert out.dtype == torch.bfloat16
    error = (out.float() - expected).norm() / expected.norm()
    assert error < 3e-2, f"relative error {error:.3g}"

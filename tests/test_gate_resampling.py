"""Carrying LINA's KV gate to another resolution."""

from __future__ import annotations

import pytest
import torch

from lina_bench.api.errors import LinaBenchError
from lina_bench.models import attention


def affine_gate(heads: int, prefix: int, grid: tuple[int, int]) -> torch.Tensor:
    """A gate whose image part is affine in the normalised pixel-centre coordinates (closed form)."""
    h, w = grid
    ys = (torch.arange(h, dtype=torch.float64) + 0.5) / h
    xs = (torch.arange(w, dtype=torch.float64) + 0.5) / w
    image = 1 + 0.5 * ys[:, None] - 0.25 * xs[None, :]  # (h, w)
    per_head = torch.stack([image * (1 + 0.1 * i) for i in range(heads)]).view(heads, h * w)
    prefix_part = torch.linspace(0.5, 1.5, prefix, dtype=torch.float64).expand(heads, prefix)
    return torch.cat([prefix_part, per_head], 1)[None, :, :, None]


def test_same_geometry_is_identity():
    gate = torch.rand(1, 4, 64 + 256, 1)
    assert torch.equal(attention.resample_gate(gate, 64, (16, 16), 64, (16, 16)), gate)


def test_upsampling_reproduces_an_affine_map_inside_the_grid():
    src = affine_gate(2, 64, (8, 8))
    out = attention.resample_gate(src, 64, (8, 8), 64, (16, 16))
    expected = affine_gate(2, 64, (16, 16))
    assert out.shape == (1, 2, 64 + 256, 1)
    torch.testing.assert_close(out[0, :, :64], src[0, :, :64])  # same prefix length: unchanged
    inner = expected[0, :, 64:, 0].view(2, 16, 16)[:, 1:-1, 1:-1]  # bilinear clamps at the border
    torch.testing.assert_close(out[0, :, 64:, 0].view(2, 16, 16)[:, 1:-1, 1:-1], inner, atol=1e-12, rtol=0)


def naive_bilinear(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(h, w) -> size, half-pixel centres (align_corners=False), edges clamped: one output at a time."""
    (h, w), (h2, w2) = image.shape, size
    out = torch.empty(size, dtype=torch.float64)
    for i in range(h2):
        for j in range(w2):
            y, x = max((i + 0.5) * h / h2 - 0.5, 0.0), max((j + 0.5) * w / w2 - 0.5, 0.0)
            y0, x0 = int(y), int(x)
            y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
            dy, dx = y - y0, x - x0
            out[i, j] = ((1 - dy) * ((1 - dx) * image[y0, x0] + dx * image[y0, x1])
                         + dy * ((1 - dx) * image[y1, x0] + dx * image[y1, x1]))
    return out


@pytest.mark.parametrize("src,dst", [((5, 7), (8, 11)), ((8, 8), (5, 6))], ids=["up", "down"])
def test_random_gate_matches_a_naive_bilinear_resampling(src, dst):
    """Every value, interior ones included, of a random gate against a per-pixel bilinear formula."""
    gate = torch.rand(1, 2, 3 + src[0] * src[1], 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = attention.resample_gate(gate, 3, src, 3, dst)
    for head in range(2):
        expected = naive_bilinear(gate[0, head, 3:, 0].view(src), dst)
        torch.testing.assert_close(out[0, head, 3:, 0].view(dst), expected, atol=1e-12, rtol=0)


def test_prefix_length_change_interpolates_linearly():
    src = affine_gate(1, 4, (4, 4))  # prefix values linspace(0.5, 1.5, 4)
    out = attention.resample_gate(src, 4, (4, 4), 8, (4, 4))
    assert out.shape == (1, 1, 8 + 16, 1)
    torch.testing.assert_close(out[0, 0, 8:], src[0, 0, 4:])
    prefix = out[0, 0, :8, 0]
    assert prefix[0] == 0.5 and prefix[-1] == 1.5 and (prefix.diff() >= 0).all()


def test_adapted_state_dict_loads_strictly_at_the_new_resolution():
    torch.manual_seed(0)
    trained = attention.build("lina", dim=32, num_heads=4, grid=(16, 16), prefix=64)
    with torch.no_grad():
        trained.key_scale.uniform_(0.5, 1.5)
        trained.value_scale.uniform_(0.5, 1.5)
    state = attention.adapt_state_dict(trained.state_dict(), 64, (16, 16), 256, (32, 32))
    high_res = attention.build("lina", dim=32, num_heads=4, grid=(32, 32), prefix=256)
    high_res.load_state_dict(state, strict=True)
    assert high_res(torch.randn(1, 256 + 1024, 32)).shape == (1, 1280, 32)
    assert torch.equal(state["qkv.weight"], trained.state_dict()["qkv.weight"])
    with pytest.raises(RuntimeError):  # without adapting, the official shapes do not fit
        high_res.load_state_dict(trained.state_dict(), strict=True)


def test_mismatched_source_geometry_is_a_clear_error():
    with pytest.raises(LinaBenchError, match=r"does not match prefix=0, grid=\(8, 8\)"):
        attention.resample_gate(torch.ones(1, 2, 320, 1), 0, (8, 8), 0, (16, 16))

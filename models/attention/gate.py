"""Carry a trained KV gate (``key_scale`` / ``value_scale``, shape (1, H, N, 1)) to another
resolution.

The official LINA gate has one value per token position, so it only fits the resolution it was
trained at. We resample it: the image part as a 2D map over the token grid (bilinear,
``align_corners=False``, the convention used for resizing position embeddings), and the prefix
part, when its length changes too, as a 1D sequence (linear interpolation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lina_bench.api.errors import LinaBenchError

GATE_SUFFIXES = ("key_scale", "value_scale")


def resample_gate(gate: torch.Tensor, src_prefix: int, src_grid: tuple[int, int],
                  dst_prefix: int, dst_grid: tuple[int, int]) -> torch.Tensor:
    """(1, H, src_prefix + h*w, 1) -> (1, H, dst_prefix + h'*w', 1)."""
    (h, w), (h2, w2) = src_grid, dst_grid
    if gate.dim() != 4 or gate.shape[-2] != src_prefix + h * w:
        raise LinaBenchError(f"gate of shape {tuple(gate.shape)} does not match prefix={src_prefix}, "
                             f"grid={tuple(src_grid)} (expected (1, H, {src_prefix + h * w}, 1))")
    heads = gate.shape[1]
    values = gate.to(torch.promote_types(gate.dtype, torch.float32))[0, :, :, 0]  # (H, N)
    prefix, image = values[:, :src_prefix], values[:, src_prefix:]
    image = F.interpolate(image.view(1, heads, h, w), size=(h2, w2), mode="bilinear",
                          align_corners=False).view(heads, h2 * w2)
    if dst_prefix != src_prefix:
        if src_prefix == 0:
            raise LinaBenchError("cannot create prefix gate values from a gate trained without a prefix")
        prefix = F.interpolate(prefix.unsqueeze(0), size=dst_prefix, mode="linear",
                               align_corners=False).squeeze(0) if dst_prefix else prefix[:, :0]
    return torch.cat([prefix, image], dim=1)[None, :, :, None].to(gate.dtype)


def adapt_state_dict(state_dict: dict[str, torch.Tensor], src_prefix: int, src_grid: tuple[int, int],
                     dst_prefix: int, dst_grid: tuple[int, int]) -> dict[str, torch.Tensor]:
    """A copy of ``state_dict`` (one module's or a whole model's) with every gate resampled."""
    return {name: resample_gate(t, src_prefix, src_grid, dst_prefix, dst_grid)
            if name.rsplit(".", 1)[-1] in GATE_SUFFIXES else t
            for name, t in state_dict.items()}

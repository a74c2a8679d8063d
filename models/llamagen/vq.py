"""LlamaGen's VQ image tokenizer (``tokenizer/tokenizer_image/vq_model.py``, ``VQModel``), natively.

Official parameter names (``encoder``, ``decoder``, ``quantize.embedding``, ``quantize.codebook_used``,
``quant_conv``, ``post_quant_conv``), so ``vq_ds16_c2i.pt`` loads strictly. lina-bench only decodes
codes to images; the encoder is built so that checkpoints load strictly, and never run.
diffusers' VQModel has the same taming-transformers architecture but other parameter names
(``down_blocks``, ``resnets``), so the blocks are written here with the official names.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CODEBOOK_USAGE_SLOTS = 65536  # the official ``codebook_used`` buffer's length (training statistics)


def normalize(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    """x + conv2(silu(norm2(conv1(silu(norm1(x)))))), with a 1x1 ``nin_shortcut`` when widths differ."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm1 = normalize(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = normalize(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.nin_shortcut(x) + h


class AttnBlock(nn.Module):
    """Single-head spatial self-attention with 1x1-conv ``q``, ``k``, ``v``, ``proj_out``: (B, C, H, W) -> same."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = normalize(channels)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(channels, channels, 1) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        y = self.norm(x)
        q, k, v = (conv(y).flatten(2).transpose(1, 2).unsqueeze(1) for conv in (self.q, self.k, self.v))
        o = F.scaled_dot_product_attention(q, k, v)  # (B, 1, HW, C), scale C^-0.5 as officially
        return x + self.proj_out(o.squeeze(1).transpose(1, 2).reshape(b, c, h, w))


class Resample(nn.Module):
    """The official ``Upsample`` (nearest x2, 3x3 conv) or ``Downsample`` (pad right/bottom, 3x3 stride-2 conv)."""

    def __init__(self, channels: int, up: bool) -> None:
        super().__init__()
        self.up = up
        self.conv = nn.Conv2d(channels, channels, 3, stride=1 if up else 2, padding=1 if up else 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest") if self.up else F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


def _level(block_in: int, block_out: int, num_blocks: int, with_attn: bool) -> tuple[nn.Module, int]:
    """One resolution level (``res`` blocks, ``attn`` blocks at the lowest resolution); returns it and its width."""
    level = nn.Module()
    level.res, level.attn = nn.ModuleList(), nn.ModuleList()
    for _ in range(num_blocks):
        level.res.append(ResnetBlock(block_in, block_out))
        block_in = block_out
        if with_attn:
            level.attn.append(AttnBlock(block_in))
    return level, block_in


def _middle(channels: int) -> nn.ModuleList:
    return nn.ModuleList([ResnetBlock(channels, channels), AttnBlock(channels), ResnetBlock(channels, channels)])


class Encoder(nn.Module):
    """The official encoder's modules (16x downsampling for 5 levels); held for strict loading only."""

    def __init__(self, ch: int, ch_mult: tuple[int, ...], z_channels: int, in_channels: int = 3,
                 num_res_blocks: int = 2) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)
        self.conv_blocks = nn.ModuleList()
        block_in = ch
        for i, mult in enumerate(ch_mult):
            last = i == len(ch_mult) - 1
            level, block_in = _level(block_in, ch * mult, num_res_blocks, with_attn=last)
            if not last:
                level.downsample = Resample(block_in, up=False)
            self.conv_blocks.append(level)
        self.mid = _middle(block_in)
        self.norm_out = normalize(block_in)
        self.conv_out = nn.Conv2d(block_in, z_channels, 3, padding=1)


class Decoder(nn.Module):
    """z (B, z_channels, h, w) -> image (B, 3, h * 2^(levels-1), w * 2^(levels-1)), values about [-1, 1]."""

    def __init__(self, ch: int, ch_mult: tuple[int, ...], z_channels: int, out_channels: int = 3,
                 num_res_blocks: int = 2) -> None:
        super().__init__()
        block_in = ch * ch_mult[-1]
        self.conv_in = nn.Conv2d(z_channels, block_in, 3, padding=1)
        self.mid = _middle(block_in)
        self.conv_blocks = nn.ModuleList()
        for i, mult in reversed(list(enumerate(ch_mult))):
            level, block_in = _level(block_in, ch * mult, num_res_blocks + 1, with_attn=i == len(ch_mult) - 1)
            if i != 0:
                level.upsample = Resample(block_in, up=True)
            self.conv_blocks.append(level)
        self.norm_out = normalize(block_in)
        self.conv_out = nn.Conv2d(block_in, out_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(z)
        for block in self.mid:
            h = block(h)
        for level in self.conv_blocks:
            for i, res in enumerate(level.res):
                h = res(h)
                if len(level.attn):
                    h = level.attn[i](h)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class VectorQuantizer(nn.Module):
    """The codebook ``embedding`` (codebook_size, embed_dim), l2-normalised on lookup as officially
    (``codebook_l2_norm``), and the official ``codebook_used`` buffer (training statistics, unused here)."""

    def __init__(self, codebook_size: int, embed_dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(codebook_size, embed_dim)
        self.register_buffer("codebook_used", torch.zeros(CODEBOOK_USAGE_SLOTS))

    def lookup(self, codes: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """codes (B, h*w) in raster order -> (B, embed_dim, h, w)."""
        z = F.normalize(self.embedding.weight, p=2, dim=-1)[codes]
        return z.view(codes.shape[0], *grid, -1).permute(0, 3, 1, 2).contiguous()


class VQModel(nn.Module):
    """LlamaGen's VQ-GAN: ``decode_code`` maps (B, h*w) codes to (B, 3, H, W) images in [-1, 1]."""

    def __init__(self, codebook_size: int = 16384, codebook_embed_dim: int = 8, z_channels: int = 256,
                 ch: int = 128, ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)) -> None:
        super().__init__()
        self.encoder = Encoder(ch, ch_mult, z_channels)
        self.decoder = Decoder(ch, ch_mult, z_channels)
        self.quantize = VectorQuantizer(codebook_size, codebook_embed_dim)
        self.quant_conv = nn.Conv2d(z_channels, codebook_embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(codebook_embed_dim, z_channels, 1)

    def decode_code(self, codes: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(self.quantize.lookup(codes, grid)))


class CodeDecoder(nn.Module):
    """The VQ decoder stage as one module: codes (B, h*w) -> images (B, 3, H, W) (for cost probes)."""

    def __init__(self, vq: VQModel, grid: tuple[int, int]) -> None:
        super().__init__()
        self.vq, self.grid = vq, grid

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.vq.decode_code(codes, self.grid)

"""MAR's KL-16 VAE (LTH14/mar ``models/vae.py``, the LDM KL-VAE at stride 16), also LINA/NOVA's ``AutoencoderKLMAR``.

The network is diffusers' VAE ``Encoder``/``Decoder`` (ResNet blocks, single-head attention, asymmetric-padding
downsampling, nearest upsampling: the LDM architecture), so the state dict uses diffusers' names -- the names
of LINA's ``AutoencoderKLMAR`` (``encoder.down_blocks.0.resnets.0.conv1.weight``, ...). MAR's official ``.ckpt``
uses LDM's names (``encoder.down.0.block.0.conv1.weight``, 1x1 convolutions for attention); :func:`ldm_to_diffusers`
renames them, and :meth:`KL16VAE.load_mar_checkpoint` loads such a file strictly.

Attention sits where LDM puts it: after every ResNet block of the encoder levels whose resolution (counted from
``resolution``, halved per level) is in ``attn_resolutions`` -- the last of the five levels at 256 px -- and in
the middle blocks; the decoder has none outside its middle block.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import torch
from diffusers.models.autoencoders.vae import Decoder, DiagonalGaussianDistribution, Encoder
from torch import nn

from lina_bench.api.checkpoints import load_strict, read_checkpoint, state_dict_in
from lina_bench.api.errors import LinaBenchError

LDM_RESNET = {"norm1": "norm1", "conv1": "conv1", "norm2": "norm2", "conv2": "conv2", "nin_shortcut": "conv_shortcut"}
LDM_ATTENTION = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}


class KL16VAE(nn.Module):
    """KL VAE: images (B, 3, H, W) in [-1, 1] <-> latents (B, embed_dim, H/s, W/s), s = 2^(len(ch_mult) - 1).

    ``ch`` x ``ch_mult`` are the widths of the levels (MAR: 128 x (1, 1, 2, 2, 4)); ``ch_mult[0]`` must be 1
    (LDM widens the stem to ``ch`` first, diffusers to ``ch * ch_mult[0]``: equal only then).
    """

    def __init__(self, embed_dim: int = 16, ch: int = 128, ch_mult: Sequence[int] = (1, 1, 2, 2, 4),
                 num_res_blocks: int = 2, attn_resolutions: Sequence[int] = (16,), resolution: int = 256) -> None:
        super().__init__()
        ch_mult = tuple(int(m) for m in ch_mult)
        if not ch_mult or ch_mult[0] != 1:
            raise LinaBenchError(f"KL16VAE: ch_mult must start with 1, got {list(ch_mult)}")
        if ch % 32:
            raise LinaBenchError(f"KL16VAE: ch must be a multiple of 32 (GroupNorm with 32 groups), got {ch}")
        widths = tuple(ch * m for m in ch_mult)
        down = tuple("AttnDownEncoderBlock2D" if resolution >> i in attn_resolutions else "DownEncoderBlock2D"
                     for i in range(len(ch_mult)))
        self.embed_dim, self.num_levels = embed_dim, len(ch_mult)
        self.encoder = Encoder(in_channels=3, out_channels=embed_dim, down_block_types=down,
                               block_out_channels=widths, layers_per_block=num_res_blocks, double_z=True)
        self.decoder = Decoder(in_channels=embed_dim, out_channels=3, up_block_types=("UpDecoderBlock2D",) * len(down),
                               block_out_channels=widths, layers_per_block=num_res_blocks)
        self.quant_conv = nn.Conv2d(2 * embed_dim, 2 * embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(embed_dim, embed_dim, 1)

    @classmethod
    def from_diffusers_config(cls, config: dict) -> KL16VAE:
        """The VAE of LINA/NOVA's ``AutoencoderKLMAR`` ``vae/config.json`` (``block_out_channels``,
        ``layers_per_block``, ``latent_channels``); that class puts attention in the last encoder level."""
        widths = [int(w) for w in config.get("block_out_channels", (128, 256, 512, 512))]
        unsupported = {k: config[k] for k, ok in (("in_channels", 3), ("out_channels", 3), ("double_z", True),
                                                  ("use_quant_conv", True), ("use_post_quant_conv", True),
                                                  ("norm_num_groups", 32), ("act_fn", "silu"))
                       if config.get(k, ok) != ok}
        if unsupported or any(w % widths[0] for w in widths):
            raise LinaBenchError(f"KL16VAE: unsupported AutoencoderKLMAR config {unsupported or widths}")
        return cls(embed_dim=int(config.get("latent_channels", 16)), ch=widths[0],
                   ch_mult=[w // widths[0] for w in widths], num_res_blocks=int(config.get("layers_per_block", 2)),
                   attn_resolutions=(256 >> (len(widths) - 1),), resolution=256)

    @property
    def stride(self) -> int:
        return 2 ** (self.num_levels - 1)

    def encode(self, images: torch.Tensor) -> DiagonalGaussianDistribution:
        """(B, 3, H, W) in [-1, 1] -> the posterior over (B, embed_dim, H/s, W/s) latents (``.mean``, ``.sample()``)."""
        return DiagonalGaussianDistribution(self.quant_conv(self.encoder(images)))

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, embed_dim, h, w) latents -> (B, 3, h*s, w*s) images, nominally in [-1, 1]."""
        return self.decoder(self.post_quant_conv(latents))

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        """The decoder (what sampling runs): see :meth:`decode`."""
        return self.decode(latents)

    def load_mar_checkpoint(self, path: str | Path) -> None:
        """Load MAR's official VAE file (``kl16.ckpt``: ``{"model": LDM state dict}``) strictly."""
        state = state_dict_in(read_checkpoint(path, "VAE checkpoint"), ("model",), path, "VAE checkpoint")
        load_strict(self, ldm_to_diffusers(state, self.num_levels), f"VAE checkpoint {path}")


def _rename_ldm_key(key: str, num_levels: int) -> str:
    """One LDM key -> diffusers' name (unchanged when it needs no renaming)."""
    part = r"(norm1|conv1|norm2|conv2|nin_shortcut)"
    if m := re.fullmatch(rf"(encoder|decoder)\.mid\.block_([12])\.{part}\.(weight|bias)", key):
        return f"{m[1]}.mid_block.resnets.{int(m[2]) - 1}.{LDM_RESNET[m[3]]}.{m[4]}"
    if m := re.fullmatch(r"(encoder|decoder)\.mid\.attn_1\.(norm|q|k|v|proj_out)\.(weight|bias)", key):
        return f"{m[1]}.mid_block.attentions.0.{LDM_ATTENTION[m[2]]}.{m[3]}"
    if m := re.fullmatch(rf"encoder\.down\.(\d+)\.block\.(\d+)\.{part}\.(weight|bias)", key):
        return f"encoder.down_blocks.{m[1]}.resnets.{m[2]}.{LDM_RESNET[m[3]]}.{m[4]}"
    if m := re.fullmatch(r"encoder\.down\.(\d+)\.attn\.(\d+)\.(norm|q|k|v|proj_out)\.(weight|bias)", key):
        return f"encoder.down_blocks.{m[1]}.attentions.{m[2]}.{LDM_ATTENTION[m[3]]}.{m[4]}"
    if m := re.fullmatch(r"encoder\.down\.(\d+)\.downsample\.conv\.(weight|bias)", key):
        return f"encoder.down_blocks.{m[1]}.downsamplers.0.conv.{m[2]}"
    # LDM numbers the decoder's levels from the finest; diffusers runs its up_blocks from the coarsest.
    if m := re.fullmatch(rf"decoder\.up\.(\d+)\.block\.(\d+)\.{part}\.(weight|bias)", key):
        return f"decoder.up_blocks.{num_levels - 1 - int(m[1])}.resnets.{m[2]}.{LDM_RESNET[m[3]]}.{m[4]}"
    if m := re.fullmatch(r"decoder\.up\.(\d+)\.upsample\.conv\.(weight|bias)", key):
        return f"decoder.up_blocks.{num_levels - 1 - int(m[1])}.upsamplers.0.conv.{m[2]}"
    return re.sub(r"^(encoder|decoder)\.norm_out\.", r"\1.conv_norm_out.", key)


def ldm_to_diffusers(state: dict[str, torch.Tensor], num_levels: int) -> dict[str, torch.Tensor]:
    """Rename an LDM KL-VAE state dict (MAR's ``kl16.ckpt``) to :class:`KL16VAE`'s names; attention's 1x1
    convolution kernels (C, C, 1, 1) become linear weights (C, C)."""
    out = {}
    for key, value in state.items():
        new = _rename_ldm_key(key, num_levels)
        if re.search(r"attentions\.\d+\.(to_q|to_k|to_v|to_out\.0)\.weight$", new) and value.dim() == 4:
            value = value[:, :, 0, 0]
        out[new] = value
    return out

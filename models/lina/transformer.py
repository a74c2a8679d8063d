"""NOVA's transformer (LINA repo, ``diffnext/models/transformers/transformer_nova*.py`` and
``vision_transformer*.py``): condition ("video") encoder, image transformer, diffusion head, embeddings.

* The condition encoder reads one frame of begin-of-video tokens (plus position embeddings) after the
  condition tokens (class label or text) and returns the frame's tokens: the image transformer's prefix.
* The image transformer's first ``depth // 2`` blocks see the prefix and only the visible (already
  generated) tokens; the rest see the prefix and every token, masked ones as the mask token.
* Every block's attention comes from the zoo (:data:`lina_bench.models.lina.config.SETTINGS`).
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from lina_bench.api import registry
from lina_bench.models import attention
from lina_bench.models.lina.config import Setting, TransformerConfig
from lina_bench.models.lina.diffusion_mlp import DiffusionMLP
from lina_bench.models.lina.layers import (
    Block,
    LabelEmbed,
    MaskEmbed,
    PatchEmbed,
    Rope3D,
    VideoPosEmbed,
    sincos_2d,
)

Rotation = tuple[torch.Tensor, torch.Tensor]


class VisionTransformer(nn.Module):
    """Blocks over [prefix tokens, h x w tokens] and a final LayerNorm of the h x w tokens.

    ``variants`` gives each block's zoo attention; the first ``len(variants) // 2`` blocks see, when
    ``visible`` ids are passed, only those tokens. ``rotary``: 3D RoPE on q and k (prefix at position 0).
    """

    def __init__(self, variants: list[str], embed_dim: int, num_heads: int, patch_size: int, image_dim: int,
                 grid: tuple[int, int], prefix: int, rotary: bool = False, backend: str = "auto",
                 mlp_ratio: float = 4) -> None:
        super().__init__()
        self.embed_dim, self.grid, self.prefix = embed_dim, grid, prefix
        self.patch_embed = PatchEmbed(image_dim, embed_dim, patch_size)
        self.blocks = nn.ModuleList(
            Block(attention.build(v, dim=embed_dim, num_heads=num_heads, grid=grid, prefix=prefix,
                                  **kernel_options(v, backend)), embed_dim, mlp_ratio) for v in variants)
        self.norm = nn.LayerNorm(embed_dim)
        self.encoder_depth = len(variants) // 2
        self.rope = Rope3D(embed_dim // num_heads) if rotary else None

    def forward(self, x: torch.Tensor, c: torch.Tensor, visible: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, h*w, C) tokens, c (B, P, C) prefix, visible (B, n, 1) token ids or None (every block
        sees every token) -> (B, h*w, C)."""
        prefix = c.shape[1]
        full = partial = None
        if self.rope is not None:
            pos = Rope3D.positions(self.grid).to(x.device).expand(x.shape[0], -1, -1)
            full = self.rope.rotation(pos, prefix)
            if visible is not None:
                partial = self.rope.rotation(pos.gather(1, visible.expand(-1, -1, 3)), prefix)
        blocks = self.blocks
        if visible is not None:
            seen = torch.cat([c, x.gather(1, visible.expand(-1, -1, x.shape[-1]))], dim=1)
            for block in self.blocks[:self.encoder_depth]:
                seen = block(seen, partial)
            c, seen = seen.split((prefix, seen.shape[1] - prefix), dim=1)
            x = x.scatter(1, visible.expand(-1, -1, x.shape[-1]), seen)
            blocks = self.blocks[self.encoder_depth:]
        x = torch.cat([c, x], dim=1)
        for block in blocks:
            x = block(x, full)
        return self.norm(x[:, prefix:])


def kernel_options(variant: str, backend: str) -> dict[str, str]:
    """``backend`` for the zoo variants that choose their attention kernel (the linear family)."""
    takes_backend = "backend" in inspect.signature(registry.attention.get(variant)).parameters
    return {"backend": backend} if takes_backend else {}


def condition_prefix(cond: torch.Tensor, bos: torch.Tensor, video_encoder: VisionTransformer,
                     video_pos_embed: VideoPosEmbed | None) -> torch.Tensor:
    """Condition embeddings (B, P, C) -> the image transformer's prefix (B, h'*w', C): the condition
    encoder over one frame of begin-of-video tokens (with the frame's position embedding, unless RoPE)."""
    grid = video_encoder.grid
    x = bos.expand(cond.shape[0], grid[0] * grid[1], -1)
    return video_encoder(x if video_pos_embed is None else video_pos_embed(x), cond)


class NovaTransformer(nn.Module):
    """The official ``NOVATransformer3DModel`` for one frame (class- or text-to-image), with its names."""

    def __init__(self, config: TransformerConfig, setting: Setting, num_classes: int = 1000,
                 backend: str = "auto") -> None:
        super().__init__()
        self.config = config
        patch, dim, rotary = config.patch_size, config.image["embed_dim"], config.rotary_pos_embed
        video_dim = config.video["embed_dim"]
        prefix = 1 if config.text_token_dim is None else int(config.text_token_len)
        self.video_encoder = VisionTransformer(
            [setting.encoder] * config.video["depth"], video_dim, config.video["num_heads"], 2 * patch,
            config.image_dim, config.video_grid, prefix, rotary, backend)
        depth, half = config.image["depth"], config.image["depth"] // 2
        decoder = setting.decoder if config.image.get("image_model", True) else setting.encoder
        self.image_encoder = VisionTransformer(
            [setting.encoder] * half + [decoder] * (depth - half), dim, config.image["num_heads"], patch,
            config.image_dim, config.grid, config.video_grid[0] * config.video_grid[1], rotary, backend)
        self.image_decoder = DiffusionMLP(config.head["depth"], config.head["embed_dim"], dim, patch,
                                          config.image_dim)
        self.mask_embed = MaskEmbed(dim)
        if config.text_token_dim is None:
            self.label_embed = LabelEmbed(dim, num_classes)
        else:
            self.text_embed = TextEmbed(config.text_token_dim, dim, int(config.text_token_len))
        self.video_pos_embed = None if rotary else VideoPosEmbed(video_dim, config.video_grid)

    def condition_tokens(self, cond: torch.Tensor) -> torch.Tensor:
        """Condition embeddings (B, P, C) (label or text) -> the image transformer's prefix (B, h'*w', C)."""
        return condition_prefix(cond, self.mask_embed.bos_token, self.video_encoder, self.video_pos_embed)

    def image_tokens(self, latents: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Latents (B, C, H, W) and mask (B, h*w, 1) (1 = not generated yet) -> the image transformer's
        input (B, h*w, dim), masked tokens replaced and position embedding added (unless RoPE)."""
        x = self.mask_embed(self.image_encoder.patch_embed(latents), mask)
        if self.config.rotary_pos_embed:
            return x
        return x + sincos_2d(x.shape[-1], self.config.grid).to(x)


class TextEmbed(nn.Module):
    """Text-encoder states (B, L, token_dim) -> LayerNorm(proj(.)) (B, L, dim); ``weight`` holds the
    learned padding embeddings (512 positions) that fill the positions after each prompt."""

    def __init__(self, token_dim: int, embed_dim: int, num_tokens: int) -> None:
        super().__init__()
        self.num_tokens = num_tokens
        self.proj, self.norm = nn.Linear(token_dim, embed_dim), nn.LayerNorm(embed_dim)
        self.register_buffer("weight", torch.randn(512, token_dim) * 0.02)

    def fill(self, states: torch.Tensor, lengths: list[int]) -> torch.Tensor:
        """Text-encoder states (B, L, token_dim), L >= num_tokens, and each prompt's token count -> (B,
        num_tokens, token_dim): the padding embeddings with row i's first ``lengths[i]`` replaced by its states."""
        x = self.weight[:self.num_tokens].expand(len(states), -1, -1).clone()
        for i, n in enumerate(lengths):
            x[i, :n] = states[i, :n].to(x.dtype)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x))

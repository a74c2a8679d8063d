"""MAR's masked-autoregressive transformer (LTH14/mar ``models/mar.py``, class ``MAR``), with the official
parameter names so ``checkpoint-last.pth`` loads strictly.

The encoder sees the ``buffer_size`` class-embedding tokens and the visible (already generated) tokens only;
the decoder sees the buffer and every position (mask tokens where nothing is generated yet) and returns one
condition vector per image token for the diffusion head (``diffloss``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from timm.layers import Mlp
from torch import nn

from lina_bench.api.errors import LinaBenchError
from lina_bench.models import attention
from lina_bench.models.mar.diffloss import DiffLoss


@dataclass(frozen=True)
class MARConfig:
    """The official ``MAR`` constructor's arguments that shape the network (names as officially)."""

    img_size: int = 256
    vae_stride: int = 16
    patch_size: int = 1
    encoder_embed_dim: int = 1024
    encoder_depth: int = 16
    encoder_num_heads: int = 16
    decoder_embed_dim: int = 1024
    decoder_depth: int = 16
    decoder_num_heads: int = 16
    mlp_ratio: float = 4.0
    vae_embed_dim: int = 16
    class_num: int = 1000
    buffer_size: int = 64
    diffloss_d: int = 3
    diffloss_w: int = 1024

    @property
    def seq_side(self) -> int:
        return self.img_size // self.vae_stride // self.patch_size

    @property
    def seq_len(self) -> int:
        return self.seq_side ** 2

    @property
    def token_embed_dim(self) -> int:
        return self.vae_embed_dim * self.patch_size ** 2


class Block(nn.Module):
    """Pre-norm ViT block (timm's ``Block`` layout: norm1, attn, norm2, mlp.fc1/fc2) around a zoo attention.

    Written out because timm's ``Block`` calls its attention with ``attn_mask``/``is_causal``, which the zoo's
    modules do not take."""

    def __init__(self, attn: nn.Module, dim: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = attn
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class MAR(nn.Module):
    """The transformer and diffusion head; ``forward`` is one AR step of the transformer:
    tokens (B, L, Ct), mask (B, L) (1 = not generated yet; the same count per row), class embeddings (B, De)
    -> conditions z (B, L, Dd) for the diffusion head."""

    def __init__(self, cfg: MARConfig, attention_name: str = "softmax", attention_options: dict | None = None,
                 diffusion_steps: int = 100) -> None:
        super().__init__()
        if cfg.seq_side < 1 or cfg.img_size % (cfg.vae_stride * cfg.patch_size):
            raise LinaBenchError(f"img_size {cfg.img_size} is not a multiple of vae_stride x patch_size "
                                 f"({cfg.vae_stride} x {cfg.patch_size})")
        self.cfg = cfg
        enc, dec, grid = cfg.encoder_embed_dim, cfg.decoder_embed_dim, (cfg.seq_side, cfg.seq_side)
        length = cfg.seq_len + cfg.buffer_size

        def blocks(dim: int, heads: int, depth: int) -> nn.ModuleList:
            return nn.ModuleList(
                Block(attention.build(attention_name, dim=dim, num_heads=heads, grid=grid, prefix=cfg.buffer_size,
                                      **(attention_options or {})), dim, cfg.mlp_ratio) for _ in range(depth))

        self.class_emb = nn.Embedding(cfg.class_num, enc)
        self.fake_latent = nn.Parameter(torch.zeros(1, enc))
        self.z_proj = nn.Linear(cfg.token_embed_dim, enc)
        self.z_proj_ln = nn.LayerNorm(enc, eps=1e-6)
        self.encoder_pos_embed_learned = nn.Parameter(torch.zeros(1, length, enc))
        self.encoder_blocks = blocks(enc, cfg.encoder_num_heads, cfg.encoder_depth)
        self.encoder_norm = nn.LayerNorm(enc, eps=1e-6)
        self.decoder_embed = nn.Linear(enc, dec)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dec))
        self.decoder_pos_embed_learned = nn.Parameter(torch.zeros(1, length, dec))
        self.decoder_blocks = blocks(dec, cfg.decoder_num_heads, cfg.decoder_depth)
        self.decoder_norm = nn.LayerNorm(dec, eps=1e-6)
        self.diffusion_pos_embed_learned = nn.Parameter(torch.zeros(1, cfg.seq_len, dec))
        self.diffloss = DiffLoss(cfg.token_embed_dim, dec, cfg.diffloss_d, cfg.diffloss_w, diffusion_steps)

    def forward_mae_encoder(self, tokens: torch.Tensor, mask: torch.Tensor, class_embedding: torch.Tensor
                            ) -> torch.Tensor:
        """(B, L, Ct) tokens, (B, L) mask, (B, De) -> (B, buffer + visible, De)."""
        x = self.z_proj(tokens)
        b, _, dim = x.shape
        buffer = class_embedding.unsqueeze(1).expand(b, self.cfg.buffer_size, dim)
        x = self.z_proj_ln(torch.cat([buffer, x], dim=1) + self.encoder_pos_embed_learned)
        keep = torch.cat([mask.new_zeros(b, self.cfg.buffer_size), mask], dim=1) == 0
        x = x[keep].reshape(b, -1, dim)
        # The visible tokens form no grid and their number changes per AR step: the encoder's attention (softmax,
        # which ignores the grid) is told the current count so the zoo's shape check holds.
        visible = x.shape[1] - self.cfg.buffer_size
        for block in self.encoder_blocks:
            block.attn.grid = (1, visible)
            x = block(x)
        return self.encoder_norm(x)

    def forward_mae_decoder(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, buffer + visible, De), (B, L) mask -> (B, L, Dd): mask tokens padded in, positions added."""
        x = self.decoder_embed(x)
        b = x.shape[0]
        keep = torch.cat([mask.new_zeros(b, self.cfg.buffer_size), mask], dim=1) == 0
        padded = self.mask_token.to(x.dtype).expand(b, keep.shape[1], -1).clone()
        padded[keep] = x.reshape(-1, x.shape[-1])
        x = padded + self.decoder_pos_embed_learned
        for block in self.decoder_blocks:
            x = block(x)
        x = self.decoder_norm(x)
        return x[:, self.cfg.buffer_size:] + self.diffusion_pos_embed_learned

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor, class_embedding: torch.Tensor) -> torch.Tensor:
        return self.forward_mae_decoder(self.forward_mae_encoder(tokens, mask, class_embedding), mask)

    def patchify(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) VAE latents -> (B, L, C p^2) tokens, row-major, channel-major within a patch."""
        b, c, h, w = latents.shape
        p = self.cfg.patch_size
        x = latents.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
        return x.reshape(b, (h // p) * (w // p), c * p * p)

    def unpatchify(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, L, C p^2) tokens -> (B, C, H, W) VAE latents (inverse of :meth:`patchify`)."""
        b, p, s, c = tokens.shape[0], self.cfg.patch_size, self.cfg.seq_side, self.cfg.vae_embed_dim
        x = tokens.reshape(b, s, s, c, p, p).permute(0, 3, 1, 4, 2, 5)
        return x.reshape(b, c, s * p, s * p)

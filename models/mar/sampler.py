"""MAR's sampler (LTH14/mar ``MAR.sample_tokens``): random generation order, cosine schedule of masked tokens
over ``ar_steps`` steps, the diffusion head on the tokens each step reveals, CFG rising linearly (or constant).

Random numbers come from a :class:`TokenRng`: :class:`OfficialRng` draws them for the whole batch in the
official order (numpy's global-style ``RandomState`` for the orders, one torch CPU generator for the noise), so
that the images equal the official sampler's; :class:`PerSampleRng` gives every image its own generator, so
that an image depends only on its (label, seed).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from lina_bench.models.mar.transformer import MAR


class TokenRng:
    """Random numbers of one sampling run over a batch of ``bsz`` images."""

    def orders(self, seq_len: int) -> torch.Tensor:
        """(bsz, seq_len) generation orders (permutations of the token positions)."""
        raise NotImplementedError

    def normal(self, per_image: int, dim: int, factor: int) -> torch.Tensor:
        """(bsz * per_image, dim) standard normals, image-major; ``factor``: rows per token the official
        sampler draws (it keeps the first bsz * per_image)."""
        raise NotImplementedError


class OfficialRng(TokenRng):
    """The official sampler's draws after ``torch.manual_seed(seed); np.random.seed(seed)`` (CPU)."""

    def __init__(self, bsz: int, seed: int) -> None:
        self.bsz, self.numpy, self.torch = bsz, np.random.RandomState(seed), torch.Generator().manual_seed(seed)

    def orders(self, seq_len: int) -> torch.Tensor:
        rows = []
        for _ in range(self.bsz):
            order = np.arange(seq_len)
            self.numpy.shuffle(order)
            rows.append(order)
        return torch.from_numpy(np.array(rows)).long()

    def normal(self, per_image: int, dim: int, factor: int) -> torch.Tensor:
        rows = self.bsz * per_image
        return torch.randn(factor * rows, dim, generator=self.torch)[:rows]


class PerSampleRng(TokenRng):
    """One torch generator per image, seeded with that image's seed: orders, then every noise draw."""

    def __init__(self, seeds: Sequence[int]) -> None:
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]

    def orders(self, seq_len: int) -> torch.Tensor:
        return torch.stack([torch.randperm(seq_len, generator=g) for g in self.generators])

    def normal(self, per_image: int, dim: int, factor: int) -> torch.Tensor:
        return torch.cat([torch.randn(per_image, dim, generator=g) for g in self.generators])


def next_mask_len(step: int, ar_steps: int, seq_len: int, remaining: int) -> int:
    """Tokens left masked after AR ``step`` when ``remaining`` are masked before it: the cosine schedule, at
    least one revealed and one kept (the last step then reveals all, whatever this says)."""
    return max(1, min(remaining - 1, math.floor(seq_len * np.cos(math.pi / 2.0 * (step + 1) / ar_steps))))


def visible_counts(seq_len: int, ar_steps: int) -> list[int]:
    """Tokens the encoder sees (already generated) at each AR step."""
    remaining, counts = seq_len, []
    for step in range(ar_steps):
        counts.append(seq_len - remaining)
        remaining = next_mask_len(step, ar_steps, seq_len, remaining)
    return counts


@torch.no_grad()
def sample_tokens(model: MAR, labels: torch.Tensor, rng: TokenRng, ar_steps: int, guidance: float,
                  guidance_schedule: str, temperature: float) -> torch.Tensor:
    """(B,) labels -> (B, C, h, w) VAE latents (before the 0.2325 scaling), as ``MAR.sample_tokens``."""
    cfg, bsz = model.cfg, len(labels)
    device, dtype = labels.device, model.z_proj.weight.dtype
    guided = guidance != 1.0
    mask = torch.ones(bsz, cfg.seq_len, device=device, dtype=dtype)
    tokens = torch.zeros(bsz, cfg.seq_len, cfg.token_embed_dim, device=device, dtype=dtype)
    orders = rng.orders(cfg.seq_len).to(device)
    class_embedding = model.class_emb(labels)
    if guided:
        class_embedding = torch.cat([class_embedding, model.fake_latent.expand(bsz, -1)])
    for step in range(ar_steps):
        z = model(torch.cat([tokens, tokens]) if guided else tokens, torch.cat([mask, mask]) if guided else mask,
                  class_embedding)
        mask_len = next_mask_len(step, ar_steps, cfg.seq_len, int(mask[0].sum()))
        mask_next = torch.zeros_like(mask).scatter_(1, orders[:, :mask_len], 1.0)
        to_pred = mask.bool() if step >= ar_steps - 1 else mask.bool() ^ mask_next.bool()
        mask = mask_next
        where = to_pred.nonzero(as_tuple=True)
        z = torch.cat([z[:bsz][where], z[bsz:][where]]) if guided else z[where]
        if not guided:
            scale = None
        elif guidance_schedule == "linear":  # float32 arithmetic as officially (mask_len is a float32 tensor)
            scale = 1 + (guidance - 1) * (cfg.seq_len - torch.tensor([float(mask_len)])) / cfg.seq_len
            scale = scale.to(device=device, dtype=dtype)
        else:
            scale = guidance
        per_image = int(to_pred[0].sum())
        latents = model.diffloss.sample(
            z, lambda factor, n=per_image: rng.normal(n, cfg.token_embed_dim, factor).to(device, dtype),
            temperature, scale)
        tokens[where] = latents
    return model.unpatchify(tokens)

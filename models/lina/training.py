"""NOVA's training objective (LINA repo, ``Transformer3DModel.train_video`` and ``get_losses``, class-to-image).

Per token, flow matching: x_t = sigma n + (1 - sigma) x with sigma = s / (1 + (shift - 1) s),
s = (T - k) / T, k = int(T sigmoid(N(0, 1))) drawn per token; the head predicts n - x. The squared error,
averaged over channels, is summed over the masked tokens of ``repeat`` copies of the batch and divided by
their count. Random numbers in the official order: the noise of all copies, then the logit-normal draws.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lina_bench.models.lina.transformer import NovaTransformer


def training_loss(transformer: NovaTransformer, latents: torch.Tensor, labels: torch.Tensor, visible: torch.Tensor,
                  generator: torch.Generator | None = None, repeat: int = 4, num_train_timesteps: int = 1000,
                  shift: float = 1.0) -> torch.Tensor:
    """latents (B, C, H, W) (scaled as the transformer sees them), labels (B,) (the null class for dropped
    labels), visible (B, n, 1) ids of the unmasked tokens -> the scalar loss."""
    tr = transformer
    b, n_tokens = len(latents), tr.config.grid[0] * tr.config.grid[1]
    mask = torch.ones(b, n_tokens, 1, dtype=latents.dtype, device=latents.device).scatter(1, visible, 0.0)
    prefix = tr.condition_tokens(tr.label_embed(labels))
    z = tr.image_encoder(tr.image_tokens(latents, mask), prefix, visible).repeat(repeat, 1, 1)
    x = tr.image_encoder.patch_embed.patchify(latents).repeat(repeat, 1, 1)
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    k = torch.normal(0, 1, z.shape[:2], generator=generator).sigmoid_().mul_(num_train_timesteps).long()
    s = (num_train_timesteps - k).float() / num_train_timesteps
    sigma = (shift * s / (1 + (shift - 1) * s)).to(x)
    x_t = sigma.unsqueeze(-1) * noise + (1 - sigma.unsqueeze(-1)) * x
    pred = tr.image_decoder(x_t, (sigma * num_train_timesteps).to(x.device), z)
    loss = F.mse_loss(pred.float(), (noise - x).float(), reduction="none").mean(-1, keepdim=True)
    weight = mask.to(loss.dtype).repeat(repeat, 1, 1)
    return (loss * weight / (weight.sum() + 1e-5)).sum()

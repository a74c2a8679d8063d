"""LlamaGen's raster-order sampler (``autoregressive/models/generate.py``): CFG on logits, temperature,
top-k / top-p filtering, one multinomial draw per token.

``draw`` decides where the randomness comes from: :func:`global_draw` is the official batched
``torch.multinomial`` on the global generator; :func:`per_sample_draw` gives every row its own
``torch.Generator`` so that a sample depends only on its (label, seed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from lina_bench.models.llamagen.gpt import Transformer

Draw = Callable[[torch.Tensor], torch.Tensor]  # probs (B, V) -> token ids (B, 1)


@dataclass(frozen=True)
class SamplingOptions:
    """The official sampling knobs: ``cfg_scale`` (guidance), ``temperature``, ``top_k``, ``top_p``."""

    cfg_scale: float = 4.0
    temperature: float = 1.0
    top_k: int = 2000
    top_p: float = 1.0


def filter_top_k_top_p(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Set to -inf, in place, the logits (B, V) outside the top ``top_k`` (when > 0) and outside the smallest
    set whose probability reaches ``top_p`` (when < 1; the token crossing the threshold is kept)."""
    if top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]))[0][..., -1, None]
        logits[logits < kth] = -float("inf")
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        remove = sorted_logits.softmax(dim=-1).cumsum(dim=-1) > top_p
        remove[..., 1:] = remove[..., :-1].clone()
        remove[..., 0] = False
        logits[remove.scatter(1, order, remove)] = -float("inf")
    return logits


def token_probs(logits: torch.Tensor, options: SamplingOptions) -> torch.Tensor:
    """Logits (B, V) -> sampling probabilities after temperature and filtering, as the official ``sample``."""
    logits = logits / max(options.temperature, 1e-5)
    if options.top_k > 0 or options.top_p < 1.0:
        logits = filter_top_k_top_p(logits, options.top_k, options.top_p)
    return logits.softmax(dim=-1)


def global_draw(probs: torch.Tensor) -> torch.Tensor:
    """The official draw: one batched multinomial on torch's global generator."""
    return torch.multinomial(probs, num_samples=1)


def per_sample_draw(seeds: Sequence[int]) -> Draw:
    """A draw where row i uses its own generator seeded with ``seeds[i]`` (batch-independent samples)."""
    generators = [torch.Generator().manual_seed(int(s)) for s in seeds]

    def draw(probs: torch.Tensor) -> torch.Tensor:
        rows = [torch.multinomial(p[None].cpu(), 1, generator=g) for p, g in zip(probs, generators, strict=True)]
        return torch.cat(rows).to(probs.device)

    return draw


def guided(logits: torch.Tensor, cfg_scale: float) -> torch.Tensor:
    """CFG on (2B, V) logits, conditional rows first: uncond + (cond - uncond) * cfg_scale."""
    cond, uncond = logits.chunk(2)
    return uncond + (cond - uncond) * cfg_scale


@torch.no_grad()
def generate(gpt: Transformer, labels: torch.Tensor, options: SamplingOptions, draw: Draw) -> torch.Tensor:
    """Sample block_size image tokens for labels (B,) -> codes (B, block_size), as the official ``generate``:
    under CFG (cfg_scale > 1) the batch is [labels, null class] and every step runs 2B rows."""
    cfg = options.cfg_scale > 1.0
    cond = torch.cat([labels, torch.full_like(labels, gpt.args.num_classes)]) if cfg else labels
    caches = gpt.new_caches(len(cond))

    def next_token(logits: torch.Tensor) -> torch.Tensor:
        return draw(token_probs(guided(logits, options.cfg_scale) if cfg else logits, options))

    tokens = [next_token(gpt.prefill(cond, caches))]
    for pos in range(1, gpt.args.block_size):
        x = torch.cat([tokens[-1], tokens[-1]]) if cfg else tokens[-1]
        tokens.append(next_token(gpt.decode(x, pos, caches)))
    return torch.cat(tokens, dim=1)

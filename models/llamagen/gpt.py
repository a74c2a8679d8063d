"""LlamaGen's class-conditional GPT (FoundationVision/LlamaGen ``autoregressive/models/gpt.py``), natively.

Parameter names are the official ones (``cls_embedding.embedding_table``, ``tok_embeddings``,
``layers.N.{attention.wqkv, attention.wo, feed_forward.w1/w2/w3, attention_norm, ffn_norm}``, ``norm``,
``output``), so official checkpoints load strictly. The sequence is one class token (position 0)
followed by the image tokens in raster order (positions 1..); 2D RoPE as officially: a table of
``cls_token_num`` zero rows (condition positions: their rotated q and k are zero) then the h x w grid
(first half of each head's pairs rotated by the row, second half by the column).

Attention is either the official softmax attention (decoded with a KV cache) or the zoo's ``lasad``
(decayed linear attention, decoded with its recurrent form; it has no RoPE: position enters through
the 2D decay). Three entry points: ``forward`` (the parallel, teacher-forced form), ``prefill`` (the
class token) and ``decode`` (one image token), the last two on per-layer caches from ``new_caches``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lina_bench.api.attention import AttentionModule
from lina_bench.api.errors import LinaBenchError
from lina_bench.models import attention as zoo
from lina_bench.models.attention.lasad import LasadAttention
from lina_bench.models.llamagen.decoding import KVCache, RecurrentState, lasad_step

# The official GPT_models sizes: (n_layer, n_head, dim).
GPT_SIZES: dict[str, tuple[int, int, int]] = {
    "GPT-B": (12, 12, 768), "GPT-L": (24, 16, 1024), "GPT-XL": (36, 20, 1280), "GPT-XXL": (48, 24, 1536),
    "GPT-XXXL": (48, 40, 2560), "GPT-1B": (22, 32, 2048), "GPT-3B": (24, 32, 3200), "GPT-7B": (32, 32, 4096),
}
ATTENTIONS = ("softmax", "lasad")


@dataclass(frozen=True)
class GPTArgs:
    """The official ``ModelArgs`` fields that shape a c2i model (dropouts are training-only and omitted)."""

    dim: int
    n_layer: int
    n_head: int
    n_kv_head: int | None = None
    multiple_of: int = 256
    ffn_dim_multiplier: float | None = None
    rope_base: float = 10000.0
    norm_eps: float = 1e-5
    num_classes: int = 1000
    class_dropout_prob: float = 0.1
    vocab_size: int = 16384
    cls_token_num: int = 1
    block_size: int = 256

    @property
    def grid_size(self) -> int:
        side = int(round(self.block_size**0.5))
        if side * side != self.block_size:
            raise LinaBenchError(f"block_size must be a square number of tokens, got {self.block_size}")
        return side

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_head


def rope_2d_table(grid_size: int, head_dim: int, base: float, cls_token_num: int) -> torch.Tensor:
    """(cls_token_num + grid_size^2, head_dim // 2, 2) cos/sin: zero rows for the condition tokens, then
    per grid cell the row angles on the first head_dim // 4 pairs and the column angles on the rest."""
    half = head_dim // 2
    freqs = 1.0 / (base ** (torch.arange(0, half, 2)[: half // 2].float() / half))
    angles = torch.outer(torch.arange(grid_size, dtype=torch.float32), freqs)  # (g, head_dim // 4)
    grid = torch.cat([angles[:, None].expand(-1, grid_size, -1), angles[None].expand(grid_size, -1, -1)], dim=-1)
    table = torch.stack([grid.cos(), grid.sin()], dim=-1).flatten(0, 1)
    return torch.cat([torch.zeros(cls_token_num, head_dim // 2, 2), table])


def apply_rope(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive pairs of x (B, N, H, d) by table (N, d // 2, 2) (cos, sin); computed in float32."""
    pairs = x.float().unflatten(-1, (-1, 2))
    cos, sin = table[None, :, None, :, 0], table[None, :, None, :, 1]
    a, b = pairs[..., 0], pairs[..., 1]
    return torch.stack([a * cos - b * sin, b * cos + a * sin], dim=-1).flatten(3).type_as(x)


class LabelEmbedder(nn.Module):
    """Class labels (B,) -> (B, 1, C); row ``num_classes`` is the CFG null class (when dropout_prob > 0)."""

    def __init__(self, num_classes: int, hidden_size: int, dropout_prob: float) -> None:
        super().__init__()
        self.embedding_table = nn.Embedding(num_classes + (dropout_prob > 0), hidden_size)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        return self.embedding_table(labels).unsqueeze(1)


class FeedForward(nn.Module):
    """SwiGLU: w2(silu(w1 x) * w3 x), hidden width 2/3 * 4C (times ffn_dim_multiplier) rounded up to multiple_of."""

    def __init__(self, args: GPTArgs) -> None:
        super().__init__()
        hidden = int(2 * 4 * args.dim / 3)
        if args.ffn_dim_multiplier is not None:
            hidden = int(args.ffn_dim_multiplier * hidden)
        hidden = -(-hidden // args.multiple_of) * args.multiple_of
        self.w1 = nn.Linear(args.dim, hidden, bias=False)
        self.w3 = nn.Linear(args.dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, args.dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class LlamaGenAttention(AttentionModule):
    """The official causal softmax attention with 2D RoPE: (B, N, C) -> (B, N, C), N = 1 + h*w.

    Parameters ``wqkv`` (C -> (H + 2 H_kv) d, no bias) and ``wo``; grouped keys/values when n_kv_head < n_head.
    """

    def __init__(self, args: GPTArgs) -> None:
        g = args.grid_size
        super().__init__(args.dim, args.n_head, (g, g), prefix=1)
        self.n_kv_head = args.n_kv_head or args.n_head
        self.wqkv = nn.Linear(args.dim, (args.n_head + 2 * self.n_kv_head) * self.head_dim, bias=False)
        self.wo = nn.Linear(args.dim, args.dim, bias=False)
        self.register_buffer("rope", rope_2d_table(g, self.head_dim, args.rope_base, args.cls_token_num),
                             persistent=False)

    def _qkv(self, x: torch.Tensor, positions: slice) -> tuple[torch.Tensor, ...]:
        """Rotated (B, H, n, d) queries and (B, H_kv, n, d) keys, values for x (B, n, C) at ``positions``."""
        b, n, _ = x.shape
        kv = self.n_kv_head * self.head_dim
        q, k, v = self.wqkv(x).split([self.dim, kv, kv], dim=-1)
        rope = self.rope[positions]
        q = apply_rope(q.view(b, n, self.num_heads, self.head_dim), rope)
        k = apply_rope(k.view(b, n, self.n_kv_head, self.head_dim), rope)
        return q.transpose(1, 2), k.transpose(1, 2), v.view(b, n, self.n_kv_head, self.head_dim).transpose(1, 2)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> torch.Tensor:
        repeat = self.num_heads // self.n_kv_head
        k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return self.wo(o.transpose(1, 2).flatten(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self._attend(*self._qkv(x, slice(0, x.shape[1])), causal=True)

    def new_cache(self, batch: int, max_len: int, dtype: torch.dtype) -> KVCache:
        shape = (batch, self.n_kv_head, max_len, self.head_dim)
        return KVCache(self.wo.weight.new_zeros(shape, dtype=dtype), self.wo.weight.new_zeros(shape, dtype=dtype))

    def step(self, x: torch.Tensor, pos: int, cache: KVCache) -> torch.Tensor:
        """The token x (B, 1, C) at position ``pos``: writes its key and value to the cache's slot ``pos``
        and attends to slots 0..pos. Returns (B, 1, C)."""
        q, k, v = self._qkv(x, slice(pos, pos + 1))
        cache.k[:, :, pos:pos + 1] = k
        cache.v[:, :, pos:pos + 1] = v
        return self._attend(q, cache.k[:, :, :pos + 1], cache.v[:, :, :pos + 1], causal=False)


Cache = KVCache | RecurrentState


class TransformerBlock(nn.Module):
    """Pre-norm block: x + attention(attention_norm(x)), then + feed_forward(ffn_norm(.))."""

    def __init__(self, args: GPTArgs, variant: str, variant_options: dict[str, Any]) -> None:
        super().__init__()
        if variant == "softmax":
            self.attention: AttentionModule = LlamaGenAttention(args)
        else:
            g = args.grid_size
            self.attention = zoo.build(variant, dim=args.dim, num_heads=args.n_head, grid=(g, g), prefix=1,
                                       **variant_options)
        self.feed_forward = FeedForward(args)
        self.attention_norm = nn.RMSNorm(args.dim, eps=args.norm_eps)
        self.ffn_norm = nn.RMSNorm(args.dim, eps=args.norm_eps)

    def _out(self, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        h = x + attended
        return h + self.feed_forward(self.ffn_norm(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._out(x, self.attention(self.attention_norm(x)))

    def step(self, x: torch.Tensor, pos: int, cache: Cache) -> torch.Tensor:
        """One token x (B, 1, C) at sequence position ``pos`` through the block, updating ``cache``."""
        y = self.attention_norm(x)
        if isinstance(self.attention, LasadAttention):
            return self._out(x, lasad_step(self.attention, y, pos, cache))
        return self._out(x, self.attention.step(y, pos, cache))


class Transformer(nn.Module):
    """LlamaGen's c2i GPT with ``variant`` attention ("softmax" | "lasad")."""

    def __init__(self, args: GPTArgs, variant: str = "softmax", variant_options: dict[str, Any] | None = None
                 ) -> None:
        super().__init__()
        if variant not in ATTENTIONS:
            raise LinaBenchError(f"llamagen attention must be one of {', '.join(ATTENTIONS)}, got {variant!r}")
        if args.dim % args.n_head or (args.n_kv_head and args.n_head % args.n_kv_head):
            raise LinaBenchError(f"dim ({args.dim}) must be a multiple of n_head ({args.n_head}), and n_head of "
                                 f"n_kv_head ({args.n_kv_head})")
        if variant == "lasad" and args.n_kv_head not in (None, args.n_head):
            raise LinaBenchError("n_kv_head (grouped keys and values) applies to softmax attention only")
        self.args, self.variant = args, variant
        self.cls_embedding = LabelEmbedder(args.num_classes, args.dim, args.class_dropout_prob)
        self.tok_embeddings = nn.Embedding(args.vocab_size, args.dim)
        self.layers = nn.ModuleList(TransformerBlock(args, variant, variant_options or {})
                                    for _ in range(args.n_layer))
        self.norm = nn.RMSNorm(args.dim, eps=args.norm_eps)
        self.output = nn.Linear(args.dim, args.vocab_size, bias=False)

    def _logits(self, h: torch.Tensor) -> torch.Tensor:
        return self.output(self.norm(h)).float()

    def forward(self, idx: torch.Tensor, cond_idx: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits: image tokens idx (B, block_size) and labels (B,) -> (B, block_size, vocab),
        row t predicting token t from the class and tokens < t (the last token's own output is dropped)."""
        h = torch.cat([self.cls_embedding(cond_idx), self.tok_embeddings(idx)], dim=1)
        for layer in self.layers:
            h = layer(h)
        return self._logits(h[:, :-1])

    def new_caches(self, batch: int) -> list[Cache]:
        """Empty per-layer caches for decoding ``batch`` rows (KV caches sized for the whole sequence)."""
        dtype = self.output.weight.dtype
        return [RecurrentState() if isinstance(layer.attention, LasadAttention)
                else layer.attention.new_cache(batch, self.args.block_size, dtype) for layer in self.layers]

    def _step(self, h: torch.Tensor, pos: int, caches: list[Cache]) -> torch.Tensor:
        for layer, cache in zip(self.layers, caches, strict=True):
            h = layer.step(h, pos, cache)
        return self._logits(h)[:, 0]

    def prefill(self, cond_idx: torch.Tensor, caches: list[Cache]) -> torch.Tensor:
        """The class token of labels (B,) at position 0 -> logits (B, vocab) of the first image token."""
        return self._step(self.cls_embedding(cond_idx), 0, caches)

    def decode(self, idx: torch.Tensor, pos: int, caches: list[Cache]) -> torch.Tensor:
        """Image tokens idx (B, 1) at sequence position ``pos`` (image token pos - 1) -> logits (B, vocab)
        of image token ``pos``."""
        return self._step(self.tok_embeddings(idx), pos, caches)

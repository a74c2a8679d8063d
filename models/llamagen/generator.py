"""The ``llamagen`` generator: LlamaGen (softmax attention, KV cache) and LASADGen (``attention="lasad"``:
decayed linear attention decoded with a constant-size state), class-conditional, raster-order AR over VQ codes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from lina_bench.api.attention import AttentionModule
from lina_bench.api.checkpoints import load_strict
from lina_bench.api.errors import LinaBenchError
from lina_bench.api.generator import CostStage, Generator, GeneratorInfo, to_uint8
from lina_bench.models.llamagen.decoding import KVCache, RecurrentState
from lina_bench.models.llamagen.gpt import GPT_SIZES, GPTArgs, Transformer
from lina_bench.models.llamagen.loading import ATTENTION_KEY, GPT_KEYS, VQ_KEYS, read_state_dict
from lina_bench.models.llamagen.sampling import Draw, SamplingOptions, generate, global_draw, per_sample_draw
from lina_bench.models.llamagen.vq import CodeDecoder, VQModel

log = logging.getLogger(__name__)

class DecodeStep(nn.Module):
    """One decoding step of the GPT at sequence ``position`` on caches filled up to it (for cost probes and
    the decode-profile evaluator): tokens (B, 1) -> logits (B, vocab); ``inputs`` holds zero tokens.
    Repeated calls cost the same and leave the caches as they were."""

    def __init__(self, gpt: Transformer, caches: list[KVCache | RecurrentState], position: int) -> None:
        super().__init__()
        self.gpt, self.caches, self.position = gpt, caches, position
        rows = len(caches[0].k) if isinstance(caches[0], KVCache) else len(caches[0].state)
        self.inputs = (torch.zeros(rows, 1, dtype=torch.long, device=gpt.output.weight.device),)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.gpt.decode(tokens, self.position, [c.fork() for c in self.caches])

    def cache_bytes(self) -> int:
        """The decoding memory of all layers after this step: KV slots 0..position, or the recurrent states."""
        return sum(c.nbytes(self.position) for c in self.caches)


class LlamaGenGenerator(Generator):
    """LlamaGen / LASADGen (class-conditional raster-order AR over VQ codes), softmax or lasad attention.

    GPT sizes: ``model`` ("GPT-B", "GPT-L", "GPT-XL", ...) and/or the official ``ModelArgs`` names
    (``n_layer``, ``n_head``, ``dim`` override ``model``'s; all three with ``model=None``); ``vocab_size``
    defaults to ``codebook_size`` and ``block_size`` to (image_size / 16)^2, as ``sample_c2i.py`` sets them.
    ``attention``: "softmax" (LlamaGen) or "lasad" (LASADGen; ``attention_options`` go to the zoo's lasad
    variant). VQ tokenizer: ``vq`` (a ``vq_ds16_c2i.pt``-style file), ``codebook_size``, ``codebook_embed_dim``,
    ``z_channels``, ``vq_ch``, ``vq_ch_mult`` (16x downsampling for 5 levels). Sampling: ``guidance``
    (cfg_scale), ``temperature``, ``top_k``, ``top_p``, with the defaults of ``sample_c2i.py``; ``image_size``
    256 (``c2i_*_256.pt``). Weights are random (``weight_seed``) until loaded: the GPT by
    :meth:`load_checkpoint`, the VQ from ``vq``.
    """

    # Tiny configurations for tests and CI (seconds on a CPU): random weights, 32 px, 2 x 2 tokens, 64 codes.
    test_configs = {
        "llamagen-tiny": {"n_layer": 2, "n_head": 2, "dim": 32, "multiple_of": 32, "num_classes": 10,
                          "image_size": 32, "codebook_size": 64, "z_channels": 32, "vq_ch": 32,
                          "vq_ch_mult": [1, 1, 1, 1, 1], "top_k": 16},
        "lasadgen-tiny": {"attention": "lasad", "n_layer": 2, "n_head": 2, "dim": 32, "multiple_of": 32,
                          "num_classes": 10, "image_size": 32, "codebook_size": 64, "z_channels": 32, "vq_ch": 32,
                          "vq_ch_mult": [1, 1, 1, 1, 1], "top_k": 16},
    }

    def __init__(self, model: str | None = "GPT-B", n_layer: int | None = None, n_head: int | None = None,
                 dim: int | None = None, n_kv_head: int | None = None, multiple_of: int = 256,
                 ffn_dim_multiplier: float | None = None, rope_base: float = 10000.0, norm_eps: float = 1e-5,
                 num_classes: int = 1000, class_dropout_prob: float = 0.1, vocab_size: int | None = None,
                 cls_token_num: int = 1, block_size: int | None = None, attention: str = "softmax",
                 attention_options: dict | None = None, vq: str | None = None, codebook_size: int = 16384,
                 codebook_embed_dim: int = 8, z_channels: int = 256, vq_ch: int = 128,
                 vq_ch_mult: Sequence[int] = (1, 1, 2, 2, 4), image_size: int = 256, guidance: float = 4.0,
                 temperature: float = 1.0, top_k: int = 2000, top_p: float = 1.0, weight_seed: int = 0) -> None:
        super().__init__()
        if model is not None and model not in GPT_SIZES:
            raise LinaBenchError(f"unknown llamagen model {model!r} (choose from {', '.join(GPT_SIZES)})")
        if model is None and None in (n_layer, n_head, dim):
            raise LinaBenchError("without a named model, n_layer, n_head and dim must all be given")
        sizes = GPT_SIZES.get(model, (0, 0, 0))
        n_layer, n_head, dim = (given or default for given, default in zip((n_layer, n_head, dim), sizes, strict=True))
        factor = 2 ** (len(vq_ch_mult) - 1)
        if image_size % factor:
            raise LinaBenchError(f"image_size ({image_size}) must be a multiple of the VQ's downsampling ({factor})")
        side = image_size // factor
        if block_size not in (None, side * side):
            raise LinaBenchError(f"block_size ({block_size}) must be (image_size / {factor})^2 = {side * side}")
        if guidance > 1.0 and class_dropout_prob <= 0:
            raise LinaBenchError("guidance > 1 needs the null class, which exists only when class_dropout_prob > 0")
        self.args = GPTArgs(dim=dim, n_layer=n_layer, n_head=n_head, n_kv_head=n_kv_head, multiple_of=multiple_of,
                            ffn_dim_multiplier=ffn_dim_multiplier, rope_base=rope_base, norm_eps=norm_eps,
                            num_classes=num_classes, class_dropout_prob=class_dropout_prob,
                            vocab_size=vocab_size or codebook_size, cls_token_num=cls_token_num,
                            block_size=side * side)
        self.variant, self.grid, self.image_size = attention, (side, side), image_size
        self.sampling = SamplingOptions(guidance, temperature, top_k, top_p)
        self.skipped_keys: list[str] = []
        self.new_keys: list[str] = []
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(weight_seed)
            self.gpt = Transformer(self.args, attention, attention_options)
            self.vq = VQModel(codebook_size, codebook_embed_dim, z_channels, vq_ch, tuple(vq_ch_mult))
        if vq is not None:
            load_strict(self.vq, read_state_dict(vq, VQ_KEYS, "VQ"), f"VQ checkpoint {vq}")

    def info(self) -> GeneratorInfo:
        s = self.sampling
        return GeneratorInfo(family="llamagen", resolution=(self.image_size, self.image_size), conditioning="class",
                             steps=self.args.block_size, num_classes=self.args.num_classes,
                             guidance=s.cfg_scale if s.cfg_scale > 1.0 else None, attention=self.variant,
                             extra={"temperature": s.temperature, "top_k": s.top_k, "top_p": s.top_p,
                                    "skipped_keys": self.skipped_keys, "new_keys": self.new_keys})

    def load_checkpoint(self, path: str | Path) -> None:
        """Load an official GPT checkpoint strictly. With ``lasad``, a softmax checkpoint's attention weights
        (``layers.N.attention.*``) are skipped and the lasad ones newly initialised (``info().extra``)."""
        state = read_state_dict(path, GPT_KEYS, "GPT")
        own = self.gpt.state_dict()
        if self.variant == "lasad":
            self.skipped_keys = sorted(k for k in state if ATTENTION_KEY.match(k) and k not in own)
            self.new_keys = sorted(k for k in own if ATTENTION_KEY.match(k) and k not in state)
            if self.skipped_keys or self.new_keys:
                log.info("llamagen lasad from %s: skipped %d attention keys, %d new", path, len(self.skipped_keys),
                         len(self.new_keys))
        load_strict(self.gpt, state, f"GPT checkpoint {path}", optional=frozenset(self.new_keys),
                    extra=frozenset(self.skipped_keys))

    def _codes(self, labels: Sequence[int], draw: Draw) -> torch.Tensor:
        """Codes (B, block_size) drawn by ``draw`` for ``labels``."""
        device = self.gpt.output.weight.device
        return generate(self.gpt, torch.tensor(list(labels), device=device), self.sampling, draw)

    @torch.no_grad()
    def sample(self, conditions: Sequence[int] | Sequence[str], seeds: Sequence[int]) -> torch.Tensor:
        """Per-sample draws; the VQ decodes one image at a time (its convolutions' rounding depends on the
        batch size, enough to move a pixel across a uint8 step)."""
        self.check_conditions(conditions, seeds)
        codes = self._codes(conditions, per_sample_draw(seeds))
        images = torch.cat([self.vq.decode_code(c[None], self.grid) for c in codes])
        return to_uint8((images + 1) / 2).cpu()

    @torch.no_grad()
    def official_sample(self, conditions: Sequence[int] | Sequence[str], seed: int) -> torch.Tensor:
        """``sample_c2i.py``: ``torch.manual_seed(seed)`` right before ``generate`` (batched draws on the global
        generator), then ``save_image(normalize=True, value_range=(-1, 1))``'s conversion to uint8."""
        self.check_conditions(conditions, [seed] * len(conditions))
        torch.manual_seed(seed)
        images = self.vq.decode_code(self._codes(conditions, global_draw), self.grid)
        return ((images.clamp(-1, 1) + 1) / 2).mul(255).add(0.5).clamp(0, 255).to(torch.uint8).cpu()

    def decode_step(self, batch_size: int, position: int) -> DecodeStep:
        """A :class:`DecodeStep` for ``batch_size`` rows at sequence ``position`` (1 .. block_size - 1), its
        caches filled by the class token and zero image tokens at positions 0..position-1."""
        if not 1 <= position < self.args.block_size:
            raise LinaBenchError(f"decoding positions are 1..{self.args.block_size - 1} (block_size "
                                 f"{self.args.block_size}), got {position}")
        caches = self.gpt.new_caches(batch_size)
        device = self.gpt.output.weight.device
        tokens = torch.zeros(batch_size, 1, dtype=torch.long, device=device)
        with torch.no_grad():
            self.gpt.prefill(tokens[:, 0], caches)
            for pos in range(1, position):
                self.gpt.decode(tokens, pos, caches)
        return DecodeStep(self.gpt, caches, position)

    def cost_probes(self, batch_size: int = 1) -> list[CostStage]:
        """The GPT once per token (block_size calls; twice the rows under CFG), probed at the middle position
        block_size // 2, where the softmax KV cache holds half the sequence: its cost grows linearly with the
        position, so the middle's cost times block_size is the whole sequence's; lasad's is the same at every
        position. The VQ decoder once per image."""
        codes = torch.zeros(batch_size, self.args.block_size, dtype=torch.long, device=self.gpt.output.weight.device)
        step = self.decode_step(batch_size, max(1, self.args.block_size // 2))
        return [CostStage("transformer", step, step.inputs, self.args.block_size, self.sampling.cfg_scale > 1.0),
                CostStage("vq_decoder", CodeDecoder(self.vq, self.grid), (codes,), 1)]

    def attention_modules(self) -> dict[str, AttentionModule]:
        return {f"transformer.{name}": m for name, m in self.gpt.named_modules() if isinstance(m, AttentionModule)}

"""The text side of LINA / NOVA text-to-image: the CodeGen tokenizer and the Phi-2 text encoder.

The official pipelines (LINA repo, ``diffnext/models/text_encoders/phi.py``, ``PhiEncoderModel``) run
transformers' Phi architecture (per layer one LayerNorm feeding attention and MLP in parallel, partial
rotary embedding, ``dense`` output projection, ``final_layernorm``) with causal attention and no padding
mask, and take ``last_hidden_state``. That is transformers' ``PhiModel`` called without an attention mask,
so the encoder here is ``PhiModel``; the official state dict (``model.*`` and an unused ``lm_head``) loads
into it strictly.

Tokenisation as the official ``TextEmbed.encode_prompts``: ids padded to ``max_length`` = the transformer's
``text_token_len`` (truncated beyond), and the prompt's own token count (``lengths``): the first ``lengths[i]``
states of row i replace the learned padding embeddings, the rest keep them (an empty prompt keeps them all).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from torch import nn
from transformers import CodeGenTokenizerFast, PhiConfig, PhiModel

from lina_bench.api.checkpoints import load_strict
from lina_bench.api.errors import LinaBenchError
from lina_bench.models.lina.config import read_json

PAD = "<|endoftext|>"
# The random-weight tiny text encoder of the built-in tiny text-to-image model (tests and smoke runs).
TINY_PHI = {"vocab_size": 257, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 2, "max_position_embeddings": 64, "partial_rotary_factor": 0.5,
            "hidden_act": "gelu_new", "layer_norm_eps": 1e-5, "pad_token_id": 256}


def byte_tokenizer() -> CodeGenTokenizerFast:
    """A CodeGen tokenizer of the 256 byte-level symbols (no merges) and ``<|endoftext|>`` (id 256, also the
    padding token): the tiny model's stand-in for Phi-2's 50k-token vocabulary."""
    vocab = {c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    vocab[PAD] = len(vocab)
    bpe = Tokenizer(models.BPE(vocab, []))
    bpe.pre_tokenizer, bpe.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    return CodeGenTokenizerFast(tokenizer_object=bpe, bos_token=PAD, eos_token=PAD, unk_token=PAD, pad_token=PAD)


class TextEncoder(nn.Module):
    """Prompts -> Phi-2 states (B, max_length, hidden) and each prompt's token count (at most max_length)."""

    def __init__(self, tokenizer: CodeGenTokenizerFast, config: PhiConfig) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.model = PhiModel(config)

    @classmethod
    def tiny(cls) -> TextEncoder:
        return cls(byte_tokenizer(), PhiConfig(**TINY_PHI))

    @classmethod
    def from_directory(cls, folder: Path) -> TextEncoder:
        """``tokenizer/`` and ``text_encoder/`` (``config.json``) of an official pipeline directory, random
        weights (:meth:`load` reads them)."""
        if not (folder / "tokenizer").is_dir():
            raise LinaBenchError(f"a text-to-image checkpoint needs its tokenizer: {folder / 'tokenizer'} is missing")
        try:
            tokenizer = CodeGenTokenizerFast.from_pretrained(str(folder / "tokenizer"), local_files_only=True)
        except Exception as exc:
            raise LinaBenchError(f"cannot read the tokenizer in {folder / 'tokenizer'}: {type(exc).__name__}: "
                                 f"{exc}") from exc
        config_path = folder / "text_encoder" / "config.json"
        raw = read_json(config_path)
        try:
            config = PhiConfig(**{k: v for k, v in raw.items() if not k.startswith("_")})
        except (TypeError, ValueError) as exc:
            raise LinaBenchError(f"{config_path}: not a Phi config ({exc})") from exc
        if tokenizer.pad_token is None:
            raise LinaBenchError(f"{folder / 'tokenizer'}: the tokenizer has no padding token (the official "
                                 "pipeline pads prompts to the transformer's text_token_len)")
        return cls(tokenizer, config)

    def load(self, state: dict[str, torch.Tensor], where: str) -> None:
        """The official ``PhiEncoderModel`` state dict (``model.*``; ``lm_head.*`` is not used) strictly."""
        inner = {k.removeprefix("model."): v for k, v in state.items()}
        load_strict(self.model, inner, where, extra=frozenset(k for k in state if k.startswith("lm_head.")))

    def tokenize(self, prompts: Sequence[str], max_length: int) -> tuple[torch.Tensor, list[int]]:
        """Ids (B, max_length) padded as the tokenizer pads, and each prompt's token count."""
        padded = self.tokenizer(list(prompts), padding="max_length", max_length=max_length, truncation=True)
        plain = self.tokenizer(list(prompts), max_length=max_length, truncation=True)
        return torch.tensor(padded.input_ids), [len(ids) for ids in plain.input_ids]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, L) ids -> (B, L, hidden) states (causal attention, no padding mask, as officially)."""
        return self.model(input_ids=ids.to(self.model.embed_tokens.weight.device)).last_hidden_state

    def encode(self, prompts: Sequence[str], max_length: int) -> tuple[torch.Tensor, list[int]]:
        ids, lengths = self.tokenize(prompts, max_length)
        return self(ids), lengths

    def extra_repr(self) -> str:
        return f"tokenizer={type(self.tokenizer).__name__}(vocab={len(self.tokenizer)})"

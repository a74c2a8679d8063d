"""Where official LlamaGen ``.pt`` files keep their state dicts, and which keys are not weights."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from lina_bench.api.checkpoints import read_checkpoint, state_dict_in

# Where the official loaders look, in order: sample_c2i.py for the GPT; vq_demo.py and
# reconstruction_vq_ddp.py for the VQ (its EMA weights first).
GPT_KEYS = ("model", "module", "state_dict")
VQ_KEYS = ("ema", "model", "state_dict")
# Not weights: a RoPE table that some official checkpoints carry (the official loader is non-strict); recomputed.
DERIVED_KEYS = ("freqs_cis",)
ATTENTION_KEY = re.compile(r"^layers\.\d+\.attention\.")


def read_state_dict(path: str | Path, keys: tuple[str, ...], what: str) -> dict[str, torch.Tensor]:
    """The state dict in an official checkpoint: under the first of ``keys`` present, else the file's
    top level when it is a dict of tensors (e.g. FSDP exports); derived tables dropped."""
    label = f"{what} checkpoint"
    state = state_dict_in(read_checkpoint(path, label), keys, path, label)
    return {k: v for k, v in state.items() if k not in DERIVED_KEYS}

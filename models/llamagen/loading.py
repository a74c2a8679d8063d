"""Reading official LlamaGen ``.pt`` files and loading them strictly, with errors that name the keys."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from lina_bench.api.errors import LinaBenchError

# Where the official loaders look, in order: sample_c2i.py for the GPT; vq_demo.py and
# reconstruction_vq_ddp.py for the VQ (its EMA weights first).
GPT_KEYS = ("model", "module", "state_dict")
VQ_KEYS = ("ema", "model", "state_dict")
# Not weights: a RoPE table that some official checkpoints carry (the official loader is non-strict); recomputed.
DERIVED_KEYS = ("freqs_cis",)
ATTENTION_KEY = re.compile(r"^layers\.\d+\.attention\.")


def read_state_dict(path: str | Path, keys: tuple[str, ...], what: str) -> dict[str, torch.Tensor]:
    """The state dict in an official checkpoint: under the first of ``keys`` present, else the file's
    top level when it is a dict of tensors (e.g. FSDP exports)."""
    path = Path(path)
    if not path.is_file():
        raise LinaBenchError(f"{what} checkpoint not found: {path}")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise LinaBenchError(f"cannot read {what} checkpoint {path}: {type(exc).__name__}: {exc}") from exc
    if isinstance(content, dict):
        state = next((content[k] for k in keys if isinstance(content.get(k), dict)), content)
        if state and all(isinstance(v, torch.Tensor) for v in state.values()):
            return {k: v for k, v in state.items() if k not in DERIVED_KEYS}
    raise LinaBenchError(f"{what} checkpoint {path} holds no state dict (looked under {', '.join(keys)} "
                         "and at the top level)")


def _listing(keys: set[str]) -> str:
    shown = sorted(keys)
    return ", ".join(shown[:8]) + (f" and {len(shown) - 8} more" if len(shown) > 8 else "")


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], path: str | Path, what: str,
                optional: frozenset[str] = frozenset(), extra: frozenset[str] = frozenset()) -> None:
    """Load ``state`` into ``module``: every key must match in name and shape, except the module's keys in
    ``optional`` (may be missing) and the checkpoint's keys in ``extra`` (ignored). Errors name the keys."""
    own = module.state_dict()
    state = {k: v for k, v in state.items() if k not in extra}
    missing = set(own) - set(state) - optional
    unexpected = set(state) - set(own)
    wrong = {f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in set(own) & set(state)
             if state[k].shape != own[k].shape}
    found = {"missing keys": missing, "unexpected keys": unexpected, "shape mismatches (file vs model)": wrong}
    problems = [f"{label}: {_listing(keys)}" for label, keys in found.items() if keys]
    if problems:
        raise LinaBenchError(f"{what} checkpoint {path} does not fit {type(module).__name__}: " + "; ".join(problems))
    module.load_state_dict(state, strict=False)

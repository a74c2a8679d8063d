"""Checkpoint files: read safely, load strictly, with errors that name the file and the keys."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from lina_bench.api.errors import LinaBenchError


def read_checkpoint(path: str | Path, what: str = "checkpoint") -> Any:
    """The content of a ``.safetensors`` file, or of a torch file read with ``weights_only=True`` (an
    ``argparse.Namespace`` allowed: official training snapshots pickle their arguments). A missing or
    unreadable file is a :class:`LinaBenchError` naming ``what`` and the path."""
    path = Path(path)
    if not path.is_file():
        raise LinaBenchError(f"{what} not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise LinaBenchError(f"cannot read {what} {path}: {type(exc).__name__}: {exc}") from exc


def state_dict_in(content: Any, keys: Sequence[str], path: str | Path, what: str = "checkpoint"
                  ) -> dict[str, torch.Tensor]:
    """The state dict under the first of ``keys`` that holds one, else ``content`` itself when it is
    a dict of tensors; otherwise a :class:`LinaBenchError` saying where it looked."""
    if isinstance(content, dict):
        state = next((content[k] for k in keys if isinstance(content.get(k), dict)), content)
        if state and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
            return state
    raise LinaBenchError(f"{what} {path} holds no state dict (looked under {', '.join(map(repr, keys))} and at "
                         "the top level)")


def _listing(keys: set[str]) -> str:
    shown = sorted(keys)
    return ", ".join(shown[:8]) + (f" and {len(shown) - 8} more" if len(shown) > 8 else "")


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], what: str,
                optional: frozenset[str] = frozenset(), extra: frozenset[str] = frozenset()) -> None:
    """Load ``state`` into ``module``: every key must match in name and shape, except the module's keys in
    ``optional`` (may be missing) and the state's keys in ``extra`` (ignored). A mismatch is a
    :class:`LinaBenchError` "``what`` does not fit <module class>: ..." naming the keys."""
    own = module.state_dict()
    state = {k: v for k, v in state.items() if k not in extra}
    missing = set(own) - set(state) - optional
    unexpected = set(state) - set(own)
    wrong = {f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in set(own) & set(state)
             if state[k].shape != own[k].shape}
    found = {"missing keys": missing, "unexpected keys": unexpected, "shape mismatches (file vs model)": wrong}
    problems = [f"{label}: {_listing(keys)}" for label, keys in found.items() if keys]
    if problems:
        raise LinaBenchError(f"{what} does not fit {type(module).__name__}: " + "; ".join(problems))
    module.load_state_dict(state, strict=not optional)

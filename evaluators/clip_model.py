"""open_clip models from local files, for GenEval's colour classifier and the CLIP score.

A model is either a local directory in open_clip's ``local-dir`` layout (``open_clip_config.json``
plus ``open_clip_model.safetensors``, as on the hub) or an architecture name plus a weights file
(safetensors, or a torch state dict read with ``weights_only=True``). Nothing is downloaded.

GenEval's colour model is OpenAI's CLIP ViT-L/14 (``open_clip`` tag ``openai``), which uses QuickGELU:
with a weights file, name the architecture ``ViT-L-14-quickgelu`` (the default), or the features
silently differ from the official ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from PIL import Image

from lina_bench.api.errors import LinaBenchError
from lina_bench.api.files import file_sha256, write_bytes_atomic, write_text_atomic

DEFAULT_ARCH = "ViT-L-14-quickgelu"
WEIGHTS_HINT = ("OpenAI's CLIP ViT-L/14 in open_clip format: open_clip_model.safetensors from the hub repository "
                "timm/vit_large_patch14_clip_224.openai (or that whole folder as --clip-model)")
TINY_CLIP_CONFIG = {"embed_dim": 32, "quick_gelu": True,
                    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
                    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
OPENAI_PREPROCESS = {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]}


@dataclass
class ClipModel:
    """An open_clip model with its eval transform and tokenizer; features are L2-normalised."""

    model: torch.nn.Module
    preprocess: Callable[[Image.Image], torch.Tensor]
    tokenizer: Callable[[Sequence[str]], torch.Tensor]
    device: torch.device
    identity: dict[str, Any]

    @torch.no_grad()
    def encode_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """PIL images -> (B, D) unit-norm float32 features."""
        batch = torch.stack([self.preprocess(image) for image in images]).to(self.device)
        return torch.nn.functional.normalize(self.model.encode_image(batch).float(), dim=-1)

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Texts -> (B, D) unit-norm float32 features."""
        tokens = self.tokenizer(list(texts)).to(self.device)
        return torch.nn.functional.normalize(self.model.encode_text(tokens).float(), dim=-1)


def _weights_file(folder: Path) -> Path | None:
    for name in ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors", "open_clip_pytorch_model.bin"):
        if (folder / name).is_file():
            return folder / name
    return None


def load_clip(model: str | Path = DEFAULT_ARCH, weights: str | Path | None = None,
              device: str | torch.device = "cpu") -> ClipModel:
    """Build an open_clip model from local files only; clear errors name what is missing."""
    import open_clip

    device = torch.device(device)
    folder = Path(model)
    if folder.is_dir():
        if weights is not None:
            raise LinaBenchError(f"{folder} is an open_clip model folder; do not also give a weights file")
        if not (folder / "open_clip_config.json").is_file():
            raise LinaBenchError(f"{folder}: no open_clip_config.json (expected open_clip's local-dir layout)")
        weight_file = _weights_file(folder)
        if weight_file is None:
            raise LinaBenchError(f"{folder}: no open_clip_model.safetensors (or open_clip_pytorch_model.bin)")
        name, kwargs = f"local-dir:{folder}", {}
        identity = {"clip_model": folder.name}
    else:
        if str(model) not in open_clip.list_models():
            raise LinaBenchError(f"unknown open_clip architecture {str(model)!r} and no such model folder")
        if weights is None:
            raise LinaBenchError(f"architecture {model} needs a local weights file: {WEIGHTS_HINT}")
        weight_file = Path(weights)
        if not weight_file.is_file():
            raise LinaBenchError(f"CLIP weights not found: {weight_file} ({WEIGHTS_HINT})")
        name, kwargs = str(model), {"pretrained": str(weight_file)}
        identity = {"clip_model": str(model)}
    try:
        clip, _, preprocess = open_clip.create_model_and_transforms(name, device=device, weights_only=True, **kwargs)
    except (RuntimeError, KeyError, ValueError, OSError, AssertionError) as exc:  # open_clip asserts on shapes
        raise LinaBenchError(f"cannot load CLIP weights {weight_file} into {model}: {str(exc)[:300]}") from exc
    identity["clip_weights_sha256"] = file_sha256(weight_file)
    return ClipModel(clip.eval(), preprocess, open_clip.get_tokenizer(name), device, identity)


def tiny_clip(folder: str | Path, seed: int = 0) -> Path:
    """Save a seeded random-init open_clip model (32-px images, width 32, one layer per tower) in open_clip's
    local-dir layout, each file atomically; the same seed gives the same files. For tests and smoke suites."""
    import open_clip
    from safetensors.torch import save

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.CLIP(**TINY_CLIP_CONFIG)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(folder / "open_clip_model.safetensors",
                       save({k: v.contiguous() for k, v in model.state_dict().items()}))
    write_text_atomic(folder / "open_clip_config.json",
                      json.dumps({"model_cfg": TINY_CLIP_CONFIG, "preprocess_cfg": OPENAI_PREPROCESS}))
    return folder

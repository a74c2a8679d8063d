"""What a LINA / NOVA checkpoint directory says about its architecture.

* ``model_index.json``: the ``transformer`` entry names the official module,
  ``diffnext.models.transformers.transformer_nova[_<variant>]``; that module fixes the attention of
  every block (:data:`SETTINGS`).
* ``transformer/config.json``: sizes and the ``arch`` triple (condition encoder, image transformer,
  diffusion head), names resolved through the official builder tables (:data:`ARCHS`) or a user's
  ``archs`` JSON file with the same fields.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lina_bench.api.errors import LinaBenchError

# The official builder tables (``transformer_nova*.py``: VIDEO_ENCODERS, IMAGE_ENCODERS, IMAGE_DECODERS).
ARCHS: dict[str, dict[str, dict[str, Any]]] = {
    "video_encoders": {f"vit_d16w{w}": {"depth": 16, "embed_dim": w, "num_heads": h}
                       for w, h in ((768, 12), (1024, 16), (1536, 16))},
    "image_encoders": {f"vit_d32w{w}": {"depth": 32, "embed_dim": w, "num_heads": h, "image_model": True}
                       for w, h in ((768, 12), (1024, 16), (1536, 16))},
    "image_decoders": {name: {"depth": d, "embed_dim": w}
                       for name, d, w in (("mlp_d3w1280", 3, 1280), ("mlp_d6w768", 6, 768),
                                          ("mlp_d6w1024", 6, 1024), ("mlp_d6w1536", 6, 1536))},
}
ARCH_FIELDS = {"video_encoders": ("depth", "embed_dim", "num_heads"),
               "image_encoders": ("depth", "embed_dim", "num_heads"),
               "image_decoders": ("depth", "embed_dim")}


@dataclass(frozen=True)
class Setting:
    """The zoo attention of the blocks that see a variable number of tokens (condition encoder, first half
    of the image transformer) and of the image transformer's second half (all tokens)."""

    encoder: str
    decoder: str


# zoo name -> attention per block, and the official transformer module of each setting.
SETTINGS: dict[str, Setting] = {
    "softmax": Setting("softmax", "softmax"),
    "linear": Setting("linear", "linear"),
    "linear-sub": Setting("linear-sub", "linear-sub"),
    "linear-dwc": Setting("linear", "linear-dwc"),
    "linear-sub-dwc": Setting("linear-sub", "linear-sub-dwc"),
    "lina": Setting("linear", "lina"),
}
OFFICIAL_MODULES = {
    "transformer_nova": "softmax",
    "transformer_nova_linear6": "linear",
    "transformer_nova_linear9": "linear-sub",
    "transformer_nova_linear_decouple1": "linear-dwc",
    "transformer_nova_linear_decouple10": "linear-sub-dwc",
    "transformer_nova_linear_decouple1_kvscale1": "lina",
    "transformer_nova_linear_decouple1_kvscale1_high_res": "lina",  # the gate sized from image_size
}


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``, with clear errors for a missing or malformed file."""
    if not path.is_file():
        raise LinaBenchError(f"missing file {path}")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LinaBenchError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise LinaBenchError(f"{path} must hold a JSON object")
    return data


def setting_of_model_index(path: Path) -> str:
    """The zoo setting named by ``model_index.json``'s ``transformer`` entry."""
    entry = read_json(path).get("transformer")
    module = entry[0] if isinstance(entry, list) and entry and isinstance(entry[0], str) else None
    if module is None:
        raise LinaBenchError(f"{path}: 'transformer' must be [module, class], got {entry!r}")
    name = module.rsplit(".", 1)[-1]
    if name not in OFFICIAL_MODULES:
        known = ", ".join(f"{k} ({v})" for k, v in OFFICIAL_MODULES.items())
        raise LinaBenchError(f"{path}: transformer module {module!r} has no attention setting here "
                             f"(known: {known}); set option 'attention' to choose one")
    return OFFICIAL_MODULES[name]


def check_setting(name: str) -> Setting:
    if name not in SETTINGS:
        raise LinaBenchError(f"attention {name!r} is not a LINA/NOVA setting (known: {', '.join(SETTINGS)})")
    return SETTINGS[name]


def arch_table(archs_file: str | None = None,
               extra: dict[str, Any] | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """The official table, extended by the ``archs`` JSON file (or an ``extra`` dict of the same form)."""
    table = {kind: dict(entries) for kind, entries in ARCHS.items()}
    if archs_file is not None:
        extra = read_json(Path(archs_file))
    for kind, entries in (extra or {}).items():
        if kind not in ARCH_FIELDS or not isinstance(entries, dict):
            raise LinaBenchError(f"archs file {archs_file}: unknown section {kind!r} (known: {', '.join(ARCH_FIELDS)})")
        for name, spec in entries.items():
            missing = [f for f in ARCH_FIELDS[kind] if not isinstance(spec, dict) or not isinstance(spec.get(f), int)]
            if missing:
                raise LinaBenchError(f"archs file {archs_file}: {kind}.{name} needs integer {', '.join(missing)}")
            table[kind][name] = dict(spec)
    return table


@dataclass(frozen=True)
class TransformerConfig:
    """``transformer/config.json`` with the arch names resolved.

    Sizes in latent pixels: ``latent_size`` = image_size / image_stride; image tokens are patches of
    ``patch_size`` (15 // stride + 1), condition tokens patches of twice that.
    """

    image_dim: int
    image_size: tuple[int, int]
    image_stride: int
    video: dict[str, Any]
    image: dict[str, Any]
    head: dict[str, Any]
    rotary_pos_embed: bool = False
    text_token_dim: int | None = None
    text_token_len: int | None = None

    @property
    def latent_size(self) -> tuple[int, int]:
        return self.image_size[0] // self.image_stride, self.image_size[1] // self.image_stride

    @property
    def patch_size(self) -> int:
        return 15 // self.image_stride + 1

    @property
    def grid(self) -> tuple[int, int]:
        """Image tokens (h, w)."""
        return self.latent_size[0] // self.patch_size, self.latent_size[1] // self.patch_size

    @property
    def video_grid(self) -> tuple[int, int]:
        """Condition-encoder tokens (h, w)."""
        return self.latent_size[0] // (2 * self.patch_size), self.latent_size[1] // (2 * self.patch_size)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], table: dict[str, dict[str, dict[str, Any]]],
                  where: str = "config") -> TransformerConfig:
        """``raw`` (a parsed ``transformer/config.json``) with arch names looked up in ``table``."""
        try:
            arch = list(raw["arch"])
            size = raw["image_size"]
            size = (size, size) if isinstance(size, int) else tuple(size)
            parts = {}
            for kind, name in zip(("video_encoders", "image_encoders", "image_decoders"), arch, strict=True):
                if name not in table[kind]:
                    raise LinaBenchError(f"{where}: unknown {kind[:-1].replace('_', ' ')} arch {name!r} (known: "
                                         f"{', '.join(table[kind])}; define more with option 'archs')")
                parts[kind] = table[kind][name]
            if raw.get("video_mixer_rank"):
                raise LinaBenchError(f"{where}: video_mixer_rank (video generation) is not supported")
            return cls(image_dim=int(raw["image_dim"]), image_size=(int(size[0]), int(size[1])),
                       image_stride=int(raw["image_stride"]), video=parts["video_encoders"],
                       image=parts["image_encoders"], head=parts["image_decoders"],
                       rotary_pos_embed=bool(raw.get("rotary_pos_embed", False)),
                       text_token_dim=raw.get("text_token_dim"), text_token_len=raw.get("text_token_len"))
        except (KeyError, TypeError, ValueError) as exc:
            raise LinaBenchError(f"{where}: malformed transformer config ({type(exc).__name__}: {exc})") from exc

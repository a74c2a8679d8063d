"""The ``dit`` generator: DiT (``attention: softmax``) and LiT (``attention: lit``), class-conditional
latent diffusion transformers sampled as facebookresearch/DiT samples them.

* Model: :class:`~lina_bench.models.dit.model.DiT`, an official size (``model: DiT-XL/2`` ... ``DiT-S/8``)
  with explicit constructor options (official names) overriding it; the block attention from the zoo.
* Checkpoints: the official ``.pt`` files (a plain state dict such as ``DiT-XL-2-256x256.pt``, or a
  ``train.py`` checkpoint ``{"model", "ema", "opt", "args"}``, whose ``ema`` is used as ``find_model``
  does), read with ``weights_only=True``. ``softmax`` loads strictly. Any other attention inherits the
  weights of a DiT checkpoint as LiT does (its guideline "load all parameters except those related to
  linear attention"): every ``blocks.*.attn.*`` tensor of the checkpoint is skipped, the variant's own
  attention parameters keep their initialisation, both lists are logged and reported in
  ``info().extra["skipped_keys"]`` / ``["new_keys"]``; any other missing or unexpected key is an error.
  A checkpoint whose attention keys are exactly the model's (a trained LiT) loads strictly.
* Sampling: ``create_diffusion(str(diffusion_steps))`` (learned sigma, default 250 steps), classifier-free
  guidance (``guidance``; None: none) as ``forward_with_cfg`` applies it (first 3 latent channels), the
  Stable Diffusion VAE (a local diffusers ``AutoencoderKL`` folder, option ``vae``) at latent scale
  0.18215. Without ``vae`` the VAE has random weights (SD's architecture, or ``vae_config``): costs are
  real, images are not.
* ``sample(conditions, seeds)`` draws each image's latents and step noises from its own seed;
  :meth:`DiTGenerator.official_sample` reproduces ``sample.py``'s draws for a whole batch.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from lina_bench.api.checkpoints import read_checkpoint
from lina_bench.api.errors import LinaBenchError
from lina_bench.api.files import file_sha256
from lina_bench.api.generator import CostStage, Generator, GeneratorInfo, to_uint8
from lina_bench.models.dit.diffusion import SpacedDiffusion
from lina_bench.models.dit.model import DIT_SIZES, DiT

log = logging.getLogger(__name__)

LATENT_SCALE = 0.18215
DTYPES = {"float32": torch.float32, "float64": torch.float64}
INITS = ("official", "random")
ATTN_KEY = re.compile(r"^blocks\.\d+\.attn\.")
# stabilityai/sd-vae-ft-mse (and -ema): diffusers' AutoencoderKL defaults plus these.
SD_VAE_CONFIG: dict[str, Any] = {"block_out_channels": [128, 256, 512, 512], "layers_per_block": 2,
                                 "latent_channels": 4, "norm_num_groups": 32, "sample_size": 256}
VAE_WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


class VaeDecoder(nn.Module):
    """``vae.decode(z).sample``: the VAE's decoder as one module (a cost stage)."""

    def __init__(self, vae: nn.Module) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(z).sample


class DiTGenerator(Generator):
    """DiT / LiT (facebookresearch/DiT) with the attention of each block from the zoo; SD-VAE decoder."""

    # Tiny configurations for tests and CI (a few seconds on a CPU): random non-default weights (``init``),
    # a random tiny VAE, float64 so that images do not depend on the batch they are drawn in.
    test_configs = {
        "dit-tiny": {"depth": 2, "hidden_size": 32, "num_heads": 2, "patch_size": 2, "input_size": 8,
                     "num_classes": 10, "diffusion_steps": 4, "guidance": 2.0, "init": "random",
                     "dtype": "float64", "vae_config": {"block_out_channels": [8, 8, 8], "layers_per_block": 1,
                                                        "norm_num_groups": 4}},
        "lit-tiny": {"attention": "lit", "attention_heads": 1, "depth": 2, "hidden_size": 32, "num_heads": 2,
                     "patch_size": 2, "input_size": 8, "num_classes": 10, "diffusion_steps": 4, "guidance": 2.0,
                     "init": "random", "dtype": "float64",
                     "vae_config": {"block_out_channels": [8, 8, 8], "layers_per_block": 1, "norm_num_groups": 4}},
    }

    def __init__(self, model: str | None = "DiT-XL/2", attention: str = "softmax", attention_heads: int | None = None,
                 attention_options: dict | None = None, input_size: int = 32, patch_size: int | None = None,
                 in_channels: int = 4, hidden_size: int | None = None, depth: int | None = None,
                 num_heads: int | None = None, mlp_ratio: float = 4.0, class_dropout_prob: float = 0.1,
                 num_classes: int = 1000, learn_sigma: bool = True, diffusion_steps: int = 250,
                 guidance: float | None = 1.5, vae: str | None = None, vae_config: dict | None = None,
                 weight_seed: int = 0, init: str = "official", dtype: str = "float32") -> None:
        super().__init__()
        if model is not None and model not in DIT_SIZES:
            raise LinaBenchError(f"unknown DiT model {model!r} (known: {', '.join(DIT_SIZES)})")
        if dtype not in DTYPES:
            raise LinaBenchError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        if init not in INITS:
            raise LinaBenchError(f"init must be one of {', '.join(INITS)}, got {init!r}")
        if diffusion_steps < 1 or num_classes < 1:
            raise LinaBenchError("diffusion_steps and num_classes must be >= 1")
        if guidance is not None and class_dropout_prob <= 0:
            raise LinaBenchError("guidance needs the null class, which only class_dropout_prob > 0 gives")
        if vae is not None and vae_config is not None:
            raise LinaBenchError("give either vae (a local AutoencoderKL folder) or vae_config (a random VAE)")
        explicit = {"depth": depth, "hidden_size": hidden_size, "patch_size": patch_size, "num_heads": num_heads}
        preset = dict(zip(explicit, DIT_SIZES[model], strict=True)) if model is not None else {}
        missing = [k for k, v in explicit.items() if v is None and k not in preset]
        if missing:
            raise LinaBenchError(f"without a model, give {', '.join(missing)}")
        sizes = {k: preset[k] if v is None else v for k, v in explicit.items()}
        self.config = {"input_size": input_size, **sizes, "in_channels": in_channels, "mlp_ratio": mlp_ratio,
                       "class_dropout_prob": class_dropout_prob, "num_classes": num_classes,
                       "learn_sigma": learn_sigma}
        self.model_name = model if all(v is None or v == preset.get(k) for k, v in explicit.items()) else None
        self.attention, self.attention_heads = attention, attention_heads or sizes["num_heads"]
        self.attention_options = dict(attention_options or {})
        self.num_classes, self.guidance, self.diffusion_steps = num_classes, guidance, diffusion_steps
        self.init = init
        self.diffusion = SpacedDiffusion(str(diffusion_steps), learn_sigma=learn_sigma)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(weight_seed)
            self.transformer = DiT(**self.config, attention=attention, attention_heads=attention_heads,
                                   attention_options=attention_options)
            if init == "random":
                randomize_(self.transformer)
            self.vae, self.vae_source = self._build_vae(vae, vae_config)
        latent_channels = self.vae.config.latent_channels
        if latent_channels != in_channels:
            raise LinaBenchError(f"the VAE has {latent_channels} latent channels but the DiT takes {in_channels}")
        self.vae_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.skipped_keys: list[str] = []
        self.new_keys: list[str] = []
        self.to(DTYPES[dtype])

    @staticmethod
    def _build_vae(vae: str | None, vae_config: dict | None) -> tuple[nn.Module, dict[str, Any]]:
        from diffusers import AutoencoderKL

        if vae is None:
            config = {**SD_VAE_CONFIG, **(vae_config or {})}
            blocks = len(config["block_out_channels"])
            config.setdefault("down_block_types", ["DownEncoderBlock2D"] * blocks)
            config.setdefault("up_block_types", ["UpDecoderBlock2D"] * blocks)
            try:
                return AutoencoderKL(**config), {"weights": "random", "config": vae_config or "sd-vae"}
            except (TypeError, ValueError) as exc:
                raise LinaBenchError(f"vae_config does not build an AutoencoderKL: {exc}") from exc
        folder = Path(vae)
        if not (folder / "config.json").is_file():
            raise LinaBenchError(f"vae must be a local diffusers AutoencoderKL folder with config.json: {folder}")
        try:
            model = AutoencoderKL.from_pretrained(str(folder), local_files_only=True, low_cpu_mem_usage=False)
        except Exception as exc:
            raise LinaBenchError(f"cannot load the VAE from {folder}: {type(exc).__name__}: {exc}") from exc
        weights = next((folder / name for name in VAE_WEIGHT_FILES if (folder / name).is_file()), None)
        return model, {"weights": "local", "name": folder.name,
                       "sha256": file_sha256(weights) if weights is not None else None}

    @property
    def dtype(self) -> torch.dtype:
        return self.transformer.pos_embed.dtype

    @property
    def device(self) -> torch.device:
        return self.transformer.pos_embed.device

    @property
    def latent_size(self) -> int:
        return self.config["input_size"]

    def info(self) -> GeneratorInfo:
        side = self.latent_size * self.vae_factor
        extra = {"model": self.model_name, "config": dict(self.config), "attention_heads": self.attention_heads,
                 "attention_options": dict(self.attention_options),
                 "diffusion": {"timestep_respacing": str(self.diffusion_steps),
                               "learn_sigma": self.config["learn_sigma"],
                               "cfg_channels": 3 if self.guidance is not None else None},
                 "vae": self.vae_source, "latent_scale": LATENT_SCALE, "init": self.init, "dtype": str(self.dtype),
                 "skipped_keys": list(self.skipped_keys), "new_keys": list(self.new_keys)}
        return GeneratorInfo(family="dit", resolution=(side, side), conditioning="class", steps=self.diffusion_steps,
                             num_classes=self.num_classes, guidance=self.guidance, attention=self.attention,
                             extra=extra)

    # --- sampling -----------------------------------------------------------------------------------

    def _latent_shape(self) -> tuple[int, int, int]:
        return (self.config["in_channels"], self.latent_size, self.latent_size)

    def _denoise(self, z: torch.Tensor, labels: torch.Tensor, noise: Callable[[int], torch.Tensor]) -> torch.Tensor:
        """The official ``p_sample_loop`` from x_T = ``z``: at each respaced step i (last first) the model
        (with CFG as ``forward_with_cfg``), then ``noise(i)`` (B rows, float32 draws) for ``p_sample``."""
        x = z.to(self.device, self.dtype)
        for i in reversed(range(self.diffusion.num_timesteps)):
            t = self.diffusion.model_timesteps(i, len(x), self.device)
            if self.guidance is None:
                out = self.transformer(x, t, labels)
            else:
                out = self.transformer.guided(x, t, labels, self.guidance)
            x = self.diffusion.p_sample(out, x, i, noise(i).to(self.device, self.dtype))
        return x

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] (nominally): ``vae.decode(latents / 0.18215).sample``."""
        return self.vae.decode(latents / LATENT_SCALE).sample

    @torch.no_grad()
    def sample(self, conditions: Sequence[int], seeds: Sequence[int]) -> torch.Tensor:
        """Image i: latents and every step's noise drawn from ``torch.Generator().manual_seed(seeds[i])``."""
        self.check_conditions(conditions, seeds)
        self.eval()
        shape = self._latent_shape()
        generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        z = torch.stack([torch.randn(shape, generator=g) for g in generators])
        labels = torch.tensor(list(conditions), dtype=torch.long, device=self.device)
        latents = self._denoise(z, labels, lambda i: torch.stack([torch.randn(shape, generator=g)
                                                                  for g in generators]))
        return to_uint8((self._decode(latents) + 1) / 2).cpu()

    @torch.no_grad()
    def official_sample(self, conditions: Sequence[int], seed: int) -> torch.Tensor:
        """``sample.py`` on the CPU for these labels: ``torch.manual_seed(seed)`` immediately before
        sampling (the script seeds before building its models), one ``randn`` of the batch's latents,
        the CFG batch as officially (latents twice, labels then the null class; ``randn_like`` of all 2B
        rows at every step), and ``save_image``'s conversion (``normalize=True, value_range=(-1, 1)``:
        clamp, to [0, 1], ``*255 + 0.5``, truncated). Without ``guidance``, ``sample_ddp.py``'s
        unguided batch. The global RNG is restored afterwards. uint8 (B, 3, H, W), RGB, on the CPU."""
        self.check_conditions(conditions, [seed] * len(conditions))
        self.eval()
        n, shape = len(conditions), self._latent_shape()
        rows = 2 * n if self.guidance is not None else n
        labels = torch.tensor(list(conditions), dtype=torch.long, device=self.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            z = torch.randn(n, *shape)
            latents = self._denoise(z, labels, lambda i: torch.randn(rows, *shape)[:n])
        images = self._decode(latents).float().cpu()
        images = images.clamp(-1, 1).sub(-1).div(max(1 - (-1), 1e-5))
        return images.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8)

    def cost_probes(self, batch_size: int = 1) -> list[CostStage]:
        """The transformer once per diffusion step (2B rows under CFG), the VAE decoder once per image."""
        x = torch.zeros(batch_size, *self._latent_shape(), dtype=self.dtype, device=self.device)
        t = self.diffusion.model_timesteps(self.diffusion.num_timesteps - 1, batch_size, self.device)
        y = torch.zeros(batch_size, dtype=torch.long, device=self.device)
        return [CostStage("transformer", self.transformer, (x, t, y), self.diffusion_steps, self.guidance is not None),
                CostStage("vae_decoder", VaeDecoder(self.vae), (x,), 1)]

    # --- checkpoints ---------------------------------------------------------------------------------

    def load_checkpoint(self, path: str | Path) -> None:
        """An official DiT ``.pt`` (or ``.safetensors``) into the transformer; see the module docs."""
        state = read_dit_checkpoint(path)
        own = self.transformer.state_dict()
        own_attn = sorted(k for k in own if ATTN_KEY.match(k))
        ckpt_attn = sorted(k for k in state if ATTN_KEY.match(k))
        inherit = self.attention != "softmax" and ckpt_attn != own_attn
        skipped, new = (ckpt_attn, own_attn) if inherit else ([], [])
        shared = {k: v for k, v in state.items() if k not in set(skipped)}
        expected = set(own) - set(new)
        missing, unexpected = sorted(expected - set(shared)), sorted(set(shared) - expected)
        if missing or unexpected:
            raise LinaBenchError(f"checkpoint {path} does not fit DiT (attention={self.attention}): "
                                 + _describe_keys(missing, unexpected))
        wrong = [f"{k}: checkpoint {tuple(v.shape)}, model {tuple(own[k].shape)}" for k, v in shared.items()
                 if tuple(v.shape) != tuple(own[k].shape)]
        if wrong:
            raise LinaBenchError(f"checkpoint {path} does not fit DiT: shapes differ for {len(wrong)} keys: "
                                 + "; ".join(wrong[:10]))
        self.transformer.load_state_dict(shared, strict=not inherit)
        self.skipped_keys, self.new_keys = skipped, new
        if inherit:
            log.warning("weight inheritance (LiT): %d attention tensors of %s skipped, %d new %r attention "
                        "tensors keep their initialisation; skipped: %s; new: %s", len(skipped), path, len(new),
                        self.attention, ", ".join(skipped), ", ".join(new))


def _describe_keys(missing: list[str], unexpected: list[str], limit: int = 20) -> str:
    parts = []
    for what, keys in (("missing", missing), ("unexpected", unexpected)):
        if keys:
            more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
            parts.append(f"{len(keys)} {what} keys: {', '.join(keys[:limit])}{more}")
    return "; ".join(parts)


def read_dit_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The DiT state dict of an official checkpoint: a plain state dict, or a ``train.py`` checkpoint
    ``{"model", "ema", "opt", "args"}`` (its ``ema``, as ``find_model``; ``args`` is an argparse
    Namespace, allowed in the ``weights_only=True`` load), or a ``.safetensors`` file."""
    path = Path(path)
    state = read_checkpoint(path)
    if isinstance(state, dict) and isinstance(state.get("ema"), dict):
        state = state["ema"]
    elif isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise LinaBenchError(f"checkpoint {path} is not a DiT state dict (nor a train.py checkpoint with 'ema')")
    return state


@torch.no_grad()
def randomize_(module: nn.Module) -> None:
    """Non-default random values for every trainable parameter (tests and CI: images that depend on labels
    and every layer, unlike the official zero-initialised adaLN and output layers): matrices and kernels
    N(0, 1/fan_in), vectors N(0, 0.1^2). The fixed position embedding is kept."""
    for param in module.parameters():
        if not param.requires_grad:
            continue
        if param.dim() >= 2:
            param.copy_(torch.randn(param.shape) * param[0].numel() ** -0.5)
        else:
            param.copy_(torch.randn(param.shape) * 0.1)

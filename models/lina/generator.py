"""The ``lina`` generator: LINA / NOVA masked autoregression with continuous tokens (class- and text-to-image).

Sampling as the official ``NOVAC2IPipeline`` and ``NOVAPipeline`` (LINA repo, ``diffnext/pipelines/nova/
pipeline_nova_c2i.py``, ``pipeline_nova.py``, and ``Transformer3DModel.generate_frame``/``denoise``): tokens
are generated in a random order drawn once (uniform noise, argsort), ``n_i`` tokens at AR step i following
a cosine schedule; each step runs the image transformer on the tokens so far and the diffusion head on the
new ones, integrating the flow from fresh Gaussian noise with diffusers' ``FlowMatchEulerDiscreteScheduler``
(``diffusion_steps`` steps); classifier-free guidance rises linearly from ``min_guidance`` to ``guidance``
over the AR steps (the null class is label ``num_classes``; for text, the prompts are encoded with the
negative prompt, empty by default, as the unconditional rows, and the official text pipeline keeps the
guidance constant: ``min_guidance`` = ``guidance``); the VAE (MAR's KL-16, or the SDXL-style one of the text pipelines)
decodes the latents, one image at a time.

Random numbers, per step: the order (first step), then one normal draw of the whole latent. ``sample``
draws them per sample from ``torch.Generator().manual_seed(seed_i)``; ``official_sample`` draws them for
the whole batch from one generator, as the official pipeline called with
``generator=torch.Generator().manual_seed(seed)``, and converts to uint8 as it does (truncation).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler
from torch import nn

from lina_bench.api.checkpoints import load_strict, read_checkpoint
from lina_bench.api.errors import LinaBenchError
from lina_bench.api.generator import CostStage, Generator, GeneratorInfo, to_uint8
from lina_bench.models.blocks.kl16_vae import KL16VAE
from lina_bench.models.lina.config import (
    TransformerConfig,
    arch_table,
    check_setting,
    read_json,
    setting_of_model_index,
)
from lina_bench.models.lina.text import TextEncoder
from lina_bench.models.lina.transformer import NovaTransformer, condition_prefix

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}
# A tiny random-weight model (32 px, 2 x 2 tokens after a 1 x 1 prefix) for tests and smoke runs.
TINY_TRANSFORMER = {"image_dim": 4, "image_size": 32, "image_stride": 16,
                    "arch": ["tiny_video", "tiny_image", "tiny_mlp"]}
TINY_ARCHS = {"video_encoders": {"tiny_video": {"depth": 2, "embed_dim": 32, "num_heads": 2}},
              "image_encoders": {"tiny_image": {"depth": 4, "embed_dim": 32, "num_heads": 2, "image_model": True}},
              "image_decoders": {"tiny_mlp": {"depth": 2, "embed_dim": 32}}}
TINY_TEXT = {"text_token_dim": 32, "text_token_len": 8}  # the tiny text encoder's width; 8 prompt tokens
TINY_DIFFUSION_STEPS = 4
# Sampling defaults: the official class-to-image ones, and LINA's GenEval settings for text-to-image.
SAMPLING_DEFAULTS = {"class": {"ar_steps": 64, "guidance": 5.0}, "text": {"ar_steps": 128, "guidance": 7.0}}
# The VAEs of the official pipelines, for a model built from ``transformer/config.json`` alone.
MAR_VAE = {"_class_name": "AutoencoderKLMAR", "latent_channels": 16, "block_out_channels": [128, 128, 256, 256, 512],
           "layers_per_block": 2, "scaling_factor": 0.2325}
SDXL_VAE = {"_class_name": "AutoencoderKL", "latent_channels": 4, "block_out_channels": [128, 256, 512, 512],
            "layers_per_block": 2, "scaling_factor": 0.13025}
TINY_VAE = {"latent_channels": 4, "block_out_channels": [32] * 5, "layers_per_block": 1, "scaling_factor": 0.5}


def tokens_per_step(num_tokens: int, ar_steps: int) -> list[int]:
    """The official cosine schedule: tokens generated at each AR step (steps with none are dropped)."""
    ratios = np.cos(0.5 * np.pi * np.arange(ar_steps + 1) / ar_steps)
    lengths = np.round(ratios * num_tokens).astype("int64")
    return [int(n) for n in lengths[:-1] - lengths[1:] if n > 0]


class SDXLVAE(AutoencoderKL):
    """The text-to-image pipelines' SDXL-style VAE (diffusers' ``AutoencoderKL`` layout); ``forward``
    decodes, as :class:`KL16VAE`'s does. The official ``diffnext`` ``AutoencoderKL`` has diffusers' module
    tree and names (ResNet blocks, one-head mid attention, asymmetric-padding downsampling, nearest
    upsampling), so diffusers' class loads its weights strictly."""

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.decode(latents).sample


def build_vae(config: dict[str, Any], where: str) -> tuple[nn.Module, float]:
    """The VAE of a diffusers-style ``vae/config.json`` and its ``scaling_factor``: MAR's KL-16 VAE
    (``AutoencoderKLMAR``: attention at the last, coarsest, encoder level as in the official module), or
    the SDXL-style ``AutoencoderKL`` of the text-to-image pipelines."""
    if config.get("_class_name") == "AutoencoderKL":
        if config.get("shift_factor"):
            raise LinaBenchError(f"{where}: shift_factor is not supported (the SDXL VAE has none)")
        widths = tuple(config.get("block_out_channels", SDXL_VAE["block_out_channels"]))
        vae = SDXLVAE(latent_channels=int(config.get("latent_channels", 4)), block_out_channels=widths,
                      layers_per_block=int(config.get("layers_per_block", 2)),
                      norm_num_groups=int(config.get("norm_num_groups", 32)),
                      down_block_types=("DownEncoderBlock2D",) * len(widths),
                      up_block_types=("UpDecoderBlock2D",) * len(widths))
        return vae, float(config.get("scaling_factor", SDXL_VAE["scaling_factor"]))
    try:
        widths = [int(c) for c in config.get("block_out_channels", (128, 256, 512, 512))]
        ch, levels = widths[0], len(widths)
        if any(w % ch for w in widths) or config.get("shift_factor"):
            raise ValueError(f"block_out_channels {widths} must be multiples of the first; shift_factor unsupported")
        vae = KL16VAE(embed_dim=int(config.get("latent_channels", 16)), ch=ch, ch_mult=[w // ch for w in widths],
                      num_res_blocks=int(config.get("layers_per_block", 2)), attn_resolutions=(1,),
                      resolution=2 ** (levels - 1))
        return vae, float(config.get("scaling_factor", 0.18215))
    except (TypeError, ValueError) as exc:
        raise LinaBenchError(f"{where}: unsupported VAE config ({exc})") from exc


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """The state dict in a diffusers model folder: every ``*.safetensors`` file (shards merged), else every
    ``*.bin`` file (read with ``weights_only=True``)."""
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    if not files:
        raise LinaBenchError(f"no .safetensors or .bin weights in {folder}")
    state: dict[str, torch.Tensor] = {}
    for path in files:
        part = read_checkpoint(path, "weights")
        if not isinstance(part, dict):
            raise LinaBenchError(f"weights {path} hold no state dict")
        state.update(part)
    return state


class Draws:
    """The sampler's random numbers: per sample from its own seed, or for the whole batch from one
    generator (the official pipeline's order)."""

    def __init__(self, seeds: Sequence[int] | None = None, batch_seed: int | None = None) -> None:
        self.per_sample = [torch.Generator().manual_seed(int(s)) for s in seeds] if seeds is not None else None
        self.batch = torch.Generator().manual_seed(int(batch_seed)) if batch_seed is not None else None

    def draw(self, fill: Callable[[torch.Tensor, torch.Generator], Any], shape: tuple[int, ...],
             batch: int, dtype: torch.dtype) -> torch.Tensor:
        """(batch, *shape) filled in place by ``fill(tensor, generator)`` (CPU, then moved by the caller)."""
        if self.per_sample is None:
            out = torch.empty(batch, *shape, dtype=dtype)
            fill(out, self.batch)
            return out
        rows = []
        for gen in self.per_sample:
            row = torch.empty(*shape, dtype=dtype)
            fill(row, gen)
            rows.append(row)
        return torch.stack(rows)


class ConditionStage(nn.Module):
    """Cost probe: the condition (class label or text) -> the image transformer's prefix (B, P, C), once per
    image."""

    def __init__(self, transformer: NovaTransformer) -> None:
        super().__init__()
        self.embed = transformer.label_embed if transformer.config.text_token_dim is None else transformer.text_embed
        self.mask_embed = transformer.mask_embed
        self.video_encoder, self.video_pos_embed = transformer.video_encoder, transformer.video_pos_embed

    def forward(self, condition: torch.Tensor) -> torch.Tensor:
        """Labels (B,) or text-encoder states (B, L, token_dim) -> (B, P, C)."""
        return condition_prefix(self.embed(condition), self.mask_embed.bos_token, self.video_encoder,
                                self.video_pos_embed)


class LinaGenerator(Generator):
    """LINA / NOVA class- or text-to-image masked autoregression (official checkpoint directories; any zoo
    setting).

    Without a checkpoint it is a tiny random-weight model (32 px; with ``conditioning="text"`` a tiny
    byte-level tokenizer and Phi text encoder) for tests. ``attention`` overrides the
    setting read from ``model_index.json``; ``archs`` is a JSON file of more arch names; ``config`` a
    ``transformer/config.json`` (or checkpoint directory) to build random weights from (cost measurements).
    ``dtype``: float32, float64, bfloat16 or float16 (default: float64 for the tiny model, float32 otherwise);
    ``diffusion_steps`` defaults to the official 25 (4 for the tiny model), ``ar_steps`` and ``guidance`` to
    64 and 5 for class-to-image and to LINA's GenEval settings, 128 and 7, for text-to-image;
    ``negative_prompt`` is the text of the unconditional CFG rows; ``backend`` picks the linear attention
    kernel ("auto": Triton on CUDA, "triton", "torch": the PyTorch reference).
    """

    # Tiny random-weight configurations for tests and CI (seconds on a CPU).
    test_configs = {"lina-tiny": {},
                    "lina-t2i-tiny": {"conditioning": "text", "ar_steps": 3, "diffusion_steps": 2, "guidance": 3.0}}

    def __init__(self, attention: str | None = None, archs: str | None = None, config: str | None = None,
                 ar_steps: int | None = None, diffusion_steps: int | None = None, guidance: float | None = None,
                 min_guidance: float | None = None, dtype: str | None = None, weight_seed: int = 0,
                 backend: str = "auto", conditioning: str = "class", negative_prompt: str = "") -> None:
        super().__init__()
        if dtype is not None and dtype not in DTYPES:
            raise LinaBenchError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        if conditioning not in SAMPLING_DEFAULTS:
            raise LinaBenchError(f"conditioning must be 'class' or 'text', got {conditioning!r}")
        given_steps = diffusion_steps
        if diffusion_steps is None:
            diffusion_steps = TINY_DIFFUSION_STEPS if config is None else 25
        if (ar_steps is not None and ar_steps < 1) or diffusion_steps < 1:
            raise LinaBenchError("ar_steps and diffusion_steps must be >= 1")
        self.attention_option, self.archs = attention, archs
        self.diffusion_steps, self.diffusion_steps_option = diffusion_steps, given_steps
        self.sampling_options = {"ar_steps": ar_steps, "guidance": guidance, "min_guidance": min_guidance}
        self.negative_prompt = negative_prompt
        # float64 for the tiny built-in model: its images must not depend on the batch (float32 GEMMs of a
        # few rows can differ in the last bit with the row count); checkpoints run in float32 by default.
        self.dtype_option, self.weight_seed, self.backend = dtype, weight_seed, backend
        self.torch_dtype = DTYPES[dtype or ("float64" if config is None else "float32")]
        if config is None:
            tiny = TINY_TRANSFORMER | (TINY_TEXT if conditioning == "text" else {})
            self._build(TransformerConfig.from_dict(tiny, arch_table(extra=TINY_ARCHS), "tiny config"),
                        attention or "lina", TINY_VAE, "tiny VAE", {},
                        TextEncoder.tiny if conditioning == "text" else None)
        else:
            path = Path(config)
            folder = path.parent.parent if path.is_file() else path
            self._build(*self._read_directory(folder, path if path.is_file() else None))

    # -- building and loading ------------------------------------------------------------------------
    def _read_directory(self, folder: Path, transformer_config: Path | None = None) -> tuple[Any, ...]:
        """(config, setting, vae config, where, scheduler config) of an official pipeline directory."""
        if not folder.is_dir() and transformer_config is None:
            raise LinaBenchError(f"checkpoint directory not found: {folder}")
        config_path = transformer_config or folder / "transformer" / "config.json"
        config = TransformerConfig.from_dict(read_json(config_path), arch_table(self.archs), str(config_path))
        if self.attention_option is not None:
            setting = self.attention_option
        elif (folder / "model_index.json").is_file():
            setting = setting_of_model_index(folder / "model_index.json")
        else:
            raise LinaBenchError(f"{folder}: no model_index.json to say which attention the checkpoint uses; "
                                 "set option 'attention'")
        vae_path = folder / "vae" / "config.json"
        if vae_path.is_file() or transformer_config is None:
            vae_config = read_json(vae_path)
        else:  # a transformer config alone: the official pipelines' VAE for its stride
            vae_config = SDXL_VAE if config.image_stride == 8 else MAR_VAE
        scheduler_path = folder / "scheduler" / "scheduler_config.json"
        scheduler = read_json(scheduler_path) if scheduler_path.is_file() else {}
        return config, setting, vae_config, str(vae_path), scheduler

    def _build(self, config: TransformerConfig, setting: str, vae_config: dict[str, Any], vae_where: str,
               scheduler: dict[str, Any], text_encoder: Callable[[], TextEncoder] | None = None) -> None:
        """The modules (random weights from ``weight_seed``) and the sampling settings. ``text_encoder`` builds
        the tokenizer and text encoder of a text-to-image model; without it such a model serves cost
        measurements only."""
        self.setting, self.text = setting, config.text_token_dim is not None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.weight_seed)
            self.transformer = NovaTransformer(config, check_setting(setting), backend=self.backend)
            self.vae, self.scaling_factor = build_vae(vae_config, vae_where)
            self.text_encoder = text_encoder() if text_encoder is not None else None
        self.scheduler_config = scheduler
        self._set_sampling()
        self.to(self.torch_dtype)

    def _set_sampling(self) -> None:
        """``ar_steps``, ``guidance`` and ``min_guidance``: the options, else the defaults of the conditioning."""
        defaults, given = SAMPLING_DEFAULTS["text" if self.text else "class"], self.sampling_options
        self.ar_steps = given["ar_steps"] or defaults["ar_steps"]
        self.guidance = defaults["guidance"] if given["guidance"] is None else given["guidance"]
        self.min_guidance = self.guidance if given["min_guidance"] is None else given["min_guidance"]
        if (self.min_guidance < 1) if self.guidance > 1 else (self.min_guidance > 1):
            raise LinaBenchError(f"guidance {self.guidance} with min_guidance {self.min_guidance}: CFG must be on at "
                                 "every AR step (guidance > 1, min_guidance >= 1) or off (both <= 1)")

    def load_checkpoint(self, path: str | Path) -> None:
        """Load an official pipeline directory (``model_index.json``, ``transformer/``, ``vae/``,
        ``scheduler/``; for text-to-image also ``tokenizer/`` and ``text_encoder/``) strictly; the architecture
        comes from its configs."""
        folder = Path(path)
        if not folder.is_dir():
            raise LinaBenchError(f"a LINA/NOVA checkpoint is a pipeline directory (model_index.json, transformer/, "
                                 f"vae/, scheduler/); {folder} is not a directory")
        self.torch_dtype = DTYPES[self.dtype_option or "float32"]
        self.diffusion_steps = 25 if self.diffusion_steps_option is None else self.diffusion_steps_option
        parts = self._read_directory(folder)
        text = parts[0].text_token_dim is not None
        self._build(*parts, (lambda: TextEncoder.from_directory(folder)) if text else None)
        load_strict(self.transformer, read_weights(folder / "transformer"), f"checkpoint {folder / 'transformer'}")
        load_strict(self.vae, read_weights(folder / "vae"), f"checkpoint {folder / 'vae'}")
        if self.text_encoder is not None:
            self.text_encoder.load(read_weights(folder / "text_encoder"), f"checkpoint {folder / 'text_encoder'}")
        self.to(self.torch_dtype)

    # -- facts -----------------------------------------------------------------------------------------
    @property
    def dtype(self) -> torch.dtype:
        return self.transformer.mask_embed.mask_token.dtype

    @property
    def device(self) -> torch.device:
        return self.transformer.mask_embed.mask_token.device

    @property
    def num_classes(self) -> int | None:
        return None if self.text else self.transformer.label_embed.num_classes

    @property
    def schedule(self) -> list[int]:
        grid = self.transformer.config.grid
        return tokens_per_step(grid[0] * grid[1], self.ar_steps)

    @property
    def cfg(self) -> bool:
        return self.guidance > 1

    def info(self) -> GeneratorInfo:
        config = self.transformer.config
        size = tuple(s * config.image_stride for s in config.latent_size)
        return GeneratorInfo(family="lina", resolution=size, conditioning="text" if self.text else "class",
                             steps=len(self.schedule), num_classes=self.num_classes,
                             guidance=self.guidance if self.cfg else None, attention=self.setting,
                             extra={"diffusion_steps": self.diffusion_steps, "min_guidance": self.min_guidance,
                                    "ar_steps": self.ar_steps})

    # -- sampling --------------------------------------------------------------------------------------
    def _scheduler(self) -> FlowMatchEulerDiscreteScheduler:
        scheduler = FlowMatchEulerDiscreteScheduler.from_config(self.scheduler_config)
        scheduler.set_timesteps(self.diffusion_steps)
        return scheduler

    def _denoise(self, noise: torch.Tensor, cond: torch.Tensor, scale: float,
                 scheduler: FlowMatchEulerDiscreteScheduler) -> torch.Tensor:
        """Flow-Euler integration of the new tokens: noise (B, n, p*p*C), cond (B or 2B, n, C) -> (B, n, p*p*C)."""
        head, x = self.transformer.image_decoder, noise
        condition = head.embed_condition(cond)  # the same for every flow step
        scheduler._step_index = None  # restart the sigma schedule, as the official ``denoise``
        for t in scheduler.timesteps:
            timestep = torch.as_tensor(t, device=x.device).expand(cond.shape[0])
            velocity = head.velocity(torch.cat([x, x]) if scale > 1 else x, timestep, condition)
            if scale > 1:
                c, u = velocity.chunk(2)
                velocity = u + (c - u) * scale
            x = scheduler.step(velocity, t, x).prev_sample
        return x

    @torch.no_grad()
    def _latents(self, condition: torch.Tensor, draws: Draws) -> torch.Tensor:
        """Condition embeddings (B, L, C), under CFG (2B, L, C) (the conditional rows, then the unconditional
        ones) -> (B, C, H, W) latents, scaled as the transformer sees them."""
        tr, config = self.transformer, self.transformer.config
        b, (h, w), dtype, device = len(condition) // (2 if self.cfg else 1), config.grid, self.dtype, self.device
        num_tokens, patch = h * w, tr.image_encoder.patch_embed
        prefix = tr.condition_tokens(condition)
        latents = torch.zeros(b, config.image_dim, *config.latent_size, dtype=dtype, device=device)
        mask = torch.ones(b, num_tokens, 1, dtype=dtype, device=device)
        order = draws.draw(lambda t, g: t.uniform_(generator=g), (num_tokens, 1), b, dtype).to(device).argsort(dim=1)
        scheduler, schedule, done = self._scheduler(), self.schedule, 0
        for i, count in enumerate(schedule):
            scale = (self.guidance - self.min_guidance) * (i + 1) / len(schedule) + self.min_guidance
            tokens = tr.image_tokens(latents, mask)
            visible, new = order[:, :done], order[:, done:done + count]
            new_ids = new
            if scale > 1:  # the conditional rows, then the unconditional ones
                tokens, visible, new_ids = (torch.cat([t, t]) for t in (tokens, visible, new))
            cond = tr.image_encoder(tokens, prefix, visible)
            cond = cond.gather(1, new_ids.expand(-1, -1, cond.shape[-1]))
            noise = draws.draw(lambda t, g: t.normal_(generator=g), latents.shape[1:], b, dtype).to(device)
            noise = patch.patchify(noise).gather(1, new.expand(-1, -1, patch.patch_size**2 * config.image_dim))
            sample = self._denoise(noise, cond, scale, scheduler)
            flat = patch.patchify(latents).scatter(1, new.expand(-1, -1, sample.shape[-1]), sample)
            latents = patch.unpatchify(flat, (h, w))
            mask = mask.scatter(1, new, 0.0)
            done += count
        return latents

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents -> images (B, 3, H, W) in about [-1, 1], one image at a time as the official pipeline."""
        latents = latents * (1 / self.scaling_factor)
        return torch.cat([self.vae(z[None]) for z in latents])

    def _condition(self, conditions: Sequence[int] | Sequence[str]) -> torch.Tensor:
        """Labels or prompts -> condition embeddings (B, L, C), under CFG followed by the null class or
        the negative prompt (B rows)."""
        tr = self.transformer
        if not self.text:
            labels = torch.tensor(list(conditions), dtype=torch.long, device=self.device)
            if self.cfg:
                labels = torch.cat([labels, torch.full_like(labels, self.num_classes)])
            return tr.label_embed(labels)
        if self.text_encoder is None:
            raise LinaBenchError("text-to-image sampling needs the checkpoint's tokenizer/ and text_encoder/ (load "
                                 "the pipeline directory); option 'config' builds a model for cost measurements")
        prompts = list(conditions) + ([self.negative_prompt] * len(conditions) if self.cfg else [])
        states, lengths = self.text_encoder.encode(prompts, tr.text_embed.num_tokens)
        return tr.text_embed(tr.text_embed.fill(states.to(self.device), lengths))

    @torch.no_grad()
    def sample(self, conditions: Sequence[int] | Sequence[str], seeds: Sequence[int]) -> torch.Tensor:
        self.check_conditions(conditions, seeds)
        images = self._decode(self._latents(self._condition(conditions), Draws(seeds=seeds)))
        return to_uint8((images.float() + 1) / 2).cpu()

    @torch.no_grad()
    def official_sample(self, conditions: Sequence[int] | Sequence[str], seed: int) -> torch.Tensor:
        """The official pipeline's images for this batch, ``generator=torch.Generator().manual_seed(seed)``,
        and its uint8 conversion: ``(x * 127.5 + 127.5).clamp(0, 255)`` truncated."""
        self.check_conditions(conditions, [seed] * len(conditions))
        images = self._decode(self._latents(self._condition(conditions), Draws(batch_seed=seed)))
        return (images.float() * 127.5 + 127.5).clamp(0, 255).to(torch.uint8).cpu()

    # -- costs -----------------------------------------------------------------------------------------
    def cost_probes(self, batch_size: int = 1) -> list[CostStage]:
        """Condition encoder once per image; the image transformer once per AR step (with the mean number
        of visible tokens); the diffusion head once per AR step x diffusion step (with the mean number of
        new tokens); the VAE decoder once per image; a loaded text-to-image model's text encoder once per image
        (over ``text_token_len`` ids). CFG doubles the rows of all but the VAE. The head's stage is one call
        of the official head, its condition projection included, which ``_denoise`` computes once per AR
        step rather than once per flow step: the stage counts what the official sampler runs (the
        projection is about 6 % of the head's work at width 1536, depth 6)."""
        tr, config = self.transformer, self.transformer.config
        b, dim, dtype, device = batch_size, tr.image_encoder.embed_dim, self.dtype, self.device
        schedule = self.schedule
        num_tokens = sum(schedule)
        seen = round(sum(num_tokens - sum(schedule[i:]) for i in range(len(schedule))) / len(schedule))
        new = math.ceil(num_tokens / len(schedule))
        prefix_len = config.video_grid[0] * config.video_grid[1]
        if self.text:
            condition = torch.zeros(b, config.text_token_len, config.text_token_dim, dtype=dtype, device=device)
        else:
            condition = torch.zeros(b, dtype=torch.long, device=device)
        tokens = torch.zeros(b, num_tokens, dim, dtype=dtype, device=device)
        prefix = torch.zeros(b, prefix_len, dim, dtype=dtype, device=device)
        visible = torch.arange(seen, device=device).view(1, -1, 1).expand(b, -1, -1)
        head_x = torch.zeros(b, new, config.patch_size**2 * config.image_dim, dtype=dtype, device=device)
        head_t = torch.full((b,), 500.0, dtype=dtype, device=device)
        head_z = torch.zeros(b, new, dim, dtype=dtype, device=device)
        latents = torch.zeros(b, config.image_dim, *config.latent_size, dtype=dtype, device=device)
        steps = len(schedule)
        stages = [CostStage("transformer", tr.image_encoder, (tokens, prefix, visible), steps, self.cfg),
                  CostStage("condition", ConditionStage(tr), (condition,), 1, self.cfg),
                  CostStage("head", tr.image_decoder, (head_x, head_t, head_z), steps * self.diffusion_steps, self.cfg),
                  CostStage("vae", self.vae, (latents,), 1)]
        if self.text_encoder is not None:
            ids = torch.zeros(b, config.text_token_len, dtype=torch.long, device=device)
            stages.append(CostStage("text", self.text_encoder, (ids,), 1, self.cfg))
        return stages

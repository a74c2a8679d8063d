"""The ``mar`` generator: MAR (LTH14/mar) class-to-image, the softmax baseline of masked autoregression with
continuous tokens. The transformer and diffusion head load from the official ``checkpoint-last.pth``
(EMA weights unless ``ema=False``), the KL-16 VAE from its official ``kl16.ckpt`` (option ``vae``).

``official_sample(labels, seed)`` reproduces the official evaluation (``engine_mar.evaluate``): ``sample_tokens``
after ``torch.manual_seed(seed); np.random.seed(seed)`` on the CPU, ``vae.decode(tokens / 0.2325)``, then
``np.round(np.clip((x + 1) / 2 * 255, 0, 255))`` as uint8 (returned RGB; the official script writes BGR PNGs).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Iterator, Sequence

import torch

from lina_bench.api.checkpoints import load_strict, read_checkpoint
from lina_bench.api.errors import LinaBenchError
from lina_bench.api.generator import CostStage, Generator, GeneratorInfo, to_uint8
from lina_bench.models.blocks.kl16_vae import KL16VAE
from lina_bench.models.mar.sampler import OfficialRng, PerSampleRng, TokenRng, sample_tokens, visible_counts
from lina_bench.models.mar.transformer import MAR, MARConfig

VAE_SCALE = 0.2325  # the official latent scaling (tokens = VAE latents * 0.2325)
DTYPES = {"float32": torch.float32, "float64": torch.float64}
# The official factories' sizes, with the diffusion heads of the released checkpoints (README: MAR-B d6 w1024,
# MAR-L d8 w1280, MAR-H d12 w1536).
MODELS: dict[str, dict[str, int]] = {
    "mar_base": dict(encoder_embed_dim=768, encoder_depth=12, encoder_num_heads=12, decoder_embed_dim=768,
                     decoder_depth=12, decoder_num_heads=12, diffloss_d=6, diffloss_w=1024),
    "mar_large": dict(encoder_embed_dim=1024, encoder_depth=16, encoder_num_heads=16, decoder_embed_dim=1024,
                      decoder_depth=16, decoder_num_heads=16, diffloss_d=8, diffloss_w=1280),
    "mar_huge": dict(encoder_embed_dim=1280, encoder_depth=20, encoder_num_heads=16, decoder_embed_dim=1280,
                     decoder_depth=20, decoder_num_heads=16, diffloss_d=12, diffloss_w=1536),
}


@contextmanager
def full_float32() -> Iterator[None]:
    """CUDA matrix products and convolutions in full float32 (no TF32) inside the block."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


class HeadTokens(torch.nn.Module):
    """The diffusion head on (B, n, ...) token rows: what one AR step's denoising step runs per image."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """x (B, n, C), t (B,), z (B, n, D) -> (B, n, 2C)."""
        b, n = x.shape[:2]
        return self.net(x.flatten(0, 1), t.repeat_interleave(n), z.flatten(0, 1)).view(b, n, -1)


class MARGenerator(Generator):
    """MAR-B/L/H (``model``) or any size through the official ``MAR`` argument names (each overrides the preset).

    Sampling: ``ar_steps`` AR steps, ``diffusion_steps`` DDPM steps (the official ``num_sampling_steps``),
    ``guidance`` (the official ``cfg``; 1.0 = none) with ``guidance_schedule`` ``linear`` or ``constant``,
    ``temperature``. Without a checkpoint the transformer and head are random (torch's default initialisation,
    seeded by ``weight_seed``), and without ``vae`` so is the VAE: enough for cost measurements and tests.
    """

    # Tiny configuration for tests and CI (seconds on a CPU): random weights, 16 px, 16 tokens; float64 so that
    # images do not depend on the batch they are drawn in (in float32 rounding differences between batch sizes
    # are amplified by the DDPM's first steps).
    test_configs = {
        "mar-tiny": {"img_size": 16, "vae_stride": 2, "patch_size": 2, "encoder_embed_dim": 32, "encoder_depth": 1,
                     "encoder_num_heads": 2, "decoder_embed_dim": 32, "decoder_depth": 1, "decoder_num_heads": 2,
                     "vae_embed_dim": 4, "class_num": 10, "buffer_size": 2, "diffloss_d": 1, "diffloss_w": 32,
                     "vae_ch": 32, "vae_ch_mult": [1, 1], "ar_steps": 3, "diffusion_steps": 2, "guidance": 2.0,
                     "dtype": "float64"},
    }

    def __init__(self, model: str = "mar_large", encoder_embed_dim: int | None = None,
                 encoder_depth: int | None = None, encoder_num_heads: int | None = None,
                 decoder_embed_dim: int | None = None, decoder_depth: int | None = None,
                 decoder_num_heads: int | None = None, diffloss_d: int | None = None, diffloss_w: int | None = None,
                 buffer_size: int = 64, vae_embed_dim: int = 16, vae_stride: int = 16, patch_size: int = 1,
                 img_size: int = 256, class_num: int = 1000, mlp_ratio: float = 4.0,
                 vae: str | None = None, vae_ch: int = 128, vae_ch_mult: list | None = None, ema: bool = True,
                 ar_steps: int = 64, diffusion_steps: int = 100, guidance: float = 1.0,
                 guidance_schedule: str = "linear", temperature: float = 1.0, attention: str = "softmax",
                 attention_options: dict | None = None, dtype: str = "float32", weight_seed: int = 0) -> None:
        super().__init__()
        if model not in MODELS:
            raise LinaBenchError(f"unknown MAR model {model!r}; choose one of {', '.join(MODELS)}")
        if attention != "softmax":
            raise LinaBenchError(f"MAR supports attention 'softmax' only, got {attention!r}: its encoder attends "
                                 "over the visible tokens alone, which form no token grid")
        if guidance_schedule not in ("linear", "constant"):
            raise LinaBenchError(f"guidance_schedule must be 'linear' or 'constant', got {guidance_schedule!r}")
        if dtype not in DTYPES:
            raise LinaBenchError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        if ar_steps < 1 or not 2 <= diffusion_steps <= 1000:
            raise LinaBenchError(f"ar_steps must be >= 1 and diffusion_steps in [2, 1000], got {ar_steps}, "
                                 f"{diffusion_steps}")
        sizes = {**MODELS[model], **{k: v for k, v in dict(
            encoder_embed_dim=encoder_embed_dim, encoder_depth=encoder_depth, encoder_num_heads=encoder_num_heads,
            decoder_embed_dim=decoder_embed_dim, decoder_depth=decoder_depth, decoder_num_heads=decoder_num_heads,
            diffloss_d=diffloss_d, diffloss_w=diffloss_w).items() if v is not None}}
        self.config = MARConfig(img_size=img_size, vae_stride=vae_stride, patch_size=patch_size, mlp_ratio=mlp_ratio,
                                vae_embed_dim=vae_embed_dim, class_num=class_num, buffer_size=buffer_size, **sizes)
        self.model_name, self.ema, self.ar_steps, self.diffusion_steps = model, ema, ar_steps, diffusion_steps
        self.guidance, self.guidance_schedule, self.temperature = float(guidance), guidance_schedule, temperature
        ch_mult = list(vae_ch_mult or [1, 1, 2, 2, 4])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(weight_seed)
            self.mar = MAR(self.config, attention, attention_options, diffusion_steps)
            self.vae = KL16VAE(embed_dim=vae_embed_dim, ch=vae_ch, ch_mult=ch_mult)
        if self.vae.stride != vae_stride:
            raise LinaBenchError(f"vae_ch_mult {ch_mult} gives a VAE of stride {self.vae.stride}, "
                                 f"not vae_stride={vae_stride}")
        if vae is not None:
            self.vae.load_mar_checkpoint(vae)
        self.to(DTYPES[dtype])

    @property
    def device(self) -> torch.device:
        return self.mar.z_proj.weight.device

    def info(self) -> GeneratorInfo:
        size = self.config.img_size
        return GeneratorInfo(
            family="mar", resolution=(size, size), conditioning="class", steps=self.ar_steps,
            num_classes=self.config.class_num, guidance=self.guidance if self.guidance != 1.0 else None,
            attention="softmax",
            extra={"model": self.model_name, "config": asdict(self.config), "diffusion_steps": self.diffusion_steps,
                   "guidance_schedule": self.guidance_schedule, "temperature": self.temperature, "ema": self.ema})

    def load_checkpoint(self, path: str | Path) -> None:
        """The official ``checkpoint-last.pth``: ``{"model": ..., "model_ema": ...}`` (+ training state), strictly."""
        state = read_checkpoint(path, "MAR checkpoint")
        key = "model_ema" if self.ema else "model"
        if not isinstance(state, dict) or not isinstance(state.get(key), dict):
            found = sorted(state) if isinstance(state, dict) else type(state).__name__
            hint = " (set ema=false to use 'model')" if key == "model_ema" else ""
            raise LinaBenchError(f"MAR checkpoint {path} has no {key!r} state dict{hint}; found {found}")
        load_strict(self.mar, state[key], f"MAR checkpoint {path} ({key!r})")

    def _latents(self, labels: Sequence[int], rng: TokenRng) -> torch.Tensor:
        """(B, 3, H, W) decoded images, nominally in [-1, 1]."""
        tokens = sample_tokens(self.mar, torch.tensor(list(labels), dtype=torch.long, device=self.device), rng,
                               self.ar_steps, self.guidance, self.guidance_schedule, self.temperature)
        with torch.no_grad():
            return self.vae.decode(tokens / VAE_SCALE)

    def sample(self, conditions: Sequence[int], seeds: Sequence[int]) -> torch.Tensor:
        self.check_conditions(conditions, seeds)
        images = self._latents(conditions, PerSampleRng(seeds))
        return to_uint8((images.float().cpu() + 1) / 2)

    def official_sample(self, conditions: Sequence[int], seed: int) -> torch.Tensor:
        """The official CPU sampler's images; on a GPU too, with TF32 off (with cuDNN's default TF32
        convolutions an H200 gave 98% of pixels exact, max |diff| 1; without, all exact)."""
        self.check_conditions(conditions, [seed] * len(conditions))
        with full_float32():
            images = (self._latents(conditions, OfficialRng(len(conditions), seed)).float().cpu() + 1) / 2
        return torch.round(torch.clamp(images * 255, 0, 255)).to(torch.uint8)

    def cost_probes(self, batch_size: int = 1) -> list[CostStage]:
        """The transformer once per AR step (encoder on the mean number of visible tokens over the steps), the
        diffusion head on each step's tokens once per denoising step, the VAE decoder once; CFG doubles the
        transformer's and the head's rows."""
        cfg, dtype, device = self.config, self.mar.z_proj.weight.dtype, self.device
        visible = round(sum(visible_counts(cfg.seq_len, self.ar_steps)) / self.ar_steps)
        mask = torch.ones(batch_size, cfg.seq_len, dtype=dtype, device=device)
        mask[:, :visible] = 0
        tokens = torch.zeros(batch_size, cfg.seq_len, cfg.token_embed_dim, dtype=dtype, device=device)
        class_embedding = torch.zeros(batch_size, cfg.encoder_embed_dim, dtype=dtype, device=device)
        per_call = max(1, round(cfg.seq_len / self.ar_steps))  # tokens per AR step and image, on average
        head_inputs = (torch.zeros(batch_size, per_call, cfg.token_embed_dim, dtype=dtype, device=device),
                       torch.zeros(batch_size, dtype=torch.long, device=device),
                       torch.zeros(batch_size, per_call, cfg.decoder_embed_dim, dtype=dtype, device=device))
        side = cfg.img_size // cfg.vae_stride
        latents = torch.zeros(batch_size, cfg.vae_embed_dim, side, side, dtype=dtype, device=device)
        guided = self.guidance != 1.0
        return [CostStage("transformer", self.mar, (tokens, mask, class_embedding), self.ar_steps, guided),
                CostStage("diffusion_head", HeadTokens(self.mar.diffloss.net), head_inputs,
                          self.diffusion_steps * cfg.seq_len / per_call, guided),
                CostStage("vae_decoder", self.vae, (latents,), 1)]


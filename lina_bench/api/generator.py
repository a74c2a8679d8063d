"""The contract every generator family implements (LINA/NOVA, MAR, LiT/DiT, LASADGen/LlamaGen, ...).

A generator is an ``nn.Module`` subclass of :class:`Generator`, registered in
``lina_bench.api.registry.generators``. The registry's factory is called with the suite's options;
a checkpoint, when given, is then loaded with :meth:`Generator.load_checkpoint`.

Determinism contract: ``sample(conditions, seeds)`` returns uint8 images whose content depends only
on each sample's (condition, seed), never on the batch it was drawn in. Evaluators derive the seed
of sample ``i`` of a run with seed ``s`` as :func:`sample_seed(s, i) <sample_seed>`, so results
do not depend on the batch size or on how samples are sharded over processes.
"""

from __future__ import annotations

import hashlib
import warnings
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from PIL import Image
from torch import nn

from lina_bench.api import registry
from lina_bench.api.attention import AttentionModule
from lina_bench.api.checkpoints import load_strict, read_checkpoint, state_dict_in
from lina_bench.api.errors import JobFailed, LinaBenchError

UINT8_CONVENTION = "uint8 = round_half_even(clip(x, 0, 1) * 255), x in [0, 1]"


@dataclass(frozen=True)
class GeneratorInfo:
    """Protocol facts recorded with every result of a generator."""

    family: str
    resolution: tuple[int, int]  # (H, W) of the images sample() returns
    conditioning: str  # "class" or "text"
    steps: int  # network evaluations (AR or diffusion steps) per image
    num_classes: int | None = None
    guidance: float | None = None  # classifier-free guidance scale, None when unused
    attention: str | None = None  # attention variant, when the family lets it be chosen
    uint8_convention: str = UINT8_CONVENTION
    extra: dict[str, Any] = field(default_factory=dict)

    def as_protocol(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BuildSpec:
    """How a generator was built, so that another process can build the same one."""

    name: str
    options: dict[str, Any]
    checkpoint: str | None = None


@dataclass(frozen=True)
class CostStage:
    """One network that sampling runs, for the cost evaluators: ``module(*inputs)`` is one call on the
    probe's batch of images (tensors with ``batch_size`` rows first), made ``calls_per_image`` times per
    image (a transformer: once per AR or diffusion step; a diffusion head: AR steps x denoising steps;
    a VAE decoder: once). ``cfg_doubles_batch``: under classifier-free guidance every real call runs
    the conditional and the unconditional rows together, twice the probe's rows per image.
    ``name`` is unique among a generator's stages, without "." (it prefixes attention-module names).
    """

    name: str
    module: nn.Module
    inputs: tuple[Any, ...]
    calls_per_image: float
    cfg_doubles_batch: bool = False

    @property
    def batch_multiplier(self) -> int:
        """Rows one real call runs per image of the probe batch: 2 under CFG, else 1."""
        return 2 if self.cfg_doubles_batch else 1

    def describe(self) -> dict[str, Any]:
        """The stage's facts for reports: name, calls_per_image, cfg_doubles_batch."""
        return {"name": self.name, "calls_per_image": self.calls_per_image,
                "cfg_doubles_batch": self.cfg_doubles_batch}


def sample_seed(seed: int, *index: int) -> int:
    """The 63-bit seed of sample ``index`` in a run seeded with ``seed`` (stable across versions).

    ``index`` may have several parts, e.g. (prompt, image) for GenEval."""
    key = ":".join(str(int(i)) for i in (seed, *index))
    digest = hashlib.sha256(f"lina-bench:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def placeholder_conditions(info: GeneratorInfo, count: int) -> list[int] | list[str]:
    """Conditions for ``count`` samples when the protocol prescribes none (speed, determinism):
    class labels ``i % num_classes``, or numbered prompts."""
    if info.conditioning == "class":
        return [i % (info.num_classes or 1) for i in range(count)]
    return [f"a photo of object number {i}" for i in range(count)]


def to_pil(image: torch.Tensor) -> Image.Image:
    """One uint8 (3, H, W) image -> a PIL RGB image."""
    return Image.fromarray(image.permute(1, 2, 0).numpy())


class NonFiniteImages(JobFailed):
    """A generator produced NaN or inf pixels: a failed measurement (exit 1); they are counted, never
    clipped into a number."""


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) floats in [0, 1] -> uint8 by ``UINT8_CONVENTION``; NaN/inf raise NonFiniteImages."""
    bad = ~torch.isfinite(images)
    if bad.any():
        per_image = bad.flatten(1).any(dim=1)
        raise NonFiniteImages(f"the generator produced {int(bad.sum())} non-finite values in "
                              f"{int(per_image.sum())} of {len(images)} images")
    return (images.clamp(0, 1) * 255).round().to(torch.uint8)


class Generator(nn.Module, ABC):
    """Base class of generator families. Subclasses implement ``info``, ``sample`` and ``cost_probes``.

    ``build_spec`` (set by :func:`build_generator`) says how to build the same generator elsewhere.
    """

    build_spec: BuildSpec | None = None

    @abstractmethod
    def info(self) -> GeneratorInfo:
        """Resolution, steps, guidance and other protocol facts."""

    @abstractmethod
    def sample(self, conditions: Sequence[int] | Sequence[str], seeds: Sequence[int]) -> torch.Tensor:
        """One image per (condition, seed): class labels or prompts, and one seed per sample.

        Returns uint8 (B, 3, H, W) on the CPU; image i depends only on (conditions[i], seeds[i]).
        """

    @abstractmethod
    def cost_probes(self, batch_size: int = 1) -> list[CostStage]:
        """Every network sampling runs, main one (e.g. the transformer) first, with inputs for
        ``batch_size`` images."""

    def cost_probe(self, batch_size: int = 1) -> CostStage:
        """Deprecated (removed in the next release): the first of :meth:`cost_probes`."""
        warnings.warn("Generator.cost_probe() is deprecated; use cost_probes()", DeprecationWarning, stacklevel=2)
        return self.cost_probes(batch_size)[0]

    def official_sample(self, conditions: Sequence[int] | Sequence[str], seed: int) -> torch.Tensor:
        """The images the official sampler draws for this batch and seed: its random-number order for
        the whole batch (not per-sample seeds) and its own uint8 conversion; a uint8 CPU tensor
        (B, 3, H, W), RGB. How a user checks the port against the official code on a checkpoint."""
        raise LinaBenchError(f"generator family {self.info().family!r} has no official sampler to reproduce")

    def decode_step(self, batch: int, position: int) -> nn.Module:
        """Optional hook of raster-order AR generators (the decode-profile evaluator): one decoding step of
        ``batch`` rows at sequence ``position``, its caches filled up to it. Returns a module with ``inputs``
        (a tuple it is called with, repeatably, each call costing the same and leaving the caches unchanged)
        and ``cache_bytes()`` (the decoding memory of all layers after the step: KV slots 0..position, or the
        recurrent states). Families that do not generate token by token keep this default, which raises."""
        raise LinaBenchError(f"generator family {self.info().family!r} does not decode token by token "
                             "(it has no decode_step); decode-profile needs a raster-order AR generator")

    def attention_modules(self) -> dict[str, AttentionModule]:
        """Attention modules by ``"<stage>.<qualified name in the stage's module>"``,
        e.g. ``"transformer.blocks.0.attn"``."""
        return {f"{stage.name}.{name}": m for stage in self.cost_probes()
                for name, m in stage.module.named_modules() if isinstance(m, AttentionModule)}

    def check_conditions(self, conditions: Sequence[Any], seeds: Sequence[int]) -> None:
        """Clear errors for mismatched lengths, out-of-range class labels and non-text prompts."""
        if len(conditions) != len(seeds):
            raise LinaBenchError(f"{len(conditions)} conditions but {len(seeds)} seeds")
        info = self.info()
        if info.conditioning == "class":
            bad = [c for c in conditions if not isinstance(c, int) or not 0 <= c < (info.num_classes or 0)]
            if bad:
                raise LinaBenchError(f"class labels must be ints in [0, {info.num_classes}), got {bad[:5]}")
        elif not all(isinstance(c, str) for c in conditions):
            raise LinaBenchError("a text-conditioned generator takes prompts (str)")

    def load_checkpoint(self, path: str | Path) -> None:
        """Load weights strictly from a local ``.safetensors`` or torch file (weights_only=True): the
        state dict under ``model``, ``state_dict`` or ``ema``, or the file's top level."""
        state = state_dict_in(read_checkpoint(path), ("model", "state_dict", "ema"), path)
        load_strict(self, state, f"checkpoint {path}")


def build_generator(name: str, options: dict[str, Any] | None = None,
                    checkpoint: str | Path | None = None) -> Generator:
    """Build registered generator ``name`` from ``options``, then load ``checkpoint`` if given."""
    options = dict(options or {})
    problems = registry.generators.check_options(name, options)
    if problems:
        raise LinaBenchError("; ".join(problems))
    generator = registry.generators.get(name)(**options)
    if not isinstance(generator, Generator):
        raise LinaBenchError(f"generator {name!r} built a {type(generator).__name__}, not a Generator")
    if checkpoint is not None:
        generator.load_checkpoint(checkpoint)
    generator.build_spec = BuildSpec(name, options, None if checkpoint is None else str(checkpoint))
    return generator.eval()

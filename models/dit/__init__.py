"""DiT and LiT: class-conditional latent diffusion transformers (facebookresearch/DiT), the attention of
each block from the zoo (``softmax`` = DiT, ``lit`` = LiT). Generator ``dit``: :class:`DiTGenerator`."""

from lina_bench.models.dit.generator import DiTGenerator
from lina_bench.models.dit.model import DIT_SIZES, DiT

__all__ = ["DIT_SIZES", "DiT", "DiTGenerator"]

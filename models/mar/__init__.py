"""MAR (LTH14/mar): masked autoregression with continuous tokens and a diffusion head, the softmax baseline."""

from lina_bench.models.mar.generator import MODELS, MARGenerator

__all__ = ["MODELS", "MARGenerator"]

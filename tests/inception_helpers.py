"""A random-init Inception weights file, so the real loading path runs without the real weights."""

from lina_bench.evaluators.inception import random_inception_weights

__all__ = ["random_inception_weights"]

"""lina-bench: evaluation and benchmarking harness for linear-attention image generators."""

__version__ = "0.1.0"

"""Shared fixtures. Without a GPU, Triton kernels run in Triton's CPU interpreter."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

if not torch.cuda.is_available():  # read when lina-bench's Triton kernels are first imported
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture
def write_suite(tmp_path: Path):
    def write(text: str, name: str = "suite.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path
    return write

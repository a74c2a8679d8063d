"""The code base passes ruff (pyflakes, pycodestyle, bugbear, import order; config in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_ruff_clean():
    repo = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(repo)], capture_output=True,
                          text=True, cwd=repo, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr

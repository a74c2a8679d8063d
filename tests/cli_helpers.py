"""Helpers to run the CLI in tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from lina_bench.cli import cli


def run_cli(*args: str) -> tuple[int, str]:
    """Run the CLI in-process the way the console script does; returns (exit code, output)."""
    runner = CliRunner()
    result = runner.invoke(cli, list(args), prog_name="lina-bench", catch_exceptions=False)
    return result.exit_code, result.output


def run_console(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``lina-bench`` as a subprocess (real exit codes, real stderr)."""
    return subprocess.run([sys.executable, "-c", "from lina_bench.cli import main; main()", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=300)

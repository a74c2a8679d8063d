"""Where a number came from: package versions, git revision, device."""

from __future__ import annotations

import functools
import importlib.metadata
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from lina_bench.api.files import file_sha256  # noqa: F401  (its old home; re-exported for one release)

PACKAGES = ("lina-bench", "torch", "triton", "numpy", "fvcore", "torch-fidelity", "open-clip-torch",
            "safetensors")


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@functools.cache
def git_revision() -> str | None:
    """The commit of the lina-bench source in use (``+dirty`` when modified); None outside a checkout."""
    source = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("+dirty" if dirty else "")


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else the machine type."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_description(device: str) -> dict[str, Any]:
    """The device a job ran on, with the card's name on CUDA."""
    import torch

    info: dict[str, Any] = {"device": device, "platform": platform.platform(), "cpu": cpu_model(),
                            "torch_threads": torch.get_num_threads()}
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def provenance(device: str, seeds: dict[str, Any], started_at: str, finished_at: str) -> dict[str, Any]:
    return {"versions": package_versions(), "git_revision": git_revision(), "device": device_description(device),
            "seeds": seeds, "started_at": started_at, "finished_at": finished_at, "argv": sys.argv[1:]}

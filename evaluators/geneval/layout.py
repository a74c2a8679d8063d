"""GenEval's image folder layout: ``<root>/<00000>/metadata.jsonl`` (the prompt's official metadata
line) and ``<root>/<00000>/samples/<0000>.png``.

Reading follows the official scorer: prompt folders are the subfolders whose name is all digits,
samples are the files of ``samples/`` whose name matches ``\\d+\\.png`` at its start. Folders and
images are listed in numeric order (the official scorer takes ``os.listdir`` order; no score depends
on it).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lina_bench.api.errors import LinaBenchError
from lina_bench.evaluators.geneval.scoring import check_metadata

SAMPLE_NAME = re.compile(r"\d+\.png")
METADATA_FILE = "metadata.jsonl"


def prompt_folder(root: Path, prompt: int) -> Path:
    return root / f"{prompt:05d}"


def sample_path(root: Path, prompt: int, image: int) -> Path:
    return prompt_folder(root, prompt) / "samples" / f"{image:04d}.png"


@dataclass(frozen=True)
class PromptImages:
    """One prompt folder: its index (the folder name), metadata and sample images."""

    index: int
    folder: Path
    metadata: dict[str, Any]
    images: list[Path]

    def image_id(self, image: Path) -> str:
        """``<00000>/<0000>``: names an image inside the root, for caches and messages."""
        return f"{self.folder.name}/{image.stem}"


def _numeric(name: str) -> tuple[int, str]:
    return int(re.match(r"\d+", name).group()), name


def scan_images(root: str | Path) -> list[PromptImages]:
    """Every prompt folder of a GenEval image folder; clear errors for a missing or malformed one."""
    root = Path(root)
    if not root.is_dir():
        raise LinaBenchError(f"GenEval image folder not found: {root}")
    folders = sorted((p for p in root.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: _numeric(p.name))
    if not folders:
        raise LinaBenchError(f"{root}: no prompt folders (<00000>/metadata.jsonl + samples/<0000>.png)")
    prompts = []
    for folder in folders:
        meta_path = folder / METADATA_FILE
        if not meta_path.is_file():
            raise LinaBenchError(f"{meta_path}: missing (each prompt folder needs its metadata line)")
        try:
            metadata = json.loads(meta_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise LinaBenchError(f"{meta_path}: not valid JSON ({exc})") from None
        check_metadata(metadata, str(meta_path))
        samples = folder / "samples"
        images = sorted((p for p in samples.iterdir() if p.is_file() and SAMPLE_NAME.match(p.name)),
                        key=lambda p: _numeric(p.name)) if samples.is_dir() else []
        if not images:
            raise LinaBenchError(f"{samples}: no sample images (<0000>.png)")
        prompts.append(PromptImages(int(folder.name), folder, metadata, images))
    return prompts
